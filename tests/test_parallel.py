"""The second process (scanner.parallel) gives what one process gives, byte for byte, or falls back.

The fleets come from the benchmark's generator (benchmarks/fleet.py): 16-node clusters, one
folder per cluster. Every test checks that a child really was forked, so none passes by
quietly running in one process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scanner import parallel, pipeline
from scanner.errors import InputError
from scanner.model import ScanReport
from scanner.render import FORMATS
from scanner.snapshot import read_snapshot_file

ROOT = Path(__file__).resolve().parent.parent
STARTED = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.timezone.utc)
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux") or len(os.sched_getaffinity(0)) < 2,
                                reason="the second process needs Linux and two usable cores")


def _generate(folder: Path, clusters: int) -> Path:
    spec = importlib.util.spec_from_file_location("lmscan_bench_fleet", ROOT / "benchmarks" / "fleet.py")
    assert spec is not None and spec.loader is not None
    fleet = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = fleet      # dataclasses look their module up while the class is made
    spec.loader.exec_module(fleet)
    fleet.generate_fleet(folder, clusters, seed=7)
    return folder


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Five 16-node clusters and a 4-node 2008 R2 one (84 snapshot files), a third with violations."""
    return _generate(tmp_path_factory.mktemp("fleet") / "snapshots", 5)


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """The pids of the children forked during a test (the real fork, counted)."""
    pids: list[int] = []
    real = os.fork

    def counted() -> int:
        pid = real()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(os, "fork", counted)
    monkeypatch.delenv("LMSCAN_PROCESSES", raising=False)
    yield pids
    for pid in pids:                            # every child was reaped: none is left a zombie
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _scan(snapshots: Path, processes: str, monkeypatch: pytest.MonkeyPatch, policy: Path | None = None) -> ScanReport:
    """Scan with the policy beside the snapshots (the generator writes it there) or ``policy``."""
    monkeypatch.setenv("LMSCAN_PROCESSES", processes)
    ruleset = pipeline.load_ruleset(policy or snapshots / "policy.yaml")
    report = pipeline.scan_paths(ruleset, [snapshots], started=STARTED, scan_id="fixed")
    return dataclasses.replace(report, scan=dataclasses.replace(report.scan, finished_at="2026-11-30T08:00:01Z"))


def _rendered(report: ScanReport) -> dict[str, bytes]:
    return {fmt: render(report) for fmt, render in FORMATS.items()}


def _same_as_one_process(snapshots: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int],
                         policy: Path | None = None) -> ScanReport:
    one = _scan(snapshots, "1", monkeypatch, policy)
    assert not forks
    two = _scan(snapshots, "2", monkeypatch, policy)
    assert len(forks) == 1
    assert _rendered(two) == _rendered(one)
    assert two.results == one.results and two.clusters == one.clusters
    return two


def test_two_processes_give_the_reports_of_one(fleet: Path, monkeypatch: pytest.MonkeyPatch,
                                                forks: list[int]) -> None:
    report = _same_as_one_process(fleet, monkeypatch, forks)
    assert len(report.clusters) == 6 and report.summary["fail"] > 0     # with one 2008 R2 cluster


def test_a_cluster_split_between_the_processes_is_read_whole(fleet: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              forks: list[int]) -> None:
    # One flat folder: the middle of the sorted files falls inside a cluster.
    flat = tmp_path / "flat"
    flat.mkdir()
    for f in sorted(fleet.rglob("*.json")):
        shutil.copy(f, flat / f.name)
    files = sorted(flat.glob("*.json"))
    ours, theirs = parallel.shares(files)
    assert ours == list(range(len(ours))) and theirs == list(range(len(ours), len(files)))   # one cut
    assert files[ours[-1]].name[:6] == files[theirs[0]].name[:6]     # inside one cluster
    _same_as_one_process(flat, monkeypatch, forks, policy=fleet / "policy.yaml")


def test_a_snapshot_without_a_cluster_name_joins_its_cluster_as_in_one_process(
        fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]) -> None:
    copy = tmp_path / "snapshots"
    shutil.copytree(fleet, copy)
    last = sorted(copy.rglob("*.json"))[-1]               # in the child's half
    doc = json.loads(last.read_text(encoding="utf-8"))
    doc["sections"].pop("Cluster", None)
    last.write_text(json.dumps(doc), encoding="utf-8")
    assert read_snapshot_file(last).cluster_name() is None
    _same_as_one_process(copy, monkeypatch, forks)


@pytest.mark.parametrize("where", ["parent", "child", "both"])
def test_a_bad_file_gives_the_error_one_process_gives(fleet: Path, tmp_path: Path, where: str,
                                                       monkeypatch: pytest.MonkeyPatch, forks: list[int]) -> None:
    copy = tmp_path / "snapshots"
    shutil.copytree(fleet, copy)
    files = sorted(copy.rglob("*.json"))
    ours, theirs = parallel.shares(files)
    assert ours[0] == 0 and theirs[0] < ours[-1]          # folders dealt out, not cut once
    bad = {"parent": [ours[20]], "child": [theirs[5]], "both": [ours[20], theirs[5]]}[where]
    for index in bad:
        files[index].write_text('{"lmscan_snapshot": 1, "node": ""}', encoding="utf-8")
    errors = []
    for processes in ("1", "2"):
        with pytest.raises(InputError) as caught:
            _scan(copy, processes, monkeypatch)
        errors.append(str(caught.value))
    assert errors[0] == errors[1]
    assert str(files[min(bad)]) in errors[0]
    assert len(forks) == 1


def test_a_cluster_in_two_folders_is_read_whole(fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                forks: list[int]) -> None:
    copy = tmp_path / "snapshots"
    shutil.copytree(fleet, copy)
    moved = copy / "zz-moved"                              # the last half of a cluster's nodes, elsewhere
    moved.mkdir()
    for folder in sorted(p for p in copy.iterdir() if p.is_dir() and p != moved):
        half = sorted(folder.glob("*.json"))[8:]
        for f in half:
            f.rename(moved / f.name)
        files = sorted(copy.rglob("*.json"))
        ours = set(parallel.shares(files)[0])
        side = {f.parent: i in ours for i, f in enumerate(files)}
        if side[folder] != side[moved]:                   # the cluster's two folders went to different sides
            break
        for f in half:
            (moved / f.name).rename(f)
    else:
        pytest.fail("no layout puts one cluster's two folders on different sides")
    _same_as_one_process(copy, monkeypatch, forks)


def test_two_snapshots_of_one_node_across_the_halves_are_refused_as_in_one_process(
        fleet: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]) -> None:
    copy = tmp_path / "snapshots"
    shutil.copytree(fleet, copy)
    first = sorted(copy.rglob("*.json"))[0]
    shutil.copy(first, copy / "zz-old-copy.json")         # sorts last: the child's half
    errors = []
    for processes in ("1", "2"):
        with pytest.raises(InputError) as caught:
            _scan(copy, processes, monkeypatch)
        errors.append(str(caught.value))
    assert errors[0] == errors[1] and "second snapshot" in errors[0]
    assert len(forks) == 1


def _fails_in_child(real: Callable[..., Any]) -> Callable[..., Any]:
    """``real``, except that it raises in a forked child (the parent keeps the real one)."""
    parent = os.getpid()

    def broken(*args: Any, **kwargs: Any) -> Any:
        if os.getpid() != parent:
            raise MemoryError("the child ran out of memory")
        return real(*args, **kwargs)

    return broken


def test_a_child_that_dies_leaves_the_parent_to_do_it_all(fleet: Path, monkeypatch: pytest.MonkeyPatch,
                                                          forks: list[int]) -> None:
    expected = _rendered(_scan(fleet, "1", monkeypatch))
    monkeypatch.setattr(pipeline, "evaluate_each", _fails_in_child(pipeline.evaluate_each))
    assert _rendered(_scan(fleet, "2", monkeypatch)) == expected
    assert len(forks) == 1


def test_reports_rendered_beside_each_other_are_those_of_one_process(
        fleet: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]) -> None:
    report = _scan(fleet, "1", monkeypatch)
    monkeypatch.setenv("LMSCAN_PROCESSES", "auto")
    assert len(report.results) < parallel.MIN_RESULTS
    assert parallel.render_all(report, ["junit", "html"]).keys() == {"junit", "html"} and not forks   # too small
    monkeypatch.setenv("LMSCAN_PROCESSES", "2")
    expected = _rendered(report)
    assert parallel.render_all(report, list(FORMATS)) == expected
    assert len(forks) == 1
    assert parallel.render_all(report, ["junit"]) == {"junit": expected["junit"]}    # the suites shared out
    assert len(forks) == 2
    junit = sys.modules["scanner.render.junit"]
    monkeypatch.setattr(junit, "junit_suites", _fails_in_child(junit.junit_suites))
    assert parallel.render_all(report, ["junit", "html"]) == {"junit": expected["junit"], "html": expected["html"]}
    assert len(forks) == 3
    assert list(parallel.render_all(report, ["json"])) == ["json"] and len(forks) == 3   # no JUnit: no child


def test_an_empty_report_shared_out_has_one_no_results_suite(monkeypatch: pytest.MonkeyPatch, forks: list[int]) -> None:
    report = dataclasses.replace(_scan(ROOT / "scanner" / "demo", "1", monkeypatch), clusters=(), results=())
    one = FORMATS["junit"](report)
    monkeypatch.setenv("LMSCAN_PROCESSES", "2")
    assert parallel.render_all(report, ["junit", "json"])["junit"] == one
    assert one.count(b"<testcase name=\"no results\"") == 1 and len(forks) == 1


def test_turned_off_or_small_no_child(fleet: Path, monkeypatch: pytest.MonkeyPatch, forks: list[int]) -> None:
    _scan(fleet, "1", monkeypatch)
    assert len(list(fleet.rglob("*.json"))) < parallel.MIN_FILES
    _scan(fleet, "auto", monkeypatch)                     # too small to repay a fork
    assert not forks


def test_a_busy_machine_keeps_one_process(monkeypatch: pytest.MonkeyPatch, forks: list[int]) -> None:
    """With another CPU-bound process beside it, a second process would only add its overhead."""
    idle = parallel.idle_cores()
    assert 0.0 <= idle <= len(os.sched_getaffinity(0))
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(len(os.sched_getaffinity(0)))]
    try:
        assert parallel.idle_cores(0.3) < parallel.IDLE_CORES
        monkeypatch.setattr(parallel, "_last_idle", None)
        assert not parallel.second_process(True)
        monkeypatch.setenv("LMSCAN_PROCESSES", "2")
        assert parallel.second_process(False)             # forced
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()


@pytest.mark.parametrize("value", ["3", "yes", "0"])
def test_a_bad_processes_setting_is_bad_input(value: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMSCAN_PROCESSES", value)
    with pytest.raises(InputError, match="LMSCAN_PROCESSES: expected 1, 2 or auto"):
        parallel.second_process(True)
    proc = subprocess.run([sys.executable, "-m", "scanner", "scan", "--snapshot", "scanner/demo", "--no-history"],
                          capture_output=True,
                          text=True, env={**os.environ, "LMSCAN_PROCESSES": value}, cwd=ROOT, check=False, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "LMSCAN_PROCESSES" in proc.stderr


def test_the_child_never_prints_what_the_parent_had_buffered(tmp_path: Path) -> None:
    """Standard output to a pipe is buffered: a child that flushed it on exit would print it twice."""
    code = (
        "import sys\n"
        "from scanner import parallel, pipeline\n"
        "from scanner.render import FORMATS\n"
        f"report = pipeline.run_scan([{str(ROOT / 'scanner' / 'demo')!r}], {str(ROOT / 'scanner' / 'demo' / 'policy.yaml')!r})\n"
        "sys.stdout.write('buffered-before-the-fork\\n')\n"
        "done = parallel.render_all(report, ['junit', 'json'])\n"
        "assert done['junit'] == FORMATS['junit'](report)\n"
        "sys.stdout.write('rendered\\n')\n"
    )
    env = {**os.environ, "LMSCAN_PROCESSES": "2"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT,
                          check=False, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "buffered-before-the-fork\nrendered\n"


def test_the_cli_prints_its_summary_once(fleet: Path, tmp_path: Path) -> None:
    """The child never flushes what the parent had buffered, so nothing is printed twice."""
    env = {**os.environ, "LMSCAN_PROCESSES": "2"}
    outputs = {fmt: tmp_path / f"r.{fmt}" for fmt in ("junit", "json", "html")}
    cmd = [sys.executable, "-m", "scanner", "scan", "--snapshot", str(fleet), "--no-history", "--policy", str(fleet / "policy.yaml"),
           *[a for fmt, path in outputs.items() for a in (f"--{fmt}", str(path))]]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, check=False, timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert proc.stdout.count("junit: ") == 1 and proc.stderr.count("Traceback") == 0
    assert all(p.stat().st_size > 0 for p in outputs.values())

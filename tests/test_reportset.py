"""Reports are written as one set or not at all, one scan at a time (issue 7 items 8 and 11)."""

from __future__ import annotations

import fcntl
import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.errors import InputError
from scanner.reportset import check_outputs, write_files

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "scanner" / "demo"
POLICY = DEMO / "policy.yaml"


def lmscan(*args: str, cwd: Path | None = None, fsize: int | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("LMSCAN_POLICY", None)

    def limit() -> None:  # a file-size limit is what a full disk looks like to write(2): it fails
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))  # type: ignore[arg-type]

    return subprocess.Popen([sys.executable, "-m", "scanner", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env=env,
                            preexec_fn=limit if fsize is not None else None)


def finish(p: subprocess.Popen[str]) -> tuple[int, str, str]:
    out, err = p.communicate(timeout=120)
    return p.returncode, out, err


def old_reports(out: Path) -> dict[str, bytes]:
    out.mkdir(parents=True, exist_ok=True)
    old = {name: f"old {name}".encode() for name in ("report.html", "junit.xml", "results.json")}
    for name, data in old.items():
        (out / name).write_bytes(data)
    return old


def test_issue7_item8_a_failed_write_leaves_every_old_report_untouched(tmp_path: Path) -> None:
    out = tmp_path / "out"
    old = old_reports(out)
    # junit.xml and results.json of one cluster fit in 64 KiB; report.html does not.
    code, _, err = finish(lmscan("scan", "--snapshot", str(DEMO / "HVCLU22"), "--policy", str(POLICY),
                                 "--out-dir", str(out), fsize=64 * 1024))
    assert code == 2, err
    assert err.count("\n") == 1 and "no report was written or changed" in err and "Traceback" not in err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == old   # no temporary file left either


def test_write_files_removes_its_temporary_files_when_one_target_fails(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text("old")
    (tmp_path / "b").mkdir()   # a directory where a report should go: the rename fails
    with pytest.raises(OSError):
        write_files({tmp_path / "a.json": b"new", tmp_path / "b": b"new"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b"]


@pytest.mark.parametrize("args, problem", [
    (["--json", "{policy}"], "would overwrite this input file"),
    (["--html", "{link_to_policy}"], "would overwrite this input file"),
    (["--junit", "../work/{policy_name}"], "would overwrite this input file"),
    (["--json", "{snapshots}/x.json"], "would be written inside this input directory"),
    (["--html", "r.html", "--junit", "./r.html"], "would write the same file"),
    (["--html", "r.html", "--junit", "{link_to_r}"], "would write the same file"),
    (["--html", "-", "--json", "-"], "only one report can go to standard output"),
    (["--config", "{config}", "--json", "{config}"], "would overwrite this input file"),
    (["--history", "{work}/h.sqlite", "--html", "h.sqlite"], "would overwrite this input file"),
])
def test_issue7_item8_report_path_on_an_input_or_another_report_is_exit_2(
        tmp_path: Path, args: list[str], problem: str) -> None:
    work = tmp_path / "work"
    snapshots = work / "snaps"
    snapshots.mkdir(parents=True)
    (snapshots / "HV22-N1.json").write_bytes((DEMO / "HVCLU22" / "HV22-N1.json").read_bytes())
    policy = work / "policy.yaml"
    policy.write_bytes(POLICY.read_bytes())
    (work / "link.yaml").symlink_to(policy)
    (work / "link.html").symlink_to(work / "r.html")
    (work / "lmscan.yaml").write_text("lmscan_config: 1\n")
    values = {"policy": str(policy), "link_to_policy": str(work / "link.yaml"), "policy_name": "policy.yaml",
              "snapshots": str(snapshots), "link_to_r": "link.html", "config": str(work / "lmscan.yaml"),
              "work": str(work)}
    argv = [a.format(**values) for a in args]
    code, out, err = finish(lmscan("scan", "--snapshot", str(snapshots), "--policy", str(policy), *argv, cwd=work))
    assert code == 2, err
    assert problem in err and err.count("\n") == 1, err
    assert policy.read_bytes() == POLICY.read_bytes() and not (work / "r.html").exists()


def test_check_outputs_accepts_distinct_paths(tmp_path: Path) -> None:
    check_outputs({"html": tmp_path / "r.html", "json": tmp_path / "r.json", "junit": Path("-")},
                  [tmp_path / "snaps", tmp_path / "policy.yaml"])
    with pytest.raises(InputError):
        check_outputs({"json": tmp_path / "snaps" / "r.json"}, [tmp_path / "snaps"])


def _one_set(out: Path) -> str:
    """The scan id the three reports share; fails when they come from different scans."""
    scan_id = json.loads((out / "results.json").read_text())["scan"]["id"]
    assert scan_id in (out / "report.html").read_text(), "report.html is from another scan"
    assert scan_id in (out / "junit.xml").read_text(), "junit.xml is from another scan"
    return str(scan_id)


def test_issue7_item8_two_concurrent_scans_never_leave_a_mixed_set(tmp_path: Path) -> None:
    out = tmp_path / "out"
    for _ in range(4):
        procs = [lmscan("scan", "--snapshot", str(DEMO / c), "--policy", str(POLICY), "--out-dir", str(out), "-q")
                 for c in ("HVCLU19", "HVCLU08")]
        assert [finish(p)[0] for p in procs] == [1, 1]
        _one_set(out)
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "report.html", "results.json", "results.sarif", "summary.md"]


def test_issue7_item8_a_scan_waits_for_the_lock_of_its_output_directory(tmp_path: Path) -> None:
    out = tmp_path / "out"
    old = old_reports(out)
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(fd, fcntl.LOCK_EX)   # as another lmscan writing there would hold it
    try:
        p = lmscan("scan", "--snapshot", str(DEMO / "HVCLU22"), "--policy", str(POLICY), "--out-dir", str(out))
        with pytest.raises(subprocess.TimeoutExpired):
            p.wait(timeout=8)
        assert {q.name: q.read_bytes() for q in out.iterdir() if not q.name.startswith(".")} == old
    finally:
        os.close(fd)
    code, _, err = finish(p)
    assert code == 0, err
    _one_set(out)


def test_issue7_item11_a_broken_pipe_keeps_the_failing_exit_code(tmp_path: Path) -> None:
    # The issue's own reproduction: the demo fails, so the pipeline's first status is 1.
    p = subprocess.run(f"{sys.executable} -m scanner scan --demo --json - | true; echo ${{PIPESTATUS[0]}} >&2",
                       shell=True, executable="/bin/bash", capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert p.stderr.strip().splitlines()[-1] == "1", p.stderr
    assert "Traceback" not in p.stderr and "Exception ignored" not in p.stderr and "BrokenPipe" not in p.stderr
    # A reader that is gone before anything is written: failing 1, incomplete 3, and a passing
    # scan whose report never reached its reader is incomplete (3), never 0.
    cases = ((["--demo"], 1), (["--snapshot", str(DEMO / "AZLCLU01"), "--fail-on", "critical"], 3),
             (["--snapshot", str(DEMO / "HVCLU22")], 3))
    for args, expected in cases:
        for report in (["--json", "-"], ["--out-dir", str(tmp_path / "o")]):   # a report, or the summary
            argv = args + (["--policy", str(POLICY)] if "--demo" not in args else []) + report
            proc = lmscan("scan", *argv, cwd=tmp_path)
            assert proc.stdout is not None
            proc.stdout.close()
            err = proc.stderr.read() if proc.stderr else ""
            assert proc.wait(timeout=120) == expected, (argv, err)
            assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err

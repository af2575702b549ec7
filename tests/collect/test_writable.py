"""Where collected snapshots go is checked before collecting; a late failure still reports (issue 7 item 9)."""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from scanner.fsutil import check_can_write

from .conftest import SECRET, snapshot_json
from .fakewsman import CommandRequest, FakeWSMan, Reply


def lmscan(tmp_path: Path, srv: FakeWSMan, *args: str, fsize: int | None = None) -> subprocess.CompletedProcess[str]:
    inv = tmp_path / "inv.yaml"
    inv.write_text(f"""\
lmscan_inventory: 1
defaults: {{username: u, password_env: PW, transport: basic, allow_unencrypted: true, timeout: 30}}
clusters:
  - name: HVCLU01
    nodes: [{{name: HV01, endpoint: "{srv.url_for('hv01')}"}}, {{name: HV02, endpoint: "{srv.url_for('hv02')}"}}]
""")
    env = dict(os.environ, PW=SECRET, NO_COLOR="1")
    env.pop("LMSCAN_POLICY", None)

    def limit() -> None:   # a file-size limit is what a full disk looks like to write(2)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))  # type: ignore[arg-type]

    return subprocess.run([sys.executable, "-m", "scanner", *args, "--inventory", str(inv)], capture_output=True,
                          text=True, env=env, timeout=120, preexec_fn=limit if fsize is not None else None)


@pytest.fixture
def fleet(wsman: Callable[..., FakeWSMan]) -> FakeWSMan:
    return wsman(lambda req: Reply(stdout=snapshot_json(req.path.strip("/").upper())), username="u", password=SECRET)


@pytest.mark.parametrize("command", ["collect --out {dir}", "scan --save-snapshots {dir} --json {tmp}/r.json"])
@pytest.mark.parametrize("where", ["under-a-file", "full-disk"])
def test_issue7_item9_an_unwritable_snapshot_directory_is_exit_2_before_collecting(
        tmp_path: Path, fleet: FakeWSMan, command: str, where: str) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x")
    target = blocker / "snaps" if where == "under-a-file" else tmp_path / "snaps"
    args = command.format(dir=target, tmp=tmp_path).split()
    p = lmscan(tmp_path, fleet, *args, fsize=16 * 1024 if where == "full-disk" else None)
    assert p.returncode == 2, p.stderr
    errors = [ln for ln in p.stderr.splitlines() if not ln.startswith("lmscan: warning:")]
    assert len(errors) == 1 and "cannot be written" in errors[0] and "Traceback" not in p.stderr, p.stderr
    assert fleet.log == []                         # nothing was collected
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize("command", ["collect", "scan"])
def test_issue7_item9_a_late_failure_still_reports_and_says_incomplete(
        tmp_path: Path, wsman: Callable[..., FakeWSMan], command: str) -> None:
    save = tmp_path / "snaps"

    def handler(req: CommandRequest) -> Reply:
        # The directory goes away while the fleet is collected (a disk unmounted, a file in its place).
        if save.is_dir():
            shutil.rmtree(save)
        if not save.exists():
            save.write_text("not a directory any more")
        return Reply(stdout=snapshot_json(req.path.strip("/").upper()))

    srv = wsman(handler, username="u", password=SECRET)
    save.mkdir()
    report = tmp_path / "r.json"
    args = ["collect", "--out", str(save)] if command == "collect" else \
        ["scan", "--save-snapshots", str(save), "--json", str(report)]
    p = lmscan(tmp_path, srv, *args)
    lines = [ln for ln in p.stderr.splitlines() if ln.startswith("lmscan: error:")]
    assert len(lines) == 1 and "cannot save the snapshots" in lines[0], p.stderr
    assert "Traceback" not in p.stderr
    if command == "collect":
        assert p.returncode == 3 and "collected 2 of 2 nodes" in p.stdout
    else:
        results = json.loads(report.read_text())     # the reports are written all the same
        assert all(n["collected"] for c in results["clusters"] for n in c["nodes"])
        assert p.returncode == (1 if results["summary"]["fail"] else 3)


def test_check_can_write_creates_nothing(tmp_path: Path) -> None:
    check_can_write(tmp_path / "new" / "dir")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError):
        check_can_write(tmp_path / "f" / "dir")


def test_issue7_item11_collect_into_a_closed_pipe_is_not_success(tmp_path: Path, fleet: FakeWSMan) -> None:
    inv = tmp_path / "inv.yaml"
    lmscan(tmp_path, fleet, "rules", "list")    # writes inv.yaml (and fails: rules takes no inventory)
    env = dict(os.environ, PW=SECRET, NO_COLOR="1")
    p = subprocess.Popen([sys.executable, "-m", "scanner", "collect", "--inventory", str(inv), "--out",
                          str(tmp_path / "out")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    assert p.stdout is not None and p.stderr is not None
    p.stdout.close()                             # the reader is gone before lmscan prints
    err = p.stderr.read()
    assert p.wait(timeout=120) == 3, err         # every node was collected, but nobody saw it
    assert "Traceback" not in err and "Exception ignored" not in err
    assert len(list((tmp_path / "out").rglob("*.json"))) == 2

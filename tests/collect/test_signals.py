"""SIGTERM and SIGHUP during collection stop lmscan as Ctrl-C does (issue 7 item 10).

A real lmscan process collects from the loopback WS-Man fake, where most nodes never finish;
once their shells are open, the test sends the signal with os.kill and checks that the reports
were written, every shell was closed, and the exit code says incomplete.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from .conftest import SECRET, snapshot_json
from .fakewsman import CommandRequest, FakeWSMan, NeverFinishes, Outcome, Reply

SLOW = ("HV02", "HV03", "HV04")


def start(tmp_path: Path, srv: FakeWSMan, *args: str) -> subprocess.Popen[str]:
    nodes = ", ".join(f'{{name: {n}, endpoint: "{srv.url_for(n.lower())}"}}' for n in ("HV01", *SLOW))
    inv = tmp_path / "inv.yaml"
    inv.write_text(f"""\
lmscan_inventory: 1
defaults: {{username: u, password_env: PW, transport: basic, allow_unencrypted: true, timeout: 120}}
clusters:
  - name: HVCLU01
    nodes: [{nodes}]
""")
    env = dict(os.environ, PW=SECRET, NO_COLOR="1")
    env.pop("LMSCAN_POLICY", None)
    return subprocess.Popen([sys.executable, "-m", "scanner", *args, "--inventory", str(inv)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_for_shells(srv: FakeWSMan, p: subprocess.Popen[str], count: int) -> None:
    """Until ``count`` shells are open and HV01 is done (or lmscan ended early, which fails below)."""
    until = time.monotonic() + 90
    while time.monotonic() < until and p.poll() is None:
        if srv.open_shells() >= count and any(e.path == "/hv01" and e.step == "Delete" for e in srv.log):
            return
        time.sleep(0.05)
    raise AssertionError(f"lmscan did not get going: {srv.open_shells()} shells open, exit {p.poll()}")


@pytest.fixture
def fleet(wsman: Callable[..., FakeWSMan]) -> FakeWSMan:
    def handler(req: CommandRequest) -> Outcome:
        return Reply(stdout=snapshot_json("HV01")) if req.path == "/hv01" else NeverFinishes()
    return wsman(handler, username="u", password=SECRET)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP], ids=["SIGTERM", "SIGHUP"])
def test_issue7_item10_a_signal_during_collection_writes_the_reports_and_closes_every_shell(
        tmp_path: Path, fleet: FakeWSMan, sig: int) -> None:
    report = tmp_path / "results.json"
    p = start(tmp_path, fleet, "scan", "--json", str(report), "--html", str(tmp_path / "report.html"))
    wait_for_shells(fleet, p, len(SLOW))
    os.kill(p.pid, sig)
    out, err = p.communicate(timeout=60)
    assert p.returncode in (1, 3), err          # 3, or 1 when the collected node has failures
    assert "Traceback" not in err and "interrupted" in err, err
    assert fleet.open_shells() == 0
    results = json.loads(report.read_text())
    nodes = {n["name"]: n for c in results["clusters"] for n in c["nodes"]}
    assert nodes["HV01"]["collected"]
    assert all(not nodes[n]["collected"] and "interrupted" in nodes[n]["error"] for n in SLOW)
    assert (tmp_path / "report.html").exists()
    expected = 1 if results["summary"]["fail"] else 3
    assert p.returncode == expected


def test_issue7_item10_sigterm_stops_collect_with_exit_3_and_keeps_what_was_collected(
        tmp_path: Path, fleet: FakeWSMan) -> None:
    p = start(tmp_path, fleet, "collect", "--out", str(tmp_path / "out"))
    wait_for_shells(fleet, p, len(SLOW))
    os.kill(p.pid, signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 3, err
    assert "collected 1 of 4 nodes" in out and out.count("interrupted") == len(SLOW)
    assert fleet.open_shells() == 0
    assert [f.name for f in (tmp_path / "out").rglob("*.json")] == ["HV01.json"]


def test_a_signal_lmscan_inherits_as_ignored_stays_ignored() -> None:
    code = ("import signal, os\nfrom scanner.cli import _stop_signals_interrupt\n"
            "signal.signal(signal.SIGHUP, signal.SIG_IGN)\nrestore = _stop_signals_interrupt()\n"
            "assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN\n"
            "assert signal.getsignal(signal.SIGTERM) is signal.default_int_handler\n"
            "restore()\nassert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)

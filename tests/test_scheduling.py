"""The scheduling recipes under examples/scheduling are real files that their tools accept."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from scanner.cli import build_parser

RECIPES = Path(__file__).parents[1] / "examples" / "scheduling"


def test_systemd_units_verify(tmp_path):
    tool = shutil.which("systemd-analyze")
    if tool is None:
        # Not installable cheaply everywhere (the systemd package pulls in an init system).
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    for name in ("lmscan.service", "lmscan.timer"):
        shutil.copy(RECIPES / name, tmp_path / name)
    proc = subprocess.run([tool, "verify", str(tmp_path / "lmscan.service"), str(tmp_path / "lmscan.timer")],
                          capture_output=True, text=True, timeout=120, env={**os.environ, "SYSTEMD_LOG_LEVEL": "warning"})
    problems = [line for line in proc.stderr.splitlines() if "lmscan" in line]
    assert proc.returncode == 0 and not problems, proc.stderr


def test_recipes_lock_and_catch_up():
    service = (RECIPES / "lmscan.service").read_text()
    timer = (RECIPES / "lmscan.timer").read_text()
    assert "Persistent=true" in timer and "flock --nonblock" in service
    assert "flock -n" in (RECIPES / "lmscan.cron").read_text()
    assert "MultipleInstances IgnoreNew" in (RECIPES / "lmscan-task.ps1").read_text()


def test_recipes_run_commands_lmscan_has():
    """The scan command lines in the recipes parse (no option that does not exist)."""
    parser = build_parser()
    parser.parse_args(["scan", "--quiet"])
    parser.parse_args(["scan", "--config", "C:\\ProgramData\\lmscan\\lmscan.yaml", "--quiet"])

"""The package stays typed (mypy --strict) and lint-clean (ruff), as configured in pyproject.toml."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("tool, args", [("mypy", []), ("ruff", ["check", "scanner"])])
def test_tool_is_clean(tool: str, args: list[str]) -> None:
    cmd = [sys.executable, "-m", tool, *args]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr

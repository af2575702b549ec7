"""Shared test options and fixtures.

``--update-golden`` rewrites the files in ``tests/golden/`` from the current output instead
of comparing against them; review the diff before committing it.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

GOLDEN_DIR = Path(__file__).parent / "golden"
# ISO-8601 and the reports' human form ("2026-11-26 02:00:03 UTC"), and JUnit durations.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z| UTC|[+-]\d{2}:?\d{2})?")
_DURATION = re.compile(r'(\btime=")[0-9.]+(")|(\(took )\d+( s\))')


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/* from the current output instead of comparing")


def normalize_golden(text: str, scan_id: str | None = None) -> str:
    """Replace what differs from run to run: timestamps, durations and the scan id."""
    if scan_id:
        text = text.replace(scan_id, "<SCAN-ID>")
    text = _TIMESTAMP.sub("<TIME>", text)
    return _DURATION.sub(lambda m: f"{m.group(1) or m.group(3)}<D>{m.group(2) or m.group(4)}", text)


class Golden:
    """Compare output with ``tests/golden/<name>``, or rewrite it under ``--update-golden``."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, name: str, actual: str | bytes, *, scan_id: str | None = None) -> None:
        text = actual.decode("utf-8") if isinstance(actual, bytes) else actual
        text = normalize_golden(text, scan_id)
        path = GOLDEN_DIR / name
        if self.update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8", newline="\n")
            return
        if not path.exists():
            pytest.fail(f"golden file {path} is missing; create it with: pytest --update-golden")
        expected = path.read_text(encoding="utf-8")
        if text != expected:
            diff = "".join(list(difflib.unified_diff(
                expected.splitlines(keepends=True), text.splitlines(keepends=True),
                f"golden/{name}", "actual"))[:80])
            pytest.fail(f"output differs from golden/{name} (if intended: pytest --update-golden)"
                        f"\n{diff}", pytrace=False)


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Golden:
    return Golden(bool(request.config.getoption("--update-golden")))

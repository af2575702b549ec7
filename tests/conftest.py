"""Shared test options and fixtures.

``--update-golden`` rewrites the files in ``tests/golden/`` from the current output instead
of comparing against them; review the diff before committing it.

``shared_file("schemas/junit-10.xsd")`` finds material that lives in ``../shared`` beside
the checkout and is never copied into the repository (the JUnit and SARIF schemas). A fresh
clone without it skips those tests with a reason naming the file; CI (``CI`` set) fails them.
"""

from __future__ import annotations

import difflib
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GOLDEN_DIR = Path(__file__).parent / "golden"
#: Where ``../shared`` is expected: next to the checkout.
SHARED_DIR = ROOT.parent / "shared"
# ISO-8601 and the reports' human form ("2026-11-26 02:00:03 UTC"), and JUnit durations.
_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z| UTC|[+-]\d{2}:?\d{2})?")
_DURATION = re.compile(r'(\btime=")[0-9.]+(")|(\(took )\d+( s\))')

# A suite started as a background job of a non-interactive shell (`bash .ci/run &`) inherits
# SIGINT ignored, and Python then installs no KeyboardInterrupt handler: the Ctrl-C tests would
# send a signal nobody hears. They test lmscan, not the shell that started pytest.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/* from the current output instead of comparing")


def normalize_golden(text: str, scan_id: str | None = None, results_sha256: str | None = None) -> str:
    """Replace what differs from run to run: timestamps, durations, the scan id and the JSON's hash."""
    if scan_id:
        text = text.replace(scan_id, "<SCAN-ID>")
    if results_sha256:
        text = text.replace(results_sha256, "<RESULTS-SHA256>")
    text = _TIMESTAMP.sub("<TIME>", text)
    return _DURATION.sub(lambda m: f"{m.group(1) or m.group(3)}<D>{m.group(2) or m.group(4)}", text)


class Golden:
    """Compare output with ``tests/golden/<name>``, or rewrite it under ``--update-golden``."""

    def __init__(self, update: bool) -> None:
        self.update = update

    def check(self, name: str, actual: str | bytes, *, scan_id: str | None = None,
              results_sha256: str | None = None) -> None:
        text = actual.decode("utf-8") if isinstance(actual, bytes) else actual
        text = normalize_golden(text, scan_id, results_sha256)
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


def in_ci() -> bool:
    """True when the ``CI`` environment variable is set as CI servers set it (``true``, ``1``...)."""
    return os.environ.get("CI", "").strip().casefold() not in ("", "0", "false", "no")


def shared_path(relative: str) -> Path:
    """The path of ``../shared/<relative>``; skips the test when it is absent, fails it in CI."""
    path = SHARED_DIR / relative
    if path.is_file():
        return path
    reason = (f"shared file ../shared/{relative} not found (looked for {path}); it lives beside "
              "the checkout, not in the repository")
    if in_ci():
        pytest.fail(f"{reason}; CI is set, so this is a failure, not a skip", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_file() -> Callable[[str], Path]:
    """``shared_file("schemas/junit-10.xsd")``: see :func:`shared_path`."""
    return shared_path


@pytest.fixture(autouse=True)
def _private_history(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Scans in tests keep no history unless the test names a store (``--history``, a config
    file, or deleting ``LMSCAN_HISTORY``), and never touch the user's ~/.local/share/lmscan."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg-data")))
    monkeypatch.delenv("LMSCAN_CONFIG", raising=False)
    monkeypatch.setenv("LMSCAN_HISTORY", "off")


@pytest.fixture(autouse=True)
def _no_kerberos_ticket(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a transport, an inventory uses Kerberos when the environment has a ticket: the
    tester's own ``kinit`` must not change what tests see (the Kerberos tests set their own)."""
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path_factory.getbasetemp() / 'no-ticket-here'}")

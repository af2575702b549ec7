"""The renderer registry covers exactly the report files the CLI offers (contracts §6)."""

from __future__ import annotations

import argparse

import pytest

from scanner.model import ScanReport
from scanner.render import FORMATS

# Contracts §6 names html, junit and json; issue 6 adds sarif and markdown (contracts §7 outputs list them).
CONTRACT_FLAGS = {"--html", "--junit", "--json", "--sarif", "--markdown"}
EXTENSIONS = {"--remediate"}   # issue 10: the fix script, documented in the README


def _scan_parser() -> argparse.ArgumentParser:
    cli = pytest.importorskip("scanner.cli")
    parser = cli.build_parser()
    for action in parser._actions:  # argparse keeps subcommands in a private action
        if isinstance(action, argparse._SubParsersAction):
            return action.choices["scan"]
    raise AssertionError("lmscan has no 'scan' subcommand")


def test_registry_matches_the_contract() -> None:
    assert {f"--{name}" for name in FORMATS} == CONTRACT_FLAGS | EXTENSIONS


def test_registry_matches_the_cli_report_options() -> None:
    scan = _scan_parser()
    # A report option takes one FILE to write (not a DIR, not an input such as --policy).
    report_flags = {
        opt for action in scan._actions if action.metavar == "FILE"
        and (action.help or "").startswith("write")
        for opt in action.option_strings if opt.startswith("--")
    }
    assert report_flags == {f"--{name}" for name in FORMATS}


def test_every_renderer_returns_bytes(sample_report: ScanReport) -> None:
    for name, render in FORMATS.items():
        out = render(sample_report)
        assert isinstance(out, bytes) and out, name
        out.decode("utf-8")

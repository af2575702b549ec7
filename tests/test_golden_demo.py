"""The whole pipeline over the bundled demo, against golden HTML, JUnit and JSON."""

from __future__ import annotations

from pathlib import Path

import pytest

from scanner.pipeline import run_scan
from scanner.render import FORMATS
from scanner.render.findings import results_sha256

ROOT = Path(__file__).parents[1]


@pytest.mark.parametrize("fmt, name", [("json", "demo.json"), ("junit", "demo.junit.xml"), ("html", "demo.html")])
def test_demo_reports_match_golden(monkeypatch, golden, fmt, name):
    monkeypatch.chdir(ROOT)   # relative paths, so the report is the same in any checkout
    report = run_scan([Path("scanner/demo")], Path("scanner/demo/policy.yaml"))
    golden.check(name, FORMATS[fmt](report), scan_id=report.scan.id, results_sha256=results_sha256(report))

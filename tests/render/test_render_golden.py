"""Golden files for every report format over the hand-built sample report.

Regenerate after an intended change with ``pytest tests/render --update-golden`` and review
the diff. Timestamps, durations and the scan id are normalised, so a re-run of the same scan
at another time must match the same files.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from scanner.model import ScanReport
from scanner.render import FORMATS
from scanner.render.findings import results_sha256

from .conftest import build_sample

SUFFIX = {"html": "html", "junit": "junit.xml", "json": "json", "sarif": "sarif", "markdown": "md",
          "remediate": "fix.ps1"}


def rendered(fmt: str, report: ScanReport) -> bytes | str:
    data = FORMATS[fmt](report)
    # The fix script is written for Windows (BOM, CRLF); the golden file keeps plain lines.
    return data.decode("utf-8-sig").replace("\r\n", "\n") if fmt == "remediate" else data


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_golden(fmt: str, golden) -> None:  # type: ignore[no-untyped-def]
    report = build_sample(hostile=True)
    golden.check(f"render-sample.{SUFFIX[fmt]}", rendered(fmt, report), scan_id=report.scan.id,
                 results_sha256=results_sha256(report))


@pytest.mark.parametrize("fmt", sorted(FORMATS))
def test_golden_ignores_time_and_scan_id(fmt: str, golden) -> None:  # type: ignore[no-untyped-def]
    if golden.update:
        pytest.skip("nothing to compare while updating")
    report: ScanReport = build_sample(hostile=True)
    later = replace(report, scan=replace(report.scan, id="0f0f0f0f-1111-4222-8333-444444444444",
                                         started_at="2027-01-02T03:04:05Z",
                                         finished_at="2027-01-02T03:09:59Z"))
    golden.check(f"render-sample.{SUFFIX[fmt]}", rendered(fmt, later), scan_id=later.scan.id,
                 results_sha256=results_sha256(later))

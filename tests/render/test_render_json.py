"""Results JSON: exactly ``report.to_dict()`` (contracts §5), stable bytes."""

from __future__ import annotations

import json
from dataclasses import replace

from scanner.model import ScanReport
from scanner.render.jsonfmt import render_json

from .conftest import HOSTILE_NAME


def test_json_is_the_contract_document(hostile_report: ScanReport) -> None:
    out = render_json(hostile_report)
    assert out.endswith(b"}\n") and not out.endswith(b"\n\n")
    assert json.loads(out) == json.loads(json.dumps(hostile_report.to_dict()))
    doc = json.loads(out)
    assert list(doc)[:5] == ["lmscan_results", "scan", "clusters", "results", "summary"]
    assert doc["lmscan_results"] == 1
    assert doc["summary"] == hostile_report.summary


def test_json_is_indented_utf8_and_stable(hostile_report: ScanReport) -> None:
    out = render_json(hostile_report)
    assert out == render_json(hostile_report)
    assert b'\n  "scan": {' in out
    assert HOSTILE_NAME.encode() in out  # JSON needs no HTML escaping
    assert "Réseau invité — 网络 ✓".encode() in out  # not \u-escaped
    assert b"\x1b" not in out  # control characters are escaped by JSON itself


def test_json_survives_evidence_the_engine_left_as_sets(sample_report: ScanReport) -> None:
    r = replace(sample_report.results[0], evidence={"ids": {"b", "a"}, "t": ("x",)})
    report = replace(sample_report, results=(r,))
    doc = json.loads(render_json(report))
    assert doc["results"][0]["evidence"] == {"ids": ["a", "b"], "t": ["x"]}

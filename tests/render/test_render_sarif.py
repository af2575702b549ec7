"""SARIF 2.1.0: valid against the OASIS schema, read back by sarif-tools, stable fingerprints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from sarif import loader

from scanner.model import ScanReport, Severity, Status
from scanner.render.sarif import FINGERPRINT, render_sarif

from .conftest import build_big, build_empty, build_sample

ROOT = Path(__file__).parents[2]


@pytest.fixture(scope="module")
def validator(shared_file: Callable[[str], Path]) -> Any:
    schema = json.loads(shared_file("schemas/sarif-2.1.0.json").read_text(encoding="utf-8"))
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _doc(report: ScanReport) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(render_sarif(report))
    return data


@pytest.mark.parametrize("report", [
    build_sample(), build_sample(hostile=True, default_policy=True), build_empty(),
    build_empty(clusters=True), build_big(30), build_sample(fail_on=Severity.HIGH),
], ids=["sample", "hostile", "empty", "empty-cluster", "big", "fail-on-high"])
def test_validates_against_the_sarif_schema(validator: Any, report: ScanReport) -> None:
    doc = _doc(report)
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]]
    assert doc["version"] == "2.1.0" and len(doc["runs"]) == 1


def test_the_schema_check_can_fail(validator: Any) -> None:
    doc = _doc(build_sample())
    doc["runs"][0]["results"][0]["level"] = "critical"   # not a SARIF level
    assert list(validator.iter_errors(doc))


def test_one_result_per_failure_waiver_and_error(sample_report: ScanReport) -> None:
    run = _doc(sample_report)["runs"][0]
    want = [r for r in sample_report.results if r.status in (Status.FAIL, Status.WAIVED, Status.ERROR)]
    assert len(run["results"]) == len(want)
    by_id = {r["partialFingerprints"][FINGERPRINT]: r for r in run["results"]}
    assert set(by_id) == {r.id for r in want}
    for r in want:
        out = by_id[r.id]
        assert out["ruleId"] == r.rule
        assert run["tool"]["driver"]["rules"][out["ruleIndex"]]["id"] == r.rule
        if r.status is Status.ERROR:
            assert (out["kind"], out["level"]) == ("review", "none")
        else:
            assert out["kind"] == "fail"
            assert out["level"] == {"critical": "error", "high": "error", "medium": "warning",
                                    "low": "note", "info": "note"}[r.severity.value]
        assert ("suppressions" in out) == (r.status is Status.WAIVED)
        assert out["properties"]["severity"] == r.severity.value
        (loc,) = out["locations"]
        (logical,) = loc["logicalLocations"]
        assert logical["fullyQualifiedName"].startswith(f"{r.cluster}/")
        assert logical["kind"] == r.target.kind
    iscsi = next(r for r in run["results"] if r["ruleId"] == "LM001" and r["properties"]["cluster"] == "HVCLU01")
    assert iscsi["locations"][0]["logicalLocations"][0]["fullyQualifiedName"] == "HVCLU01/network/iSCSI-A"
    source = next(r for r in want if r.id == iscsi["partialFingerprints"][FINGERPRINT])
    assert source.remediation.strip() and iscsi["properties"]["remediation"] == source.remediation
    assert "```powershell" in iscsi["message"]["markdown"]


def test_waivers_are_accepted_suppressions_with_the_reason(sample_report: ScanReport) -> None:
    run = _doc(sample_report)["runs"][0]
    waived = [r for r in run["results"] if "suppressions" in r]
    assert waived
    for w in waived:
        (s,) = w["suppressions"]
        assert s["kind"] == "external" and s["status"] == "accepted"
        assert s["justification"] and ". Finding: " not in s["justification"]


def test_rules_carry_help_and_remediation(sample_report: ScanReport) -> None:
    rules = {r["id"]: r for r in _doc(sample_report)["runs"][0]["tool"]["driver"]["rules"]}
    assert set(sample_report.rules) <= set(rules)
    lm001 = rules["LM001"]
    assert lm001["shortDescription"]["text"] == sample_report.rules["LM001"].title
    assert sample_report.rules["LM001"].rationale.split()[0] in lm001["help"]["text"]
    assert "Remediation" in lm001["help"]["text"] and "lmscan rules show LM001" in lm001["help"]["text"]
    assert lm001["helpUri"].startswith("https://")
    assert lm001["defaultConfiguration"]["level"] == "error"
    assert lm001["properties"]["security-severity"] == "9.5"


def test_unreachable_nodes_are_tool_notifications(sample_report: ScanReport) -> None:
    inv = _doc(sample_report)["runs"][0]["invocations"][0]
    notes = [n["message"]["text"] for n in inv["toolExecutionNotifications"]]
    assert any(n.startswith("HVCLU02/HV-B02: not collected: WinRM") for n in notes)


def test_read_back_by_sarif_tools(tmp_path: Path, sample_report: ScanReport) -> None:
    path = tmp_path / "r.sarif"
    path.write_bytes(render_sarif(sample_report))
    sarif = loader.load_sarif_file(str(path))
    assert sarif.get_distinct_tool_names() == ["lmscan"]
    records = sarif.get_records()
    want = [r for r in sample_report.results if r.status in (Status.FAIL, Status.WAIVED, Status.ERROR)]
    assert len(records) == len(want)
    assert sorted(rec["Code"] for rec in records) == sorted(r.rule for r in want)
    errors = sum(1 for r in want if r.status is not Status.ERROR and r.severity.rank >= Severity.HIGH.rank)
    assert sum(1 for rec in records if rec["Severity"] == "error") == errors
    assert sum(1 for rec in records if rec["Severity"] == "none") == sum(1 for r in want if r.status is Status.ERROR)
    assert sarif.get_rules_by_id("LM001")


def test_fingerprints_are_stable_across_two_scans(tmp_path: Path) -> None:
    docs = []
    for run in ("a", "b"):
        out = tmp_path / f"{run}.sarif"
        env = dict(os.environ, NO_COLOR="1")
        env.pop("LMSCAN_FAIL_ON", None)
        p = subprocess.run([sys.executable, "-m", "scanner", "scan", "--demo", "-q", "--sarif", str(out)],
                           capture_output=True, text=True, env=env, timeout=120, cwd=tmp_path)
        assert p.returncode == 1, p.stderr
        docs.append(json.loads(out.read_text(encoding="utf-8")))
    a, b = ([(r["partialFingerprints"][FINGERPRINT], r["correlationGuid"], r["ruleId"],
              r["locations"][0]["logicalLocations"][0]["fullyQualifiedName"]) for r in d["runs"][0]["results"]]
            for d in docs)
    assert a == b and len(a) > 10
    assert len({fp for fp, *_ in a}) == len(a)               # one fingerprint per finding
    assert docs[0]["runs"][0]["properties"]["lmscan"]["scanId"] != docs[1]["runs"][0]["properties"]["lmscan"]["scanId"]

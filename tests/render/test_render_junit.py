"""JUnit XML: valid against junit-10.xsd, and read back by an independent parser."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import junit_xml
import pytest
import xmlschema
from junitparser import Error, Failure, JUnitXml, Skipped

from scanner.model import ScanReport, Severity, Status
from scanner.render._common import result_key, rule_order
from scanner.render.junit import _result_key, _write, render_junit

from .conftest import HOSTILE_NAME, HOSTILE_TEXT, build_big, build_empty, build_sample, result


@pytest.fixture(scope="module")
def schema(shared_file: Callable[[str], Path]) -> xmlschema.XMLSchema:
    # The schema is shared material next to the repository, never copied into it.
    return xmlschema.XMLSchema(str(shared_file("schemas/junit-10.xsd")))


def _read(report: ScanReport) -> JUnitXml:
    return JUnitXml.fromstring(render_junit(report))


def _cases(xml: JUnitXml) -> list:
    return [case for suite in xml for case in suite]


@pytest.mark.parametrize("report", [
    build_sample(), build_sample(hostile=True, default_policy=True), build_empty(),
    build_empty(clusters=True), build_big(20), build_sample(fail_on=Severity.HIGH),
], ids=["sample", "hostile", "empty", "empty-cluster", "big", "fail-on-high"])
def test_validates_against_junit_10_xsd(schema: xmlschema.XMLSchema, report: ScanReport) -> None:
    out = render_junit(report)
    assert out.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<testsuites ')
    schema.validate(out.decode("utf-8"))


def test_raw_junit_xml_output_would_not_validate(schema: xmlschema.XMLSchema) -> None:
    """Guards the reason for the post-processing: if junit-xml ever fixes this, simplify."""
    import junit_xml

    raw = junit_xml.to_xml_report_string([junit_xml.TestSuite("s", [junit_xml.TestCase("c")])])
    assert not schema.is_valid(raw)


def test_one_suite_per_cluster_with_counts(sample_report: ScanReport) -> None:
    xml = _read(sample_report)
    suites = {s.name: s for s in xml}
    assert list(suites) == [c.name for c in sample_report.clusters]
    for name, suite in suites.items():
        mine = [r for r in sample_report.results if r.cluster == name]
        counts = Counter(r.status for r in mine)
        assert suite.tests == len(mine)
        assert suite.failures == counts[Status.FAIL]
        assert suite.errors == counts[Status.ERROR]
        assert suite.skipped == counts[Status.SKIP] + counts[Status.WAIVED]
        assert suite.hostname == name
        assert suite.timestamp == "2026-11-26T02:00:00"  # ISO-8601, no zone
        props = {p.name: p.value for p in suite.properties()}
        assert props["scan_id"] == sample_report.scan.id
        assert props["tool_version"] == "1.0.0"
        assert props["policy_sha256"] == sample_report.scan.policy.sha256
        assert "lmscan-builtin 1.0.0" in props["rule_packs"]
    assert xml.tests == len(sample_report.results)


def test_statuses_map_to_junit_results(sample_report: ScanReport) -> None:
    xml = _read(sample_report)
    kinds = {Status.FAIL: Failure, Status.ERROR: Error, Status.SKIP: Skipped, Status.WAIVED: Skipped}
    by_name = {(c.classname, c.name): c for c in _cases(xml)}
    for r in sample_report.results:
        matches = [c for (cls, n), c in by_name.items()
                   if n.startswith(f"{r.rule} ({r.severity.value}) {r.target.kind} {r.target.name}")
                   and cls.endswith(re.sub(r"[.\s]", "_", r.cluster))]
        assert len(matches) == 1, r.id
        case = matches[0]
        if r.status is Status.PASS:
            assert case.result == []
            continue
        (res,) = case.result
        assert isinstance(res, kinds[r.status])
        assert "\n" not in (res.message or "")
        if r.status is Status.FAIL:
            assert res.type == r.severity.value
            assert f"Expected: {r.expected}" in res.text and f"Actual:   {r.actual}" in res.text
            if r.remediation:
                assert r.remediation.splitlines()[-1] in res.text
        elif r.status is Status.ERROR:
            assert res.type == "CollectionError" and r.message in res.message
        elif r.status is Status.WAIVED:
            assert res.message.startswith("Waived: ")
        else:
            assert res.message.startswith("Not applicable: ")
        evidence = json.loads(case.system_out)
        assert evidence["id"] == r.id and evidence["evidence"] == json.loads(json.dumps(dict(r.evidence)))


def test_names_are_stable_unique_and_readable(sample_report: ScanReport) -> None:
    cases = _cases(_read(sample_report))
    keys = [(c.classname, c.name.casefold()) for c in cases]
    assert len(keys) == len(set(keys))
    assert {c.classname for c in cases} == {
        "lmscan.HVCLU01", "lmscan.HVCLU02", "lmscan.LEGACY08", "lmscan.hvclu03_contoso_com"}
    names = {c.name for c in cases}
    assert {"LM001 (critical) network iSCSI-A", "LM001 (critical) vm SQL01", "HOST001 (high) node hv31.contoso.com",
            "LM010 (medium) cluster HVCLU01"} <= names
    assert not any(re.search(r"\d{4}-\d{2}-\d{2}|\d+:\d{2}", n) for n in names)
    assert render_junit(sample_report) == render_junit(sample_report)


def test_colliding_names_are_disambiguated_deterministically(sample_report: ScanReport) -> None:
    twins = [result("LM004", Status.FAIL, "C", "network", "Same", id="id-2"),
             result("LM004", Status.FAIL, "C", "network", "Same", id="id-1"),
             result("LM004", Status.PASS, "C", "network", "same", id=None),
             replace(result("LM004", Status.PASS, "C", "network", "same", id=None), id="zz"),
             result("LM004", Status.PASS, "C.x", "network", "Same"),
             result("LM004", Status.PASS, "C_x", "network", "Same")]
    forward = replace(sample_report, clusters=(), results=tuple(twins))
    backward = replace(forward, results=tuple(reversed(twins)))
    for report in (forward, backward):
        cases = _cases(_read(report))
        keys = [(c.classname, c.name.casefold()) for c in cases]
        assert len(keys) == len(set(keys)) == len(twins)
    def names(rep: ScanReport) -> list[tuple[str, str]]:
        return sorted((c.classname, c.name) for c in _cases(_read(rep)))

    assert names(forward) == names(backward)
    got = {n for cls, n in names(forward) if cls == "lmscan.C"}
    assert got == {"LM004 (high) network Same [id-1]", "LM004 (high) network Same [id-2]",
                   "LM004 (high) network same", "LM004 (high) network same #2"}
    classes = {cls for cls, _ in names(forward)}
    assert len(classes) == 3  # C.x and C_x must not share a classname


def test_field_data_survives(schema: xmlschema.XMLSchema, hostile_report: ScanReport) -> None:
    out = render_junit(hostile_report)
    schema.validate(out.decode("utf-8"))
    assert b"\x1b" not in out and b"\x00" not in out and b"\x07" not in out
    (case,) = [c for c in _cases(JUnitXml.fromstring(out)) if HOSTILE_NAME in c.name]
    assert case.name == f"LM004 (high) network {HOSTILE_NAME}"
    (failure,) = case.result
    for piece in (HOSTILE_NAME, 'a & b "quoted" \'single\' ]]> <b>bold</b>', "red bell nul",
                  "Réseau invité — 网络 ✓"):
        assert piece in failure.text
        assert piece in failure.message
    assert "\n" not in failure.message
    assert json.loads(case.system_out)["evidence"]["name"] == HOSTILE_NAME
    props = {p.name: p.value for s in JUnitXml.fromstring(out) for p in s.properties()}
    assert props["node.HV-B02"].startswith("not collected: WinRM said <nope> & ")


def test_long_messages_are_cut_in_the_attribute_only(sample_report: ScanReport) -> None:
    long = "word " * 200
    r = replace(sample_report.results[0], message=long)
    (case,) = _cases(_read(replace(sample_report, clusters=(), results=(r,))))
    (failure,) = case.result
    assert len(failure.message) <= 300 and failure.message.endswith("…")
    assert long.strip() in failure.text


def test_failures_below_fail_on_say_so() -> None:
    xml = _read(build_sample(fail_on=Severity.HIGH))
    messages = {c.name: c.result[0].message for c in _cases(xml) if c.result}
    assert "does not fail the scan" in messages["LM006 (medium) cluster HVCLU01"]  # medium
    assert "does not fail the scan" not in messages["LM001 (critical) network iSCSI-A"]  # critical


def test_empty_reports_still_have_a_testcase() -> None:
    for report in (build_empty(), build_empty(clusters=True)):
        xml = _read(report)
        cases = _cases(xml)
        assert len(cases) == 1 and isinstance(cases[0].result[0], Skipped)


@pytest.mark.parametrize("text", [HOSTILE_NAME, HOSTILE_TEXT, "tab\there\r\nnext\rline\n", " ", "",
                                  "Réseau invité — 网络 ✓ \U0001f600", "&amp; &#10; ]]>"])
def test_suite_writer_matches_elementtree(text: str) -> None:
    """The one-pass writer gives exactly what ET.indent + ET.tostring give for junit-xml's trees."""
    def suite() -> ET.Element:
        cases = []
        for i in range(5):
            case = junit_xml.TestCase(name=f"{text} {i}", classname=text, stdout=text or None)
            if i == 1:
                case.add_failure_info(message=text, output=text, failure_type="high")
            elif i == 2:
                case.add_error_info(message=text, output=text or None, error_type="CollectionError")
            elif i == 3:
                case.add_skipped_info(message=text or None, output=text or None)
            cases.append(case)
        built: ET.Element = junit_xml.TestSuite(name=text, test_cases=cases, hostname=text or None,
                                                timestamp=text, properties={text: text, "k": text}).build_xml_doc()
        return built

    reference = ET.Element("testsuites")
    reference.append(suite())
    ET.indent(reference, space="  ")
    out = ["<testsuites>\n  "]
    _write(suite(), "\n  ", out)
    assert "".join(out) + "\n</testsuites>" == ET.tostring(reference, encoding="unicode")


@pytest.mark.parametrize("report", [build_sample(), build_sample(hostile=True), build_big(20)],
                         ids=["sample", "hostile", "big"])
def test_result_order_is_the_shared_one(report: ScanReport) -> None:
    key, order = _result_key(report), rule_order(report)
    assert [key(r) for r in report.results] == [result_key(r, order) for r in report.results]

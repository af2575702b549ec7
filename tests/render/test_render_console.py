"""Console summary: compact, capped, coloured only on request, never wider than asked."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.model import ClusterInfo, NodeInfo, ScanReport, Severity, Status
from scanner.render.console import MAX_FINDINGS, render_console

from .conftest import build_big, build_empty, build_sample, result

ANSI = re.compile(r"\x1b\[[0-9;]*m")
REPORTS = {"sample": build_sample(), "hostile": build_sample(hostile=True, default_policy=True),
           "big": build_big(60), "empty": build_empty()}


def _width(line: str) -> int:
    line = ANSI.sub("", line)
    return sum(0 if unicodedata.combining(c) else
               2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in line)


def test_plain_summary(sample_report: ScanReport) -> None:
    out = render_console(sample_report, color=False)
    assert "\x1b" not in out
    lines = out.splitlines()
    assert lines[0].startswith("lmscan 1.0.0  scan 2f1e6c1a-")
    table = lines[lines.index(next(l for l in lines if l.startswith("CLUSTER"))):]
    assert re.match(r"CLUSTER +VERDICT +FAIL +ERROR +PASS +SKIP +WAIVED$", table[0])
    assert re.match(r"HVCLU01 +FAIL +6 +0 +18 +2 +1$", table[1])
    assert re.match(r"hvclu03\.contoso\.com +PASS +0 +0 +4 +0 +0$", table[4])
    assert re.match(r"TOTAL +9 +5 +30 +5 +1$", table[5])
    assert any(l.startswith("NOT COLLECTED HVCLU02/HV-B02: WinRM HV-B02") for l in lines)
    findings = [l for l in lines if l.startswith(("FAIL  ", "ERROR "))]
    assert len(findings) == 12   # the two per-rule errors of the unreachable HV-B02 are its one line
    assert findings[0].startswith("FAIL  critical LM001   HVCLU01 network iSCSI-A: iSCSI-A")
    assert lines[-1].startswith("Verdict: FAIL  9 failures at or above low, 5 not evaluated, 4 clusters")
    assert "WARNING" not in out


def test_colour_only_on_request(sample_report: ScanReport) -> None:
    coloured = render_console(sample_report, color=True)
    assert "\x1b[1;31mFAIL" in coloured
    assert ANSI.sub("", coloured) == render_console(sample_report, color=False)


def test_failures_are_capped_on_a_terminal() -> None:
    out = render_console(build_big(150), color=False)
    findings = [l for l in out.splitlines() if l.startswith(("FAIL  ", "ERROR "))]
    assert len(findings) == MAX_FINDINGS
    assert f"... and {21 - MAX_FINDINGS} more failures and errors (--full prints them all" in out
    assert "... and 125 more clusters (8 INCOMPLETE, 117 PASS; --full lists them)" in out


def test_full_output_leaves_nothing_out() -> None:
    """width=None (a CI log, or --full): every cluster, node and finding, none cut."""
    out = render_console(build_big(150), color=False, width=None)
    lines = out.splitlines()
    assert len([l for l in lines if l.startswith("FAIL  ")]) == 21
    assert len([l for l in lines if l.startswith("NOT COLLECTED ")]) == 13
    assert len([l for l in lines if re.match(r"HVC\d{3} ", l)]) == 150
    assert "... and" not in out and "…" not in out


def test_full_output_keeps_every_character_of_a_long_finding() -> None:
    message = "Cluster network " + "x" * 150 + " carries live migration; " + "y" * 110 + " END"
    assert len(message) >= 300
    report = replace(build_sample(), results=build_sample().results + (
        result("LM004", Status.FAIL, "HVCLU01", "network", "N" * 60, message=message),))
    out = render_console(report, color=False, width=None)
    line = next(l for l in out.splitlines() if "N" * 60 in l)
    assert line.endswith(": " + message)
    cut = render_console(report, color=False, width=100)
    assert message not in cut and max(_width(l) for l in cut.splitlines()) <= 100


def test_an_unreachable_node_is_one_line_not_one_per_rule() -> None:
    out = render_console(build_big(22), color=False, width=None)
    lines = out.splitlines()
    # HVC011 and HVC022 each lost node 4; its HOST001, HOST002 and LM009 results are errors.
    assert [l for l in lines if "HVC011-N4" in l] == [
        "NOT COLLECTED HVC011/HVC011-N4: WinRM: connection refused "
        "(3 results not evaluated, its rules: LM009, HOST001, HOST002)"]
    assert not any(l.startswith("ERROR ") for l in lines)


def test_a_cluster_with_no_node_collected() -> None:
    nodes = (NodeInfo("D1", False, "WinRM: authentication failed (ntlm)"), NodeInfo("D2", False, "timed out"))
    results = tuple(result(rule, Status.ERROR, "DOWN01", "cluster", "DOWN01",
                           message="no node of this cluster could be collected: D1, D2")
                    for rule in ("LM001", "LM002", "LM005")) + tuple(
        result("HOST001", Status.ERROR, "DOWN01", "node", n.name, node=n.name, message="not collected")
        for n in nodes)
    report = replace(build_empty(), clusters=(ClusterInfo("DOWN01", "x", nodes),), results=results)
    lines = render_console(report, color=False, width=None).splitlines()
    assert [l for l in lines if l.startswith(("NOT ", "ERROR"))] == [
        "NOT COLLECTED DOWN01/D1: WinRM: authentication failed (ntlm) (1 result not evaluated, its rules: HOST001)",
        "NOT COLLECTED DOWN01/D2: timed out (1 result not evaluated, its rules: HOST001)",
        "NOT EVALUATED DOWN01: cluster-wide rules need every node "
        "(3 results not evaluated, rules: LM001, LM002, LM005)"]
    assert re.search(r"^DOWN01 +INCOMPLETE +0 +5 ", "\n".join(lines), re.M)


def test_pass_never_stands_next_to_failures() -> None:
    """With --fail-on high, medium and low failures do not fail a cluster, and say so."""
    out = render_console(build_sample(fail_on=Severity.HIGH), color=False, width=None)
    rows = {l.split()[0]: l for l in out.splitlines() if l.startswith(("HVCLU", "LEGACY", "hvclu"))}
    assert re.match(r"HVCLU02 +INCOMPLETE \(1 below --fail-on\) +1 +5 ", rows["HVCLU02"])
    assert re.match(r"hvclu03\.contoso\.com +PASS +0 ", rows["hvclu03.contoso.com"])
    for row in rows.values():
        fails = int(row.split(")")[-1].split()[0]) if "below" in row else None
        assert fails is None or fails > 0
    assert re.search(r"^(HVCLU01|LEGACY08) +FAIL +\d", out, re.M)


def test_pass_with_failures_below_the_threshold() -> None:
    report = build_sample(fail_on=Severity.CRITICAL)
    out = render_console(report, color=False, width=None)
    assert re.search(r"^HVCLU01 +INCOMPLETE|^HVCLU01 +FAIL|^HVCLU01 +PASS \(\d+ below --fail-on\)", out, re.M)
    hv01 = next(l for l in out.splitlines() if l.startswith("HVCLU01 "))
    assert not re.match(r"HVCLU01 +PASS +[1-9]", hv01)
    only_low = replace(build_empty(clusters=True), results=(
        result("HOST005", Status.FAIL, "EMPTY01", "cluster", "EMPTY01", message="differs"),
        result("LM001", Status.PASS, "EMPTY01", "network", "iSCSI")))
    out = render_console(replace(only_low, scan=replace(only_low.scan, fail_on=Severity.HIGH)),
                         color=False, width=None)
    assert re.search(r"^EMPTY01 +PASS \(1 below --fail-on\) +1 +0 +1 ", out, re.M)
    assert "Verdict: PASS (1 below --fail-on)  0 failures at or above high" in out


def test_severity_filter_hides_lower_findings_and_says_so(sample_report: ScanReport) -> None:
    out = render_console(sample_report, color=False, width=None, min_severity=Severity.HIGH)
    findings = [l for l in out.splitlines() if l.startswith(("FAIL  ", "ERROR "))]
    assert findings and all(l.split()[1] in ("critical", "high") for l in findings)
    assert re.search(r"^\d+ findings below --severity high not shown$", out, re.M)
    assert re.search(r"^HVCLU01 +FAIL +6 ", out, re.M)   # the counts still cover everything


def test_default_policy_and_hostile_text() -> None:
    out = render_console(REPORTS["hostile"], color=False, width=200)
    assert "WARNING: no site policy; the site has not declared its networks" in out
    assert not re.search("[\x00-\x08\x0b-\x1f\x7f-\x9f]", out)
    assert "<script>alert(1)</script>" in out  # a terminal shows it as text
    coloured = render_console(REPORTS["hostile"], color=True, width=200)
    # Escapes from the field are gone; only our own SGR codes remain.
    assert "\x1b[31mred" not in coloured and "\x1b[1mWinRM" not in coloured
    assert "\x1b" not in ANSI.sub("", coloured)


@pytest.mark.parametrize("name", sorted(REPORTS))
@pytest.mark.parametrize("width", [20, 40, 60, 80, 100, 132])
def test_never_wider_than_width(name: str, width: int) -> None:
    for color in (False, True):
        out = render_console(REPORTS[name], color=color, width=width)
        assert max(_width(l) for l in out.splitlines()) <= width


@settings(max_examples=40, deadline=None)
@given(width=st.integers(min_value=20, max_value=160),
       name=st.text(alphabet=st.sampled_from("aZ9.-_ 網絡é\u0301\t"), min_size=1, max_size=70))
def test_width_holds_for_any_cluster_name(width: int, name: str) -> None:
    report = replace(build_empty(), clusters=(ClusterInfo(name, "x", (NodeInfo("n", False, name),)),),
                     results=(result("LM001", Status.FAIL, name, "network", name, message=name * 3),))
    out = render_console(report, color=True, width=width)
    assert max(_width(l) for l in out.splitlines()) <= width


def test_empty_report() -> None:
    out = render_console(build_empty(), color=False)
    assert "No cluster was scanned." in out
    assert out.endswith("0 clusters\n")

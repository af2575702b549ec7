"""Console summary: compact, capped, coloured only on request, never wider than asked."""

from __future__ import annotations

import re
import unicodedata
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.model import ClusterInfo, NodeInfo, ScanReport, Status
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
    assert len(findings) == 14
    assert findings[0].startswith("FAIL  critical LM001   HVCLU01 network iSCSI-A: iSCSI-A")
    assert lines[-1].startswith("Verdict: FAIL  9 failures at or above low, 5 not evaluated, 4 clusters")
    assert "WARNING" not in out


def test_colour_only_on_request(sample_report: ScanReport) -> None:
    coloured = render_console(sample_report, color=True)
    assert "\x1b[1;31mFAIL" in coloured
    assert ANSI.sub("", coloured) == render_console(sample_report, color=False)


def test_failures_are_capped() -> None:
    out = render_console(build_big(100), color=False)
    findings = [l for l in out.splitlines() if l.startswith(("FAIL  ", "ERROR "))]
    assert len(findings) == MAX_FINDINGS
    assert f"... and {14 + 27 - MAX_FINDINGS} more failures and errors" in out
    assert "... and 75 more clusters (75 PASS)" in out


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

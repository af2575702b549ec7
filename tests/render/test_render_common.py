"""The text and ordering helpers every renderer relies on."""

from __future__ import annotations

import pytest

from scanner.model import ClusterInfo, Result, ScanReport, Severity, Status, Target
from scanner.render._common import (
    clean,
    cluster_names,
    display_time,
    duration_seconds,
    finding_key,
    group_by_cluster,
    one_line,
    rule_key,
    target_label,
    utc_naive,
)

from .conftest import RULES, result, scan_info


@pytest.mark.parametrize(("raw", "expected"), [
    ("plain", "plain"),
    ("\x1b[31mred\x1b[0m", "red"),
    ("\x1b]0;title\x07after", "after"),
    ("bell\x07 nul\x00 del\x7f c1\x9b", "bell nul del c1"),
    ("a\r\nb\rc", "a\nb\nc"),
    ("tab\tkept", "tab\tkept"),
    ("lone \ud800 surrogate \ufffe", "lone  surrogate "),
    ("Réseau — 网络 ✓", "Réseau — 网络 ✓"),
    (None, ""),
])
def test_clean_removes_escapes_and_controls_only(raw: str | None, expected: str) -> None:
    assert clean(raw) == expected


def test_one_line_collapses_whitespace_and_cuts() -> None:
    assert one_line("  a\n\n b\tc  ") == "a b c"
    assert one_line("abcdefghij", limit=5) == "abcd…"
    assert one_line("abcde", limit=5) == "abcde"


def test_target_label_adds_node_only_when_it_says_something() -> None:
    assert target_label(Target("network", "iSCSI-A")) == "network iSCSI-A"
    assert target_label(Target("node", "HV01", node="hv01")) == "node HV01"
    assert target_label(Target("interface", "Ethernet 3", node="HV02")) == "interface Ethernet 3 on HV02"


def test_times() -> None:
    assert utc_naive("2026-11-26T03:00:03+01:00") == "2026-11-26T02:00:03"
    assert utc_naive("2026-11-26T02:00:03Z") == "2026-11-26T02:00:03"
    assert utc_naive("not a time") is None
    assert display_time("2026-11-26T02:00:03Z") == "2026-11-26 02:00:03 UTC"
    assert display_time("garbage\x1b[1m") == "garbage"
    assert duration_seconds("2026-11-26T02:00:00Z", "2026-11-26T02:00:41Z") == 41.0
    assert duration_seconds("2026-11-26T02:00:00", "2026-11-26T02:00:41Z") is None


def test_rules_sort_in_pack_order_then_naturally() -> None:
    order = {rid.casefold(): i for i, rid in enumerate(RULES)}
    ids = ["HOST001", "LM010", "LM002", "X9", "X10"]
    assert sorted(ids, key=lambda r: rule_key(r, order)) == ["LM002", "LM010", "HOST001", "X9", "X10"]


def test_findings_most_severe_first_failures_before_errors() -> None:
    order = {rid.casefold(): i for i, rid in enumerate(RULES)}
    rs = [result("HOST005", Status.FAIL, "C", "cluster", "C"),
          result("HOST001", Status.ERROR, "C", "node", "N1", node="N1"),
          result("LM004", Status.FAIL, "C", "network", "n"),
          result("LM001", Status.FAIL, "C", "network", "i")]
    ordered = sorted(rs, key=lambda r: finding_key(r, order))
    assert [r.rule for r in ordered] == ["LM001", "LM004", "HOST001", "HOST005"]
    assert ordered[0].severity is Severity.CRITICAL


# ----------------------------------------------------------------------------- grouping by cluster
# The helpers fold case once per run of one cluster name; these hold them to the per-result
# definition, with two spellings of one cluster interleaved (a hand-built or merged report).

def _interleaved() -> ScanReport:
    names = ["HVCLU01", "hvclu01", "HVCLU02", "HvClu01", "HVCLU02", "HVCLU03", "HVCLU03"]
    statuses = [Status.PASS, Status.ERROR, Status.PASS, Status.FAIL, Status.ERROR, Status.PASS, Status.ERROR]
    results = tuple(result("LM001", statuses[i % 7], names[i % 7], "network", f"N{i}", id=f"id-{i}")
                    for i in range(21))
    clusters = (ClusterInfo("hvclu02", "Microsoft Windows Server 2022 Datacenter", ()),)
    return ScanReport(scan=scan_info(), clusters=clusters, results=results, rules=RULES)


def test_group_by_cluster_keeps_each_clusters_results_in_order_across_spellings() -> None:
    report = _interleaved()
    expected: dict[str, list[Result]] = {}
    for r in report.results:
        expected.setdefault(r.cluster.casefold(), []).append(r)
    got = group_by_cluster(iter(report.results))
    assert got == expected and list(got) == ["hvclu01", "hvclu02", "hvclu03"]


def test_cluster_names_keep_the_first_spelling_in_report_order() -> None:
    assert cluster_names(_interleaved()) == ["hvclu02", "HVCLU01", "HVCLU03"]


def test_cluster_verdicts_over_interleaved_spellings() -> None:
    report = _interleaved()
    assert [report.cluster_verdict(n) for n in ("hvCLU01", "HVCLU02", "hvclu03", "HVCLU04")] == [
        Status.FAIL, Status.ERROR, Status.ERROR, Status.PASS]

"""Markdown job summary: verdict first, failures with reasons, bounded size, inert field text."""

from __future__ import annotations

import re

from scanner.model import ClusterInfo, NodeInfo, ScanReport, Severity, Status
from scanner.render.markdown import LIMIT, md, render_markdown

from .conftest import HOSTILE_NAME, build_sample, result, scan_info


def _fleet(n: int = 500) -> ScanReport:
    """``n`` clusters as a nightly fleet scan has them: a third failing, some nodes unreachable."""
    clusters, results = [], []
    for i in range(n):
        c = f"HVCLU{i:04d}.corp.contoso.com"
        nodes = tuple(NodeInfo(f"{c[:9]}-N{k:02d}", not (i % 13 == 0 and k == 16),
                               "WinRM: connection refused" if i % 13 == 0 and k == 16 else None)
                      for k in range(1, 17))
        clusters.append(ClusterInfo(c, "Microsoft Windows Server 2022 Datacenter", nodes))
        for net in ("Management", "iSCSI-A", "iSCSI-B", "LiveMigration", "Backup"):
            failing = i % 3 == 0 and net in ("Management", "iSCSI-A")
            rule = "LM001" if net.startswith("iSCSI") else "LM002"
            results.append(result(rule, Status.FAIL if failing else Status.PASS, c, "network", net,
                                  id=f"{i:08x}-{net}",
                                  message=f"{net} network {net} carries live migration (10.{i % 250}.0.0/24); "
                                          "add its Id to MigrationExcludeNetworks" if failing else "ok"))
        for node in nodes:
            status = Status.PASS if node.collected else Status.ERROR
            for rule in ("HOST001", "HOST002", "LM009"):
                results.append(result(rule, status, c, "node", node.name, node=node.name))
        if i % 5 == 0:
            results.append(result("HOST005", Status.FAIL, c, "cluster", c, message="host settings differ"))
    return ScanReport(scan=scan_info(), clusters=tuple(clusters), results=tuple(results))


def test_sample_summary(sample_report: ScanReport) -> None:
    out = render_markdown(sample_report).decode("utf-8")
    lines = out.splitlines()
    assert lines[0] == "## lmscan: ❌ FAIL"
    assert lines[2].startswith("**9 failures** at or above `low`, **5** results not evaluated, 4 clusters")
    findings = [l for l in lines if l.startswith("- **")]
    first_error = next(i for i, l in enumerate(findings) if l.startswith("- **ERROR**"))
    assert all(l.startswith("- **FAIL**") for l in findings[:first_error])       # failures first
    assert findings[0].startswith("- **FAIL** `critical` **LM001** HVCLU01 network iSCSI-A: ")
    assert "| **hvclu03.contoso.com** | ✅ PASS | 0 | 0 | 4 | 0 | 0 |" in lines
    # The unreachable node is one line, not one per rule.
    assert not [l for l in lines if "node HV-B02:" in l]
    assert [l for l in lines if "HV-B02**" in l] == [
        "- **HVCLU02/HV-B02**: WinRM HV-B02.corp.contoso.com:5986: no answer within 30 s (connection timed "
        "out). Is the host up and is TCP 5986 open from the scanner? (2 results not evaluated: LM009, HOST001)"]


def test_verdict_names_failures_below_fail_on() -> None:
    out = render_markdown(build_sample(fail_on=Severity.CRITICAL)).decode("utf-8")
    assert re.search(r"^\| \*\*HVCLU02\*\* \| ⚠️ INCOMPLETE \(1 below --fail-on\) \| 1 \| 5 \|", out, re.M)
    assert "(below --fail-on)" in out


def test_field_text_is_inert() -> None:
    out = render_markdown(build_sample(hostile=True)).decode("utf-8")
    assert HOSTILE_NAME not in out and "<script>" not in out and "\x1b" not in out
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out
    assert md("a|b *c* [x](y) `z` <b>") == "a\\|b \\*c\\* \\[x\\](y) \\`z\\` &lt;b&gt;"


def test_500_clusters_stay_under_64_kb_and_only_the_tail_is_cut() -> None:
    report = _fleet(500)
    data = render_markdown(report)
    assert len(data) < 64 * 1024 and len(data) <= LIMIT
    out = data.decode("utf-8")
    lines = out.splitlines()
    assert lines[0] == "## lmscan: ❌ FAIL"                       # the head is never cut
    failures = [r for r in report.results if r.status is Status.FAIL]
    shown = [l for l in lines if l.startswith("- **FAIL**")]
    assert shown and shown[0].startswith("- **FAIL** `critical` **LM001** HVCLU0000.corp.contoso.com")
    m = re.fullmatch(r"\*… (\d+) more not shown \((.*)\) to stay under the job-summary size limit: "
                     r"the HTML, JSON or SARIF report has everything\.\*", lines[-1])
    assert m, lines[-1]
    nodes = sum(1 for c in report.clusters for n in c.nodes if not n.collected)
    shown_nodes = [l for l in lines if l.startswith("- **HVCLU") and ": WinRM" in l]
    assert len(shown) + len(shown_nodes) + int(m.group(1)) == len(failures) + nodes
    # Every cluster is accounted for: failing ones as rows, clean ones in one line of names.
    rows = [l for l in lines if l.startswith("| **HVCLU")]
    clean = re.search(r"^✅ (\d+) more clusters pass with no failure or waiver: HVCLU0001", out, re.M)
    assert clean and len(rows) + int(clean.group(1)) == 500
    assert all("✅" not in r for r in rows)


def test_small_fleets_are_not_cut() -> None:
    out = render_markdown(_fleet(20)).decode("utf-8")
    assert "more lines not shown" not in out
    assert len([l for l in out.splitlines() if l.startswith("| **HVCLU")]) == 20

"""HTML report: self-contained, e-mail safe, escaped, and in the order a change board reads."""

from __future__ import annotations

import hashlib
import re
import time
from dataclasses import replace
from html.parser import HTMLParser

import jinja2
import pytest

from scanner.errors import RenderError
from scanner.model import ScanReport, Severity, Status
from scanner.render import html as html_module
from scanner.render.html import render_html
from scanner.render.jsonfmt import render_json

from .conftest import HOSTILE_NAME, build_big, build_empty, build_sample


class _Text(HTMLParser):
    """Visible text and tags of a document, as a reader (and a mail client) sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.chunks: list[str] = []
        self.tags: list[str] = []
        self._skip = 0

    _BLOCKS = frozenset({"td", "th", "tr", "table", "div", "p", "br", "h1", "h2", "h3", "pre"})

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag in ("style", "script", "title"):
            self._skip += 1
        if tag in self._BLOCKS:
            self.chunks.append(" ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script", "title"):
            self._skip -= 1
        if tag in self._BLOCKS:
            self.chunks.append(" ")

    def handle_data(self, data: str) -> None:
        if not self._skip:
            self.chunks.append(data)


def _parse(doc: bytes) -> _Text:
    p = _Text()
    p.feed(doc.decode("utf-8"))
    return p


def _text(doc: bytes) -> str:
    return re.sub(r"\s+", " ", "".join(_parse(doc).chunks))


@pytest.fixture(scope="module")
def sample_html() -> bytes:
    return render_html(build_sample())


def test_self_contained_and_email_safe(sample_html: bytes) -> None:
    doc = sample_html.decode("utf-8")
    assert doc.startswith("<!DOCTYPE html>")
    assert '<meta name="color-scheme" content="light dark">' in doc
    assert "<script" not in doc.lower()
    assert "<link" not in doc.lower() and "<img" not in doc.lower()
    assert not re.search(r"\bsrc\s*=|url\(|@import|@font-face", doc, re.IGNORECASE)
    # The only external addresses are rule references, as plain links.
    assert set(re.findall(r'https?://[^"\s<]+', doc)) <= {
        ref for r in build_sample().rules.values() for ref in r.references}
    # Outlook's Word engine: no flex, grid, float or positioning anywhere.
    assert not re.search(r"display:\s*(?:flex|grid)|float:|position:", doc)
    # Styles are inlined; only the @media rules are left in one <style>.
    assert doc.count("<style") == 1
    style = re.search(r"<style>(.*?)</style>", doc, re.DOTALL).group(1)
    assert "@media print" in style and "prefers-color-scheme: dark" in style
    assert re.sub(r"@media[^{]*\{(?:[^{}]*\{[^{}]*\})*[^{}]*\}", "", style).strip() == ""
    assert doc.count('style="') > 100


def test_opens_with_the_verdict_in_plain_words_and_what_failed(sample_html: bytes) -> None:
    text = _text(sample_html)
    head = text[: text.index("Details by cluster")]
    assert "FAIL 3 of 4 clusters are not compliant." in head
    assert "9 failed checks (2 critical, 2 high, 3 medium, 2 low). 5 checks could not be run. " \
           "1 node could not be reached." in head
    assert "--fail-on" not in text and "need attention" not in text
    for cluster, verdict in [("HVCLU01", "FAIL"), ("HVCLU02", "FAIL"), ("LEGACY08", "FAIL"),
                             ("hvclu03.contoso.com", "PASS")]:
        assert re.search(rf"{re.escape(cluster)} {verdict}", head), cluster
    assert "HVCLU01 FAIL 1 critical, 1 high, 3 medium, 1 low" in head
    assert "Windows Server 2008 R2 Enterprise" in head
    assert "no site policy" not in head.lower()


def test_findings_list_is_in_severity_order_across_clusters(sample_html: bytes) -> None:
    text = _text(sample_html)
    listed = text[text.index("What failed (9)"): text.index("Clusters Cluster Verdict")]
    rows = re.findall(r"(critical|high|medium|low) (\w+) ", listed)
    assert rows == [("critical", "LM001"), ("critical", "LM001"), ("high", "LM004"), ("high", "LM007"),
                    ("medium", "LM006"), ("medium", "LM008"), ("medium", "HOST002"), ("low", "HOST005"),
                    ("low", "LM011")]
    assert "HVCLU01 · network iSCSI-A" in listed and "LEGACY08 · vm SQL01" in listed
    doc = sample_html.decode()
    assert doc.index('href="#finding-1"') < doc.index('id="finding-1"')


def test_run_metadata_and_footer_name_the_scan(sample_html: bytes) -> None:
    text = _text(sample_html)
    about = text[text.index("About this scan"):]
    report = build_sample()
    for needle in (report.scan.id, report.scan.policy.sha256, "contoso-site.yaml",
                   "lmscan-builtin 1.0.0", "2026-11-26 02:00:00 UTC", "took 41 s",
                   "failures of severity low or higher make a cluster not compliant"):
        assert needle in about, needle
    sha = hashlib.sha256(render_json(report)).hexdigest()
    footer = text[text.rindex("Scan "):]
    assert f"SHA-256 of the results JSON: {sha}" in footer
    assert report.scan.id in footer and "lmscan 1.0.0 · rule packs: lmscan-builtin 1.0.0" in footer


def test_default_policy_is_called_out() -> None:
    text = _text(render_html(build_sample(default_policy=True)))
    head = text[: text.index("Clusters")]
    assert "WARNING: no site policy. This site has not declared its networks." in head
    assert "built-in default policy was used" in head
    assert "Built-in default policy (no site policy was given)" in text


def test_unreachable_nodes_are_listed_with_their_error(sample_html: bytes) -> None:
    text = _text(sample_html)
    section = text[text.index("Nodes that could not be reached (1)"): text.index("Details by cluster")]
    assert "HV-B02 HVCLU02" in section
    assert "no answer within 30 s (connection timed out)" in section


def test_details_grouped_by_cluster_with_readable_evidence_and_fix(sample_html: bytes) -> None:
    text = _text(sample_html)
    details = text[text.index("Details by cluster"): text.index("Waived (1)")]
    # Clusters in the order of their most severe finding: HVCLU01 and LEGACY08 (critical), HVCLU02 (low).
    assert details.index("HVCLU01 FAIL") < details.index("LEGACY08 FAIL") < details.index("HVCLU02 FAIL")
    hv1 = details[details.index("HVCLU01 FAIL"): details.index("LEGACY08 FAIL")]
    order = [hv1.index(f"{rule} ") for rule in ("LM001", "LM004", "LM006", "LM008", "HOST002", "HOST005")]
    assert order == sorted(order)
    assert "Expected excluded from live migration Found carries live migration" in hv1
    assert "MigrationExcludeNetworks 0d6f3c39-5a0e-4f64-9a52-6f1e3c7a2b10, 8a9b0c1d" in hv1
    assert "Effective order LiveMigration, iSCSI-A, VM Backup, Cluster" in hv1
    doc = sample_html.decode()
    pres = re.findall(r'<pre class="code"[^>]*>(.*?)</pre>', doc, re.DOTALL)
    assert any("$vmType | Set-ClusterParameter -Name MigrationExcludeNetworks -Value '0d6f3c39" in p
               for p in pres)
    # Errors are shown too, in the cluster they belong to, with what is missing.
    hv2 = details[details.index("HVCLU02 FAIL"):]
    assert "Not evaluated (3)" in hv2 and "Get-VMMigrationNetwork failed on HV-B01" in hv2
    assert "Error Access is denied. (0x80070005)" in hv2
    # Two rules stopped by the same unreachable node make one row naming both.
    assert "ERROR node HV-B02 LM009, HOST001 Node HV-B02 was not collected" in hv2
    # The 2008 R2 cluster's findings are per VM.
    assert "vm SQL01" in details[details.index("LEGACY08 FAIL"): details.index("HVCLU02 FAIL")]
    # A passing cluster has no findings block.
    assert "hvclu03.contoso.com PASS" not in details


def test_evidence_is_never_raw_json(hostile_report: ScanReport) -> None:
    text = _text(render_html(hostile_report))
    assert '{"' not in text and "[1, null" not in text
    assert "Nested k: 1, (none), yes" in text


def test_one_finding_per_problem_lists_the_affected_nodes(sample_report: ScanReport) -> None:
    extra = tuple(replace(r, id=r.id.replace("HV02", n), target=replace(r.target, name=n, node=n),
                          message=r.message.replace("HV02", n), remediation=r.remediation.replace("HV02", n))
                  for r in sample_report.results if r.rule == "HOST002" and r.status is Status.FAIL
                  for n in ("HV01", "HV03"))
    report = replace(sample_report, results=tuple(r for r in sample_report.results
                                                  if not (r.rule == "HOST002" and r.status is Status.PASS)) + extra)
    out = render_html(report)
    text = _text(out)
    listed = text[text.index("What failed"): text.index("Clusters Cluster Verdict")]
    assert listed.count("HOST002") == 1 and "HVCLU01 · 3 nodes: HV01, HV02, HV03" in listed
    details = text[text.index("Details by cluster"):]
    card = details[details.index("HOST002 The host"): details.index("HOST005 Host")]
    assert "HV01: HV01 lets live migration use any network." in card
    pres = re.findall(r'<pre class="code"[^>]*>(.*?)</pre>', out.decode(), re.DOTALL)
    fix = next(p for p in pres if "UseAnyNetworkForMigration" in p and "HV01" in p)
    assert fix.count("Set-VMHost") == 3


def test_commands_print_with_a_continuation_that_still_runs() -> None:
    from scanner.render.html import print_wrap

    line = ("$vmType | Set-ClusterParameter -Name MigrationExcludeNetworks -Value "
            "'0d6f3c39-5a0e-4f64-9a52-6f1e3c7a2b10;8a9b0c1d-2e3f-4a5b-8c7d-9e0f1a2b3c42' # keep 'these' quoted")
    wrapped = print_wrap(line, 60).split("\n")
    assert wrapped[0].endswith(" `") and len(wrapped) >= 3
    # Joining the continuation lines the way PowerShell does gives the command back.
    assert re.sub(r" `\n +", " ", print_wrap(line, 60)) == line
    assert print_wrap("short") == "short"
    comment = "# " + "word " * 30
    assert all(c.startswith("# ") for c in print_wrap(comment, 40).split("\n"))


def test_the_rest_is_compact_and_rules_are_documented(sample_html: bytes) -> None:
    text = _text(sample_html)
    rest = text[text.index("Waived (1)"):]
    assert "CHG0012345" in rest
    assert "Not applicable (skipped)" in rest
    assert "HOST001 No Hyper-V PowerShell module on Windows Server 2008 R2. (2) LEGACY08: node OLDHV1" in rest
    assert "Passed (30)" in rest
    rules = rest[rest.index("Rules Why each rule exists."):]
    assert "Live migration traffic on an iSCSI network competes with storage I/O" in rules
    assert "virtual-machines-migrationexcludenetworks" in rules
    assert 'href="#rule-LM001"' in sample_html.decode() and 'id="rule-LM001"' in sample_html.decode()


def test_status_is_always_written_as_text(sample_html: bytes) -> None:
    doc = sample_html.decode()
    for label in re.findall(r'<span class="st st-(\w+)[^"]*"[^>]*>([^<]*)</span>', doc):
        assert label[1].strip(), label


def test_field_data_is_escaped(hostile_report: ScanReport) -> None:
    out = render_html(hostile_report)
    doc = out.decode("utf-8")
    assert "<script" not in doc and "<b>bold</b>" not in doc
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in doc
    text = _text(out)
    assert f"network {HOSTILE_NAME}" in text
    assert 'a & b "quoted" \'single\' ]]> <b>bold</b> red bell nul Réseau invité — 网络 ✓' in text
    assert "WinRM said <nope> &" in text
    assert not re.search("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]", doc)
    assert "script" not in _parse(out).tags


def test_only_web_links_become_links(sample_report: ScanReport) -> None:
    rules = dict(sample_report.rules)
    rules["LM002"] = replace(rules["LM002"], references=(
        "javascript:alert(1)", "https://example.org/a?b=1&c=2", "CIS 18.9.1"))
    doc = render_html(replace(sample_report, rules=rules)).decode()
    assert 'href="javascript' not in doc
    assert '<a href="https://example.org/a?b=1&amp;c=2"' in doc
    assert "CIS 18.9.1" in doc


def test_many_clusters_stay_readable() -> None:
    report = build_big(100)
    start = time.perf_counter()
    out = render_html(report)
    elapsed = time.perf_counter() - start
    assert elapsed < 3.0
    assert len(out) < 1_500_000
    text = _text(out)
    assert "14 of 100 clusters are not compliant; 8 more could not be checked completely." in text
    assert "78 more clusters with no failure, error or waiver: HVC001, HVC002" in text
    # Passing results are counted, not listed one per row.
    assert f"Passed ({report.summary['pass']})" in text and "not listed" in text
    assert text.count("network iSCSI-B") == 0
    # Skips with the same reason collapse into one row.
    assert "LM012 Network ATC is not in use. (100) HVC001, HVC002" in text and "and 92 more" in text


def test_below_fail_on_failures_are_marked() -> None:
    text = _text(render_html(build_sample(fail_on=Severity.HIGH)))
    assert "Severity medium is below this scan's threshold (high): reported, does not fail the scan." in text
    assert "Severity critical is below" not in text
    # A cluster whose only failures are below the threshold never reads a bare PASS or INCOMPLETE,
    # and the HTML says so without command-line words.
    text = _text(render_html(build_sample(fail_on=Severity.CRITICAL)))
    assert "HVCLU02 INCOMPLETE (1 below threshold)" in text and "--fail-on" not in text


def test_empty_report_renders() -> None:
    text = _text(render_html(build_empty()))
    assert "No cluster was scanned." in text and "Nothing failed." in text


def test_environment_escapes_and_is_strict() -> None:
    env = html_module._environment()
    assert env.from_string("{{ x }}").render(x="<b>") == "&lt;b&gt;"
    with pytest.raises(jinja2.UndefinedError):
        env.from_string("{{ missing.attr }}").render()


def test_template_errors_become_render_errors(monkeypatch: pytest.MonkeyPatch,
                                              sample_report: ScanReport) -> None:
    def broken(report: ScanReport) -> dict[str, object]:
        return {}  # everything the template needs is undefined

    monkeypatch.setattr(html_module, "_view", broken)
    with pytest.raises(RenderError, match="HTML report"):
        render_html(sample_report)


def test_waived_and_error_only_cluster_is_incomplete(sample_report: ScanReport) -> None:
    results = tuple(r for r in sample_report.results
                    if r.cluster == "HVCLU02" and r.status is not Status.FAIL)
    text = _text(render_html(replace(sample_report, results=results)))
    assert "INCOMPLETE 1 of 4 clusters could not be checked completely; nothing checked failed." in text


def test_nodes_with_and_without_time_zone_mix(sample_report: ScanReport) -> None:
    c = sample_report.clusters[0]
    nodes = (replace(c.nodes[0], collected_at="2026-11-26T03:30:00+02:00"),
             replace(c.nodes[1], collected_at="2026-11-26T01:00:00"),
             replace(c.nodes[2], collected_at="yesterday"))
    report = replace(sample_report, clusters=(replace(c, nodes=nodes),) + sample_report.clusters[1:])
    text = _text(render_html(report))
    assert "2026-11-26 01:00 " in text  # the earliest: 03:30+02:00 is 01:30 UTC


def test_skipped_results_are_one_row_per_rule_and_reason_naming_the_first_places() -> None:
    from scanner.render._common import result_key, rule_order
    from scanner.render.html import SKIP_WHERE_LIMIT, _skipped

    big = build_big(30)
    report = replace(big, results=big.results[::-1])          # reversed: the rows sort them again
    rows = _skipped(report, rule_order(report))
    skips = sorted((r for r in report.results if r.status is Status.SKIP),
                   key=lambda r: (r.cluster.casefold(),) + result_key(r, rule_order(report)))
    assert rows == [{"rule": "LM012", "anchor": "rule-LM012", "reason": "Network ATC is not in use.",
                     "count": 30, "where": ", ".join(r.cluster for r in skips[:SKIP_WHERE_LIMIT]),
                     "more": 30 - SKIP_WHERE_LIMIT}]
    assert rows[0]["where"].startswith("HVC001, HVC002, ")


@pytest.mark.parametrize("n", [1, 4, 8, 50])
def test_the_first_places_are_those_of_a_full_sort(n: int) -> None:
    import random

    from scanner.render._common import result_key, rule_order
    from scanner.render.html import _first

    big = build_big(12)
    # Node results (four per cluster, so the cut falls inside a cluster) under two spellings.
    skips = [replace(r, cluster=r.cluster.lower() if i % 3 else r.cluster)
             for i, r in enumerate(big.results) if r.rule == "HOST001"]
    random.Random(n).shuffle(skips)
    order = rule_order(big)
    expected = sorted(skips, key=lambda r: (r.cluster.casefold(),) + result_key(r, order))[:n]
    assert _first(skips, order, n) == expected

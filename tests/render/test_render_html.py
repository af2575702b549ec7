"""HTML report: self-contained, e-mail safe, escaped, and in the order a change board reads."""

from __future__ import annotations

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


def test_opens_with_verdicts_counts_and_run_metadata(sample_html: bytes) -> None:
    text = _text(sample_html)
    head = text[: text.index("Failures and errors")]
    assert "FAIL 3 of 4 clusters need attention: 3 fail, 1 pass." in head
    for cluster, verdict in [("HVCLU01", "FAIL"), ("HVCLU02", "FAIL"), ("LEGACY08", "FAIL"),
                             ("hvclu03.contoso.com", "PASS")]:
        assert re.search(rf"{re.escape(cluster)} [^|]*?{verdict}", head), cluster
    assert "Windows Server 2008 R2 Enterprise" in head
    assert "Results by severity" in head and "CRITICAL" in head.upper()
    report = build_sample()
    for needle in (report.scan.id, report.scan.policy.sha256, "contoso-site.yaml",
                   "lmscan-builtin 1.0.0", "2026-11-26 02:00:00 UTC", "took 41 s", "Fail on low: failures of severity low or higher fail"):
        assert needle in head, needle
    assert "no site policy" not in head.lower()


def test_default_policy_is_called_out() -> None:
    text = _text(render_html(build_sample(default_policy=True)))
    head = text[: text.index("Clusters")]
    assert "WARNING: no site policy. This site has not declared its networks." in head
    assert "built-in default policy was used" in head
    assert "Built-in default policy (no --policy given)" in text


def test_unreachable_nodes_are_listed_with_their_error(sample_html: bytes) -> None:
    text = _text(sample_html)
    section = text[text.index("Nodes not collected (1)"): text.index("Results by severity")]
    assert "HVCLU02 NOT COLLECTED HV-B02" in section
    assert "no answer within 30 s (connection timed out)" in section


def test_failures_grouped_by_cluster_most_severe_first_with_remediation(sample_html: bytes) -> None:
    text = _text(sample_html)
    findings = text[text.index("Failures and errors"): text.index("All results by rule")]
    hv1 = findings[findings.index("HVCLU01 FAIL"): findings.index("HVCLU02 FAIL")]
    order = [hv1.index(f"{rule} ") for rule in ("LM001", "LM004", "LM006", "LM008", "HOST002", "HOST005")]
    assert order == sorted(order)
    assert "Expected excluded from live migration Actual carries live migration" in hv1
    assert "MigrationExcludeNetworks 0d6f3c39-5a0e-4f64-9a52-6f1e3c7a2b10, 8a9b0c1d" in hv1
    doc = sample_html.decode()
    pres = re.findall(r"<pre[^>]*>(.*?)</pre>", doc, re.DOTALL)
    assert any("$vmType | Set-ClusterParameter -Name MigrationExcludeNetworks -Value '0d6f3c39" in p
               for p in pres)
    # Errors are shown too, in the cluster they belong to, with what is missing.
    hv2 = findings[findings.index("HVCLU02 FAIL"): findings.index("LEGACY08 FAIL")]
    assert "Not evaluated (5)" in hv2 and "Get-VMMigrationNetwork failed on HV-B01" in hv2
    assert "Access is denied. (0x80070005)" in hv2
    # The 2008 R2 cluster's findings are per VM.
    assert "vm SQL01" in findings[findings.index("LEGACY08 FAIL"):]
    # A passing cluster has no findings block.
    assert "hvclu03.contoso.com PASS" not in findings


def test_the_rest_is_compact_and_rules_are_documented(sample_html: bytes) -> None:
    text = _text(sample_html)
    rest = text[text.index("All results by rule"):]
    assert "Waived (1)" in rest and "CHG0012345" in rest
    assert "Not applicable (skipped)" in rest
    assert "HOST001 No Hyper-V PowerShell module on Windows Server 2008 R2. 2 LEGACY08: node OLDHV1" in rest
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
    assert "22 of 100 clusters need attention: 14 fail, 8 incomplete, 78 pass." in text
    assert "78 more clusters with no failure, error or waiver: HVC001, HVC002" in text
    # Passing results are counted, not listed one per row.
    assert f"Passed ({report.summary['pass']})" in text and "not listed" in text
    assert text.count("network iSCSI-B") == 0
    # Skips with the same reason collapse into one row.
    assert "LM012 Network ATC is not in use. 100 HVC001, HVC002" in text and "and 92 more" in text


def test_below_fail_on_failures_are_marked() -> None:
    text = _text(render_html(build_sample(fail_on=Severity.HIGH)))
    assert "Severity medium is below --fail-on high: reported, does not fail the scan." in text
    assert "Severity critical is below" not in text


def test_empty_report_renders() -> None:
    text = _text(render_html(build_empty()))
    assert "No cluster was scanned." in text and "No failures and no errors." in text


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
    assert "INCOMPLETE 1 of 4 clusters need attention" in text


def test_nodes_with_and_without_time_zone_mix(sample_report: ScanReport) -> None:
    c = sample_report.clusters[0]
    nodes = (replace(c.nodes[0], collected_at="2026-11-26T03:30:00+02:00"),
             replace(c.nodes[1], collected_at="2026-11-26T01:00:00"),
             replace(c.nodes[2], collected_at="yesterday"))
    report = replace(sample_report, clusters=(replace(c, nodes=nodes),) + sample_report.clusters[1:])
    text = _text(render_html(report))
    assert "2026-11-26 01:00 " in text  # the earliest: 03:30+02:00 is 01:30 UTC

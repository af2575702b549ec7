"""The HTML report: one self-contained file a change advisory board reads in Outlook.

The template gets a prepared view (plain dicts and strings, already ordered and cleaned), so
it holds no logic beyond loops; jinja2 escapes everything (``autoescape=True``) and
``StrictUndefined`` turns a template typo into an error instead of an empty cell. The CSS is
inlined into ``style`` attributes with css_inline because Outlook ignores most of a
``<style>`` element; only the ``@media`` rules (print, dark mode) stay in one.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import css_inline
import jinja2

from scanner.errors import RenderError
from scanner.model import Result, ScanReport, Status
from scanner.render._common import (
    SEVERITIES_DESC,
    VERDICT_LABELS,
    clean,
    cluster_names,
    counts_toward_verdict,
    display_time,
    duration_seconds,
    finding_key,
    group_by_cluster,
    one_line,
    result_key,
    rule_key,
    rule_order,
    status_counts,
    target_label,
    utc_naive,
)

#: Above this many passing results the report lists them per rule only (the JSON has all).
PASS_DETAIL_LIMIT = 300
#: Above this many clusters, clusters that pass get a line of names instead of a row each.
CLUSTER_ROWS_LIMIT = 25
#: Places listed for one group of skipped results before "and N more".
SKIP_WHERE_LIMIT = 8
_STATUS_COLUMNS = (Status.FAIL, Status.ERROR, Status.PASS, Status.SKIP, Status.WAIVED)
_VERDICT_CSS = {Status.FAIL: "fail", Status.ERROR: "error", Status.PASS: "pass"}
_VERDICT_RANK = {Status.FAIL: 0, Status.ERROR: 1, Status.PASS: 2}
_ANCHOR_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def render_html(report: ScanReport) -> bytes:
    """The report as one self-contained UTF-8 HTML document with inline styles."""
    try:
        template = _environment().get_template("report.html.j2")
        page = template.render(css=_stylesheet(), **_view(report))
        inlined = css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True, minify_css=True,
                                        keep_link_tags=False).inline(page)
    except (jinja2.TemplateError, css_inline.InlineError) as exc:
        raise RenderError(f"HTML report: the template failed: {exc}") from exc
    return inlined.encode("utf-8")


@functools.lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("scanner.reports", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


@functools.lru_cache(maxsize=1)
def _stylesheet() -> str:
    return resources.files("scanner.reports").joinpath("report.css").read_text(encoding="utf-8")


def _anchor(prefix: str, text: str) -> str:
    return f"{prefix}-{_ANCHOR_UNSAFE.sub('-', text).strip('-') or 'x'}"


def _view(report: ScanReport) -> dict[str, Any]:
    """Everything the template shows, ordered and cleaned; no logic is left for jinja."""
    order = rule_order(report)
    by_cluster = group_by_cluster(report.results)
    infos = {c.name.casefold(): c for c in report.clusters}

    clusters: list[dict[str, Any]] = []
    for index, name in enumerate(cluster_names(report), start=1):
        verdict = report.cluster_verdict(name)
        results = by_cluster.get(name.casefold(), [])
        info = infos.get(name.casefold())
        nodes = info.nodes if info else ()
        counts = status_counts(results)
        collected = [n for n in nodes if n.collected]
        # Sorted as UTC text, so nodes with and without a zone still compare.
        times = sorted(stamp for n in collected if (stamp := utc_naive(n.collected_at)))
        clusters.append({
            "key": name.casefold(),
            "name": one_line(name),
            "anchor": _anchor("cluster", f"{index}-{name}"),
            "has_findings": counts[Status.FAIL] + counts[Status.ERROR] > 0,
            "os": _short_os(info.os) if info else "",
            "nodes_collected": len(collected),
            "nodes_total": len(nodes),
            "verdict": VERDICT_LABELS[verdict],
            "verdict_css": _VERDICT_CSS[verdict],
            "rank": _VERDICT_RANK[verdict],
            "counts": [counts[s] for s in _STATUS_COLUMNS],
            "data_from": times[0][:16].replace("T", " ") if times else "—",
        })
    clusters.sort(key=lambda c: (c["rank"], c["name"].casefold()))

    findings = []
    for row in clusters:
        results = sorted((r for r in by_cluster.get(row["key"], [])
                          if r.status in (Status.FAIL, Status.ERROR)),
                         key=lambda r: finding_key(r, order))
        if results:
            findings.append({**row,
                             "failures": [_finding(report, r) for r in results
                                          if r.status is Status.FAIL],
                             "errors": [_finding(report, r) for r in results
                                        if r.status is Status.ERROR]})

    passes = [r for r in report.results if r.status is Status.PASS]

    def listed(row: Mapping[str, Any]) -> bool:
        # With many clusters, clean ones become one line of names instead of a row each.
        return len(clusters) <= CLUSTER_ROWS_LIMIT or row["verdict"] != "PASS" or bool(
            row["counts"][_STATUS_COLUMNS.index(Status.WAIVED)])

    overall = _overall(report)
    return {
        "title": f"lmscan report: {overall[0]} ({display_time(report.scan.started_at)})",
        "overall": overall,
        "meta": _meta(report),
        "policy_default": report.scan.policy.default,
        "statuses": [s.value for s in _STATUS_COLUMNS],
        "clusters": [c for c in clusters if listed(c)],
        "passing_unlisted": [c["name"] for c in clusters if not listed(c)],
        "totals": [report.summary[s.value] for s in _STATUS_COLUMNS],
        "matrix": _matrix(report),
        "uncollected": _uncollected(report),
        "findings": findings,
        "below_threshold": sum(1 for r in report.results
                               if r.status is Status.FAIL and not counts_toward_verdict(report, r)),
        "rules_summary": _rules_summary(report, order),
        "waived": _listing(report, order, Status.WAIVED),
        "skipped": _skipped(report, order),
        "pass_count": len(passes),
        "passes": (_passes(order, clusters, by_cluster)
                   if len(passes) <= PASS_DETAIL_LIMIT else None),
        "pass_limit": PASS_DETAIL_LIMIT,
        "fail_on": report.scan.fail_on.value,
        "started": display_time(report.scan.started_at),
        "rules_doc": _rules_doc(report, order),
        "scan_id": one_line(report.scan.id),
        "tool_version": one_line(report.scan.tool_version),
    }


def _short_os(caption: str) -> str:
    return one_line(re.sub(r"^Microsoft\s+", "", caption or "")) or "unknown OS"


def _overall(report: ScanReport) -> tuple[str, str, str, str]:
    """(label, css, headline, detail) for the top of the report."""
    verdicts = [report.cluster_verdict(n) for n in cluster_names(report)]
    n_fail = verdicts.count(Status.FAIL)
    n_error = verdicts.count(Status.ERROR)
    n = len(verdicts)
    if n_fail:
        label, css = "FAIL", "fail"
    elif n_error:
        label, css = "INCOMPLETE", "error"
    else:
        label, css = "PASS", "pass"
    if n == 0:
        headline = "No cluster was scanned."
    elif n_fail or n_error:
        parts = [f"{n_fail} fail" if n_fail else "", f"{n_error} incomplete" if n_error else "",
                 f"{n - n_fail - n_error} pass" if n - n_fail - n_error else ""]
        headline = (f"{n_fail + n_error} of {n} cluster{'s' if n != 1 else ''} need attention: "
                    + ", ".join(p for p in parts if p) + ".")
    else:
        headline = f"All {n} cluster{'s' if n != 1 else ''} pass."
    counting = len(report.counting_failures())
    errors = report.summary["error"]
    detail = (f"{counting} failure{'s' if counting != 1 else ''} at or above "
              f"--fail-on {report.scan.fail_on.value}; "
              f"{errors} result{'s' if errors != 1 else ''} could not be evaluated.")
    return label, css, headline, detail


def _meta(report: ScanReport) -> list[dict[str, Any]]:
    scan = report.scan
    took = duration_seconds(scan.started_at, scan.finished_at)
    finished = display_time(scan.finished_at) + (f" (took {took:.0f} s)" if took is not None else "")
    if scan.policy.default:
        policy = ["Built-in default policy (no --policy given)", f"sha256 {scan.policy.sha256}"]
    else:
        policy = [one_line(scan.policy.path), f"sha256 {scan.policy.sha256}"]
    packs = [f"{one_line(p.name)} {one_line(p.version)} · sha256 {p.sha256}" for p in scan.rule_packs]
    floor = scan.fail_on.value
    rows = [
        ("Scan", [(one_line(scan.id), True)]),
        ("Started", [(display_time(scan.started_at), False)]),
        ("Finished", [(finished, False)]),
        ("Tool", [(f"lmscan {one_line(scan.tool_version)}", False)]),
        ("Policy", [(policy[0], False), (policy[1], True)]),
        ("Rule packs", [(p, True) for p in packs] or [("(none)", False)]),
        ("Fail on", [((f"{floor}: failures of severity {floor} or higher fail the scan "
                       "(info never does)"), False)]),
    ]
    return [{"label": label, "lines": [{"text": t, "mono": mono} for t, mono in lines]}
            for label, lines in rows]


def _matrix(report: ScanReport) -> list[dict[str, Any]]:
    rows = []
    for sev in SEVERITIES_DESC:
        counts = status_counts(r for r in report.results if r.severity is sev)
        rows.append({"severity": sev.value, "counts": [counts[s] for s in _STATUS_COLUMNS],
                     "total": sum(counts.values())})
    return rows


def _uncollected(report: ScanReport) -> list[dict[str, str]]:
    return [{"cluster": one_line(c.name), "node": one_line(n.name),
             "error": clean(n.error) if n.error else "No reason was recorded."}
            for c in report.clusters for n in c.nodes if not n.collected]


def _finding(report: ScanReport, r: Result) -> dict[str, Any]:
    rows: list[dict[str, Any]] = [
            {"key": "Expected", "value": clean(r.expected), "block": False, "sep": False},
            {"key": "Actual", "value": clean(r.actual), "block": False, "sep": False}]
    rows = [row for row in rows if row["value"].strip()]
    evidence = _evidence_rows(r.evidence)
    if evidence and rows:
        evidence[0]["sep"] = True
    return {
        "status": r.status.value,
        "status_label": "FAIL" if r.status is Status.FAIL else "ERROR",
        "bar": r.severity.value if r.status is Status.FAIL else "error",
        "severity": r.severity.value,
        "rule": one_line(r.rule),
        "rule_anchor": _anchor("rule", r.rule) if r.rule in report.rules else None,
        "title": one_line(r.title),
        "target": target_label(r.target),
        "target_id": one_line(r.target.id) if r.target.id and r.target.id != r.target.name else "",
        "message": clean(r.message).strip(),
        "rows": rows + evidence,
        "remediation": clean(r.remediation).strip("\n") if r.status is Status.FAIL else "",
        "below_threshold": r.status is Status.FAIL and not counts_toward_verdict(report, r),
        "fail_on": report.scan.fail_on.value,
        "id": one_line(r.id),
    }


def _evidence_rows(evidence: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for key, value in evidence.items():
        text, block = _evidence_text(value)
        rows.append({"key": one_line(key), "value": text, "block": block, "sep": False})
    return rows


def _evidence_text(value: Any) -> tuple[str, bool]:
    """Scalars and flat lists on one line; anything nested as indented JSON in a block."""
    if isinstance(value, str):
        return clean(value), False
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value), False
    if isinstance(value, (list, tuple)) and all(
            v is None or isinstance(v, (str, bool, int, float)) for v in value):
        return (", ".join(clean(v) if isinstance(v, str) else json.dumps(v) for v in value)
                or "(empty)"), False
    return clean(json.dumps(value, indent=2, ensure_ascii=False, default=str)), True


def _rules_summary(report: ScanReport, order: Mapping[str, int]) -> list[dict[str, Any]]:
    per_rule: dict[str, list[Result]] = {}
    for r in report.results:
        per_rule.setdefault(r.rule, []).append(r)
    rows = []
    for rule_id in sorted(per_rule, key=lambda rid: rule_key(rid, order)):
        results = per_rule[rule_id]
        info = report.rules.get(rule_id)
        counts = status_counts(results)
        rows.append({
            "rule": one_line(rule_id),
            "anchor": _anchor("rule", rule_id) if info else None,
            "title": one_line(info.title if info else results[0].title),
            "severity": (info.severity if info else results[0].severity).value,
            "counts": [counts[s] for s in _STATUS_COLUMNS],
        })
    return rows


def _listing(report: ScanReport, order: Mapping[str, int], status: Status) -> list[dict[str, str]]:
    results = sorted((r for r in report.results if r.status is status),
                     key=lambda r: (r.cluster.casefold(),) + result_key(r, order))
    return [{"cluster": one_line(r.cluster), "rule": one_line(r.rule),
             "target": target_label(r.target), "message": clean(r.message).strip()}
            for r in results]


def _skipped(report: ScanReport, order: Mapping[str, int]) -> list[dict[str, Any]]:
    """Skipped results grouped by rule and reason, so 100 clusters make one row, not 100."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in report.results:
        if r.status is Status.SKIP:
            groups.setdefault((r.rule, one_line(r.message)), []).append(r)
    rows = []
    for (rule_id, reason), results in sorted(groups.items(),
                                             key=lambda kv: (rule_key(kv[0][0], order), kv[0][1])):
        results.sort(key=lambda r: (r.cluster.casefold(),) + result_key(r, order))
        where = [_where(r) for r in results]
        rows.append({"rule": one_line(rule_id),
                     "anchor": _anchor("rule", rule_id) if rule_id in report.rules else None,
                     "reason": reason, "count": len(results),
                     "where": ", ".join(where[:SKIP_WHERE_LIMIT]),
                     "more": max(len(where) - SKIP_WHERE_LIMIT, 0)})
    return rows


def _where(r: Result) -> str:
    if r.target.kind == "cluster" and r.target.name.casefold() == r.cluster.casefold():
        return one_line(r.cluster)
    return f"{one_line(r.cluster)}: {target_label(r.target)}"


def _passes(order: Mapping[str, int], clusters: Sequence[Mapping[str, Any]],
            by_cluster: Mapping[str, list[Result]]) -> list[dict[str, Any]]:
    groups = []
    for row in clusters:
        results = sorted((r for r in by_cluster.get(row["key"], [])
                          if r.status is Status.PASS), key=lambda r: result_key(r, order))
        if results:
            groups.append({"name": row["name"], "items": [
                {"rule": one_line(r.rule), "target": target_label(r.target),
                 "message": one_line(r.message)} for r in results]})
    return groups


def _rules_doc(report: ScanReport, order: Mapping[str, int]) -> list[dict[str, Any]]:
    docs = []
    for rule_id in sorted(report.rules, key=lambda rid: rule_key(rid, order)):
        info = report.rules[rule_id]
        refs = []
        for ref in info.references:
            text = one_line(ref)
            # Only plain web links become links; anything else (javascript:, file:) stays text.
            href = text if re.match(r"https?://[^\s\"'<>]+$", text) else None
            refs.append({"text": text, "href": href})
        docs.append({"rule": one_line(rule_id), "anchor": _anchor("rule", rule_id),
                     "title": one_line(info.title), "severity": info.severity.value,
                     "rationale": clean(info.rationale).strip(), "references": refs})
    return docs

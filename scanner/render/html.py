"""The HTML report: one self-contained file a change advisory board reads in Outlook.

The report opens with the verdict in plain words and every failure in severity order across
clusters (one finding per problem, the affected nodes listed), then the details per cluster
with evidence as readable rows and the PowerShell that fixes each one. The template gets a
prepared view (plain dicts and strings, already ordered and cleaned), so it holds no logic
beyond loops; jinja2 escapes everything (``autoescape=True``) and ``StrictUndefined`` turns a
template typo into an error instead of an empty cell. The CSS is inlined into ``style``
attributes with css_inline because Outlook ignores most of a ``<style>`` element; only the
``@media`` rules (phone, print, dark mode) stay in one.
"""

from __future__ import annotations

import functools
import heapq
import re
from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any

import css_inline
import jinja2

from scanner.errors import RenderError
from scanner.model import Result, ScanReport, Status
from scanner.render import findings as fnd
from scanner.render.changes_view import since_view
from scanner.render._common import (
    clean,
    cluster_names,
    cluster_verdict_label,
    critical_skips,
    display_time,
    duration_seconds,
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
#: Characters per line of a command in print; longer lines continue with PowerShell's backtick.
PRINT_CODE_WIDTH = 96
_STATUS_COLUMNS = (Status.FAIL, Status.ERROR, Status.PASS, Status.SKIP, Status.WAIVED)
_VERDICT_CSS = {Status.FAIL: "fail", Status.ERROR: "error", Status.PASS: "pass"}
_VERDICT_RANK = {Status.FAIL: 0, Status.ERROR: 1, Status.PASS: 2}
_ANCHOR_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def render_html(report: ScanReport) -> bytes:
    """The report as one self-contained UTF-8 HTML document with inline styles."""
    return render_page("report.html.j2", _view(report)).encode("utf-8")


def render_page(template_name: str, view: Mapping[str, Any]) -> str:
    """A template of reports/templates rendered with the stylesheet, its CSS inlined."""
    try:
        template = _environment().get_template(template_name)
        page = template.render(css=_stylesheet(), **view)
        return str(css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True, minify_css=True,
                                         keep_link_tags=False).inline(page))
    except (jinja2.TemplateError, css_inline.InlineError) as exc:
        raise RenderError(f"HTML report: the template {template_name} failed: {exc}") from exc


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


def footer(report: ScanReport) -> dict[str, str]:
    """Which scan this is: id, time, versions, policy and the SHA-256 of the results JSON."""
    scan = report.scan
    packs = ", ".join(f"{one_line(p.name)} {one_line(p.version)}" for p in scan.rule_packs) or "none"
    policy = ("built-in default (no site policy)" if scan.policy.default
              else f"{one_line(scan.policy.path)} (sha256 {scan.policy.sha256[:12]}…)")
    return {"scan_id": one_line(scan.id), "started": display_time(scan.started_at),
            "tool_version": one_line(scan.tool_version), "packs": packs, "policy": policy,
            "results_sha256": fnd.results_sha256(report)}


def finding_view(report: ScanReport, f: fnd.Finding, anchor: str | None = None) -> dict[str, Any]:
    """A finding as the templates show it."""
    rows = [{"label": "Expected", "lines": f.expected, "sep": False},
            {"label": "Found", "lines": f.actual, "sep": False}]
    rows = [r for r in rows if r["lines"]]
    evidence = [{"label": e.label, "lines": e.lines, "sep": False} for e in f.evidence]
    if evidence and rows:
        evidence[0]["sep"] = True
    return {
        "rule": f.rule, "title": f.title, "severity": f.severity.value, "cluster": f.cluster,
        "where": f.where, "target_ids": f.target_ids, "message": f.message, "rows": rows + evidence,
        "summary": one_line(f.message[0], 180) if len(f.message) == 1 else "",
        "code": {"screen": f.remediation, "print": print_wrap(f.remediation)} if f.remediation else None,
        "counts": f.counts, "change": f.change, "anchor": anchor,
        "rule_anchor": _anchor("rule", f.rule) if f.rule in report.rules else None,
    }


def _view(report: ScanReport) -> dict[str, Any]:
    """Everything the template shows, ordered and cleaned; no logic is left for jinja."""
    order = rule_order(report)
    by_cluster = group_by_cluster(report.results)
    infos = {c.name.casefold(): c for c in report.clusters}
    failures = fnd.findings(report, Status.FAIL)
    views = [finding_view(report, f, f"finding-{i}") for i, f in enumerate(failures, start=1)]

    per_cluster: dict[str, list[fnd.Finding]] = {}
    for f in failures:
        per_cluster.setdefault(f.cluster.casefold(), []).append(f)
    views_per_cluster: dict[str, list[dict[str, Any]]] = {}
    for v in views:
        views_per_cluster.setdefault(v["cluster"].casefold(), []).append(v)

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
        own = per_cluster.get(one_line(name).casefold(), [])
        failed = fnd.severity_phrase(f.severity for f in own)
        has_details = counts[Status.FAIL] + counts[Status.ERROR] > 0
        clusters.append({
            "key": name.casefold(),
            "name": one_line(name),
            "anchor": _anchor("cluster", f"{index}-{name}") if has_details else None,
            "os": _short_os(info.os) if info else "",
            "nodes_collected": len(collected),
            "nodes_total": len(nodes),
            "verdict": cluster_verdict_label(report, name, results, plain=True),
            "verdict_css": _VERDICT_CSS[verdict],
            "rank": _VERDICT_RANK[verdict],
            "failed": failed,
            "worst": max((f.severity.rank for f in own if f.counts), default=-1),
            "errors": counts[Status.ERROR],
            "waived": counts[Status.WAIVED],
            "data_from": times[0][:16].replace("T", " ") + " UTC" if times else "—",
        })
    clusters.sort(key=lambda c: (c["rank"], -c["worst"], c["name"].casefold()))

    details = []
    for row in clusters:
        if row["anchor"] is None:
            continue
        mine = views_per_cluster.get(row["name"].casefold(), [])
        errors = _errors(report, order, by_cluster.get(row["key"], []))
        details.append({**row, "failures": mine, "errors": errors})

    summary = report.summary

    def listed(row: Mapping[str, Any]) -> bool:
        # With many clusters, clean ones become one line of names instead of a row each.
        return len(clusters) <= CLUSTER_ROWS_LIMIT or row["verdict"] != "PASS" or bool(row["waived"])

    overall = fnd.verdict(report)
    return {
        "title": f"lmscan report: {overall.label} ({display_time(report.scan.started_at)})",
        "verdict": overall,
        "meta": _meta(report),
        "foot": footer(report),
        "policy_default": report.scan.policy.default,
        "statuses": [s.value for s in _STATUS_COLUMNS],
        "clusters": [c for c in clusters if listed(c)],
        "passing_unlisted": [c["name"] for c in clusters if not listed(c)],
        "totals": [summary[s.value] for s in _STATUS_COLUMNS],
        "uncollected": fnd.unreachable_nodes(report),
        "critical_skips": [{"rule": r.rule, "title": r.title, "cluster": r.cluster, "target": target_label(r.target),
                            "message": r.message} for r in critical_skips(report)],
        "failures": views,
        "details": details,
        "rules_summary": _rules_summary(report, order),
        "waived": _listing(report, order, Status.WAIVED),
        "skipped": _skipped(report, order),
        "pass_count": summary["pass"],
        "passes": (_passes(order, clusters, by_cluster)
                   if summary["pass"] <= PASS_DETAIL_LIMIT else None),
        "pass_limit": PASS_DETAIL_LIMIT,
        "fail_on": report.scan.fail_on.value,
        "rules_doc": _rules_doc(report, order),
        "since": since_view(report),
    }


def _errors(report: ScanReport, order: Mapping[str, int], results: Sequence[Result]) -> list[dict[str, Any]]:
    """Errors of one cluster, one row per target and reason listing the rules it stopped."""
    groups: dict[tuple[str, str], list[Result]] = {}
    for r in sorted((r for r in results if r.status is Status.ERROR), key=lambda r: result_key(r, order)):
        groups.setdefault((target_label(r.target), clean(r.message).strip()), []).append(r)
    rows = []
    for (where, message), members in groups.items():
        evidence = [{"label": e.label, "lines": e.lines, "sep": False} for e in fnd.merged_evidence(members)]
        rows.append({"where": where, "message": (message,), "evidence": evidence,
                     "rules": [{"rule": one_line(r.rule),
                                "anchor": _anchor("rule", r.rule) if r.rule in report.rules else None}
                               for r in members]})
    return rows


def print_wrap(code: str, width: int = PRINT_CODE_WIDTH) -> str:
    """``code`` with lines longer than ``width`` split for print so that a copy still runs.

    A command line is split at a blank outside quotes and continued with PowerShell's
    backtick; a comment continues as a new comment. A line with no such blank stays whole.
    """
    out: list[str] = []
    for line in code.split("\n"):
        indent = "    "
        while len(line) > width:
            if line.lstrip().startswith("#"):
                cut = line.rfind(" ", 0, width)
                if cut <= line.index("#") + 1:
                    break
                out.append(line[:cut])
                line = "# " + line[cut + 1:]
                continue
            split = _split_point(line, width - 2)
            if split is None:
                break
            out.append(line[:split].rstrip() + " `")
            line = indent + line[split:].lstrip()
        out.append(line)
    return "\n".join(out)


def _split_point(line: str, limit: int) -> int | None:
    """The last blank at or before ``limit`` that is outside a quoted string, else None."""
    quote: str | None = None
    best: int | None = None
    preferred = False
    i = 0
    while i < len(line):
        ch = line[i]
        if quote is None:
            if ch in "'\"":
                quote = ch
            elif ch == "`":
                i += 1
            elif ch == "#" and (i == 0 or line[i - 1].isspace()):
                break   # the rest is a comment: splitting it with a backtick would not continue it
            elif ch == " " and 0 < i <= limit and line[:i].strip():
                # Prefer to continue before a parameter or after a pipe, where a reader expects it.
                natural = line[i + 1:i + 2] == "-" or line[:i].rstrip().endswith("|")
                if natural or best is None or not preferred:
                    best = i
                preferred = preferred or natural
        elif ch == quote:
            if i + 1 < len(line) and line[i + 1] == quote:
                i += 1  # doubled quote inside a string
            else:
                quote = None
        elif ch == "`" and quote == '"':
            i += 1
        i += 1
        if i > limit and best is not None and quote is None:
            break
    return best


def _short_os(caption: str) -> str:
    return one_line(re.sub(r"^Microsoft\s+", "", caption or "")) or "unknown OS"


def _meta(report: ScanReport) -> list[dict[str, Any]]:
    scan = report.scan
    took = duration_seconds(scan.started_at, scan.finished_at)
    finished = display_time(scan.finished_at) + (f" (took {took:.0f} s)" if took is not None else "")
    if scan.policy.default:
        policy = ["Built-in default policy (no site policy was given)", f"sha256 {scan.policy.sha256}"]
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
        ("Counts", [((f"failures of severity {floor} or higher make a cluster not compliant "
                      "(info never does)"), False)]),
        ("Results", [(f"sha256 {fnd.results_sha256(report)}", True)]),
    ]
    return [{"label": label, "lines": [{"text": t, "mono": mono} for t, mono in lines]}
            for label, lines in rows]


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
    reasons: dict[str, str] = {}    # the same few reasons come back for every cluster
    for r in report.results:
        if r.status is Status.SKIP:
            reason = reasons.get(r.message)
            if reason is None:
                reason = reasons[r.message] = one_line(r.message)
            groups.setdefault((r.rule, reason), []).append(r)
    rows = []
    for (rule_id, reason), results in sorted(groups.items(),
                                             key=lambda kv: (rule_key(kv[0][0], order), kv[0][1])):
        rows.append({"rule": one_line(rule_id),
                     "anchor": _anchor("rule", rule_id) if rule_id in report.rules else None,
                     "reason": reason, "count": len(results),
                     "where": ", ".join(_where(r) for r in _first(results, order, SKIP_WHERE_LIMIT)),
                     "more": max(len(results) - SKIP_WHERE_LIMIT, 0)})
    return rows


def _first(results: Sequence[Result], order: Mapping[str, int], n: int) -> list[Result]:
    """The first ``n`` of ``results`` by cluster, then :func:`result_key`.

    A rule skipped on every cluster of a fleet has thousands of results and shows eight: only
    those in the first ``n`` clusters can be among them, so only those get the full sort key.
    """
    folded = [r.cluster.casefold() for r in results]
    if len(results) > n:
        last = heapq.nsmallest(n, folded)[-1]
        results = [r for r, cluster in zip(results, folded, strict=True) if cluster <= last]
    return sorted(results, key=lambda r: (r.cluster.casefold(),) + result_key(r, order))[:n]


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

"""The mail digest: what a change board reads in the body of the message, as HTML and plain text.

Not the full report (that is attached): the verdict, what changed since the last run, the
failures most severe first across all clusters, unreachable nodes and waivers about to expire.
Gmail clips a body over about 102 KB, so the HTML stays under :data:`BUDGET`: when a fleet has
more to say, the tail of each list is cut with a count and a pointer to the attachment, never
the head (the most severe findings come first, so they are always shown).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from scanner.model import ScanReport, Status
from scanner.render import findings as fnd
from scanner.render._common import cluster_names, one_line

if TYPE_CHECKING:
    from scanner.mail import Attachment

#: Upper bound for the HTML body in bytes (Gmail clips at about 102 KB).
BUDGET = 95_000
#: Rows listed before "and N more", before any cut for size.
MAX_FINDINGS = 200
MAX_CLUSTERS = 40
MAX_UNREACHABLE = 25


def render_digest(report: ScanReport, attachments: Sequence[Attachment] = (), *,
                  max_mb: float = 10.0, budget: int = BUDGET) -> tuple[str, str]:
    """(html, text) of the digest; the HTML is at most ``budget`` bytes of UTF-8."""
    from scanner.mail import subject
    from scanner.render.html import finding_view, footer, render_page

    failures = fnd.findings(report, Status.FAIL)
    views = [finding_view(report, f) for f in failures]
    clusters = _clusters(report, failures)
    unreachable = fnd.unreachable_nodes(report)
    base = {
        "subject": subject(report), "verdict": fnd.verdict(report), "foot": footer(report),
        "policy_default": report.scan.policy.default, "changes": fnd.changes(report),
        "waivers": [_waiver(w) for w in fnd.expiring_waivers(report)],
        "attachments": [_attachment(a, max_mb) for a in attachments],
        "see": _see(attachments),
        "clusters_total": len(clusters), "passing": len(cluster_names(report)) - len(clusters),
        "failures_total": len(failures), "unreachable_total": len(unreachable),
    }
    limits = [min(len(views), MAX_FINDINGS), min(len(clusters), MAX_CLUSTERS), min(len(unreachable), MAX_UNREACHABLE)]
    while True:
        n_f, n_c, n_u = limits
        view = {**base,
                "failures": views[:n_f], "failures_more": len(views) - n_f,
                "failures_more_detail": fnd.severity_phrase(f.severity for f in failures[n_f:]),
                "clusters": clusters[:n_c], "clusters_more": len(clusters) - n_c,
                "unreachable": unreachable[:n_u], "unreachable_more": len(unreachable) - n_u}
        html = render_page("digest.html.j2", view)
        size = len(html.encode("utf-8"))
        if size <= budget or not any(limits):
            break
        # Shrink the lists in proportion to the overshoot (with some slack); findings last.
        factor = budget / size * 0.9
        limits = [int(n * factor) for n in limits]
    return html, _text(view)


def _clusters(report: ScanReport, failures: Sequence[fnd.Finding]) -> list[dict[str, Any]]:
    from scanner.render._common import VERDICT_LABELS

    per_cluster: dict[str, list[fnd.Finding]] = {}
    for f in failures:
        per_cluster.setdefault(f.cluster.casefold(), []).append(f)
    errors_per_cluster: dict[str, int] = {}
    for r in report.results:
        if r.status is Status.ERROR:
            errors_per_cluster[r.cluster.casefold()] = errors_per_cluster.get(r.cluster.casefold(), 0) + 1
    rows: list[dict[str, Any]] = []
    for name in cluster_names(report):
        v = report.cluster_verdict(name)
        if v is Status.PASS:
            continue
        errors = errors_per_cluster.get(name.casefold(), 0)
        own = per_cluster.get(one_line(name).casefold(), [])
        rows.append({"name": one_line(name), "verdict": VERDICT_LABELS[v], "verdict_css": "fail" if v is Status.FAIL
                     else "error", "failed": fnd.severity_phrase(f.severity for f in own), "errors": errors,
                     "rank": (0 if v is Status.FAIL else 1, -max((f.severity.rank for f in own), default=-1))})
    rows.sort(key=lambda r: (r["rank"], str(r["name"]).casefold()))
    return rows


def _waiver(w: fnd.ExpiringWaiver) -> dict[str, Any]:
    when = ("expired" if w.days < 0 else "today" if w.days == 0 else
            f"in {w.days} day{'s' if w.days != 1 else ''}")
    return {"rule": w.rule, "cluster": w.cluster, "where": w.where, "expires": w.expires, "when": when}


def _size(n: int) -> str:
    for unit, scale in (("MB", 1_000_000), ("KB", 1_000)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _attachment(a: Attachment, max_mb: float) -> dict[str, Any]:
    return {"filename": one_line(a.filename), "size": _size(a.size), "attached": a.attached,
            "path": one_line(a.path) if a.path else None, "sha256": a.sha256, "limit": f"{max_mb:g} MB"}


def _see(attachments: Sequence[Attachment]) -> str:
    for kind in ("html", "json"):
        for a in attachments:
            if a.kind == kind:
                return f"see {one_line(a.filename)}" + (" (attached)" if a.attached else f" at {one_line(a.path or '')}")
    return "see the full report"


def _text(view: dict[str, Any]) -> str:
    """The plain-text alternative: the same content, the same cuts."""
    v: fnd.Verdict = view["verdict"]
    out = [view["subject"], "", f"{v.label}: {v.headline}", v.detail]
    if view["policy_default"]:
        out.append("No site policy was given: network classes were guessed from names.")
    ch = view["changes"]
    if ch is not None:
        out += ["", "Since the last run:", f"  new failures: {ch.new}", f"  failing again (reopened): {ch.reopened}",
                f"  resolved: {ch.resolved}"]
    out += ["", f"What failed ({view['failures_total']}), most severe first:"]
    for f in view["failures"]:
        mark = f" [{f['change'].upper()}]" if f["change"] else ""
        out.append(f"  {f['severity'].upper():<8} {f['rule']} {f['title']}{mark}")
        out.append(f"           {f['cluster']} · {f['where']}")
        if f["summary"]:
            out.append(f"           {f['summary']}")
    if view["failures_more"]:
        more = view["failures_more"]
        out.append(f"  ... and {more} more finding{'s' if more != 1 else ''} ({view['failures_more_detail']}): "
                   f"{view['see']}")
    if not view["failures"]:
        out.append("  Nothing failed.")
    if view["clusters"]:
        out += ["", f"Clusters that need attention ({view['clusters_total']}):"]
        out += [f"  {c['verdict']:<10} {c['name']}: {c['failed'] or 'no failure'}"
                + (f"; {c['errors']} not evaluated" if c["errors"] else "") for c in view["clusters"]]
        if view["clusters_more"]:
            out.append(f"  ... and {view['clusters_more']} more in the attached report.")
    if view["unreachable"]:
        out += ["", f"Nodes that could not be reached ({view['unreachable_total']}):"]
        out += [f"  {n.node} ({n.cluster}): {n.error}" for n in view["unreachable"]]
        if view["unreachable_more"]:
            out.append(f"  ... and {view['unreachable_more']} more: {view['see']}")
    if view["waivers"]:
        out += ["", "Waivers expiring within 14 days:"]
        out += [f"  {w['rule']} {w['cluster']} · {w['where']}: expires {w['expires']} ({w['when']})"
                for w in view["waivers"]]
    out += ["", "Attached:"]
    for a in view["attachments"]:
        if a["attached"]:
            out.append(f"  {a['filename']} ({a['size']})")
        else:
            where = f"at {a['path']}" if a["path"] else "not written to a file"
            out.append(f"  {a['filename']} ({a['size']}) is not attached: over {a['limit']}. It is {where}, "
                       f"SHA-256 {a['sha256']}")
    if not view["attachments"]:
        out.append("  nothing")
    foot = view["foot"]
    out += ["", "--", f"Scan {foot['scan_id']} · {foot['started']}",
            f"lmscan {foot['tool_version']} · rule packs: {foot['packs']}", f"Policy: {foot['policy']}",
            f"SHA-256 of the results JSON: {foot['results_sha256']}"]
    return "\n".join(out) + "\n"

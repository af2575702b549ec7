"""A short Markdown summary for CI job pages ($GITHUB_STEP_SUMMARY, GitLab, Azure DevOps).

Verdict first, then the clusters (failing first; in a large fleet the clean ones are one line),
then one line per failure and error with its reason (most severe first, counted failures before
those below ``--fail-on``, errors last), then the nodes that could not be collected. Job-summary pages cap their size, so the
document stays under :data:`LIMIT` bytes: when a fleet has more to say, the tail is cut at a
line boundary and replaced by one line that counts what was left out; the head (verdict and
the most severe findings) is never cut.
"""

from __future__ import annotations

import re

from scanner.model import Result, ScanReport, Status
from scanner.render._common import (
    below_fail_on,
    cluster_names,
    cluster_verdict_label,
    counts_toward_verdict,
    display_time,
    finding_key,
    group_by_cluster,
    one_line,
    overall_verdict,
    rule_key,
    rule_order,
    status_counts,
    target_label,
    unreachable,
    verdict_label,
)

#: Upper bound of the document in bytes (64 KB with room to spare).
LIMIT = 60_000
#: Above this many clusters, the clean ones (PASS, no failure, no waiver) are one line of names.
CLEAN_ROWS_LIMIT = 50
_MARK = {Status.FAIL: "❌", Status.ERROR: "⚠️", Status.PASS: "✅"}
_COLUMNS = (Status.FAIL, Status.ERROR, Status.PASS, Status.SKIP, Status.WAIVED)
# Characters that Markdown (or the HTML it may contain) would interpret.
# Only what is special in running text: field text never starts a line here.
_SPECIAL = re.compile(r"([\\`*_\[\]|~])")


def md(text: object) -> str:
    """Field text as inert Markdown on one line: markup escaped, HTML as entities."""
    s = one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _SPECIAL.sub(r"\\\1", s)


def render_markdown(report: ScanReport) -> bytes:
    """The summary as UTF-8 Markdown, never longer than :data:`LIMIT` bytes."""
    head, items = _head(report), _body(report)
    out: list[str] = list(head)
    size = sum(len(line.encode("utf-8")) + 1 for line in out)
    for i, (line, _) in enumerate(items):
        n = len(line.encode("utf-8")) + 1
        if size + n > LIMIT - 400:   # room for the closing line
            left = [kind for _, kind in items[i:] if kind]
            what = ", ".join(f"{n} {k}{'s' if n != 1 else ''}"
                             for k in ("finding", "node", "cluster") if (n := left.count(k)))
            out += ["", f"*… {len(left)} more not shown ({what}) to stay under the job-summary "
                        "size limit: the HTML, JSON or SARIF report has everything.*"]
            break
        out.append(line)
        size += n
    return ("\n".join(out) + "\n").encode("utf-8", errors="replace")


def _head(report: ScanReport) -> list[str]:
    overall = overall_verdict(report)
    label = verdict_label(overall, below_fail_on(report, report.results))
    counted = len(report.counting_failures())
    errors = report.summary["error"]
    n = len(cluster_names(report))
    lines = [f"## lmscan: {_MARK[overall]} {label}", "",
             f"**{counted} failure{'s' if counted != 1 else ''}** at or above `{report.scan.fail_on.value}`, "
             f"**{errors}** result{'s' if errors != 1 else ''} not evaluated, "
             f"{n} cluster{'s' if n != 1 else ''} · {display_time(report.scan.started_at)} · "
             f"scan `{one_line(report.scan.id).replace('`', '')}`"]
    if report.scan.policy.default:
        lines += ["", "> **Warning:** no site policy; a built-in default policy guessed the network classes."]
    return lines


def _body(report: ScanReport) -> list[tuple[str, str]]:
    """Every line after the head, in the order it may be cut from the end, tagged by what it is."""
    order = rule_order(report)
    items = _clusters(report)
    gone = unreachable(report)
    folded = gone.result_ids
    findings = sorted((r for r in report.results
                       if r.status in (Status.FAIL, Status.ERROR) and r.id not in folded),
                      key=lambda r: (r.status is Status.ERROR, not counts_toward_verdict(report, r))
                      + finding_key(r, order))
    if findings:
        items += [("", ""), ("### Failures and errors", ""), ("", "")]
        items += [(_finding(report, r), "finding") for r in findings]
    if gone.nodes:
        items += [("", ""), ("### Nodes not collected", ""), ("", "")]
        items += [(f"- **{md(c)}/{md(n.name)}**: {md(n.error or 'no reason was recorded')}"
                   f"{_left(results, order)}", "node") for c, n, results in gone.nodes]
        items += [(f"- **{md(c)}**: cluster-wide rules need every node{_left(results, order)}", "node")
                  for c, results in gone.clusters.items()]
    return items


def _clusters(report: ScanReport) -> list[tuple[str, str]]:
    """The cluster table, failing first; in a large fleet the clean clusters are one line."""
    by_cluster = group_by_cluster(report.results)
    rows: list[tuple[tuple[int, int, str], str, str]] = []
    clean: list[tuple[tuple[int, int, str], str, str]] = []
    for name in cluster_names(report):
        results = by_cluster.get(name.casefold(), [])
        verdict = report.cluster_verdict(name)
        counts = status_counts(results)
        rank = (0 if verdict is Status.FAIL else 1 if verdict is Status.ERROR else 2,
                -counts[Status.FAIL], name.casefold())
        cells = [f"**{md(name)}**", f"{_MARK[verdict]} {cluster_verdict_label(report, name, results)}"]
        row = "| " + " | ".join(cells + [str(counts[s]) for s in _COLUMNS]) + " |"
        spotless = verdict is Status.PASS and not counts[Status.FAIL] and not counts[Status.WAIVED]
        (clean if spotless else rows).append((rank, row, name))
    if len(rows) + len(clean) > CLEAN_ROWS_LIMIT:
        folded, clean = clean, []
    else:
        folded = []
    if not rows and not clean and not folded:
        return []
    items = [("", ""), ("### Clusters", ""), ("", ""),
             ("| Cluster | Verdict | " + " | ".join(s.value.capitalize() for s in _COLUMNS) + " |", ""),
             ("|---|---|" + "--:|" * len(_COLUMNS), "")]
    items += [(row, "cluster") for _, row, _ in sorted(rows + clean)]
    if folded:
        names = ", ".join(md(n) for _, _, n in sorted(folded))
        if len(names) > 2000:
            names = names[:2000].rsplit(", ", 1)[0] + ", …"
        items += [("", ""), (f"✅ {len(folded)} more cluster{'s' if len(folded) != 1 else ''} pass with no "
                             f"failure or waiver: {names}", "")]
    return items


def _finding(report: ScanReport, r: Result) -> str:
    status = "ERROR" if r.status is Status.ERROR else "FAIL"
    below = "" if r.status is not Status.FAIL or counts_toward_verdict(report, r) else " (below --fail-on)"
    return (f"- **{status}** `{r.severity.value}` **{md(r.rule)}** {md(r.cluster)} "
            f"{md(target_label(r.target))}: {md(r.message)}{below}")


def _left(results: list[Result], order: dict[str, int]) -> str:
    if not results:
        return ""
    ids = sorted({r.rule for r in results}, key=lambda i: rule_key(i, order))
    return f" ({len(results)} result{'s' if len(results) != 1 else ''} not evaluated: {md(', '.join(ids))})"

"""The console summary the CLI prints after a scan: short and aligned on a terminal, whole in a log.

Each line is built as segments of (text, style). On a terminal (``width`` given) a line is
cut to ``width`` on display cells (East Asian wide characters count two) and long lists are
capped; for a CI log (``width=None``) every line is printed in full and nothing is left out,
so a red pipeline says why it is red. Colour is plain ANSI SGR and only appears with ``color=True``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from scanner.model import Result, ScanReport, Severity, Status
from scanner.render._common import (
    VERDICT_LABELS,
    below_fail_on,
    cluster_names,
    cluster_verdict_label,
    critical_skips,
    finding_key,
    group_by_cluster,
    one_line,
    overall_verdict,
    rule_order,
    status_counts,
    target_label,
    unreachable,
    verdict_label,
)
from scanner.term import clean

#: On a terminal: failing and error results listed one per line before "... and N more".
MAX_FINDINGS = 15
#: On a terminal: cluster rows before the rest are summarised in one line.
MAX_CLUSTERS = 25
MIN_WIDTH = 20

_STYLE = {
    "bold": "1", "dim": "2", "fail": "1;31", "error": "1;33", "pass": "1;32",
    "critical": "1;31", "high": "31", "medium": "33", "low": "2", "info": "2", "warn": "1;33",
}
_VERDICT_STYLE = {Status.FAIL: "fail", Status.ERROR: "error", Status.PASS: "pass"}
_COUNT_COLUMNS = (Status.FAIL, Status.ERROR, Status.PASS, Status.SKIP, Status.WAIVED)
Segment = tuple[str, str]  # (text, style name or "")


def render_console(report: ScanReport, color: bool, width: int | None = 100,
                   min_severity: Severity | None = None) -> str:
    """Per-cluster verdicts and counts, then failures and errors, one line each.

    ``width=None`` prints every line in full and every finding (for logs); ``min_severity``
    leaves out findings below it (the counts and verdicts still cover everything).
    """
    full = width is None
    cap = None if full else MAX_FINDINGS
    lines: list[list[Segment]] = []
    scan = report.scan
    lines.append([("lmscan ", "bold"), (one_line(scan.tool_version), "bold"),
                  (f"  scan {one_line(scan.id)}  fail-on {scan.fail_on.value}", "dim")])
    if scan.policy.default:
        lines.append([(("WARNING: no site policy; the site has not declared its networks, "
                        "a built-in default policy was used."), "warn")])
    lines.append([])
    lines.extend(_cluster_table(report, width))
    folded, not_collected = _uncollected(report, cap)
    lines.extend(not_collected)
    lines.extend(_findings(report, folded, cap, min_severity))
    lines.extend(_critical_skips(report, cap))
    lines.append([])
    lines.append(_verdict_line(report))
    # Field text is made inert for a terminal here, once, before the line is cut to width.
    out = []
    for segments in lines:
        inert = [(clean(t), st) for t, st in segments]
        out.append(_render(inert if width is None else _fit(inert, max(width, MIN_WIDTH)), color))
    return "\n".join(out) + "\n"


def _cluster_table(report: ScanReport, width: int | None) -> list[list[Segment]]:
    by_cluster = group_by_cluster(report.results)
    rows: list[tuple[Status, str, str, list[int]]] = []
    for name in cluster_names(report):
        results = by_cluster.get(name.casefold(), [])
        tally = status_counts(results)
        rows.append((report.cluster_verdict(name), cluster_verdict_label(report, name, results),
                     one_line(name), [tally[s] for s in _COUNT_COLUMNS]))
    rank = {Status.FAIL: 0, Status.ERROR: 1, Status.PASS: 2}
    rows.sort(key=lambda r: (rank[r[0]], r[2].casefold()))

    longest = max((_cells(r[2]) for r in rows), default=7)
    verdict_width = max([10] + [len(r[1]) + 2 for r in rows])
    # Narrow terminals get narrower count columns with shorter headers.
    col, heads = (7, [s.value.upper() for s in _COUNT_COLUMNS])
    if width is not None and longest + verdict_width + 2 + 5 * col > width:
        col, heads = (5, ["FAIL", "ERR", "PASS", "SKIP", "WVD"])
    numbers = "".join(f"{h:>{col}}" for h in heads)
    name_width = max(longest if width is None else
                     min(longest, max(width, MIN_WIDTH) - verdict_width - 2 - len(numbers)), 7)
    out: list[list[Segment]] = [[(_pad("CLUSTER", name_width) + "  " + _pad("VERDICT", verdict_width)
                                  + numbers, "bold")]]
    shown = rows if width is None or len(rows) <= MAX_CLUSTERS else rows[:MAX_CLUSTERS]
    for verdict, label, name, counts in shown:
        row: list[Segment] = [(_pad(_cut(name, name_width), name_width) + "  ", ""),
                              (_pad(label, verdict_width), _VERDICT_STYLE[verdict])]
        for n in counts:
            row.append((f"{n:>{col}}", "dim" if n == 0 else ""))
        out.append(row)
    hidden = rows[len(shown):]
    if hidden:
        per_label = {label: sum(1 for r in hidden if VERDICT_LABELS[r[0]] == label)
                     for label in ("FAIL", "INCOMPLETE", "PASS")}
        out.append([(f"... and {len(hidden)} more clusters ("
                     + ", ".join(f"{n} {label}" for label, n in per_label.items() if n)
                     + "; --full lists them)", "dim")])
    if not rows:
        out.append([("No cluster was scanned.", "dim")])
    if len(rows) > 1:
        totals = [report.summary[s.value] for s in _COUNT_COLUMNS]
        out.append([(_pad("TOTAL", name_width + 2 + verdict_width) + "".join(f"{n:>{col}}" for n in totals),
                     "bold")])
    return out


def _uncollected(report: ScanReport, cap: int | None) -> tuple[set[str], list[list[Segment]]]:
    """One line per node that could not be collected, with its reason and the rules it left open.

    Returns the ids of the error results these lines stand for, so they are not listed again
    one per rule: an unreachable node is one fact, not fifteen.
    """
    gone = unreachable(report)
    if not gone.nodes:
        return set(), []
    order = rule_order(report)
    out: list[list[Segment]] = [[]]
    for cluster, info, results in gone.nodes[:cap]:
        out.append([("NOT COLLECTED ", "error"), (f"{one_line(cluster)}/{one_line(info.name)}: ", "bold"),
                    (one_line(info.error or "no reason was recorded"), ""),
                    (_rules_left(results, order, "its rules"), "dim")])
    if cap is not None and len(gone.nodes) > cap:
        out.append([(f"... and {len(gone.nodes) - cap} more nodes not collected (--full lists them)", "dim")])
    for cluster, results in gone.clusters.items():
        out.append([("NOT EVALUATED ", "error"), (f"{one_line(cluster)}: ", "bold"),
                    ("cluster-wide rules need every node", ""), (_rules_left(results, order, "rules"), "dim")])
    return gone.result_ids, out


def _rules_left(results: Sequence[Result], order: dict[str, int], what: str) -> str:
    if not results:
        return ""
    ids = sorted({r.rule for r in results}, key=lambda i: (order.get(i.casefold(), len(order)), i))
    return f" ({len(results)} result{'s' if len(results) != 1 else ''} not evaluated, {what}: {', '.join(ids)})"


def _findings(report: ScanReport, folded: set[str], cap: int | None,
              min_severity: Severity | None) -> list[list[Segment]]:
    order = rule_order(report)
    findings = sorted((r for r in report.results
                       if r.status in (Status.FAIL, Status.ERROR) and r.id not in folded),
                      key=lambda r: finding_key(r, order))
    hidden = 0
    if min_severity is not None:
        shown = [r for r in findings if r.severity.rank >= min_severity.rank]
        hidden, findings = len(findings) - len(shown), shown
    out: list[list[Segment]] = [[]] if findings or hidden else []
    for r in findings[:cap]:
        status = r.status.value.upper()
        out.append([(f"{status:<6}", r.status.value), (f"{r.severity.value:<9}", r.severity.value),
                    (f"{one_line(r.rule):<8}", "bold"),
                    (f"{one_line(r.cluster)} {target_label(r.target)}: ", ""),
                    (one_line(r.message), "dim")])
    if cap is not None and len(findings) > cap:
        out.append([((f"... and {len(findings) - cap} more failures and errors "
                      "(--full prints them all; or see the HTML or JSON report)"), "dim")])
    if hidden:
        assert min_severity is not None
        out.append([(f"{hidden} finding{'s' if hidden != 1 else ''} below --severity "
                     f"{min_severity.value} not shown", "dim")])
    return out


def _critical_skips(report: ScanReport, cap: int | None) -> list[list[Segment]]:
    """A critical rule that checked nothing (no network classified iscsi) is said plainly, not hidden in a count."""
    skipped = critical_skips(report)
    out: list[list[Segment]] = [[]] if skipped else []
    for r in skipped[:cap]:
        out.append([("NOT CHECKED ", "warn"), (f"{r.severity.value:<9}", r.severity.value),
                    (f"{one_line(r.rule):<8}", "bold"), (f"{one_line(r.cluster)} {target_label(r.target)}: ", ""),
                    (one_line(r.message), "dim")])
    if cap is not None and len(skipped) > cap:
        out.append([(f"... and {len(skipped) - cap} more critical rules that checked nothing", "dim")])
    return out


def _verdict_line(report: ScanReport) -> list[Segment]:
    overall = overall_verdict(report)
    n_clusters = len(cluster_names(report))
    counting = len(report.counting_failures())
    errors = report.summary["error"]
    return [("Verdict: ", "bold"),
            (verdict_label(overall, below_fail_on(report, report.results)), _VERDICT_STYLE[overall]),
            ((f"  {counting} failure{'s' if counting != 1 else ''} at or above "
              f"{report.scan.fail_on.value}, {errors} not evaluated, "
              f"{n_clusters} cluster{'s' if n_clusters != 1 else ''}"), "")]


# -- layout on display cells ---------------------------------------------------------------

def _char_cells(ch: str) -> int:
    if unicodedata.combining(ch) or unicodedata.category(ch) in ("Mn", "Me", "Cf"):
        return 0
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def _cells(text: str) -> int:
    """How many terminal cells ``text`` takes."""
    return sum(_char_cells(ch) for ch in text)


def _cut(text: str, cells: int, more: bool = False) -> str:
    """``text`` cut to at most ``cells`` cells, ending in an ellipsis when cut.

    ``more`` says that text follows which will not be shown, so the ellipsis is needed
    even when ``text`` itself would just fit.
    """
    if _cells(text) <= cells and not more:
        return text
    out, used = [], 0
    for ch in text:
        w = _char_cells(ch)
        if used + w > cells - 1:
            break
        out.append(ch)
        used += w
    return "".join(out) + "…"


def _pad(text: str, cells: int) -> str:
    return text + " " * max(cells - _cells(text), 0)


def _fit(segments: Sequence[Segment], width: int) -> list[Segment]:
    """Cut a line of segments to ``width`` cells; the last kept segment gets the ellipsis."""
    out: list[Segment] = []
    left = width
    for i, (text, style) in enumerate(segments):
        cells = _cells(text)
        rest = sum(_cells(t) for t, _ in segments[i + 1:])
        if cells + rest <= left:
            out.extend(segments[i:])
            break
        if cells < left:
            out.append((text, style))
            left -= cells
            continue
        out.append((_cut(text, left, more=True), style))
        break
    # Trailing padding is invisible and would only make a line look longer than it is.
    if out:
        text, style = out[-1]
        out[-1] = (text.rstrip(), style)
    return out


def _render(segments: Sequence[Segment], color: bool) -> str:
    if not color:
        return "".join(text for text, _ in segments)
    return "".join(f"\x1b[{_STYLE[style]}m{text}\x1b[0m" if style and text else text
                   for text, style in segments)

"""The console summary the CLI prints after a scan: short, aligned, never wider than the terminal.

Each line is built as segments of (text, style) so it can be cut to ``width`` on display
cells (East Asian wide characters count two) before any colour is added; colour is
plain ANSI SGR and only appears with ``color=True``.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from scanner.model import ScanReport, Status
from scanner.term import clean
from scanner.render._common import (
    VERDICT_LABELS,
    cluster_names,
    finding_key,
    group_by_cluster,
    one_line,
    rule_order,
    status_counts,
    target_label,
)

#: Failing and error results listed one per line before "... and N more".
MAX_FINDINGS = 15
#: Cluster rows before the rest are summarised in one line.
MAX_CLUSTERS = 25
MIN_WIDTH = 20

_STYLE = {
    "bold": "1", "dim": "2", "fail": "1;31", "error": "1;33", "pass": "1;32",
    "critical": "1;31", "high": "31", "medium": "33", "low": "2", "info": "2", "warn": "1;33",
}
_VERDICT_STYLE = {Status.FAIL: "fail", Status.ERROR: "error", Status.PASS: "pass"}
_COUNT_COLUMNS = (Status.FAIL, Status.ERROR, Status.PASS, Status.SKIP, Status.WAIVED)
Segment = tuple[str, str]  # (text, style name or "")


def render_console(report: ScanReport, color: bool, width: int = 100) -> str:
    """A compact summary: per-cluster verdicts and counts, then failures and errors, one line each."""
    width = max(width, MIN_WIDTH)
    lines: list[list[Segment]] = []
    scan = report.scan
    lines.append([("lmscan ", "bold"), (one_line(scan.tool_version), "bold"),
                  (f"  scan {one_line(scan.id)}  fail-on {scan.fail_on.value}", "dim")])
    if scan.policy.default:
        lines.append([(("WARNING: no site policy; the site has not declared its networks, "
                        "a built-in default policy was used."), "warn")])
    lines.append([])
    lines.extend(_cluster_table(report, width))
    lines.extend(_uncollected(report))
    lines.extend(_findings(report))
    lines.append([])
    lines.append(_verdict_line(report))
    # Field text is made inert for a terminal here, once, before the line is cut to width.
    return "\n".join(_render(_fit([(clean(t), s) for t, s in segments], width), color) for segments in lines) + "\n"


def _cluster_table(report: ScanReport, width: int) -> list[list[Segment]]:
    by_cluster = group_by_cluster(report.results)
    rows: list[tuple[Status, str, list[int]]] = []
    for name in cluster_names(report):
        verdict = report.cluster_verdict(name)
        tally = status_counts(by_cluster.get(name.casefold(), []))
        rows.append((verdict, one_line(name), [tally[s] for s in _COUNT_COLUMNS]))
    rank = {Status.FAIL: 0, Status.ERROR: 1, Status.PASS: 2}
    rows.sort(key=lambda r: (rank[r[0]], r[1].casefold()))

    longest = max((_cells(r[1]) for r in rows), default=7)
    # Narrow terminals get narrower count columns with shorter headers.
    col, heads = (7, [s.value.upper() for s in _COUNT_COLUMNS])
    if longest + 12 + 5 * col > width:
        col, heads = (5, ["FAIL", "ERR", "PASS", "SKIP", "WVD"])
    numbers = "".join(f"{h:>{col}}" for h in heads)
    name_width = max(min(longest, width - 12 - len(numbers)), 7)
    out: list[list[Segment]] = [[(_pad("CLUSTER", name_width) + "  " + _pad("VERDICT", 10)
                                  + numbers, "bold")]]
    shown = rows if len(rows) <= MAX_CLUSTERS else rows[:MAX_CLUSTERS]
    for verdict, name, counts in shown:
        label = VERDICT_LABELS[verdict]
        row: list[Segment] = [(_pad(_cut(name, name_width), name_width) + "  ", ""),
                              (_pad(label, 10), _VERDICT_STYLE[verdict])]
        for n in counts:
            row.append((f"{n:>{col}}", "dim" if n == 0 else ""))
        out.append(row)
    hidden = rows[len(shown):]
    if hidden:
        per_label = {label: sum(1 for r in hidden if VERDICT_LABELS[r[0]] == label)
                     for label in ("FAIL", "INCOMPLETE", "PASS")}
        out.append([(f"... and {len(hidden)} more clusters ("
                     + ", ".join(f"{n} {label}" for label, n in per_label.items() if n) + ")",
                     "dim")])
    if not rows:
        out.append([("No cluster was scanned.", "dim")])
    if len(rows) > 1:
        totals = [report.summary[s.value] for s in _COUNT_COLUMNS]
        out.append([(_pad("TOTAL", name_width + 12) + "".join(f"{n:>{col}}" for n in totals),
                     "bold")])
    return out


def _uncollected(report: ScanReport) -> list[list[Segment]]:
    missing = [(c, n) for c in report.clusters for n in c.nodes if not n.collected]
    if not missing:
        return []
    out: list[list[Segment]] = [[]]
    for c, n in missing[:MAX_FINDINGS]:
        out.append([("NOT COLLECTED ", "error"), (f"{one_line(c.name)}/{one_line(n.name)}: ", "bold"),
                    (one_line(n.error or "no reason was recorded"), "")])
    if len(missing) > MAX_FINDINGS:
        out.append([(f"... and {len(missing) - MAX_FINDINGS} more nodes not collected", "dim")])
    return out


def _findings(report: ScanReport) -> list[list[Segment]]:
    order = rule_order(report)
    findings = sorted((r for r in report.results if r.status in (Status.FAIL, Status.ERROR)),
                      key=lambda r: finding_key(r, order))
    if not findings:
        return []
    out: list[list[Segment]] = [[]]
    for r in findings[:MAX_FINDINGS]:
        status = r.status.value.upper()
        out.append([(f"{status:<6}", r.status.value), (f"{r.severity.value:<9}", r.severity.value),
                    (f"{one_line(r.rule):<8}", "bold"),
                    (f"{one_line(r.cluster)} {target_label(r.target)}: ", ""),
                    (one_line(r.message), "dim")])
    if len(findings) > MAX_FINDINGS:
        out.append([((f"... and {len(findings) - MAX_FINDINGS} more failures and errors "
                      "(see the HTML or JSON report)"), "dim")])
    return out


def _verdict_line(report: ScanReport) -> list[Segment]:
    verdicts = [report.cluster_verdict(n) for n in cluster_names(report)]
    overall = (Status.FAIL if Status.FAIL in verdicts else
               Status.ERROR if Status.ERROR in verdicts else Status.PASS)
    counting = len(report.counting_failures())
    errors = report.summary["error"]
    return [("Verdict: ", "bold"), (VERDICT_LABELS[overall], _VERDICT_STYLE[overall]),
            ((f"  {counting} failure{'s' if counting != 1 else ''} at or above "
              f"{report.scan.fail_on.value}, {errors} not evaluated, "
              f"{len(verdicts)} cluster{'s' if len(verdicts) != 1 else ''}"), "")]


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

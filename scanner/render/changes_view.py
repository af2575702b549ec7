"""What the HTML report's "Since last run" part shows: the change marks and a 30-run trend.

Kept apart from html.py so the report's redesign and this part can change independently; the
template is ``reports/templates/_changes.html.j2``, included by the report. The trend is an
inline SVG for browsers plus a plain table of the same numbers, which mail clients that drop
SVG (Outlook, Gmail) still show.
"""

from __future__ import annotations

from typing import Any

from scanner.changes import fail_error_counts, new_failures
from scanner.model import Change, ScanReport, TrendPoint
from scanner.render._common import display_time, one_line, target_label

#: Runs in the trend, the current one included.
TREND_RUNS = 30
#: Findings listed per group before "and N more".
LIST_LIMIT = 50
#: Clusters in the trend (those with the most failures now); the JSON has every cluster's.
TREND_CLUSTERS = 40
_SVG_W, _SVG_H, _PAD = 180, 28, 3


def since_view(report: ScanReport) -> dict[str, Any] | None:
    """The template's data, or None when nothing was compared (no history, no baseline)."""
    ch = report.changes
    if ch is None and not report.origins:
        return None
    view: dict[str, Any] = {"origins": [
        {"cluster": one_line(o.cluster), "when": display_time(o.scan_time), "host": one_line(o.scanner_host),
         "stale": o.stale, "scan_id": one_line(o.scan_id)} for o in report.origins]}
    if ch is None:
        return {**view, "changes": None}
    new = new_failures(report.results)
    view["changes"] = {
        "what": "the baseline" if ch.source == "baseline" else "the last run",
        "compared": (f"scan {one_line(ch.scan_id)} of {display_time(ch.scan_time)}" if ch.scan_id
                     else "no earlier run: every result is new"),
        "counts": dict(ch.counts),
        "new": [_row(r) for r in new if r.change is Change.NEW][:LIST_LIMIT],
        "reopened": [_row(r) for r in new if r.change is Change.REOPENED][:LIST_LIMIT],
        "new_total": sum(1 for r in new if r.change is Change.NEW),
        "reopened_total": sum(1 for r in new if r.change is Change.REOPENED),
        "resolved": [{"cluster": one_line(f.cluster), "rule": one_line(f.rule), "severity": f.severity,
                      "title": one_line(f.title), "target": target_label(f.target), "gone": f.gone}
                     for f in ch.resolved[:LIST_LIMIT]],
        "resolved_total": len(ch.resolved),
        "clusters": [{"cluster": one_line(c.cluster), "state": c.state, "note": one_line(c.note)}
                     for c in ch.clusters if c.state in ("stopped", "started", "unreachable")],
        "tolerated": ch.tolerated if ch.fail_on_new else None,
        "trend": _trend(report),
    }
    return view


def _row(r: Any) -> dict[str, str]:
    return {"cluster": one_line(r.cluster), "rule": one_line(r.rule), "severity": r.severity.value,
            "title": one_line(r.title), "target": target_label(r.target), "change": r.change.value}


def _trend(report: ScanReport) -> list[dict[str, Any]]:
    ch = report.changes
    assert ch is not None
    current = fail_error_counts(report.results)
    rows: list[dict[str, Any]] = []
    past = {k.casefold(): v for k, v in ch.trend.items()}
    for c in report.clusters:
        key = c.name.casefold()
        fail, error = current.get(key, [0, 0])
        points = list(past.get(key, ()))[-(TREND_RUNS - 1):] + [
            TrendPoint(report.scan.started_at, fail, error, any(n.collected for n in c.nodes))]
        if len(points) < 2:
            continue
        rows.append({"cluster": one_line(c.name), "svg": _sparkline(points), "now": fail,
                     "cells": [{"n": p.fail if p.reached else "–", "when": display_time(p.scan_time)}
                               for p in points]})
    rows.sort(key=lambda row: (-int(row["now"]), str(row["cluster"]).casefold()))
    return rows[:TREND_CLUSTERS]


def _sparkline(points: list[TrendPoint]) -> dict[str, Any]:
    """Coordinates for an SVG polyline of failures per run; unreached runs are marked, not drawn as 0."""
    top = max((p.fail for p in points), default=0) or 1
    step = (_SVG_W - 2 * _PAD) / max(len(points) - 1, 1)

    def y(v: int) -> float:
        return round(_SVG_H - _PAD - (v / top) * (_SVG_H - 2 * _PAD), 1)
    coords = [(round(_PAD + i * step, 1), y(p.fail)) for i, p in enumerate(points)]
    line = " ".join(f"{x},{yy}" for (x, yy), p in zip(coords, points, strict=True) if p.reached)
    gaps = [x for (x, _), p in zip(coords, points, strict=True) if not p.reached]
    last_x, last_y = coords[-1]
    return {"w": _SVG_W, "h": _SVG_H, "points": line, "gaps": gaps, "last_x": last_x, "last_y": last_y,
            "max": top, "last": points[-1].fail}

"""Change marks: previous results + current results -> new / unchanged / resolved / reopened.

Pure: the history store (or a ``--baseline`` file) supplies one :class:`Baseline` per cluster,
and :func:`mark_changes` returns the report with a ``change`` on every result and a ``changes``
summary (contracts §7). Nothing here touches a database or a file.
"""

from __future__ import annotations

import dataclasses
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from scanner.model import (
    Change,
    Changes,
    ClusterComparison,
    ClusterInfo,
    ResolvedFinding,
    Result,
    ScanReport,
    Status,
    Target,
    TrendPoint,
)


@dataclass(frozen=True, slots=True)
class PriorResult:
    """What the comparison needs of one earlier result."""

    id: str
    rule: str
    cluster: str
    status: Status
    severity: str
    title: str
    target: Target


@dataclass(frozen=True, slots=True)
class Baseline:
    """What one cluster is compared with: the last run that reached it.

    ``results`` holds each result's last known status: where the compared run had ``error``
    for a result, the store puts the status of the latest earlier run that could evaluate it.
    ``failed_before`` are ids (of those that do not fail in ``results``) that failed in some
    earlier run: failing again makes them ``reopened``. ``latest_*`` describe the most recent
    run that listed the cluster at all, which differs when that run could not reach it.
    """

    scan_id: str
    scan_time: str
    results: Mapping[str, PriorResult]
    failed_before: frozenset[str] = frozenset()
    latest_scan_id: str | None = None
    latest_scan_time: str | None = None
    latest_reached: bool = True
    trend: tuple[TrendPoint, ...] = field(default=())


# Result's fields but the change mark: the constructor with these is twice as fast as replace().
_FIELDS = tuple(f.name for f in dataclasses.fields(Result) if f.name != "change")
_VALUES = operator.attrgetter(*_FIELDS)
_RESULT: Any = Result   # called positionally, which the type checker cannot follow through attrgetter
assert dataclasses.fields(Result)[-1].name == "change"


def _with_change(r: Result, change: Change) -> Result:
    marked: Result = _RESULT(*_VALUES(r), change)   # ``change`` is Result's last field
    return marked


def reached(cluster: ClusterInfo) -> bool:
    """A cluster answered when at least one of its nodes was collected."""
    return any(n.collected for n in cluster.nodes)


def _mark(r: Result, prev: PriorResult | None, failed_before: frozenset[str]) -> Change:
    if r.status is Status.FAIL:
        if prev is not None and prev.status is Status.FAIL:
            return Change.UNCHANGED
        # A waiver that lapsed, or a finding that was fixed and is back, is not new debt.
        if r.id in failed_before or (prev is not None and prev.status is Status.WAIVED):
            return Change.REOPENED
        return Change.NEW
    if prev is None:
        return Change.NEW
    if prev.status is Status.FAIL and r.status in (Status.PASS, Status.SKIP):
        return Change.RESOLVED
    # error (not proven either way) and waived (still there, accepted) are no resolution.
    return Change.UNCHANGED


def _comparison(info: ClusterInfo, b: Baseline | None) -> ClusterComparison:
    now = reached(info)
    if b is None:
        note = "first scan of this cluster" if now else "first scan of this cluster, and it did not answer"
        return ClusterComparison(info.name, "first", None, None, note)
    if not now:
        if b.latest_reached:
            return ClusterComparison(info.name, "stopped", b.scan_id, b.scan_time,
                                     f"did not answer; it did in the compared scan of {b.scan_time}")
        return ClusterComparison(info.name, "unreachable", b.scan_id, b.scan_time,
                                 f"still not answering (last answered in the scan of {b.scan_time})")
    if not b.latest_reached:
        return ClusterComparison(info.name, "started", b.scan_id, b.scan_time,
                                 f"answers again; it did not in the scan of {b.latest_scan_time}, so it is "
                                 f"compared with the last scan that reached it ({b.scan_time})")
    return ClusterComparison(info.name, "compared", b.scan_id, b.scan_time, "")


def mark_changes(report: ScanReport, baselines: Mapping[str, Baseline], source: str,
                 fail_on_new: bool = False) -> ScanReport:
    """The report with ``change`` on every result and the ``changes`` summary.

    ``baselines`` is keyed by the casefolded cluster name; a cluster without one is seen for
    the first time and all its results are ``new``.
    """
    counts = {c.value: 0 for c in Change}
    resolved: list[ResolvedFinding] = []
    seen: dict[str, set[str]] = {}
    marked: list[Result] = []
    empty: frozenset[str] = frozenset()
    for r in report.results:
        key = r.cluster.casefold()
        b = baselines.get(key)
        prev = b.results.get(r.id) if b is not None else None
        change = _mark(r, prev, b.failed_before if b is not None else empty)
        counts[change.value] += 1
        if change is Change.RESOLVED and prev is not None:
            resolved.append(_resolved(prev, gone=False))
        seen.setdefault(key, set()).add(r.id)
        marked.append(r if r.change is change else _with_change(r, change))
    comparisons = []
    for info in report.clusters:
        key = info.name.casefold()
        b = baselines.get(key)
        comparisons.append(_comparison(info, b))
        if b is None or not reached(info):
            continue   # a cluster that did not answer resolves nothing: its findings are unknown
        ids = seen.get(key, set())
        gone = [p for rid, p in b.results.items() if p.status is Status.FAIL and rid not in ids]
        for p in sorted(gone, key=lambda p: p.id):
            resolved.append(_resolved(p, gone=True))
            counts[Change.RESOLVED.value] += 1
    latest = max((b for b in baselines.values()), key=lambda b: b.scan_time, default=None)
    trend = {info.name: baselines[info.name.casefold()].trend
             for info in report.clusters if info.name.casefold() in baselines
             and baselines[info.name.casefold()].trend}
    new_report = dataclasses.replace(report, results=tuple(marked), _verdicts={})
    floor_failures = new_report.counting_failures()
    tolerated = sum(1 for r in floor_failures if r.change not in (Change.NEW, Change.REOPENED)) if fail_on_new else 0
    changes = Changes(source=source, scan_id=latest.scan_id if latest else None,
                      scan_time=latest.scan_time if latest else None, counts=counts,
                      resolved=tuple(resolved), clusters=tuple(comparisons), fail_on_new=fail_on_new,
                      tolerated=tolerated, trend=trend)
    return dataclasses.replace(new_report, changes=changes)


def _resolved(p: PriorResult, gone: bool) -> ResolvedFinding:
    return ResolvedFinding(id=p.id, rule=p.rule, cluster=p.cluster, target=p.target, severity=p.severity,
                           title=p.title, gone=gone)


def prior(r: Result) -> PriorResult:
    return PriorResult(id=r.id, rule=r.rule, cluster=r.cluster, status=r.status, severity=r.severity.value,
                       title=r.title, target=r.target)


def baselines_from_report(report: ScanReport) -> dict[str, Baseline]:
    """Baselines from one earlier results document (``--baseline FILE``, ``history diff A B``).

    A result that document marks ``resolved`` failed before it, so failing again is ``reopened``.
    """
    by_cluster: dict[str, dict[str, PriorResult]] = {}
    before: dict[str, set[str]] = {}
    for r in report.results:
        key = r.cluster.casefold()
        by_cluster.setdefault(key, {})[r.id] = prior(r)
        if r.change is Change.RESOLVED:
            before.setdefault(key, set()).add(r.id)
    if report.changes is not None:
        for f in report.changes.resolved:
            before.setdefault(f.cluster.casefold(), set()).add(f.id)
    out = {}
    scan = report.scan
    for info in report.clusters:
        key = info.name.casefold()
        out[key] = Baseline(scan_id=scan.id, scan_time=scan.started_at, results=by_cluster.get(key, {}),
                            failed_before=frozenset(before.get(key, ())), latest_scan_id=scan.id,
                            latest_scan_time=scan.started_at, latest_reached=reached(info))
    return out


def fail_error_counts(results: Iterable[Result]) -> dict[str, list[int]]:
    """``[failures, errors]`` per casefolded cluster name (the trend's two numbers)."""
    out: dict[str, list[int]] = {}
    for r in results:
        tally = out.setdefault(r.cluster.casefold(), [0, 0])
        if r.status is Status.FAIL:
            tally[0] += 1
        elif r.status is Status.ERROR:
            tally[1] += 1
    return out


def new_failures(results: Iterable[Result]) -> list[Result]:
    """Failures marked new or reopened, the ones a ratchet cares about."""
    return [r for r in results if r.status is Status.FAIL and r.change in (Change.NEW, Change.REOPENED)]

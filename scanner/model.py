"""Frozen values that cross the pipeline: results and the scan report.

The engine produces one :class:`ScanReport`; every renderer (HTML, JUnit, JSON, console)
takes that value unchanged. ``ScanReport.to_dict()`` is the results JSON of contracts §5.
"""

from __future__ import annotations

import enum
import itertools
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from scanner.actions import Action


class Status(str, enum.Enum):
    """Outcome of one rule for one target."""

    PASS = "pass"
    FAIL = "fail"
    ERROR = "error"
    SKIP = "skip"
    WAIVED = "waived"

    def __str__(self) -> str:
        return self.value


class Severity(str, enum.Enum):
    """Rule severity, ordered by :attr:`rank`."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    def __str__(self) -> str:
        return self.value

    @property
    def rank(self) -> int:
        return _SEVERITY_RANK[self]

    @classmethod
    def _missing_(cls, value: object) -> Severity | None:
        """``Severity("High")`` is ``Severity.HIGH``: users write severity names in any case."""
        if isinstance(value, str):
            folded = value.strip().casefold()
            for s in cls:
                if s.value == folded:
                    return s
        return None


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}


class Change(str, enum.Enum):
    """How a result compares with the run it is compared with (contracts §7)."""

    NEW = "new"
    UNCHANGED = "unchanged"
    RESOLVED = "resolved"
    REOPENED = "reopened"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class Target:
    """What one result is about (contracts §5 ``target``)."""

    kind: str
    name: str
    id: str | None = None
    node: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "name": self.name, "id": self.id, "node": self.node}


@dataclass(frozen=True, slots=True)
class Result:
    """One rule evaluated against one target."""

    id: str
    rule: str
    title: str
    severity: Severity
    status: Status
    cluster: str
    target: Target
    message: str
    expected: str
    actual: str
    remediation: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    #: What running the remediation changes, computed from the policy (``scanner.actions``); the
    #: ``remediation`` text is rendered from these. Empty for results without an automatic fix.
    actions: tuple[Action, ...] = ()
    change: Change | None = None             # last: scanner.changes builds results positionally

    def to_dict(self) -> dict[str, Any]:
        # ``_value_`` is what the ``value`` property returns, without the property: this runs for
        # every result of a fleet (JUnit, SARIF), so the target's dict is inlined for the same reason.
        t = self.target
        out: dict[str, Any] = {
            "id": self.id,
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity._value_,
            "status": self.status._value_,
            "cluster": self.cluster,
            "target": {"kind": t.kind, "name": t.name, "id": t.id, "node": t.node},
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
            "evidence": dict(self.evidence),
            "remediation": self.remediation,
        }
        if self.change is not None:
            out["change"] = self.change._value_
        if self.actions:
            from scanner.actions import to_dict as action_dict
            out["actions"] = [action_dict(a) for a in self.actions]
        return out


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A node of a scanned cluster and whether its facts could be collected."""

    name: str
    collected: bool
    error: str | None = None
    collected_at: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "collected": self.collected, "error": self.error,
                "collected_at": self.collected_at}


@dataclass(frozen=True, slots=True)
class ClusterInfo:
    """A scanned cluster as the reports list it."""

    name: str
    os: str
    nodes: tuple[NodeInfo, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "os": self.os, "nodes": [n.to_dict() for n in self.nodes]}


@dataclass(frozen=True, slots=True)
class RuleInfo:
    """Documentation of a rule, carried in the report so renderers need no rule loader."""

    id: str
    title: str
    severity: Severity
    rationale: str
    references: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"title": self.title, "severity": self.severity.value,
                "rationale": self.rationale, "references": list(self.references)}


@dataclass(frozen=True, slots=True)
class PackInfo:
    """A rule pack that took part in the scan."""

    name: str
    version: str
    sha256: str
    path: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "sha256": self.sha256}


@dataclass(frozen=True, slots=True)
class PolicyInfo:
    """Which site policy was applied. ``path`` is None for the built-in default."""

    path: str | None
    sha256: str
    default: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"path": self.path, "sha256": self.sha256, "default": self.default}


@dataclass(frozen=True, slots=True)
class ScanInfo:
    """Run metadata (contracts §5 ``scan``)."""

    id: str
    started_at: str
    finished_at: str
    tool_version: str
    policy: PolicyInfo
    rule_packs: tuple[PackInfo, ...]
    fail_on: Severity = Severity.LOW

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "tool_version": self.tool_version,
            "policy": self.policy.to_dict(),
            "rule_packs": [p.to_dict() for p in self.rule_packs],
            "fail_on": self.fail_on.value,
        }


@dataclass(frozen=True, slots=True)
class ResolvedFinding:
    """A finding of the compared run that no longer fails (its target may be gone)."""

    id: str
    rule: str
    cluster: str
    target: Target
    severity: str
    title: str
    gone: bool = False   # no result with this id in the current run: the target no longer exists

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "rule": self.rule, "cluster": self.cluster, "target": self.target.to_dict(),
                "severity": self.severity, "title": self.title, "gone": self.gone}


@dataclass(frozen=True, slots=True)
class ClusterComparison:
    """What one cluster was compared with, and whether it stopped or started answering.

    ``state`` is ``compared``, ``first`` (no earlier run), ``stopped`` (did not answer now, did
    in the compared run), ``unreachable`` (still not answering) or ``started`` (answers again).
    """

    cluster: str
    state: str
    scan_id: str | None = None
    scan_time: str | None = None
    note: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "state": self.state, "scan_id": self.scan_id,
                "scan_time": self.scan_time, "note": self.note}


@dataclass(frozen=True, slots=True)
class TrendPoint:
    """Failures and errors of one cluster in one earlier (or the current) run."""

    scan_time: str
    fail: int
    error: int
    reached: bool = True


@dataclass(frozen=True, slots=True)
class Changes:
    """The ``changes`` object of contracts §7: counts, the compared scan and what was resolved."""

    source: str                                   # "history" or "baseline"
    scan_id: str | None                           # the compared scan (the latest one, per cluster below)
    scan_time: str | None
    counts: Mapping[str, int]
    resolved: tuple[ResolvedFinding, ...] = ()
    clusters: tuple[ClusterComparison, ...] = ()
    fail_on_new: bool = False
    tolerated: int = 0                            # known failures --fail-on-new did not count
    trend: Mapping[str, tuple[TrendPoint, ...]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "scan_id": self.scan_id,
            "scan_time": self.scan_time,
            "counts": dict(self.counts),
            "fail_on_new": self.fail_on_new,
            "tolerated": self.tolerated,
            "clusters": [c.to_dict() for c in self.clusters],
            "resolved": [r.to_dict() for r in self.resolved],
            "trend": {k: [[p.scan_time, p.fail, p.error, p.reached] for p in v] for k, v in self.trend.items()},
        }


@dataclass(frozen=True, slots=True)
class ClusterOrigin:
    """Where a cluster of a merged report (``report --from-history``) comes from."""

    cluster: str
    scan_id: str
    scan_time: str
    scanner_host: str
    stale: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"cluster": self.cluster, "scan_id": self.scan_id, "scan_time": self.scan_time,
                "scanner_host": self.scanner_host, "stale": self.stale}


_CLUSTER = operator.attrgetter("cluster")


@dataclass(frozen=True, slots=True)
class ScanReport:
    """The one value every renderer takes."""

    scan: ScanInfo
    clusters: tuple[ClusterInfo, ...]
    results: tuple[Result, ...]
    rules: Mapping[str, RuleInfo] = field(default_factory=dict)
    changes: Changes | None = None
    origins: tuple[ClusterOrigin, ...] = ()
    _verdicts: dict[str, Status] = field(default_factory=dict, compare=False, repr=False)
    #: SHA-256 of the results JSON file this report was read from (``lmscan mail --from-results``);
    #: None for a fresh scan, whose JSON is hashed as rendered.
    results_sha256: str | None = field(default=None, compare=False, repr=False)

    #: The counts behind :attr:`summary`, counted on first use (renderers ask several times).
    _summary: dict[str, int] = field(default_factory=dict, init=False, compare=False, repr=False)

    @property
    def summary(self) -> dict[str, int]:
        """Results per status, every status present (a new dict on each call)."""
        counts = self._summary
        if not counts:
            counts.update((s._value_, 0) for s in Status)
            for r in self.results:
                counts[r.status._value_] += 1
        return dict(counts)

    def counting_failures(self) -> list[Result]:
        """Failures at or above the ``--fail-on`` threshold (``info`` never counts)."""
        floor = max(self.scan.fail_on.rank, Severity.LOW.rank)
        return [r for r in self.results
                if r.status is Status.FAIL and r.severity.rank >= floor]

    def gating_failures(self) -> list[Result]:
        """The failures that decide exit 1: with ``--fail-on-new`` only new and reopened ones."""
        failures = self.counting_failures()
        if self.changes is not None and self.changes.fail_on_new:
            return [r for r in failures if r.change in (Change.NEW, Change.REOPENED)]
        return failures

    def cluster_verdict(self, cluster: str) -> Status:
        """FAIL if any counting failure, else ERROR if any error, else PASS."""
        if not self._verdicts and self.results:
            floor = max(self.scan.fail_on.rank, Severity.LOW.rank)
            verdicts = self._verdicts
            fail, error, ok = Status.FAIL, Status.ERROR, Status.PASS
            # One pass for all clusters (renderers ask per cluster), by runs of one cluster name
            # (a scan lists each cluster's results together) so that case is folded per run.
            for name, run in itertools.groupby(self.results, _CLUSTER):
                key = name.casefold()
                for r in run:
                    if r.status is fail and r.severity.rank >= floor:
                        verdicts[key] = fail
                    elif r.status is error and verdicts.get(key) is not fail:
                        verdicts[key] = error
                    else:
                        verdicts.setdefault(key, ok)
        return self._verdicts.get(cluster.casefold(), Status.PASS)

    def to_dict(self, *, results: bool = True) -> dict[str, Any]:
        """The results JSON as a dict; ``results=False`` leaves the (large) results list empty."""
        return {
            "lmscan_results": 1,
            "scan": self.scan.to_dict(),
            "clusters": [c.to_dict() for c in self.clusters],
            "results": [r.to_dict() for r in self.results] if results else [],
            "summary": self.summary,
            **({"changes": self.changes.to_dict()} if self.changes is not None else {}),
            **({"origins": [o.to_dict() for o in self.origins]} if self.origins else {}),
            "rules": {k: v.to_dict() for k, v in self.rules.items()},
        }

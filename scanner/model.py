"""Frozen values that cross the pipeline: results and the scan report.

The engine produces one :class:`ScanReport`; every renderer (HTML, JUnit, JSON, console)
takes that value unchanged. ``ScanReport.to_dict()`` is the results JSON of contracts §5.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


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


_SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}



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

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "rule": self.rule,
            "title": self.title,
            "severity": self.severity.value,
            "status": self.status.value,
            "cluster": self.cluster,
            "target": self.target.to_dict(),
            "message": self.message,
            "expected": self.expected,
            "actual": self.actual,
            "evidence": dict(self.evidence),
            "remediation": self.remediation,
        }


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
class ScanReport:
    """The one value every renderer takes."""

    scan: ScanInfo
    clusters: tuple[ClusterInfo, ...]
    results: tuple[Result, ...]
    rules: Mapping[str, RuleInfo] = field(default_factory=dict)
    _verdicts: dict[str, Status] = field(default_factory=dict, compare=False, repr=False)
    #: SHA-256 of the results JSON file this report was read from (``lmscan mail --from-results``);
    #: None for a fresh scan, whose JSON is hashed as rendered.
    results_sha256: str | None = field(default=None, compare=False, repr=False)

    @property
    def summary(self) -> dict[str, int]:
        counts = {s.value: 0 for s in Status}
        for r in self.results:
            counts[r.status.value] += 1
        return counts

    def counting_failures(self) -> list[Result]:
        """Failures at or above the ``--fail-on`` threshold (``info`` never counts)."""
        floor = max(self.scan.fail_on.rank, Severity.LOW.rank)
        return [r for r in self.results
                if r.status is Status.FAIL and r.severity.rank >= floor]

    def cluster_verdict(self, cluster: str) -> Status:
        """FAIL if any counting failure, else ERROR if any error, else PASS."""
        if not self._verdicts and self.results:
            floor = max(self.scan.fail_on.rank, Severity.LOW.rank)
            verdicts = self._verdicts
            for r in self.results:   # one pass for all clusters: renderers ask per cluster
                key = r.cluster.casefold()
                if r.status is Status.FAIL and r.severity.rank >= floor:
                    verdicts[key] = Status.FAIL
                elif r.status is Status.ERROR and verdicts.get(key) is not Status.FAIL:
                    verdicts[key] = Status.ERROR
                else:
                    verdicts.setdefault(key, Status.PASS)
        return self._verdicts.get(cluster.casefold(), Status.PASS)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lmscan_results": 1,
            "scan": self.scan.to_dict(),
            "clusters": [c.to_dict() for c in self.clusters],
            "results": [r.to_dict() for r in self.results],
            "summary": self.summary,
            "rules": {k: v.to_dict() for k, v in self.rules.items()},
        }

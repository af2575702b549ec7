"""Read a results JSON (contracts §5) back into the ScanReport it was written from.

Every report can be re-rendered from the JSON alone (``lmscan mail --from-results``): the
renderers take a ScanReport, so this module is the inverse of ``ScanReport.to_dict()``.
Fields that later versions (or other features, such as history's ``change`` marks) add are
carried over when the model knows them and ignored otherwise. A file that is not a results
document is invalid input: one line naming the file, the place and what is wrong.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from scanner.errors import InputError
from scanner.model import (
    Change,
    Changes,
    ClusterComparison,
    ClusterInfo,
    ClusterOrigin,
    NodeInfo,
    PackInfo,
    PolicyInfo,
    ResolvedFinding,
    Result,
    RuleInfo,
    ScanInfo,
    ScanReport,
    Severity,
    Status,
    Target,
    TrendPoint,
)


class _Bad(Exception):
    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")


def load_results(path: Path) -> ScanReport:
    """The report a results JSON file holds, with the file's SHA-256 for footers."""
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read the results file: {exc.strerror}") from None
    return parse_results(raw, str(path))


def parse_results(raw: bytes, source: str) -> ScanReport:
    """The report a results JSON document holds (a file's bytes, or a run kept in the history)."""
    try:
        data = json.loads(raw.decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(source, f"not a results JSON file: {exc}") from None
    try:
        report = report_from_dict(data)
    except _Bad as exc:
        raise InputError(source, f"{exc} (is this a results.json written by lmscan scan --json?)") from None
    return dataclasses.replace(report, results_sha256=hashlib.sha256(raw).hexdigest())


def report_from_dict(data: Any) -> ScanReport:
    """The inverse of ``ScanReport.to_dict()``; raises ``_Bad`` with a JSON path on bad shapes."""
    doc = _map(data, "document")
    if doc.get("lmscan_results") != 1:
        raise _Bad("lmscan_results", "must be 1")
    scan = _map(doc.get("scan"), "scan")
    policy = _map(scan.get("policy") or {}, "scan.policy")
    packs = tuple(PackInfo(name=_str(p.get("name"), f"scan.rule_packs[{i}].name"),
                           version=_str(p.get("version"), f"scan.rule_packs[{i}].version"),
                           sha256=_str(p.get("sha256", ""), f"scan.rule_packs[{i}].sha256"))
                  for i, p in enumerate(_maps(scan.get("rule_packs") or [], "scan.rule_packs")))
    info = ScanInfo(
        id=_str(scan.get("id"), "scan.id"), started_at=_str(scan.get("started_at", ""), "scan.started_at"),
        finished_at=_str(scan.get("finished_at", ""), "scan.finished_at"),
        tool_version=_str(scan.get("tool_version", ""), "scan.tool_version"),
        policy=PolicyInfo(path=_opt_str(policy.get("path"), "scan.policy.path"),
                          sha256=_str(policy.get("sha256", ""), "scan.policy.sha256"),
                          default=bool(policy.get("default", False))),
        rule_packs=packs,
        fail_on=_enum(Severity, scan.get("fail_on", "low"), "scan.fail_on"),
    )
    clusters = tuple(
        ClusterInfo(name=_str(c.get("name"), f"clusters[{i}].name"), os=_str(c.get("os") or "", f"clusters[{i}].os"),
                    nodes=tuple(NodeInfo(name=_str(n.get("name"), f"clusters[{i}].nodes[{j}].name"),
                                         collected=bool(n.get("collected")),
                                         error=_opt_str(n.get("error"), f"clusters[{i}].nodes[{j}].error"),
                                         collected_at=_opt_str(n.get("collected_at"),
                                                               f"clusters[{i}].nodes[{j}].collected_at"))
                                for j, n in enumerate(_maps(c.get("nodes") or [], f"clusters[{i}].nodes"))))
        for i, c in enumerate(_maps(doc.get("clusters") or [], "clusters")))
    extra_result = _extra_fields(Result)
    results = tuple(_result(r, f"results[{i}]", extra_result)
                    for i, r in enumerate(_maps(doc.get("results") or [], "results")))
    rules = {}
    for rule_id, r in _map(doc.get("rules") or {}, "rules").items():
        where = f"rules.{rule_id}"
        r = _map(r, where)
        rules[str(rule_id)] = RuleInfo(id=str(rule_id), title=_str(r.get("title", ""), f"{where}.title"),
                                       severity=_enum(Severity, r.get("severity", "info"), f"{where}.severity"),
                                       rationale=_str(r.get("rationale", ""), f"{where}.rationale"),
                                       references=tuple(str(x) for x in r.get("references") or ()))
    extra = {k: doc[k] for k in _extra_fields(ScanReport) if k in doc}
    if "changes" in extra:
        extra["changes"] = _changes(_map(extra["changes"], "changes"))
    if "origins" in extra:
        extra["origins"] = tuple(ClusterOrigin(cluster=_str(o.get("cluster"), f"origins[{i}].cluster"),
                                               scan_id=_str(o.get("scan_id"), f"origins[{i}].scan_id"),
                                               scan_time=_str(o.get("scan_time"), f"origins[{i}].scan_time"),
                                               scanner_host=_str(o.get("scanner_host"), f"origins[{i}].scanner_host"),
                                               stale=bool(o.get("stale")))
                                 for i, o in enumerate(_maps(extra["origins"], "origins")))
    return ScanReport(scan=info, clusters=clusters, results=results, rules=rules, **extra)


def _actions(items: Any, where: str) -> tuple[Any, ...]:
    """Remediation actions, checked field by field (``lmscan remediate`` runs what they say)."""
    from scanner.actions import ActionError, from_dict
    if not isinstance(items, list):
        raise _Bad(where, "must be a list")
    try:
        return tuple(from_dict(a, f"{where}[{i}]") for i, a in enumerate(items))
    except ActionError as exc:
        raise _Bad(exc.where, exc.problem) from None


def _result(r: Mapping[str, Any], where: str, extra_fields: frozenset[str]) -> Result:
    t = _map(r.get("target"), f"{where}.target")
    evidence = r.get("evidence") or {}
    extra = {k: r[k] for k in extra_fields if k in r}
    if extra.get("change") is not None:
        extra["change"] = _enum(Change, extra["change"], f"{where}.change")
    if "actions" in extra:
        extra["actions"] = _actions(extra["actions"], f"{where}.actions")
    return Result(
        id=_str(r.get("id"), f"{where}.id"), rule=_str(r.get("rule"), f"{where}.rule"),
        title=_str(r.get("title", ""), f"{where}.title"),
        severity=_enum(Severity, r.get("severity"), f"{where}.severity"),
        status=_enum(Status, r.get("status"), f"{where}.status"),
        cluster=_str(r.get("cluster"), f"{where}.cluster"),
        target=_target(t, f"{where}.target"),
        message=_str(r.get("message") or "", f"{where}.message"),
        expected=_str(r.get("expected") or "", f"{where}.expected"),
        actual=_str(r.get("actual") or "", f"{where}.actual"),
        remediation=_str(r.get("remediation") or "", f"{where}.remediation"),
        evidence=_map(evidence, f"{where}.evidence"), **extra)


_KNOWN = {"Result": frozenset({"id", "rule", "title", "severity", "status", "cluster", "target", "message",
                               "expected", "actual", "remediation", "evidence"}),
          "ScanReport": frozenset({"scan", "clusters", "results", "rules", "summary"})}


def _target(t: Mapping[str, Any], where: str) -> Target:
    return Target(kind=_str(t.get("kind"), f"{where}.kind"), name=_str(t.get("name"), f"{where}.name"),
                  id=_opt_str(t.get("id"), f"{where}.id"), node=_opt_str(t.get("node"), f"{where}.node"))


def _changes(d: Mapping[str, Any]) -> Changes:
    """The ``changes`` object of contracts §7 (history and ``--baseline``)."""
    resolved = tuple(
        ResolvedFinding(id=_str(f.get("id"), f"changes.resolved[{i}].id"),
                        rule=_str(f.get("rule"), f"changes.resolved[{i}].rule"),
                        cluster=_str(f.get("cluster"), f"changes.resolved[{i}].cluster"),
                        target=_target(_map(f.get("target"), f"changes.resolved[{i}].target"),
                                       f"changes.resolved[{i}].target"),
                        severity=_str(f.get("severity", ""), f"changes.resolved[{i}].severity"),
                        title=_str(f.get("title", ""), f"changes.resolved[{i}].title"), gone=bool(f.get("gone")))
        for i, f in enumerate(_maps(d.get("resolved") or [], "changes.resolved")))
    clusters = tuple(
        ClusterComparison(cluster=_str(c.get("cluster"), f"changes.clusters[{i}].cluster"),
                          state=_str(c.get("state"), f"changes.clusters[{i}].state"),
                          scan_id=_opt_str(c.get("scan_id"), f"changes.clusters[{i}].scan_id"),
                          scan_time=_opt_str(c.get("scan_time"), f"changes.clusters[{i}].scan_time"),
                          note=_str(c.get("note") or "", f"changes.clusters[{i}].note"))
        for i, c in enumerate(_maps(d.get("clusters") or [], "changes.clusters")))
    trend = {}
    for name, points in _map(d.get("trend") or {}, "changes.trend").items():
        if not isinstance(points, list) or not all(isinstance(p, list) and len(p) == 4 for p in points):
            raise _Bad(f"changes.trend.{name}", "expected a list of [time, fail, error, reached]")
        trend[str(name)] = tuple(TrendPoint(scan_time=str(p[0]), fail=int(p[1]), error=int(p[2]), reached=bool(p[3]))
                                 for p in points)
    counts = {str(k): int(v) for k, v in _map(d.get("counts") or {}, "changes.counts").items()}
    return Changes(source=_str(d.get("source"), "changes.source"), scan_id=_opt_str(d.get("scan_id"), "changes.scan_id"),
                   scan_time=_opt_str(d.get("scan_time"), "changes.scan_time"), counts=counts, resolved=resolved,
                   clusters=clusters, fail_on_new=bool(d.get("fail_on_new")), tolerated=int(d.get("tolerated") or 0),
                   trend=trend)


def _extra_fields(cls: type) -> frozenset[str]:
    """Public init fields a later feature added to the model (e.g. ``change``), if present."""
    return frozenset(f.name for f in dataclasses.fields(cls)
                     if f.init and not f.name.startswith("_") and f.name not in _KNOWN[cls.__name__]
                     and f.name != "results_sha256")


def _map(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _Bad(where, f"expected an object, found {type(value).__name__}")
    return value


def _maps(value: Any, where: str) -> list[Mapping[str, Any]]:
    if not isinstance(value, list):
        raise _Bad(where, f"expected a list, found {type(value).__name__}")
    return [_map(v, f"{where}[{i}]") for i, v in enumerate(value)]


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise _Bad(where, "missing" if value is None else f"expected text, found {type(value).__name__}")
    return value


def _opt_str(value: Any, where: str) -> str | None:
    return None if value is None else _str(value, where)


def _enum(cls: type[Severity] | type[Status] | type[Change], value: Any, where: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(m.value for m in cls)
        raise _Bad(where, f"{value!r} is not one of {allowed}") from None

"""Load inputs, evaluate, and assemble the one ScanReport value. No printing, no exit codes."""

from __future__ import annotations

import datetime as _dt
import uuid
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from scanner import __version__
from scanner.conditions import classes_named
from scanner.engine import evaluate
from scanner.errors import InputError
from scanner.loader import Rule, RulePack, all_rules, builtin_pack, load_rule_paths, policy_rules_pack, rules_from_list
from scanner.model import ClusterInfo, NodeInfo, PolicyInfo, Result, RuleInfo, ScanInfo, ScanReport, Severity, Status
from scanner.normalize import Cluster, ClusterGrouper
from scanner.policy import Policy, check_classes, load_policy
from scanner.snapshot import read_snapshot_file, snapshot_files

#: One cluster's summary and its results, in rule then target order.
Part = tuple[ClusterInfo, list[Result]]


@dataclass(frozen=True)
class RuleSet:
    """Everything that decides verdicts: the policy and the rules it enables."""

    policy: Policy
    packs: tuple[RulePack, ...]
    rules: tuple[Rule, ...]


def load_ruleset(policy_path: Path | None, rule_paths: Sequence[Path] = ()) -> RuleSet:
    """Load the policy, the built-in pack, extra packs and the policy's own rules; validate overrides."""
    policy = load_policy(policy_path)
    packs = [builtin_pack(), *load_rule_paths(list(rule_paths))]
    if policy.required:
        packs.insert(1, policy_rules_pack())
    doc = policy.doc
    # The policy's own rules, from the text already read (never a second read of the file).
    extra = rules_from_list(doc, (doc.data or {}).get("rules"), ("rules",), "policy", doc.text) if policy_path else []
    rules = all_rules(packs, extra)
    check_classes(policy, set().union(*(classes_named(c) for r in rules for c in (r.select, r.skip_when, r.expect))))
    known = {r.id for r in rules}
    for rid in policy.overrides:
        if rid not in known:
            close = [k for k in known if k.casefold() == rid.casefold()]
            hint = f" (ids are case-sensitive: did you mean {close[0]}?)" if close else \
                f" (known: {', '.join(sorted(known))})"
            raise InputError(doc.source, f"overrides.{rid}: unknown rule id{hint}", str(doc.line(("overrides", rid))))
    for w in policy.waivers:
        if w.rule not in known:
            raise InputError(doc.source, f"waivers: unknown rule id {w.rule!r}", str(w.line))
    return RuleSet(policy=policy, packs=tuple(packs), rules=tuple(rules))


def evaluate_clusters(ruleset: RuleSet, clusters: Iterable[Cluster], today: _dt.date) -> list[Part]:
    """Each cluster with its results (clusters are independent: any split of them gives the same)."""
    return list(evaluate_each(ruleset, clusters, today))


def evaluate_each(ruleset: RuleSet, clusters: Iterable[Cluster], today: _dt.date) -> Iterator[Part]:
    """:func:`evaluate_clusters`, one cluster at a time."""
    for c in clusters:
        yield (ClusterInfo(name=c.name, os=c.os,
                           nodes=tuple(NodeInfo(name=n.name, collected=n.collected, error=n.error,
                                                collected_at=n.collected_at) for n in c.nodes)),
               evaluate(ruleset.rules, [c], ruleset.policy, today=today))


def drain(clusters: list[Cluster]) -> Iterator[Cluster]:
    """Hand out the clusters of a list the caller no longer needs, letting go of each after it.

    Evaluated so, a scan holds the snapshots' data of the clusters still to come and the results
    of those done, never both in full (the peak is the larger of the two, not their sum).
    """
    clusters.reverse()
    while clusters:
        yield clusters.pop()


def assemble(ruleset: RuleSet, parts: Sequence[Part], fail_on: str = "low", started: _dt.datetime | None = None,
             scan_id: str | None = None) -> ScanReport:
    """Wrap evaluated clusters and everything the renderers need in one value."""
    started = started or _dt.datetime.now(_dt.timezone.utc)
    finished = _dt.datetime.now(_dt.timezone.utc)
    policy = ruleset.policy
    scan = ScanInfo(
        id=scan_id or str(uuid.uuid4()),
        started_at=_iso(started), finished_at=_iso(finished), tool_version=__version__,
        policy=PolicyInfo(path=policy.path, sha256=policy.sha256, default=policy.default),
        rule_packs=tuple(p.info() for p in ruleset.packs),
        fail_on=Severity(fail_on),
    )
    rules = {r.id: RuleInfo(id=r.id, title=r.title, severity=Severity(policy.overrides.get(r.id, {}).get(
        "severity", r.severity.value)), rationale=r.rationale, references=r.references) for r in ruleset.rules}
    return ScanReport(scan=scan, clusters=tuple(info for info, _ in parts),
                      results=tuple(r for _, results in parts for r in results), rules=rules)


def scan_clusters(ruleset: RuleSet, clusters: Sequence[Cluster], fail_on: str = "low",
                  started: _dt.datetime | None = None, today: _dt.date | None = None,
                  scan_id: str | None = None) -> ScanReport:
    """Evaluate and wrap everything the renderers need in one value."""
    started = started or _dt.datetime.now(_dt.timezone.utc)
    parts = evaluate_clusters(ruleset, clusters, today or started.date())
    return assemble(ruleset, parts, fail_on=fail_on, started=started, scan_id=scan_id)


def scan_paths(ruleset: RuleSet, paths: Sequence[Path], fail_on: str = "low",
               started: _dt.datetime | None = None, today: _dt.date | None = None,
               scan_id: str | None = None) -> ScanReport:
    """Snapshot files and folders -> report, on two cores when the fleet is large (scanner.parallel)."""
    from scanner import parallel

    started = started or _dt.datetime.now(_dt.timezone.utc)
    today = today or started.date()
    parallel.mode()                 # a bad LMSCAN_PROCESSES is bad input whatever the size of the scan
    files = snapshot_files([Path(p) for p in paths])
    parts: list[Part] | None = None
    if parallel.second_process(len(files) >= parallel.MIN_FILES):
        try:
            parts = parallel.read_and_evaluate(ruleset, files, today)
        except parallel.ChildFailed:
            parts = None        # the child's share could not be had: one process does it all, as below
    if parts is None:
        parts = evaluate_clusters(ruleset, drain(read_clusters(files)), today)
    return assemble(ruleset, parts, fail_on=fail_on, started=started, scan_id=scan_id)


def run_scan(snapshot_paths: list[Path], policy_path: Path | None = None, rule_paths: Sequence[Path] = (),
             fail_on: str = "low") -> ScanReport:
    """The offline pipeline: snapshot files -> report. Raises InputError on any bad input."""
    started = _dt.datetime.now(_dt.timezone.utc)
    ruleset = load_ruleset(policy_path, rule_paths)
    return scan_paths(ruleset, snapshot_paths, fail_on=fail_on, started=started)


def read_clusters(paths: Sequence[Path]) -> list[Cluster]:
    """Read snapshot files one at a time, reducing each before the next is read."""
    grouper = ClusterGrouper()
    for path in snapshot_files(list(paths)):
        grouper.add(read_snapshot_file(path))
    return grouper.clusters()


def _iso(moment: _dt.datetime) -> str:
    return moment.astimezone(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def waiver_notes(report: ScanReport, policy: Policy, today: _dt.date, soon_days: int = 14) -> list[str]:
    """Waivers that matched no finding (stale), expired, or about to expire: worth a warning."""
    notes = []
    where = policy.path or "policy"
    for w in policy.waivers:
        hits = [r for r in report.results if r.status in (Status.FAIL, Status.WAIVED)
                and w.matches(r.rule, r.cluster, r.target.name, r.target.id)]
        if not hits:
            notes.append(f"{where}:{w.line}: waiver for {w.rule} matched no finding; remove it if the finding is fixed")
        elif w.expired(today):
            notes.append(f"{where}:{w.line}: waiver for {w.rule} expired on {w.expires}; "
                         f"its {len(hits)} finding(s) fail again")
        elif w.expires is not None and (w.expires - today).days <= soon_days:
            notes.append(f"{where}:{w.line}: waiver for {w.rule} ({len(hits)} finding(s)) expires on {w.expires}")
    return notes

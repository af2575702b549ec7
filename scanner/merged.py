"""The merged view across scanners: the latest run of every cluster in the history, as one report."""

from __future__ import annotations

import uuid

from scanner.history import HistoryStore
from scanner.model import ClusterInfo, ClusterOrigin, Result, RuleInfo, ScanInfo, ScanReport
from scanner.resultsfile import parse_results


def merged_report(store: HistoryStore, since: str | None, stale_before: str) -> ScanReport:
    """One report holding, for each cluster, its part of the latest complete run that covered it.

    Each cluster carries where it comes from (scan, time, scanner host); one whose latest scan
    started before ``stale_before`` is flagged stale. The merged scan's id is new; its time span
    runs from the oldest to the newest run used; policy and rule packs are those of the newest.
    """
    latest = store.latest_per_cluster(since=since)
    docs: dict[str, ScanReport] = {}
    for item in latest:
        if item.scan_id not in docs:
            docs[item.scan_id] = parse_results(store.document(item.scan_id), f"history scan {item.scan_id}")
    clusters: list[ClusterInfo] = []
    results: list[Result] = []
    origins: list[ClusterOrigin] = []
    rules: dict[str, RuleInfo] = {}
    for item in latest:
        run = docs[item.scan_id]
        key = item.cluster.casefold()
        clusters.extend(c for c in run.clusters if c.name.casefold() == key)
        results.extend(r for r in run.results if r.cluster.casefold() == key)
        for rid, info in run.rules.items():
            rules.setdefault(rid, info)
        origins.append(ClusterOrigin(cluster=item.cluster, scan_id=item.scan_id, scan_time=item.started_at,
                                     scanner_host=item.scanner_host, stale=item.started_at < stale_before))
    if docs:
        newest = max(docs.values(), key=lambda r: r.scan.started_at).scan
        oldest = min(r.scan.started_at for r in docs.values())
        scan = ScanInfo(id=f"merged-{uuid.uuid4()}", started_at=oldest, finished_at=newest.finished_at,
                        tool_version=newest.tool_version, policy=newest.policy, rule_packs=newest.rule_packs,
                        fail_on=newest.fail_on)
    else:
        from scanner import __version__
        from scanner.model import PolicyInfo
        stamp = stale_before
        scan = ScanInfo(id=f"merged-{uuid.uuid4()}", started_at=stamp, finished_at=stamp, tool_version=__version__,
                        policy=PolicyInfo(path=None, sha256="", default=False), rule_packs=())
    return ScanReport(scan=scan, clusters=tuple(clusters), results=tuple(results), rules=rules,
                      origins=tuple(origins))

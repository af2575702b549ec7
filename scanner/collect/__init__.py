"""Live collection: inventory -> discovery -> one collector run per node -> snapshots.

Heavy imports (pywinrm through the transport) happen inside the functions, so that
``scanner.collect.script`` (``lmscan collector-script``) stays light.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from scanner.collect.fleet import NodeOutcome
    from scanner.collect.inventory import Inventory
    from scanner.collect.progress import Progress
    from scanner.collect.transport import Endpoint, RunOutput
    from scanner.snapshot import Snapshot

__all__ = ["collect_inventory", "safe_file_name", "save_snapshots"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_WINDOWS_RESERVED = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(1, 10)] + [f"lpt{i}" for i in range(1, 10)]
)


def safe_file_name(name: str) -> str:
    """``name`` as a file name that is safe on Linux and Windows (no separators, no dot files)."""
    safe = _UNSAFE.sub("_", name.strip()).strip("._") or "_"
    if safe.split(".", 1)[0].casefold() in _WINDOWS_RESERVED:
        safe = "_" + safe
    return safe[:120]


def save_snapshots(outcomes: list[NodeOutcome], save_dir: Path) -> list[Path]:
    """Write every collected snapshot as ``save_dir/<cluster>/<node>.json``, each atomically."""
    from scanner.snapshot import write_snapshot

    written: list[Path] = []
    taken: set[str] = set()
    for outcome in outcomes:
        if outcome.snapshot is None:
            continue
        base = Path(safe_file_name(outcome.cluster)) / safe_file_name(outcome.node)
        candidate, n = str(base), 1
        while candidate.casefold() in taken:  # two names that became the same file name
            n += 1
            candidate = f"{base}-{n}"
        taken.add(candidate.casefold())
        path = Path(save_dir) / f"{candidate}.json"
        write_snapshot(path, outcome.snapshot.document)
        written.append(path)
    return written


def collect_inventory(
    inventory: Inventory,
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    run: Callable[[Endpoint, str], RunOutput] | None = None,
    save_dir: Path | None = None,
) -> list[NodeOutcome]:
    """Collect every node of the inventory; one outcome per node (or per failed discovery).

    Discovery runs first, then all nodes of all clusters go through one worker pool. Outcomes
    come back in inventory order, a failed discovery in its cluster's place. With ``save_dir``
    each collected snapshot is also written there.
    """
    from scanner.collect.discover import discover_all
    from scanner.collect.fleet import NodeJob, NodeOutcome, collect_nodes
    from scanner.collect.output import parse_output
    from scanner.collect.script import collector_script
    from scanner.collect.transport import run_powershell, scrubber

    runner = run or run_powershell
    discovered = {r.cluster: r for r in discover_all(inventory.discoveries(), runner, workers)}
    jobs: list[NodeJob] = []
    for plan in inventory.clusters:
        if plan.discovery is None:
            jobs.extend(NodeJob(plan.name, ep) for ep in plan.nodes)
        else:
            jobs.extend(discovered[plan.name].jobs)

    def parse(job: NodeJob, output: RunOutput) -> Snapshot:
        return parse_output(job.endpoint.node, output, scrubber(job.endpoint))

    if any(r.failure is not None and r.failure.kind == "interrupted" for r in discovered.values()):
        # Ctrl-C during discovery: start nothing new, say so for every node.
        collected = [NodeOutcome(j.cluster, j.endpoint.node, None, f"{j.endpoint.node}: interrupted", 0.0, 0,
                                 "interrupted") for j in jobs]
    elif jobs:
        collected = collect_nodes(jobs, collector_script(method="winrm"), parse, workers=workers,
                                  progress=progress, run=runner)
    else:
        collected = []
    by_cluster: dict[str, list[NodeOutcome]] = {}
    for outcome in collected:
        by_cluster.setdefault(outcome.cluster, []).append(outcome)
    outcomes: list[NodeOutcome] = []
    for plan in inventory.clusters:
        result = discovered.get(plan.name)
        if result is not None and result.failure is not None:
            outcomes.append(result.failure)
        if result is not None:
            outcomes.extend(result.refused)
        outcomes.extend(by_cluster.pop(plan.name, []))
    for rest in by_cluster.values():  # not expected: a cluster the inventory does not name
        outcomes.extend(rest)
    if save_dir is not None:
        save_snapshots(outcomes, save_dir)
    return outcomes

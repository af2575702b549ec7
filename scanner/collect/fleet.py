"""Collect many nodes at once through one bounded worker pool; every node gets an outcome."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from scanner.collect.progress import Progress
from scanner.collect.transport import Endpoint, RunOutput, run_powershell
from scanner.snapshot import Snapshot

DEFAULT_WORKERS = 32


@dataclass(frozen=True)
class NodeJob:
    """One node to collect, and the cluster the inventory puts it in."""

    cluster: str
    endpoint: Endpoint


@dataclass(frozen=True)
class NodeOutcome:
    """What became of one job: a snapshot, or a one-line error (exactly one of them is set)."""

    cluster: str
    node: str
    snapshot: Snapshot | None
    error: str | None
    elapsed: float
    requests: int


def collect_nodes(
    jobs: Sequence[NodeJob],
    script: str,
    parse: Callable[[NodeJob, RunOutput], Snapshot],
    workers: int | None = None,
    progress: Progress | None = None,
    run: Callable[[Endpoint, str], RunOutput] = run_powershell,
) -> list[NodeOutcome]:
    """Run ``script`` on every job's endpoint in parallel; outcomes come back in job order."""
    raise NotImplementedError("fleet under construction")

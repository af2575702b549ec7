"""Collect many nodes at once through one bounded worker pool; every node gets an outcome.

One ``ThreadPoolExecutor`` serves all nodes of all clusters; each worker thread builds its own
pywinrm ``Protocol`` per node (inside :func:`run_powershell`), so no session state is shared.
Nothing a single node does stops the others: every exception becomes that node's error line.
Ctrl-C stops cleanly: nothing new starts, runs in flight are told to stop (they send Signal and
Delete within about a second), and after a short grace the function returns with the
unfinished nodes marked ``interrupted``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from scanner.collect.progress import Progress
from scanner.collect.transport import (
    Cancellation,
    Endpoint,
    NodeError,
    RunOutput,
    redact,
    run_powershell,
)
from scanner.errors import ScannerError
from scanner.snapshot import Snapshot

#: Measured (benchmarks/bench_collect.py, 2,000 nodes answering after 300 ms, on 2 cores): 64
#: workers took 16.2 s idle and 17.8 s with two CPU-bound processes beside the scan; 32 took
#: 24.5 s and 27.2 s, 128 took 17.4 s and 22.4 s (past 64 the scan host's CPU, not the nodes, is
#: what holds it back).
DEFAULT_WORKERS = 64
#: How long running nodes get to wind down after Ctrl-C before we stop waiting for them.
INTERRUPT_GRACE = 3.0
#: How often the driving thread wakes to refresh progress (and to notice Ctrl-C).
TICK = 0.25


@dataclass(frozen=True)
class NodeJob:
    """One node to collect, and the cluster the inventory puts it in."""

    cluster: str
    endpoint: Endpoint


@dataclass(frozen=True)
class NodeOutcome:
    """What became of one job: a snapshot, or a one-line error (exactly one of them is set).

    ``kind`` is the :class:`NodeError` kind for failures (``"unexpected"`` for anything else).
    """

    cluster: str
    node: str
    snapshot: Snapshot | None
    error: str | None
    elapsed: float
    requests: int
    kind: str | None = None


def collect_nodes(
    jobs: Sequence[NodeJob],
    script: str,
    parse: Callable[[NodeJob, RunOutput], Snapshot],
    workers: int | None = None,
    progress: Progress | None = None,
    run: Callable[[Endpoint, str], RunOutput] = run_powershell,
    *,
    grace: float = INTERRUPT_GRACE,
) -> list[NodeOutcome]:
    """Run ``script`` on every job's endpoint in parallel; outcomes come back in job order.

    ``parse`` turns a run's output into a snapshot (or raises :class:`NodeError`). Returns one
    outcome per job even after Ctrl-C; never raises for a node's failure.
    """
    jobs = list(jobs)
    if not jobs:
        return []
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be at least 1, not {workers}")
    cancel = Cancellation()
    results: dict[int, NodeOutcome] = {}
    futures: dict[Future[NodeOutcome], int] = {}
    pending: set[Future[NodeOutcome]] = set()
    interrupted = False
    if progress is not None:
        progress.start(len(jobs))
    pool = ThreadPoolExecutor(max_workers=min(workers or DEFAULT_WORKERS, len(jobs)),
                              thread_name_prefix="lmscan-collect")

    def record(done: set[Future[NodeOutcome]]) -> None:
        for fut in done:
            if fut.cancelled():
                continue
            outcome = fut.result()  # _collect_one never raises
            results[futures[fut]] = outcome
            if progress is not None:
                progress.finished(outcome.cluster, outcome.node, outcome.error, outcome.elapsed)

    try:
        for index, job in enumerate(jobs):
            fut = pool.submit(_collect_one, job, script, parse, run, cancel, progress)
            futures[fut] = index
            pending.add(fut)
        while pending:
            done, pending = wait(pending, timeout=TICK, return_when=FIRST_COMPLETED)
            record(done)
            if progress is not None:
                progress.tick()
    except KeyboardInterrupt:
        interrupted = True
        cancel.cancel()
        for fut in futures:
            fut.cancel()
        pending = {f for f in pending if not f.cancelled()}
        until = time.monotonic() + grace
        try:
            while pending and time.monotonic() < until:
                done, pending = wait(pending, timeout=min(TICK, max(0.0, until - time.monotonic())),
                                     return_when=FIRST_COMPLETED)
                record(done)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: stop waiting at once
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    outcomes = [results.get(i) or NodeOutcome(job.cluster, job.endpoint.node, None,
                                              f"{job.endpoint.node}: interrupted", 0.0, 0, "interrupted")
                for i, job in enumerate(jobs)]
    if progress is not None:
        progress.close(interrupted)
    return outcomes


def _collect_one(job: NodeJob, script: str, parse: Callable[[NodeJob, RunOutput], Snapshot],
                 run: Callable[[Endpoint, str], RunOutput], cancel: Cancellation,
                 progress: Progress | None) -> NodeOutcome:
    """One node, start to finish, in a worker thread. Never raises."""
    node = job.endpoint.node
    began = time.monotonic()
    requests = 0
    try:
        if progress is not None:
            progress.started(job.cluster, node)
        if cancel.cancelled:
            raise NodeError(node, "interrupted", "interrupted")
        with cancel.applies():
            out = run(job.endpoint, script)
        requests = out.requests
        snapshot = parse(job, out)
        return NodeOutcome(job.cluster, node, snapshot, None, time.monotonic() - began, requests)
    except NodeError as err:
        error, kind = str(err), err.kind
        requests = requests or err.requests
    except ScannerError as err:
        text = str(err)
        error, kind = (text if text.startswith(f"{node}:") else f"{node}: {text}"), "output"
    except Exception as err:  # noqa: BLE001  (a bug or surprise in one node must not stop the others)
        detail = " ".join(redact(str(err), job.endpoint).split())[:200]   # redact, then cut
        error, kind = f"{node}: unexpected {type(err).__name__}" + (f": {detail}" if detail else ""), "unexpected"
    return NodeOutcome(job.cluster, node, None, redact(error, job.endpoint), time.monotonic() - began,
                       requests, kind)

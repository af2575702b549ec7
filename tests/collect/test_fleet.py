"""The worker pool and progress output: every node gets an outcome, Ctrl-C never hangs."""

from __future__ import annotations

import io
import os
import signal
import threading
import time
from typing import Any

import pytest

from scanner.collect.fleet import DEFAULT_WORKERS, NodeJob, NodeOutcome, collect_nodes
from scanner.collect.progress import Progress
from scanner.collect.transport import Endpoint, NodeError, RunOutput
from scanner.errors import InputError
from scanner.snapshot import Snapshot, parse_snapshot

from .conftest import SECRET, snapshot_json
from .fakewsman import CommandRequest, Fault, Hang, NeverFinishes, Reply


def job(node: str, cluster: str = "HVCLU01", url: str = "http://127.0.0.1:1/wsman", **kw: Any) -> NodeJob:
    kw.setdefault("timeout", 3.0)
    return NodeJob(cluster, Endpoint(node, url, "basic", "u", SECRET, allow_unencrypted=True, **kw))


def parse(j: NodeJob, out: RunOutput) -> Snapshot:
    if out.exit_code != 0:
        raise NodeError(j.endpoint.node, "output", f"collector exited with code {out.exit_code}")
    return parse_snapshot(out.stdout, j.endpoint.node)


def ok_output(node: str) -> RunOutput:
    return RunOutput(snapshot_json(node).encode(), b"", 0, 6, 0.01)


def test_every_failure_becomes_that_nodes_line_and_the_rest_still_run() -> None:
    def run(ep: Endpoint, script: str) -> RunOutput:
        behaviour = {
            "HV02": lambda: (_ for _ in ()).throw(NodeError("HV02", "auth", "authentication failed (ntlm)", 0.4)),
            "HV03": lambda: (_ for _ in ()).throw(RuntimeError(f"boom with {SECRET} inside")),
            "HV04": lambda: RunOutput(b"not json", b"", 0, 6, 0.01),
            "HV05": lambda: RunOutput(b"", b"", 1, 6, 0.01),
            "HV06": lambda: (_ for _ in ()).throw(KeyError("odd")),
        }
        return behaviour.get(ep.node, lambda: ok_output(ep.node))()

    jobs = [job(f"HV0{i}", "HVCLU01" if i < 4 else "HVCLU02") for i in range(1, 8)]
    outcomes = collect_nodes(jobs, "script", parse, workers=3, run=run)
    assert [o.node for o in outcomes] == [j.endpoint.node for j in jobs]
    by = {o.node: o for o in outcomes}
    assert by["HV01"].snapshot is not None and by["HV01"].error is None and by["HV01"].requests == 6
    assert by["HV07"].snapshot is not None and by["HV07"].cluster == "HVCLU02"
    assert by["HV02"].error == "HV02: authentication failed (ntlm) after 0.4 s" and by["HV02"].kind == "auth"
    assert by["HV03"].error == "HV03: unexpected RuntimeError: boom with *** inside"
    assert by["HV03"].kind == "unexpected"
    assert by["HV04"].error == "HV04:line 1 column 1: not JSON: Expecting value" and by["HV04"].kind == "output"
    assert by["HV05"].error == "HV05: collector exited with code 1"
    assert by["HV06"].error == "HV06: unexpected KeyError: 'odd'"
    for o in outcomes:
        assert (o.snapshot is None) == (o.error is not None)
        assert o.error is None or ("\n" not in o.error and SECRET not in o.error)


def test_parse_may_raise_input_errors_too() -> None:
    def bad_parse(j: NodeJob, out: RunOutput) -> Snapshot:
        raise InputError(j.endpoint.node, "truncated JSON", "line 3 column 1")

    [outcome] = collect_nodes([job("HV01")], "s", bad_parse, run=lambda ep, s: ok_output(ep.node))
    assert outcome.error == "HV01:line 3 column 1: truncated JSON"  # InputError already names the node
    assert outcome.kind == "output"


def concurrency_probe(delay: float) -> tuple[Any, list[int]]:
    lock = threading.Lock()
    state = {"now": 0}
    peaks: list[int] = []

    def run(ep: Endpoint, script: str) -> RunOutput:
        with lock:
            state["now"] += 1
            peaks.append(state["now"])
        time.sleep(delay)
        with lock:
            state["now"] -= 1
        return ok_output(ep.node)

    return run, peaks


def test_pool_is_bounded_by_workers() -> None:
    run, peaks = concurrency_probe(0.05)
    outcomes = collect_nodes([job(f"N{i}") for i in range(20)], "s", parse, workers=4, run=run)
    assert all(o.snapshot for o in outcomes)
    assert max(peaks) == 4


def test_default_worker_count() -> None:
    run, peaks = concurrency_probe(0.3)
    began = time.monotonic()
    collect_nodes([job(f"N{i}") for i in range(DEFAULT_WORKERS + 8)], "s", parse, run=run)
    assert max(peaks) == DEFAULT_WORKERS == 64
    assert time.monotonic() - began < 2 * 0.3 + 0.5


def test_no_jobs() -> None:
    assert collect_nodes([], "s", parse) == []


def interrupt_after(seconds: float) -> threading.Timer:
    """A real SIGINT to this process, as Ctrl-C sends; Python raises KeyboardInterrupt in the main thread."""
    timer = threading.Timer(seconds, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    return timer


def test_ctrl_c_returns_outcomes_for_everything_without_hanging() -> None:
    release = threading.Event()
    started: list[str] = []

    def run(ep: Endpoint, script: str) -> RunOutput:
        started.append(ep.node)
        if ep.node in ("N0", "N1"):
            return ok_output(ep.node)
        release.wait(30)  # ignores cancellation on purpose: the pool must not wait for it
        return ok_output(ep.node)

    jobs = [job(f"N{i}") for i in range(10)]
    interrupt_after(0.4)
    began = time.monotonic()
    try:
        outcomes = collect_nodes(jobs, "s", parse, workers=3, run=run, grace=0.5)
    finally:
        release.set()
    took = time.monotonic() - began
    assert 0.4 <= took < 1.6
    assert [o.node for o in outcomes] == [f"N{i}" for i in range(10)]
    assert outcomes[0].snapshot is not None and outcomes[1].snapshot is not None
    interrupted = [o for o in outcomes if o.kind == "interrupted"]
    assert len(interrupted) == 8
    assert all(o.error == f"{o.node}: interrupted" for o in interrupted)
    assert len(started) <= 5  # nothing new started after Ctrl-C


def test_ctrl_c_with_the_real_transport_closes_every_shell(wsman: Any) -> None:
    srv = wsman(NeverFinishes())
    jobs = [job(f"HV{i}", url=srv.url_for(f"HV{i}/wsman"), timeout=60) for i in range(6)]
    interrupt_after(0.6)
    began = time.monotonic()
    outcomes = collect_nodes(jobs, "s", parse, workers=4, grace=3.0)
    assert time.monotonic() - began < 3.0
    assert all(o.kind == "interrupted" for o in outcomes)
    deadline = time.monotonic() + 2
    while srv.open_shells() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.open_shells() == 0
    assert len(srv.commands) == 4  # the two queued nodes never started


def test_real_transport_fleet_with_mixed_failures(wsman: Any) -> None:
    def answer(req: CommandRequest) -> Reply:
        node = req.path.strip("/").split("/")[0]
        if node == "HV05":
            return Reply(stdout='{"lmscan_snapshot": 1, "node": "HV05", "sect', exit_code=0)
        return Reply(stdout=snapshot_json(node), delay=0.1)

    srv = wsman(answer)
    srv.inject("Create", Hang(10), path="/HV03/wsman")
    srv.inject("Receive", Fault("Access is denied.", "w:AccessDenied"), path="/HV04/wsman")
    jobs = [job(f"HV0{i}", url=srv.url_for(f"HV0{i}/wsman"), timeout=1.5) for i in range(1, 7)]
    stream = io.StringIO()
    outcomes = collect_nodes(jobs, "s", parse, workers=8, progress=Progress(stream, isatty=False))
    by = {o.node: o for o in outcomes}
    assert {n for n, o in by.items() if o.snapshot} == {"HV01", "HV02", "HV06"}
    assert by["HV03"].error == "HV03: no answer within 1.5 s"
    assert by["HV04"].kind == "fault" and "WS-Man fault on Receive" in (by["HV04"].error or "")
    assert by["HV05"].kind == "output"
    assert by["HV01"].requests == 4  # Create, Command, Receive, Delete
    log = stream.getvalue()
    assert "collect: HV03 (HVCLU01) FAILED after" in log and ": no answer within 1.5 s" in log
    assert "collect: HV01 (HVCLU01) collected in" in log
    assert SECRET not in log


# --- progress output ------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_progress_log_lines_and_periodic_summary() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(out, isatty=False, summary_every=10, clock=clock)
    p.start(3)
    p.started("C1", "HV01")
    p.started("C1", "HV02")
    clock.now += 1
    p.started("C1", "HV03")
    clock.now += 2.5
    p.finished("C1", "HV01", None, 3.5)
    p.tick()  # not due yet
    clock.now += 10
    p.tick()
    p.finished("C1", "HV02", "HV02: authentication failed (ntlm) after 0.4 s", 0.4)
    p.close()
    lines = out.getvalue().splitlines()
    assert lines == [
        "collect: 3 nodes to collect",
        "collect: HV01 (C1) collected in 3.5 s",
        "collect: 1/3 done, 0 failed, 2 running; slowest: HV02 13.5 s, HV03 12.5 s",
        "collect: HV02 (C1) FAILED after 0.4 s: authentication failed (ntlm) after 0.4 s",
        "collect: collected 1 of 3 nodes in 13.5 s, 1 failed",
    ]


def test_progress_on_a_terminal_rewrites_one_line_and_names_the_slowest() -> None:
    out, clock = io.StringIO(), Clock()
    p = Progress(out, isatty=True, clock=clock)
    p.start(4)
    for i, node in enumerate(["HV01", "HV02", "HV03", "HV04"]):
        clock.now += 1
        p.started("C", node)
    clock.now += 1
    p.tick()
    p.finished("C", "HV01", "HV01: no answer within 5 s", 5.0)
    p.close(interrupted=True)
    text = out.getvalue()
    assert "\r\x1b[2Kcollect: 0/4 done, 0 failed, 4 running; slowest: HV01 4.0 s, HV02 3.0 s, HV03 2.0 s" in text
    assert "\r\x1b[2Kcollect: HV01 (C) FAILED after 5.0 s: no answer within 5 s\n" in text
    assert "collect: 1/4 done, 1 failed, 3 running; slowest: HV02 3.0 s" in text
    assert text.endswith("collect: interrupted: collected 0 of 4 nodes in 5.0 s, 1 failed, 3 not finished\n")
    assert "collected in" not in text  # successes only counted on a terminal


def test_progress_survives_a_closed_stream() -> None:
    out = io.StringIO()
    p = Progress(out, isatty=False)
    out.close()
    p.start(1)
    p.finished("C", "HV01", None, 0.1)
    p.close()


def test_outcome_kind_defaults_to_none() -> None:
    o = NodeOutcome("C", "HV01", None, "HV01: x", 0.0, 0)
    assert o.kind is None


@pytest.mark.parametrize("workers", [0, -1])
def test_bad_worker_count(workers: int) -> None:
    with pytest.raises(ValueError):
        collect_nodes([job("HV01")], "s", parse, workers=workers)


def test_no_shell_left_open_when_the_scan_host_cpu_is_saturated() -> None:
    """Issue 11: with CPU hogs beside a 128-worker pool, every shell is still deleted, no node is lost.

    The nodes are a WS-Man endpoint in a process of its own (a real node's CPU is not the scan
    host's); three processes burn the scan host's two cores meanwhile.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe()
    server = ctx.Process(target=_serve_nodes, args=(child,), daemon=True)
    server.start()
    hogs = [ctx.Process(target=_burn, args=(30.0,), daemon=True) for _ in range(3)]
    try:
        port = parent.recv()
        for h in hogs:
            h.start()
        jobs = [job(f"HV{i:03d}", url=f"http://127.0.0.1:{port}/HV{i:03d}/wsman", timeout=5.0) for i in range(300)]
        outcomes = collect_nodes(jobs, "s", parse, workers=128)
    finally:
        for h in hogs:
            h.terminate()
        parent.send("done")
        open_shells = parent.recv() if parent.poll(10) else -1
        server.join(5)
    assert len(outcomes) == len(jobs)
    assert all((o.snapshot is None) != (o.error is None) for o in outcomes)  # collected or an error, never lost
    assert sum(1 for o in outcomes if o.snapshot is not None) >= len(jobs) // 2
    assert open_shells == 0


def _serve_nodes(conn: Any) -> None:
    from .fakewsman import FakeWSMan

    srv = FakeWSMan(lambda req: Reply(stdout=snapshot_json(req.path.strip("/").split("/")[0]), delay=0.05),
                    password=SECRET).start()
    conn.send(srv.port)
    conn.recv()
    deadline = time.monotonic() + 5   # Deletes still in flight when the pool returned
    while srv.open_shells() and time.monotonic() < deadline:
        time.sleep(0.05)
    conn.send(srv.open_shells())
    srv.stop()


def _burn(seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass

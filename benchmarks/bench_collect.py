#!/usr/bin/env python3
"""Benchmark: collect a simulated fleet over real WinRM (pywinrm) on loopback.

200 nodes that each take 300 ms to answer, plus 5 that accept the connection and never answer
(per-node timeout 5 s), all through ``collect_nodes`` with the real transport. The simulated
nodes are one loopback WS-Man server (tests/collect/fakewsman.py) with one URL path per node,
running in a separate process, so the CPU and memory figures are the scan host's alone.

    python benchmarks/bench_collect.py [--nodes 200] [--hung 5] [--delay 0.3] [--timeout 5]
                                       [--workers 32] [--hogs 0] [--script collector|tiny] [--json]

Every node is sent the real collector script (about 21 KB, as ``lmscan collect`` sends it) unless
``--script tiny``, so the request sizes are the real ones.

Target: wall time <= ((nodes / workers) * delay + timeout) * 1.2.
Not collected by pytest (no test_ prefix); run it by hand or from CI.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests" / "collect"))

PASSWORD = "bench-Secret-42"


def _node_name(i: int) -> str:
    return f"HV{i:03d}"


def serve(conn: Any, hung: list[str], delay: float) -> None:
    """Child process: one fake WS-Man endpoint for every simulated node (one URL path each)."""
    import fakewsman

    from scanner.collect.transport import build_command_line  # noqa: F401  (warm imports alike)

    snapshot_cache: dict[str, bytes] = {}

    def answer(req: fakewsman.CommandRequest) -> fakewsman.Reply:
        node = req.path.strip("/").split("/")[0]
        if node not in snapshot_cache:
            doc = {"lmscan_snapshot": 1, "node": node, "collected_at": "2026-11-26T02:00:03Z",
                   "collector": {"version": "1.0.0", "powershell": "5.1", "method": "winrm"},
                   "sections": {"Cluster": {"Name": f"HVCLU{node[-2:-1]}"},
                                "ClusterNode": [{"Name": node, "Id": "1", "State": 0}],
                                "ClusterNetwork": [{"Name": f"Net{k}", "Id": f"id-{k}", "Role": k % 4, "State": 3}
                                                   for k in range(6)]}}
            snapshot_cache[node] = json.dumps(doc).encode()
        return fakewsman.Reply(stdout=snapshot_cache[node], delay=delay)

    srv = fakewsman.FakeWSMan(answer, username="u", password=PASSWORD)
    for node in hung:
        srv.inject("Create", fakewsman.Hang(None), path=f"/{node}/wsman")
    srv.start()
    conn.send(srv.port)
    conn.recv()  # wait until the parent is done
    steps = srv.steps()
    conn.send({"requests": len(srv.log), "connections": srv.connections, "open_shells": srv.open_shells(),
               "steps": {step: steps.count(step) for step in dict.fromkeys(steps)}})
    srv.stop()


def burn() -> None:
    """A CPU-bound neighbour (ended by the parent)."""
    while True:
        pass


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--hung", type=int, default=5)
    ap.add_argument("--delay", type=float, default=0.3)
    ap.add_argument("--timeout", type=float, default=5.0)
    ap.add_argument("--workers", type=int, default=None, help="default: the pool's default (32)")
    ap.add_argument("--hogs", type=int, default=0,
                    help="CPU-bound processes to run beside the scan (a busy scan host)")
    ap.add_argument("--script", choices=("collector", "tiny"), default="collector",
                    help="what each node is sent: the real collector (default) or 'Get-Cluster'")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = ap.parse_args(argv)

    from scanner.collect.fleet import DEFAULT_WORKERS, NodeJob, collect_nodes
    from scanner.collect.script import collector_script
    from scanner.collect.transport import Endpoint, RunOutput
    from scanner.snapshot import Snapshot, parse_snapshot

    workers = args.workers or DEFAULT_WORKERS
    healthy = [_node_name(i) for i in range(args.nodes)]
    hung = [_node_name(args.nodes + i) for i in range(args.hung)]

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=serve, args=(child, hung, args.delay), daemon=True)
    proc.start()
    port = parent.recv()

    def job(node: str) -> NodeJob:
        return NodeJob(f"HVCLU{node[-2:-1]}", Endpoint(node, f"http://127.0.0.1:{port}/{node}/wsman", "basic", "u",
                                                       PASSWORD, timeout=args.timeout, allow_unencrypted=True))

    def parse(j: NodeJob, out: RunOutput) -> Snapshot:
        return parse_snapshot(out.stdout, j.endpoint.node)

    hogs = [ctx.Process(target=burn, daemon=True) for _ in range(args.hogs)]
    for h in hogs:
        h.start()

    # The hung nodes go last: the worst order, since they then start after everything else.
    jobs = [job(n) for n in healthy + hung]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu_before = time.process_time()
    began = time.perf_counter()
    script = collector_script(method="winrm") if args.script == "collector" else "Get-Cluster"
    outcomes = collect_nodes(jobs, script, parse, workers=workers)
    wall = time.perf_counter() - began
    cpu = time.process_time() - cpu_before
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    for h in hogs:
        h.terminate()
    parent.send("done")
    server = parent.recv()
    proc.join(5)

    ok = [o for o in outcomes if o.snapshot is not None]
    failed = [o for o in outcomes if o.snapshot is None]
    target = ((args.nodes / workers) * args.delay + args.timeout) * 1.2
    reqs = sorted({o.requests for o in ok})
    figures = {
        "nodes": args.nodes, "hung": args.hung, "delay_s": args.delay, "timeout_s": args.timeout,
        "workers": workers,
        "wall_s": round(wall, 2), "target_s": round(target, 2), "within_target": wall <= target,
        "collected": len(ok), "failed": len(failed),
        "failed_as_expected": sorted(o.node for o in failed) == sorted(hung),
        "failure_lines": sorted({(o.error or "").split(": ", 1)[-1] for o in failed}),
        "requests_per_healthy_node": reqs[0] if len(reqs) == 1 else reqs,
        "node_elapsed_median_s": round(statistics.median(o.elapsed for o in ok), 3) if ok else None,
        "node_elapsed_max_s": round(max(o.elapsed for o in ok), 3) if ok else None,
        "cpu_s": round(cpu, 2), "cpu_ms_per_node": round(cpu * 1000 / len(jobs), 1),
        "peak_rss_mb": round(rss_peak / 1024, 1),
        "rss_growth_kb_per_node": round((rss_peak - rss_before) / len(jobs), 1),
        "server": server,
    }
    if args.json:
        print(json.dumps(figures, indent=1))
    else:
        print(f"fleet: {args.nodes} nodes answering after {args.delay * 1000:.0f} ms + {args.hung} that never "
              f"answer (timeout {args.timeout:g} s), {workers} workers, {args.hogs} CPU hogs beside the scan")
        print(f"wall time:        {wall:.2f} s   target {target:.2f} s "
              f"(({args.nodes}/{workers}) x {args.delay:g} s + {args.timeout:g} s + 20 %)  "
              f"{'OK' if wall <= target else 'OVER TARGET'}")
        print(f"collected:        {len(ok)} ok, {len(failed)} failed "
              f"({'the hung ones' if figures['failed_as_expected'] else 'UNEXPECTED'}: "
              f"{'; '.join(figures['failure_lines'])})")
        kinds = ", ".join(f"{step} {n}" for step, n in server["steps"].items())
        print(f"HTTP requests:    {figures['requests_per_healthy_node']} per healthy node "
              f"(server saw {kinds}); {server['requests']} requests on "
              f"{server['connections']} connections, {server['open_shells']} shells left open")
        print(f"per-node time:    median {figures['node_elapsed_median_s']} s, max {figures['node_elapsed_max_s']} s")
        print(f"scan host CPU:    {cpu:.2f} s total, {figures['cpu_ms_per_node']} ms per node")
        print(f"scan host memory: peak RSS {figures['peak_rss_mb']} MB, "
              f"growth {figures['rss_growth_kb_per_node']} KB per node")
    return 0 if wall <= target and figures["failed_as_expected"] else 1


if __name__ == "__main__":
    sys.exit(main())

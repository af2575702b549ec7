"""Offline-scan benchmark: load + evaluate + render all report formats for growing fleets.

For each fleet size (clusters of 16 nodes and 10 networks, plus 2008 R2 clusters with 300 VM
resources, see ``fleet.py``) this generates the snapshots once, then measures in a fresh child
process what ``lmscan scan`` does: ``scanner.pipeline.run_scan`` (read, normalize, evaluate) and
``scanner.parallel.render_all`` of every format of ``scanner.render.FORMATS`` (the second
process is used as the CLI would use it), then each renderer alone for its share; wall time,
peak RSS of the scan process and of its helper process, and time per cluster, so that growth can
be seen to stay linear. Each size runs in its own process so its peak RSS is its own.

    python benchmarks/bench_scan.py [--sizes 50,500,2000] [--workdir DIR] [--tracemalloc]
                                    [--formats json,junit] [--own-interfaces] [--memory-limit-gb N]
                                    [--processes auto,1,2] [--hogs N]

``--processes`` measures every size once per listed ``LMSCAN_PROCESSES`` value (``auto``: as
lmscan decides; ``1``: one process, one core; ``2``: a second process whatever the load), so
they can be compared in one run; ``--hogs N`` keeps N CPU-bound processes running beside every
measurement (the decode pass too), as on a shared machine.
With ``--workdir`` the generated fleets are kept there and reused by later runs; without it they
go to a temporary directory that is removed at the end. By default every node lists every
interface of its cluster (what Get-ClusterNetworkInterface prints), about 10 MB of memory per
16-node cluster in the scanner; ``--own-interfaces`` cuts the input to a sixteenth. Each
measuring process runs under ``--memory-limit-gb`` (85 % of RAM by default) so that a fleet too
large for the machine reports "out of memory" instead of starving it. Not a pytest module.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from fleet import generate_fleet  # noqa: E402  (sibling script, not a package)

MARKER = "fleet.json"


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def ensure_fleet(root: Path, clusters: int, seed: int, own_interfaces: bool) -> tuple[Path, dict[str, Any]]:
    """Generate the fleet of this size, or reuse one a previous run left in ``root``."""
    folder = root / f"fleet-{clusters}-s{seed}{'-own' if own_interfaces else ''}"
    marker = folder / MARKER
    if marker.is_file():
        return folder, json.loads(marker.read_text(encoding="utf-8"))
    if folder.exists():
        shutil.rmtree(folder)
    started = time.perf_counter()
    stats = generate_fleet(folder / "snapshots", clusters, seed, own_interfaces)
    info = {"clusters": stats.clusters, "legacy_clusters": stats.legacy_clusters, "files": stats.files,
            "bytes": stats.bytes, "violations": stats.violations,
            "generate_s": round(time.perf_counter() - started, 2)}
    marker.write_text(json.dumps(info), encoding="utf-8")
    return folder, info


def peak_rss_mb(who: int = resource.RUSAGE_SELF) -> float:
    """Peak resident set size of this process, or of its largest ended child (ru_maxrss is KiB on Linux)."""
    peak = resource.getrusage(who).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def decode_only(folder: Path) -> dict[str, Any]:
    """The floor: read every snapshot file and decode it with orjson, nothing else (issue 11's yardstick)."""
    import orjson

    began = time.perf_counter()
    files = sorted(p for p in (folder / "snapshots").rglob("*.json") if p.is_file())
    total = 0
    for path in files:
        raw = path.read_bytes()
        total += len(raw)
        orjson.loads(raw[3:] if raw.startswith(b"\xef\xbb\xbf") else raw)
    return {"decode_s": round(time.perf_counter() - began, 3), "decode_bytes": total,
            "peak_rss_mb": round(peak_rss_mb(), 1)}


def measure(folder: Path, use_tracemalloc: bool, formats: list[str] | None = None) -> dict[str, Any]:
    """The child's work: one scan and every report, as the CLI does them, timed. Returns the figures."""
    import gc
    import tracemalloc

    from scanner.cli import GC_THRESHOLDS
    from scanner.parallel import render_all
    from scanner.pipeline import run_scan
    from scanner.render import FORMATS

    gc.set_threshold(*GC_THRESHOLDS)             # as ``lmscan`` runs
    if use_tracemalloc:
        tracemalloc.start()
    snapshots = folder / "snapshots"
    wanted = [name for name in FORMATS if formats is None or name in formats]
    t0 = time.perf_counter()
    report = run_scan([snapshots], policy_path=snapshots / "policy.yaml", rule_paths=[])
    t1 = time.perf_counter()
    sizes = {name: len(data) for name, data in render_all(report, wanted).items()}
    t2 = time.perf_counter()
    figures: dict[str, Any] = {
        "scan_s": round(t1 - t0, 3), "render_s": round(t2 - t1, 3),
        "report_bytes": sizes, "results": len(report.results), "clusters_in_report": len(report.clusters),
        "summary": report.summary, "peak_rss_mb": round(peak_rss_mb(), 1),
        "helper_peak_rss_mb": round(peak_rss_mb(resource.RUSAGE_CHILDREN), 1),
    }
    if use_tracemalloc:
        figures["tracemalloc_peak_mb"] = round(tracemalloc.get_traced_memory()[1] / 2**20, 1)
    render_s: dict[str, float] = {}     # each renderer alone, in this process: where the time goes
    for name in wanted:
        alone = dataclasses.replace(report, results_sha256=None)   # a new report: nothing cached from another
        r0 = time.perf_counter()
        FORMATS[name](alone)
        render_s[name] = round(time.perf_counter() - r0, 3)
    figures["render_each_s"] = render_s
    return figures


def run_child(folder: Path, use_tracemalloc: bool, memory_limit_gb: float,
              formats: list[str] | None, decode: bool = False, processes: str = "auto") -> dict[str, Any]:
    """Measure one fleet in a fresh interpreter, under an address-space limit."""
    env = {**os.environ, "LMSCAN_PROCESSES": processes}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--decode-only" if decode else "--measure", str(folder),
           "--memory-limit-gb", str(memory_limit_gb)]
    if formats is not None:
        cmd += ["--formats", ",".join(formats)]
    if use_tracemalloc:
        cmd.append("--tracemalloc")
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["no output"]
        return {"error": f"exit {proc.returncode}: {tail[0]}"}
    return json.loads(lines[-1])


def child_main(folder: Path, use_tracemalloc: bool, memory_limit_gb: float, formats: list[str] | None,
               decode: bool = False) -> int:
    if memory_limit_gb > 0:
        limit = int(memory_limit_gb * 2**30)
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    try:
        figures = decode_only(folder) if decode else measure(folder, use_tracemalloc, formats)
    except MemoryError:
        figures = {"error": f"out of memory (limit {memory_limit_gb:g} GiB)"}
    out(json.dumps(figures))
    return 0


def default_memory_limit_gb() -> float:
    """Leave the machine some air: 85 % of physical memory."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0.0
    return round(total * 0.85 / 2**30, 1)


def burn() -> None:
    """A CPU hog: another busy process on the machine."""
    while True:
        pass


def print_table(rows: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
    head = (f"{'clusters':>8} {'+2008R2':>7} {'files':>7} {'MB in':>7} {'procs':>5} {'decode s':>8} {'scan s':>8} "
            f"{'render s':>8} {'total s':>8} {'x decode':>8} {'ms/clu':>7} {'x first':>7} {'peak RSS MB':>11} "
            f"{'helper MB':>9} {'results':>8}")
    out(head)
    out("-" * len(head))
    first: dict[str, float] = {}
    for info, fig in rows:
        lead = (f"{info['clusters']:>8} {info['legacy_clusters']:>7} {info['files']:>7} "
                f"{info['bytes'] / 1e6:>7.1f} {fig.get('procs', ''):>5}")
        if "error" in fig:
            out(f"{lead}  {fig['error']}")
            continue
        total = fig["scan_s"] + fig["render_s"]
        per = 1000 * total / (info["clusters"] + info["legacy_clusters"])
        base = first.setdefault(fig.get("procs", ""), per)
        dec = fig.get("decode_s")
        ratio = f"{total / dec:>8.2f}" if dec else f"{'-':>8}"
        out(f"{lead} {dec if dec is not None else '-':>8} {fig['scan_s']:>8.2f} {fig['render_s']:>8.2f} "
            f"{total:>8.2f} {ratio} {per:>7.1f} {per / base:>7.2f} {fig['peak_rss_mb']:>11.0f} "
            f"{fig['helper_peak_rss_mb']:>9.0f} {fig['results']:>8}")
    out()
    out("procs: LMSCAN_PROCESSES (auto = as lmscan decides: a second process for a large fleet when a second "
        "core is idle; 1 = one process; 2 = a second process whatever the load).")
    out("decode s: a process that only reads the same files and decodes them with orjson, run just before the "
        "scan (median of three); x decode: (scan + render) / decode (issue 11's target: at most 2.5).")
    out("ms/clu: (scan + render) per cluster; x first: that figure relative to the smallest fleet of the same "
        "procs (about 1.0 all the way down means linear growth). helper MB: peak RSS of the second process.")
    for info, fig in rows:
        if "error" not in fig:
            each = ", ".join(f"{k} {v:.2f}s/{fig['report_bytes'][k] / 1e6:.1f}MB" for k, v in fig["render_each_s"].items())
            extra = f", tracemalloc peak {fig['tracemalloc_peak_mb']} MB" if "tracemalloc_peak_mb" in fig else ""
            out(f"{info['clusters']:>5} clusters, procs {fig['procs']}: each renderer alone {each}{extra}; "
                f"summary {fig['summary']}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="50,500,2000", help="comma-separated cluster counts")
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--workdir", type=Path, help="keep (and reuse) generated fleets here")
    ap.add_argument("--own-interfaces", action="store_true",
                    help="nodes list only their own interfaces (a sixteenth of the input volume)")
    ap.add_argument("--tracemalloc", action="store_true", help="also report Python's traced peak (slower)")
    ap.add_argument("--memory-limit-gb", type=float, default=default_memory_limit_gb(),
                    help="address-space limit of each measuring process; 0 for none")
    ap.add_argument("--formats", help="comma-separated report formats to render (default: all of FORMATS)")
    ap.add_argument("--processes", default="auto",
                    help="comma-separated LMSCAN_PROCESSES values to measure each size with (auto, 1, 2)")
    ap.add_argument("--hogs", type=int, default=0, help="CPU-bound processes running beside every measurement")
    ap.add_argument("--measure", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--decode-only", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    formats = [f.strip() for f in args.formats.split(",") if f.strip()] if args.formats else None
    if args.measure:
        return child_main(args.measure, args.tracemalloc, args.memory_limit_gb, formats)
    if args.decode_only:
        return child_main(args.decode_only, False, args.memory_limit_gb, None, decode=True)

    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    root = args.workdir or Path(tempfile.mkdtemp(prefix="lmscan-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    hogs = [multiprocessing.get_context("spawn").Process(target=burn, daemon=True) for _ in range(args.hogs)]
    try:
        fleets = [ensure_fleet(root, n, args.seed, args.own_interfaces) for n in sizes]
        for h in hogs:
            h.start()
        for folder, info in fleets:
            out(f"fleet of {info['clusters']} clusters ({info['files']} files, {info['bytes'] / 1e6:.0f} MB); "
                f"measuring{f' with {args.hogs} CPU hog(s) beside' if hogs else ''} ...")
            # The decode pass moves by a third from run to run (page cache, clock): its median of three.
            floors = [run_child(folder, False, args.memory_limit_gb, None, decode=True) for _ in range(3)]
            times = sorted(f["decode_s"] for f in floors if "decode_s" in f)
            floor = {"decode_s": times[len(times) // 2]} if times else floors[0]
            for procs in [p.strip() for p in args.processes.split(",") if p.strip()]:
                fig = run_child(folder, args.tracemalloc, args.memory_limit_gb, formats, processes=procs)
                fig["procs"] = procs
                if "error" not in fig and "decode_s" in floor:
                    fig["decode_s"] = floor["decode_s"]
                rows.append((info, fig))
    finally:
        for h in hogs:
            h.terminate()
        if args.workdir is None:
            shutil.rmtree(root, ignore_errors=True)
    out()
    print_table(rows)
    return 1 if any("error" in fig for _, fig in rows) else 0


if __name__ == "__main__":
    raise SystemExit(main())

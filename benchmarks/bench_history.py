"""History benchmark: what recording a run and marking its changes adds to a scan.

For each fleet size (the fleets of ``bench_scan.py``) this scans the snapshots once (read,
normalize, evaluate), then plays three nights into a fresh store: each night looks up the
baselines, marks the changes, renders the results JSON the store keeps, and records the run in
one transaction. It prints the scan time (the better of two), the added time of the first night
(nothing to compare with) and the best of the later nights (each compares with the one
before), the ratio to the scan, and how much the store grows per run and per result. The reports (HTML, JUnit, JSON) are rendered once, as
a nightly run does, for the ratio to the whole run.

    python benchmarks/bench_history.py [--sizes 50,500] [--workdir DIR] [--postgres URL]

``--postgres URL`` measures a PostgreSQL store as well (the password from $PGPASSWORD or
~/.pgpass; the database must exist and be empty). Not a pytest module.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

from bench_scan import ensure_fleet  # noqa: E402  (sibling script, not a package)

NIGHTS = 4     # the first has nothing to compare with; the best of the others is reported


def out(line: str = "") -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _store_bytes(location: str, store: Any) -> int:
    if location.startswith("postgresql"):
        rows = store._query("SELECT pg_database_size(current_database())")
        return int(rows[0][0])
    store._query("PRAGMA wal_checkpoint(TRUNCATE)")   # what the WAL holds, into the file
    path = Path(location)
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))   # the db, -wal and -shm


def measure(folder: Path, location: str) -> dict[str, Any]:
    import gc

    from scanner.changes import mark_changes
    from scanner.history import open_store
    from scanner.pipeline import run_scan
    from scanner.render import render_json

    gc.set_threshold(100_000, 50, 1000)   # as the lmscan command sets it
    snapshots = folder / "snapshots"
    scan_s = float("inf")
    for _ in range(2):   # the machine is shared: the better of two scans
        started = time.perf_counter()
        report = run_scan([snapshots], policy_path=snapshots / "policy.yaml", rule_paths=[])
        scan_s = min(scan_s, time.perf_counter() - started)
    from scanner.render import FORMATS
    timings = {}
    for fmt, render in FORMATS.items():   # the reports a nightly run writes (the JSON among them)
        started = time.perf_counter()
        render(report)
        timings[fmt] = time.perf_counter() - started
    json_s, reports_s = timings["json"], sum(timings.values())
    nights = []
    with open_store(location).open() as store:
        before = _store_bytes(location, store)
        for night in range(NIGHTS):
            scan = dataclasses.replace(report.scan, id=f"bench-{night}",
                                       started_at=f"2026-11-{night + 1:02d}T02:00:00Z")
            tonight = dataclasses.replace(report, scan=scan, _verdicts={})
            t0 = time.perf_counter()
            baselines = store.baselines([c.name for c in tonight.clusters])
            t1 = time.perf_counter()
            marked = mark_changes(tonight, baselines, "history")
            t2 = time.perf_counter()
            document = render_json(marked)
            t3 = time.perf_counter()
            store.record(marked, document)
            t4 = time.perf_counter()
            size = _store_bytes(location, store)
            nights.append({"lookup": t1 - t0, "mark": t2 - t1, "json": t3 - t2, "record": t4 - t3,
                           "bytes": size - before, "document": len(document)})
            before = size
    return {"scan_s": scan_s, "json_s": json_s, "reports_s": reports_s, "results": len(report.results),
            "nights": nights}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="50,500")
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--postgres", metavar="URL")
    args = ap.parse_args(argv)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="lmscan-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    out("| store | clusters | results | scan | reports | night 1 added | later nights added (lookup + mark + record) "
        "| added vs scan + reports | added + JSON vs scan alone | store growth per run | per result per run |")
    out("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for size in [int(s) for s in args.sizes.split(",")]:
        folder, _ = ensure_fleet(work, size, args.seed, False)
        stores = [("sqlite", str(Path(tempfile.mkdtemp(prefix="lmscan-hist-")) / "history.db"))]
        if args.postgres:
            stores.append(("postgresql", args.postgres))
        for kind, location in stores:
            m = measure(folder, location)
            def added(n: dict[str, float]) -> float:
                return n["lookup"] + n["mark"] + n["record"]
            n1 = m["nights"][0]
            n2 = min(m["nights"][1:], key=added)
            added1, added2 = added(n1), added(n2)
            # A nightly run renders its reports (the JSON the store keeps among them); for a run that
            # writes no JSON the last ratio counts rendering it as added, against the scan alone.
            growth = sum(n["bytes"] for n in m["nights"][1:]) / (NIGHTS - 1)
            out(f"| {kind} | {size} | {m['results']:,} | {m['scan_s']:.1f} s | {m['reports_s']:.1f} s | "
                f"{added1:.2f} s | {added2:.2f} s ({n2['lookup']:.2f} + {n2['mark']:.2f} + {n2['record']:.2f}) | "
                f"{100 * added2 / (m['scan_s'] + m['reports_s']):.1f} % | "
                f"{100 * (added2 + m['json_s']) / m['scan_s']:.1f} % | "
                f"{growth / 1e6:.1f} MB | {growth / m['results']:.0f} B |")
            if kind == "sqlite":
                shutil.rmtree(Path(location).parent, ignore_errors=True)   # the file, its -wal and -shm
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

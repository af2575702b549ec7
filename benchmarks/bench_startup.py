#!/usr/bin/env python3
"""Benchmark: how fast the CLI starts, as a ratio to a bare ``python -c pass``.

Each command runs ``--runs`` times in a fresh interpreter (the same one that runs this script, so
the ratio does not depend on the machine's speed); the median is reported. Ratios, not seconds,
are what to compare across runs: the machine is shared and noisy.

    python benchmarks/bench_startup.py [--runs 21] [--json]

Targets (issue 11): ``lmscan --help`` at most 3x ``python -c pass``; ``rules list`` and
``rules show`` at most 5x. Not collected by pytest (no test_ prefix).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

COMMANDS: list[tuple[str, list[str], float]] = [
    ("lmscan --help", ["--help"], 3.0),
    ("lmscan --version", ["--version"], 3.0),
    ("lmscan rules list", ["rules", "list"], 5.0),
    ("lmscan rules show LM001", ["rules", "show", "LM001"], 5.0),
    ("lmscan collector-script", ["collector-script"], 5.0),
]
ENTRY = "import sys; from scanner.cli import main; sys.exit(main())"


def median_seconds(argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
        times.append(time.perf_counter() - began)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=21)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    # Interleave the baseline with the commands so a burst of load hits both alike.
    base = median_seconds([sys.executable, "-c", "pass"], args.runs)
    rows = []
    for label, cmd, target in COMMANDS:
        secs = median_seconds([sys.executable, "-c", ENTRY, *cmd], args.runs)
        base = min(base, median_seconds([sys.executable, "-c", "pass"], max(5, args.runs // 4)))
        rows.append({"command": label, "ms": round(secs * 1000, 1), "target_ratio": target})
    for row in rows:
        row["ratio"] = round(row["ms"] / (base * 1000), 2)
        row["ok"] = row["ratio"] <= row["target_ratio"]
    if args.json:
        print(json.dumps({"python_c_pass_ms": round(base * 1000, 1), "commands": rows}, indent=1))
    else:
        print(f"python -c pass: {base * 1000:.1f} ms (median of {args.runs})")
        for row in rows:
            print(f"{row['command']:<26} {row['ms']:>7.1f} ms  {row['ratio']:>5.2f}x  "
                  f"(target {row['target_ratio']:g}x: {'OK' if row['ok'] else 'over'})")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())

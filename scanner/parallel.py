"""A second process for the offline scan and the reports, when a second core is there to run it.

Reading, reducing and evaluating a fleet is pure CPU work on independent clusters, and so is
rendering the JUnit report beside the others. One interpreter uses one core, so a large scan
forks one child (POSIX ``fork``: the child starts with the loaded rules and policy, nothing is
pickled on the way in) and splits the work:

- scan: the snapshot folders are dealt out between the parent and the child (``collect
  --save-dir`` writes one folder per cluster); each reads its share and evaluates the clusters
  whose every file it read, and the child sends back only its results. A cluster whose files
  fall on both sides, or a node with two snapshots, is read again whole by the parent, so the
  grouping and every error are exactly those of one process; a snapshot that names no cluster,
  or a child that fails in any way, makes the parent do the whole scan itself.
- reports: the child writes most of the JUnit report's suites while the parent renders the
  others and the rest of the suites.

The answer is byte for byte what one process gives (tests compare them). Only Linux forks here
(elsewhere ``fork`` is missing or unsafe), only when the process has no other thread, and only
when a second core is idle (see ``second_process``); ``LMSCAN_PROCESSES`` overrides that.
"""

from __future__ import annotations

import datetime as _dt
import os
import pickle
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.connection import Connection, Pipe
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scanner.errors import InputError

if TYPE_CHECKING:
    from scanner.model import ScanReport
    from scanner.normalize import NodeData
    from scanner.pipeline import Part, RuleSet

#: Below this many snapshot files (or results, for the reports) a second process costs more than it
#: saves: a fork, a look at the CPUs and the results sent back, against about 1 ms a file and
#: 10 us a result of work on this project's machine.
MIN_FILES = 200
MIN_RESULTS = 20000
#: How long one look at the CPUs is trusted (a scan's reports follow it within seconds).
IDLE_TTL = 60.0
#: Fork only when at least this many usable cores are idle (the parent's own is idle while it looks).
IDLE_CORES = 1.5
#: The parent's share of the snapshot bytes. Half, measured: the child packs each result while the
#: parent still evaluates, and the parent's unpacking after that about evens out the rest.
PARENT_SHARE = 0.5
#: The report whose work the child shares: the costliest; the parent renders the others beside it.
CHILD_FORMAT = "junit"


def second_process(worth_it: bool) -> bool:
    """Fork a helper now? Linux, no other thread, and a large job with a second core idle.

    ``worth_it`` says the job is large enough to repay a fork. ``LMSCAN_PROCESSES``: ``1`` never,
    ``2`` always (when it can fork at all: for tests and measurements), ``auto`` (or unset) for
    a job worth it when two of the cores lmscan may use are idle. A second process on a busy
    machine only adds its overhead, since it gets no more CPU time (the scheduler shares it out
    by session or service), so a scan beside another CPU-bound job stays in one process.
    """
    wanted = mode()
    if wanted == "1" or not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    return wanted == "2" or (worth_it and _idle_now() >= IDLE_CORES)


_last_idle: tuple[float, float] | None = None     # (when, idle cores): the scan's look serves its reports


def _idle_now() -> float:
    global _last_idle
    now = time.monotonic()
    if _last_idle is None or now - _last_idle[0] > IDLE_TTL:
        _last_idle = (now, idle_cores())
    return _last_idle[1]


def mode() -> str:
    """``$LMSCAN_PROCESSES``: 1, 2 or auto (the default); anything else is bad input."""
    wanted = os.environ.get("LMSCAN_PROCESSES", "").strip().casefold() or "auto"
    if wanted not in ("1", "2", "auto"):
        raise InputError("LMSCAN_PROCESSES", f"expected 1, 2 or auto, found {wanted!r}")
    return wanted


def idle_cores(interval: float = 0.05) -> float:
    """How many of the cores this process may use were idle over the last ``interval`` seconds."""
    try:
        usable = len(os.sched_getaffinity(0))
        before = _cpu_times()
        time.sleep(interval)
        after = _cpu_times()
    except (OSError, ValueError, IndexError):
        return 0.0
    busy, idle = after[0] - before[0], after[1] - before[1]
    if busy + idle <= 0:
        return 0.0
    return min(usable, idle / (busy + idle) * (os.cpu_count() or 1))


def _cpu_times() -> tuple[int, int]:
    """(busy, idle) clock ticks of all CPUs since boot, from the first line of /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        ticks = [int(x) for x in stat.readline().split()[1:9]]   # user nice system idle iowait irq softirq steal
    idle = ticks[3] + ticks[4]
    return sum(ticks) - idle, idle


class ChildFailed(Exception):
    """Two processes cannot give the answer (the child failed, or a case needs every file in one
    place): the caller does the work in one process."""


@contextmanager
def _child(work: Callable[[Connection], None]) -> Iterator[Connection]:
    """Fork a child that runs ``work`` on its end of a pipe; always reaped, killed if still running."""
    sys.stdout.flush()
    sys.stderr.flush()
    ours, theirs = Pipe(duplex=True)
    pid = os.fork()
    if pid == 0:                                     # the child: never returns, never flushes the parent's buffers
        code = 1
        try:
            ours.close()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)   # Ctrl-C ends it; the parent cleans up
            work(theirs)
            code = 0
        except BaseException:                        # noqa: BLE001 - the parent redoes the share
            pass
        finally:
            os._exit(code)
    theirs.close()
    try:
        yield ours
    finally:
        ours.close()
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


def _receive(conn: Connection) -> Any:
    try:
        return pickle.loads(conn.recv_bytes())
    except (EOFError, OSError, pickle.UnpicklingError) as exc:
        raise ChildFailed(str(exc)) from None


def _send(conn: Connection, value: Any) -> None:
    conn.send_bytes(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))


# ----------------------------------------------------------------------------------- reports

def render_all(report: ScanReport, formats: Sequence[str]) -> dict[str, bytes]:
    """Every requested report; with a second process, the JUnit suites shared out between the two."""
    from scanner.render import FORMATS

    wanted = list(dict.fromkeys(formats))
    if CHILD_FORMAT not in wanted or not second_process(len(report.results) >= MIN_RESULTS):
        return {fmt: FORMATS[fmt](report) for fmt in wanted}
    from scanner.render.junit import junit_document, junit_suites

    at = _junit_cut(report, [fmt for fmt in wanted if fmt != CHILD_FORMAT])

    def work(conn: Connection) -> None:
        _send(conn, junit_suites(report, at))

    with _child(work) as conn:
        rendered = {fmt: FORMATS[fmt](report) for fmt in wanted if fmt != CHILD_FORMAT}
        suites, totals = junit_suites(report, 0, at)
        try:
            theirs, their_totals = _receive(conn)
        except ChildFailed:
            theirs, their_totals = junit_suites(report, at)
    rendered[CHILD_FORMAT] = junit_document(report, [*suites, *theirs],
                                            {k: v + their_totals[k] for k, v in totals.items()})
    return {fmt: rendered[fmt] for fmt in wanted}


#: What each report costs to render, relative to the JUnit one (measured on a 500-cluster fleet;
#: the HTML one includes the JSON, whose SHA-256 it shows).
RENDER_COST = {"json": 0.33, "html": 0.53, "sarif": 0.04, "markdown": 0.06, "remediate": 0.03}


def _junit_cut(report: ScanReport, others: Sequence[str]) -> int:
    """The clusters whose JUnit suites the parent writes besides the other reports: as many as
    even out the two processes' work, counted by results."""
    from scanner.render._common import cluster_names, group_by_cluster

    cost = sum(RENDER_COST.get(fmt, 0.1) for fmt in others)
    if "html" in others and "json" in others:
        cost -= RENDER_COST["json"]             # rendered once, for both
    share = max(0.0, (1.0 - cost) / 2)          # of the JUnit work, for the parent
    by_cluster = group_by_cluster(report.results)
    names = cluster_names(report)
    done, goal = 0, share * len(report.results)
    for index, name in enumerate(names):
        if done >= goal:
            return index
        done += len(by_cluster.get(name.casefold(), ()))
    return len(names)


# -------------------------------------------------------------------------------------- scan

def _sizes(files: Sequence[Path]) -> list[int]:
    sizes = []
    for f in files:
        try:
            sizes.append(f.stat().st_size)
        except OSError:
            sizes.append(0)          # reading it will say what is wrong, in file order
    return sizes


def shares(files: Sequence[Path]) -> tuple[list[int], list[int]]:
    """The file indices the parent and the child read, each in file order.

    Whole folders (``collect --save-dir`` writes one per cluster), dealt out in order to
    whichever side has the fewer bytes so far, so that neighbours alike (the 2008 R2 clusters of
    a site, whose files carry every VM resource) land on both sides. Bytes, not files, since
    reading costs by the byte (PARENT_SHARE is the parent's part). With fewer than four folders the files are cut once, at the folder
    boundary nearest that share, or inside a cluster, which the parent then reads whole.
    """
    sizes = _sizes(files)
    folders: dict[Path, list[int]] = {}
    for index, f in enumerate(files):
        folders.setdefault(f.parent, []).append(index)
    if len(folders) >= 4:
        ours: list[int] = []
        theirs: list[int] = []
        load = [0.0, 0.0]
        for indices in folders.values():
            size = sum(sizes[i] for i in indices)
            side = 0 if load[0] / PARENT_SHARE <= load[1] / (1 - PARENT_SHARE) else 1
            (ours if side == 0 else theirs).extend(indices)
            load[side] += size
        return sorted(ours), sorted(theirs)
    at = _cut(files, sizes)
    return list(range(at)), list(range(at, len(files)))


def _cut(files: Sequence[Path], sizes: list[int]) -> int:
    total = sum(sizes) or 1
    done, middle = 0, len(files) // 2
    for index, size in enumerate(sizes):
        if done + size / 2 > total * PARENT_SHARE:
            middle = index
            break
        done += size
    middle = min(max(middle, 1), len(files) - 1)
    for step in range(len(files) // 4 + 1):
        for at in (middle + step, middle - step):
            if 0 < at < len(files) and files[at].parent != files[at - 1].parent:
                return at
    return middle


def _key(d: NodeData) -> str | None:
    return d.cluster_name.casefold() if d.cluster_name is not None else None


class _Side:
    """One process's share of the files: reduced node data, by file index."""

    def __init__(self) -> None:
        from scanner.normalize import Reducer

        self.reducer = Reducer()
        self.data: dict[int, NodeData] = {}
        self.error: tuple[int, InputError] | None = None

    def read(self, files: Sequence[Path], indices: Sequence[int]) -> None:
        """Read in order; stop at the first bad file and keep its error with its place."""
        from scanner.snapshot import read_snapshot_file

        for index in indices:
            try:
                self.data[index] = self.reducer.reduce(read_snapshot_file(files[index]))
            except InputError as exc:
                self.error = (index, exc)
                return

    def keys(self) -> dict[str | None, list[int]]:
        """File indices by cluster key (None: a snapshot that names no cluster)."""
        out: dict[str | None, list[int]] = {}
        for index, d in self.data.items():
            out.setdefault(_key(d), []).append(index)
        return out

    def doubled(self) -> set[str | None]:
        """Cluster keys with two snapshots of one node (that error is raised by the parent)."""
        from scanner.normalize import short_name

        seen: set[tuple[str | None, str]] = set()
        out: set[str | None] = set()
        for d in self.data.values():
            key = (_key(d), short_name(d.name))
            if key in seen:
                out.add(key[0])
            seen.add(key)
        return out

    def take(self, files: Sequence[Path], keys: set[str | None], indices: Sequence[int]) -> None:
        """Read ``keys`` again, whole: our files and ``indices`` of theirs, in file order, as one process would."""
        mine = [i for i, d in self.data.items() if _key(d) in keys]
        for index in mine:
            del self.data[index]
        again = _Side()                            # its own Reducer: the first file of a key keeps every row
        again.read(files, sorted([*mine, *indices]))
        if again.error is not None:
            raise again.error[1]
        self.data.update(again.data)

    def parts(self, ruleset: RuleSet, today: _dt.date, drop: set[str | None]) -> Iterator[Part]:
        """Our clusters but ``drop``, evaluated one at a time."""
        from scanner.normalize import ClusterGrouper
        from scanner.pipeline import drain, evaluate_each

        grouper = ClusterGrouper()
        for index in sorted(self.data):
            if _key(self.data[index]) not in drop:
                grouper.add_data(self.data[index])
        self.data = {}
        return evaluate_each(ruleset, drain(grouper.clusters()), today)


def read_and_evaluate(ruleset: RuleSet, files: Sequence[Path], today: _dt.date) -> list[Part]:
    """The clusters of ``files``, evaluated, in the order one process gives; uses a child process.

    Raises the InputError one process would raise first, or ChildFailed when only one process
    can give the exact answer (the caller then scans in one process).
    """
    mine, theirs_files = shares(files)
    child = _Side()

    def work(conn: Connection) -> None:
        child.read(files, theirs_files)
        if child.error is not None:
            index, exc = child.error
            _send(conn, ("error", index, exc.source, exc.problem, exc.where))
            return
        _send(conn, ("read", child.keys(), child.doubled()))
        drop = _receive(conn)
        # Each cluster packed as soon as it is evaluated: the packing overlaps the parent's own
        # evaluation instead of following it, and the child holds bytes rather than objects.
        _send(conn, ("parts", [pickle.dumps(part, protocol=pickle.HIGHEST_PROTOCOL)
                               for part in child.parts(ruleset, today, drop)]))

    with _child(work) as conn:
        ours = _Side()
        ours.read(files, mine)
        reply = _receive(conn)
        errors = [ours.error] if ours.error else []
        if reply[0] == "error":
            errors.append((reply[1], InputError(*reply[2:])))
        if errors:                                 # the bad file one process meets first
            raise min(errors, key=lambda e: e[0])[1]
        theirs: dict[str | None, list[int]] = reply[1]
        keys = ours.keys()
        if None in theirs or None in keys:
            # A node without a cluster name joins the cluster whose ClusterNode lists it, first
            # match in file order: that needs every file in one place.
            raise ChildFailed("a snapshot names no cluster")
        drop = ({k for k in theirs if k in keys} | reply[2]) & set(theirs)
        _send(conn, drop)
        try:
            ours.take(files, drop, [i for k in drop for i in theirs[k]])
            parts = list(ours.parts(ruleset, today, set()))
        except InputError as exc:                  # which error one process meets first: let it find out
            raise ChildFailed(str(exc)) from None
        reply = _receive(conn)
    parts.extend(pickle.loads(blob) for blob in reply[1])
    return sorted(parts, key=lambda part: part[0].name.casefold())

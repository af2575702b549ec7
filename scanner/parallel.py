"""A second process for the offline scan and the reports, when a second core is there to run it.

Reading, reducing and evaluating a fleet is pure CPU work on independent clusters, and so is
rendering the JUnit report beside the others. One interpreter uses one core, so a large scan
forks one child (POSIX ``fork``: the child starts with the loaded rules and policy, nothing is
pickled on the way in) and splits the work:

- scan: the parent reads the first half of the snapshot files and the child the second half (cut
  at a folder boundary, as ``collect --save-dir`` writes one folder per cluster); each evaluates
  the clusters whose every file it read, and the child sends back only its results. A cluster
  whose files fall on both sides, a snapshot without a cluster name, or a node with two
  snapshots is read again by the parent, so grouping and every error are exactly those of one
  process; if the child fails in any way the parent does the whole scan itself.
- reports: the child renders the JUnit report while the parent renders the others.

The answer is byte for byte what one process gives (tests compare them). Only Linux forks here
(elsewhere ``fork`` is missing or unsafe) and only when the process has no other thread.
``LMSCAN_PROCESSES=1`` turns it off.
"""

from __future__ import annotations

import datetime as _dt
import os
import pickle
import signal
import sys
import threading
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

#: Below this many snapshot files (or results, for the reports) a second process costs more than it saves.
MIN_FILES = 48
MIN_RESULTS = 5000
#: The parent's share of the snapshot bytes (it also unpacks the child's results and merges).
PARENT_SHARE = 0.47
#: The report the child renders: the costliest, so the parent's share (HTML, JSON, ...) runs beside it.
CHILD_FORMAT = "junit"


def second_process() -> bool:
    """May this process fork a helper? Linux, two usable cores, no thread, not turned off."""
    if os.environ.get("LMSCAN_PROCESSES", "").strip() == "1":
        return False
    if not sys.platform.startswith("linux") or threading.active_count() != 1:
        return False
    try:
        return len(os.sched_getaffinity(0)) >= 2
    except OSError:
        return False


class ChildFailed(Exception):
    """The child ended without its answer; the parent does the child's share itself."""


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
    """Every requested report, the JUnit one in a child process when that pays."""
    from scanner.render import FORMATS

    wanted = list(dict.fromkeys(formats))
    if CHILD_FORMAT in wanted and len(wanted) > 1 and len(report.results) >= MIN_RESULTS and second_process():
        def work(conn: Connection) -> None:
            conn.send_bytes(FORMATS[CHILD_FORMAT](report))

        with _child(work) as conn:
            rendered = {fmt: FORMATS[fmt](report) for fmt in wanted if fmt != CHILD_FORMAT}
            try:
                rendered[CHILD_FORMAT] = conn.recv_bytes()
            except (EOFError, OSError):
                rendered[CHILD_FORMAT] = FORMATS[CHILD_FORMAT](report)
        return {fmt: rendered[fmt] for fmt in wanted}
    return {fmt: FORMATS[fmt](report) for fmt in wanted}


# -------------------------------------------------------------------------------------- scan

def split_point(files: Sequence[Path]) -> int:
    """Where the child's share starts: the folder boundary nearest to an even split of the bytes.

    Bytes, not files: a 2008 R2 cluster's snapshots carry every VM resource and take several
    times longer per file. The parent's share is a little smaller (PARENT_SHARE), since it also
    takes in the child's results. Without a folder boundary near there, the split falls inside
    a cluster, which the parent then reads whole.
    """
    sizes = []
    for f in files:
        try:
            sizes.append(f.stat().st_size)
        except OSError:
            sizes.append(0)          # reading it will say what is wrong, in file order
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


class _Side:
    """One process's share of the files: reduced node data in file order, grouped by cluster key."""

    def __init__(self) -> None:
        from scanner.normalize import Reducer

        self.reducer = Reducer()
        self.data: list[tuple[int, NodeData]] = []

    def read(self, files: Sequence[Path], start: int, stop: int) -> None:
        from scanner.snapshot import read_snapshot_file

        for index in range(start, stop):
            self.data.append((index, self.reducer.reduce(read_snapshot_file(files[index]))))

    def keys(self) -> dict[str | None, list[int]]:
        """File indices by cluster key (None: a snapshot that names no cluster)."""
        out: dict[str | None, list[int]] = {}
        for index, d in self.data:
            out.setdefault(d.cluster_name.casefold() if d.cluster_name is not None else None, []).append(index)
        return out

    def doubled(self) -> set[str]:
        """Cluster keys with two snapshots of one node (that error is raised by the parent)."""
        from scanner.normalize import short_name

        seen: set[tuple[str, str]] = set()
        out: set[str] = set()
        for _, d in self.data:
            if d.cluster_name is None:
                continue
            key = (d.cluster_name.casefold(), short_name(d.name))
            if key in seen:
                out.add(key[0])
            seen.add(key)
        return out

    def parts(self, ruleset: RuleSet, today: _dt.date, drop: set[str | None]) -> list[Part]:
        from scanner.normalize import ClusterGrouper
        from scanner.pipeline import evaluate_clusters

        grouper = ClusterGrouper()
        for _, d in self.data:
            if (d.cluster_name.casefold() if d.cluster_name is not None else None) not in drop:
                grouper.add_data(d)
        self.data = []
        return evaluate_clusters(ruleset, grouper.clusters(), today)


def read_and_evaluate(ruleset: RuleSet, files: Sequence[Path], today: _dt.date) -> list[Part]:
    """The clusters of ``files``, evaluated, in the order one process gives; uses a child process."""
    at = split_point(files)
    child = _Side()

    def work(conn: Connection) -> None:
        try:
            child.read(files, at, len(files))
        except InputError as exc:
            _send(conn, ("error", exc.source, exc.problem, exc.where))
            return
        _send(conn, ("read", child.keys(), child.doubled()))
        drop = _receive(conn)
        _send(conn, ("parts", child.parts(ruleset, today, drop)))

    with _child(work) as conn:
        ours = _Side()
        ours.read(files, 0, at)                    # our error comes first in file order: it is raised here
        reply = _receive(conn)
        if reply[0] == "error":
            raise InputError(reply[1], reply[2], reply[3])
        theirs: dict[str | None, list[int]] = reply[1]
        mine = ours.keys()
        drop: set[str | None] = {k for k in theirs if k in mine} | set(reply[2])
        if None in theirs or None in mine:         # a node without a cluster name joins by ClusterNode: see all
            drop = set(theirs)
        _send(conn, drop)
        for index in sorted(i for k in drop for i in theirs[k]):
            ours.read(files, index, index + 1)
        try:
            parts = ours.parts(ruleset, today, set())
        except InputError as exc:                  # which error one process meets first: let it find out
            raise ChildFailed(str(exc)) from None
        reply = _receive(conn)
    parts.extend(reply[1])
    return sorted(parts, key=lambda part: part[0].name.casefold())

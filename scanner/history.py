"""The history of scans: one store interface, SQLite and PostgreSQL behind it.

Two thin implementations share every SQL statement (written once, with ``?`` placeholders that
the PostgreSQL side turns into ``%s``) and differ only in how they connect, lock, bulk-insert
and name a few column types. That is less than SQLAlchemy Core would bring (an import that
costs start-up time on every run and a dependency for ten statements), and the bulk insert,
the one place where speed matters, is dialect-specific either way (``executemany`` in a
single SQLite transaction, ``COPY`` on PostgreSQL).

A run is written in one transaction: readers see all of it or nothing, and a scan killed in
the middle leaves no trace. Each run also keeps the results JSON document it wrote
(compressed), so ``history show`` reproduces it byte for byte.
"""

from __future__ import annotations

import datetime as _dt
import os
import socket
import time
import zlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from scanner.changes import Baseline, PriorResult, fail_error_counts, reached
from scanner.errors import ScannerError
from scanner.model import ScanReport, Status, Target, TrendPoint

#: Schema versions, oldest first: entry N-1 takes a store from version N-1 to N.
#: ``{serial}``, ``{blob}`` and ``{without_rowid}`` are filled in per database.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (   # 1: runs, the clusters each covered, and every result
        "CREATE TABLE lmscan_schema (version INTEGER NOT NULL)",
        "INSERT INTO lmscan_schema (version) VALUES (0)",
        """CREATE TABLE runs (
            run_no {serial} PRIMARY KEY,
            scan_id TEXT NOT NULL UNIQUE,
            started_at TEXT NOT NULL,
            finished_at TEXT NOT NULL,
            scanner_host TEXT NOT NULL,
            tool_version TEXT NOT NULL,
            complete INTEGER NOT NULL,
            verdict TEXT NOT NULL,
            n_pass INTEGER NOT NULL, n_fail INTEGER NOT NULL, n_error INTEGER NOT NULL,
            n_skip INTEGER NOT NULL, n_waived INTEGER NOT NULL,
            document {blob} NOT NULL)""",
        "CREATE INDEX runs_by_time ON runs (started_at)",
        """CREATE TABLE run_clusters (
            run_no INTEGER NOT NULL,
            cluster_key TEXT NOT NULL,
            cluster TEXT NOT NULL,
            started_at TEXT NOT NULL,
            reached INTEGER NOT NULL,
            nodes_total INTEGER NOT NULL,
            nodes_collected INTEGER NOT NULL,
            n_fail INTEGER NOT NULL,
            n_error INTEGER NOT NULL,
            PRIMARY KEY (run_no, cluster_key))""",
        "CREATE INDEX run_clusters_by_cluster ON run_clusters (cluster_key, started_at)",
        """CREATE TABLE results (
            run_no INTEGER NOT NULL,
            cluster_key TEXT NOT NULL,
            result_id TEXT NOT NULL,
            rule TEXT NOT NULL,
            status TEXT NOT NULL,
            severity TEXT NOT NULL,
            target_kind TEXT NOT NULL,
            target_name TEXT NOT NULL,
            target_id TEXT,
            target_node TEXT,
            message TEXT,
            PRIMARY KEY (run_no, cluster_key, result_id)){without_rowid}""",
        "CREATE INDEX results_by_id ON results (cluster_key, result_id)",
    ),
    (   # 2: change marks and the waiver text are kept per result, the run's title per rule
        "ALTER TABLE results ADD COLUMN change TEXT",
        "ALTER TABLE results ADD COLUMN waiver TEXT",
        "ALTER TABLE results ADD COLUMN title TEXT",
    ),
    (   # 3: what a result is about is kept once per finding, not once per run: a run's row is
        # its status (a tenth of the bytes); each finding remembers when it first failed and its
        # last status that was not ``error``, so no comparison reads old runs.
        """CREATE TABLE findings (
            finding_no {serial} PRIMARY KEY,
            cluster_key TEXT NOT NULL,
            result_id TEXT NOT NULL,
            rule TEXT NOT NULL,
            target_kind TEXT NOT NULL,
            target_name TEXT NOT NULL,
            target_id TEXT,
            target_node TEXT,
            title TEXT,
            first_failed_at TEXT,
            last_status TEXT,
            last_status_at TEXT,
            UNIQUE (cluster_key, result_id))""",
        """INSERT INTO findings (cluster_key, result_id, rule, target_kind, target_name, target_id, target_node, title)
            SELECT cluster_key, result_id, MIN(rule), MIN(target_kind), MIN(target_name), MIN(target_id),
                   MIN(target_node), MIN(title)
            FROM results GROUP BY cluster_key, result_id""",
        """UPDATE findings SET first_failed_at = (
            SELECT MIN(c.started_at) FROM results s JOIN run_clusters c
            ON c.run_no = s.run_no AND c.cluster_key = s.cluster_key
            WHERE s.cluster_key = findings.cluster_key AND s.result_id = findings.result_id AND s.status = 'fail')""",
        """UPDATE findings SET last_status_at = (
            SELECT MAX(c.started_at) FROM results s JOIN run_clusters c
            ON c.run_no = s.run_no AND c.cluster_key = s.cluster_key
            WHERE s.cluster_key = findings.cluster_key AND s.result_id = findings.result_id AND s.status <> 'error')""",
        """UPDATE findings SET last_status = (
            SELECT MIN(s.status) FROM results s JOIN run_clusters c
            ON c.run_no = s.run_no AND c.cluster_key = s.cluster_key
            WHERE s.cluster_key = findings.cluster_key AND s.result_id = findings.result_id
            AND s.status <> 'error' AND c.started_at = findings.last_status_at)""",
        """CREATE TABLE run_results (
            run_no INTEGER NOT NULL,
            cluster_key TEXT NOT NULL,
            finding_no INTEGER NOT NULL,
            status TEXT NOT NULL,
            severity TEXT NOT NULL,
            change TEXT,
            waiver TEXT,
            PRIMARY KEY (run_no, cluster_key, finding_no)){without_rowid}""",
        """INSERT INTO run_results (run_no, cluster_key, finding_no, status, severity, change, waiver)
            SELECT s.run_no, s.cluster_key, f.finding_no, s.status, s.severity, s.change, s.waiver
            FROM results s JOIN findings f ON f.cluster_key = s.cluster_key AND f.result_id = s.result_id""",
        "DROP TABLE results",
        "ALTER TABLE run_results RENAME TO results",
    ),
)
SCHEMA_VERSION = len(MIGRATIONS)
_STATUS = {s.value: s for s in Status}
TREND_RUNS = 30
_RESULT_COLUMNS = ("run_no", "cluster_key", "finding_no", "status", "severity", "change", "waiver")
_FINDING_COLUMNS = ("cluster_key", "result_id", "rule", "target_kind", "target_name", "target_id", "target_node",
                    "title")


class HistoryError(ScannerError):
    """The history store cannot be opened, read or written (exit 2, one line)."""


@dataclass(frozen=True, slots=True)
class RunSummary:
    """One recorded run, as ``history list`` shows it."""

    scan_id: str
    started_at: str
    finished_at: str
    scanner_host: str
    tool_version: str
    complete: bool
    verdict: str
    counts: dict[str, int]
    clusters: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LatestCluster:
    """The latest run that covered one cluster (for the merged view across scanners)."""

    cluster: str
    scan_id: str
    started_at: str
    scanner_host: str
    reached: bool


def default_path() -> Path:
    """``$XDG_DATA_HOME/lmscan/history.db``, by default ``~/.local/share/lmscan/history.db``."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "lmscan" / "history.db"


def is_url(location: str) -> bool:
    return location.startswith(("postgresql://", "postgres://"))


def open_store(location: str | Path, password_env: str | None = None) -> HistoryStore:
    """The store a location names: a ``postgresql://`` URL, else a SQLite file path."""
    text = str(location)
    if is_url(text):
        return PostgresStore(text, password_env)
    return SQLiteStore(Path(text).expanduser())


def _verdict(report: ScanReport) -> str:
    if report.counting_failures():
        return "fail"
    if any(r.status is Status.ERROR for r in report.results):
        return "incomplete"
    return "pass"


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class HistoryStore:
    """Record runs, find what each cluster is compared with, list, get and prune runs."""

    placeholder = "?"
    types: dict[str, str] = {}

    # -- what each database does its own way
    def _connect(self) -> Any:
        raise NotImplementedError

    def _begin_write(self, cur: Any) -> None:
        raise NotImplementedError

    def _insert_run(self, cur: Any, values: Sequence[Any]) -> int:
        raise NotImplementedError

    def _bulk_insert(self, cur: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        raise NotImplementedError

    def _has_schema_table(self, cur: Any) -> bool:
        raise NotImplementedError

    def _errors(self) -> tuple[type[BaseException], ...]:
        raise NotImplementedError

    # -- shared
    def __init__(self, where: str) -> None:
        self.where = where
        self._conn: Any = None

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _sql(self, text: str) -> str:
        text = text.format(**self.types) if "{" in text else text
        return text.replace("?", self.placeholder) if self.placeholder != "?" else text

    def _fail(self, doing: str, exc: BaseException) -> HistoryError:
        detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return HistoryError(f"history {self.where}: cannot {doing}: {detail}")

    def open(self) -> HistoryStore:
        """Connect and bring the schema to :data:`SCHEMA_VERSION` (in one transaction)."""
        try:
            self._conn = self._connect()
            self.migrate()
        except self._errors() as exc:
            self.close()
            raise self._fail("open the store", exc) from None
        return self

    def schema_version(self) -> int:
        cur = self._conn.cursor()
        if not self._has_schema_table(cur):
            return 0
        cur.execute("SELECT version FROM lmscan_schema")
        row = cur.fetchone()
        return int(row[0]) if row else 0

    def migrate(self, target: int = SCHEMA_VERSION) -> None:
        if self.schema_version() == target:
            self._conn.rollback()
            return
        self._conn.rollback()
        self._lock_schema()
        cur = self._conn.cursor()
        self._begin_write(cur)        # re-read under the write lock: another scan may have migrated
        try:
            version = self.schema_version()
            if version > SCHEMA_VERSION:
                raise HistoryError(f"history {self.where}: the store has schema version {version}; this "
                                   f"lmscan knows up to {SCHEMA_VERSION}: upgrade lmscan")
            for step in range(version, target):
                for statement in MIGRATIONS[step]:
                    cur.execute(self._sql(statement))
                cur.execute("UPDATE lmscan_schema SET version = " + str(step + 1))
            self._conn.commit()
        except BaseException:
            self._conn.rollback()
            raise
        finally:
            self._unlock_schema()

    def _lock_schema(self) -> None:
        """Serialise migrations across processes before the migrating transaction starts."""

    def _unlock_schema(self) -> None:
        pass

    # -- writing
    def record(self, report: ScanReport, document: bytes, complete: bool = True,
               host: str | None = None) -> None:
        """Write one run, its clusters and every result in one transaction."""
        scan = report.scan
        counts = report.summary
        host = host or socket.gethostname()
        packed = zlib.compress(document, 1)   # level 1: a third of level 6's time for 1.3x the bytes
        per_cluster = fail_error_counts(report.results)
        try:
            cur = self._conn.cursor()
            self._begin_write(cur)
            try:
                run_no = self._insert_run(cur, (
                    scan.id, scan.started_at, scan.finished_at, host, scan.tool_version, int(complete),
                    _verdict(report), counts["pass"], counts["fail"], counts["error"], counts["skip"],
                    counts["waived"], packed))
                cur.executemany(self._sql(
                    "INSERT INTO run_clusters (run_no, cluster_key, cluster, started_at, reached, nodes_total, "
                    "nodes_collected, n_fail, n_error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"),
                    [(run_no, c.name.casefold(), c.name, scan.started_at, int(reached(c)), len(c.nodes),
                      sum(1 for n in c.nodes if n.collected), *per_cluster.get(c.name.casefold(), [0, 0]))
                     for c in report.clusters])
                numbers = self._findings(cur, report, scan.started_at, complete)
                self._bulk_insert(cur, "results", _RESULT_COLUMNS, (
                    (run_no, r.cluster.casefold(), numbers[(r.cluster.casefold(), r.id)], r.status.value,
                     r.severity.value, r.change.value if r.change else None,
                     r.message if r.status is Status.WAIVED else None)
                    for r in report.results))
                self._conn.commit()
            except BaseException:
                self._conn.rollback()
                raise
        except self._errors() as exc:
            raise self._fail(f"record scan {scan.id}", exc) from None

    def _known_findings(self, cur: Any, keys: Sequence[str]) -> dict[tuple[str, str], tuple[Any, ...]]:
        found: dict[tuple[str, str], tuple[Any, ...]] = {}
        for chunk in self._chunks(keys):
            marks = ", ".join("?" for _ in chunk)
            cur.execute(self._sql(
                "SELECT cluster_key, result_id, finding_no, first_failed_at, last_status, last_status_at "
                f"FROM findings WHERE cluster_key IN ({marks})"), tuple(chunk))
            for row in cur.fetchall():
                found[(row[0], row[1])] = tuple(row[2:])
        return found

    def _findings(self, cur: Any, report: ScanReport, started: str, complete: bool) -> dict[tuple[str, str], int]:
        """The finding number of every result, adding new findings and keeping each finding's first
        failure and last known status up to date (only the few that changed are written)."""
        keys = sorted({r.cluster.casefold() for r in report.results})
        known = self._known_findings(cur, keys)
        new = {(r.cluster.casefold(), r.id): r for r in report.results if (r.cluster.casefold(), r.id) not in known}
        if new:
            self._bulk_insert(cur, "findings", _FINDING_COLUMNS,
                              ((k[0], r.id, r.rule, r.target.kind, r.target.name, r.target.id, r.target.node, r.title)
                               for k, r in new.items()))
            known.update(self._known_findings(cur, sorted({k[0] for k in new})))
        first_failed, last_status = [], []
        for r in report.results if complete else ():     # an interrupted run is no evidence of state
            number, first, status, since = known[(r.cluster.casefold(), r.id)]
            if r.status is Status.FAIL and (first is None or started < first):
                first_failed.append((started, number))
            if r.status is not Status.ERROR and r.status.value != status and (since is None or started >= since):
                last_status.append((r.status.value, started, number))
        if first_failed:
            cur.executemany(self._sql("UPDATE findings SET first_failed_at = ? WHERE finding_no = ?"), first_failed)
        if last_status:
            cur.executemany(self._sql("UPDATE findings SET last_status = ?, last_status_at = ? WHERE finding_no = ?"),
                            last_status)
        return {k: int(v[0]) for k, v in known.items()}

    # -- reading
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            cur = self._conn.cursor()
            cur.execute(self._sql(sql), tuple(params))
            rows = cur.fetchall()
            self._conn.rollback()   # end the read transaction: never hold a snapshot open
            return list(rows)
        except self._errors() as exc:
            raise self._fail("read", exc) from None

    def baselines(self, clusters: Iterable[str], trend_runs: int = TREND_RUNS) -> dict[str, Baseline]:
        """For each cluster (by name), the last complete run that reached it, as a Baseline."""
        out: dict[str, Baseline] = {}
        for name in clusters:
            key = name.casefold()
            runs = self._query(
                "SELECT c.run_no, r.scan_id, c.started_at, c.reached, c.n_fail, c.n_error FROM run_clusters c "
                "JOIN runs r ON r.run_no = c.run_no WHERE c.cluster_key = ? AND r.complete = 1 "
                "ORDER BY c.started_at DESC, c.run_no DESC LIMIT ?", (key, trend_runs))
            if not runs:
                continue
            trend = tuple(TrendPoint(scan_time=row[2], fail=int(row[4]), error=int(row[5]), reached=bool(row[3]))
                          for row in reversed(runs))
            hit = next((row for row in runs if row[3]), None)
            if hit is None:
                hit = self._last_reached(key)
                if hit is None:
                    continue
            results, before = self._prior_results(hit[0], key, hit[2])
            out[key] = Baseline(scan_id=hit[1], scan_time=hit[2], results=results, failed_before=before,
                                latest_scan_id=runs[0][1], latest_scan_time=runs[0][2],
                                latest_reached=bool(runs[0][3]), trend=trend)
        return out

    def _last_reached(self, key: str) -> Any:
        rows = self._query(
            "SELECT c.run_no, r.scan_id, c.started_at FROM run_clusters c JOIN runs r ON r.run_no = c.run_no "
            "WHERE c.cluster_key = ? AND r.complete = 1 AND c.reached = 1 "
            "ORDER BY c.started_at DESC, c.run_no DESC LIMIT 1", (key,))
        return rows[0] if rows else None

    def _prior_results(self, run_no: int, key: str, started: str) -> tuple[dict[str, PriorResult], frozenset[str]]:
        """The results of one run for one cluster, and the ids that failed before that run.

        A result the run could not evaluate (``error``) keeps its last known status."""
        rows = self._query(
            "SELECT f.result_id, f.rule, s.status, s.severity, f.target_kind, f.target_name, f.target_id, "
            "f.target_node, f.title, f.last_status, c.cluster FROM results s "
            "JOIN findings f ON f.finding_no = s.finding_no "
            "JOIN run_clusters c ON c.run_no = s.run_no AND c.cluster_key = s.cluster_key "
            "WHERE s.run_no = ? AND s.cluster_key = ?", (run_no, key))
        out = {}
        for rid, rule, status, severity, kind, name, tid, node, title, last, cluster in rows:
            known = last if status == "error" and last else status
            out[rid] = PriorResult(rid, rule, cluster, _STATUS[known], severity, title or "",
                                   Target(kind, name, tid, node))
        earlier = self._query("SELECT result_id FROM findings WHERE cluster_key = ? AND first_failed_at <= ?",
                              (key, started))
        failing = {rid for rid, p in out.items() if p.status is Status.FAIL}
        return out, frozenset(r[0] for r in earlier if r[0] not in failing)

    def _chunks(self, ids: Sequence[Any], size: int = 500) -> Iterator[Sequence[Any]]:
        for i in range(0, len(ids), size):
            yield ids[i:i + size]

    def runs(self, cluster: str | None = None, since: str | None = None) -> list[RunSummary]:
        """Recorded runs, oldest first; optionally only those covering ``cluster``, started at or after ``since``."""
        sql = ("SELECT r.run_no, r.scan_id, r.started_at, r.finished_at, r.scanner_host, r.tool_version, "
               "r.complete, r.verdict, r.n_pass, r.n_fail, r.n_error, r.n_skip, r.n_waived FROM runs r")
        where, params = [], []
        if cluster is not None:
            where.append("r.run_no IN (SELECT run_no FROM run_clusters WHERE cluster_key = ?)")
            params.append(cluster.casefold())
        if since is not None:
            where.append("r.started_at >= ?")
            params.append(since)
        if where:
            sql += " WHERE " + " AND ".join(where)
        rows = self._query(sql + " ORDER BY r.started_at, r.run_no", params)
        names: dict[int, list[str]] = {}
        for run_no, name in self._query("SELECT run_no, cluster FROM run_clusters ORDER BY cluster"):
            names.setdefault(run_no, []).append(name)
        return [RunSummary(scan_id=row[1], started_at=row[2], finished_at=row[3], scanner_host=row[4],
                           tool_version=row[5], complete=bool(row[6]), verdict=row[7],
                           counts=dict(zip(("pass", "fail", "error", "skip", "waived"), map(int, row[8:13]), strict=True)),
                           clusters=tuple(names.get(row[0], ())))
                for row in rows]

    def find(self, scan_id: str) -> str:
        """The full scan id for an id or a unique prefix of one."""
        rows = self._query("SELECT scan_id FROM runs WHERE scan_id LIKE ? ORDER BY scan_id LIMIT 2",
                           (scan_id.replace("%", "").replace("_", "") + "%",))
        exact = [r[0] for r in rows if r[0] == scan_id]
        if exact:
            return str(exact[0])
        if not rows:
            raise HistoryError(f"history {self.where}: no scan {scan_id!r}; 'lmscan history list' shows them")
        if len(rows) > 1:
            raise HistoryError(f"history {self.where}: {scan_id!r} matches more than one scan; give more of the id")
        return str(rows[0][0])

    def document(self, scan_id: str) -> bytes:
        """The results JSON the run wrote, exactly."""
        rows = self._query("SELECT document FROM runs WHERE scan_id = ?", (self.find(scan_id),))
        return zlib.decompress(bytes(rows[0][0]))

    def latest_per_cluster(self, since: str | None = None) -> list[LatestCluster]:
        """The most recent complete run of every cluster (reached or not), newest first per cluster."""
        sql = ("SELECT c.cluster_key, c.cluster, r.scan_id, c.started_at, r.scanner_host, c.reached, c.run_no "
               "FROM run_clusters c JOIN runs r ON r.run_no = c.run_no WHERE r.complete = 1")
        params: list[Any] = []
        if since is not None:
            sql += " AND c.started_at >= ?"
            params.append(since)
        best: dict[str, tuple[Any, ...]] = {}
        for row in self._query(sql, params):
            if row[0] not in best or (row[3], row[6]) > (best[row[0]][3], best[row[0]][6]):
                best[row[0]] = tuple(row)
        return [LatestCluster(cluster=row[1], scan_id=row[2], started_at=row[3], scanner_host=row[4],
                              reached=bool(row[5])) for row in sorted(best.values(), key=lambda r: r[1].casefold())]

    def prune(self, keep_days: int, now: _dt.datetime | None = None) -> int:
        """Delete runs that started more than ``keep_days`` ago, except the last run that reached each
        cluster (still needed to compare with). Returns how many runs were deleted."""
        now = now or _dt.datetime.now(_dt.timezone.utc)
        cutoff = (now - _dt.timedelta(days=keep_days)).strftime("%Y-%m-%dT%H:%M:%SZ")
        try:
            cur = self._conn.cursor()
            self._begin_write(cur)
            try:
                cur.execute(self._sql(
                    "SELECT run_no FROM runs WHERE started_at < ? AND run_no NOT IN ("
                    " SELECT c.run_no FROM run_clusters c JOIN runs r ON r.run_no = c.run_no"
                    " WHERE c.reached = 1 AND r.complete = 1 AND NOT EXISTS ("
                    "  SELECT 1 FROM run_clusters d JOIN runs q ON q.run_no = d.run_no"
                    "  WHERE d.cluster_key = c.cluster_key AND d.reached = 1 AND q.complete = 1"
                    "  AND (d.started_at > c.started_at OR (d.started_at = c.started_at AND d.run_no > c.run_no))))"),
                    (cutoff,))
                doomed = [int(r[0]) for r in cur.fetchall()]
                for chunk in self._chunks(doomed):
                    marks = ", ".join("?" for _ in chunk)
                    for table in ("results", "run_clusters", "runs"):
                        cur.execute(self._sql(f"DELETE FROM {table} WHERE run_no IN ({marks})"), tuple(chunk))
                if doomed:   # findings no run refers to any more
                    cur.execute("DELETE FROM findings WHERE finding_no NOT IN (SELECT finding_no FROM results)")
                self._conn.commit()
            except BaseException:
                self._conn.rollback()
                raise
        except self._errors() as exc:
            raise self._fail("prune", exc) from None
        return len(doomed)


class SQLiteStore(HistoryStore):
    """A local file: WAL mode (readers never block the writer), a generous busy timeout for two
    scans that finish at once, and ``BEGIN IMMEDIATE`` so writers queue instead of deadlocking."""

    types = {"serial": "INTEGER", "blob": "BLOB", "without_rowid": " WITHOUT ROWID"}
    BUSY_TIMEOUT_S = 120.0

    def __init__(self, path: Path) -> None:
        super().__init__(str(path))
        self.path = path

    def _errors(self) -> tuple[type[BaseException], ...]:
        import sqlite3
        return (sqlite3.Error, OSError)

    def _connect(self) -> Any:
        import sqlite3
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(self.path), timeout=self.BUSY_TIMEOUT_S, isolation_level=None)
        conn.execute(f"PRAGMA busy_timeout = {int(self.BUSY_TIMEOUT_S * 1000)}")
        # Switching a new file to WAL while another scan does the same can answer "database is
        # locked" at once, without waiting for the busy timeout: try again until it runs out.
        deadline = time.monotonic() + self.BUSY_TIMEOUT_S
        while True:
            try:
                conn.execute("PRAGMA journal_mode = WAL")
                break
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                    conn.close()
                    raise
                time.sleep(0.05)
        conn.execute("PRAGMA synchronous = FULL")   # a recorded run survives a power cut too
        return _AutoBegin(conn)

    def _begin_write(self, cur: Any) -> None:
        self._conn.begin_write()

    def _insert_run(self, cur: Any, values: Sequence[Any]) -> int:
        cur.execute(self._sql(
            "INSERT INTO runs (scan_id, started_at, finished_at, scanner_host, tool_version, complete, verdict, "
            "n_pass, n_fail, n_error, n_skip, n_waived, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"),
            values)
        return int(cur.lastrowid)

    def _bulk_insert(self, cur: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        marks = ", ".join("?" for _ in columns)
        cur.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)

    def _has_schema_table(self, cur: Any) -> bool:
        cur.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'lmscan_schema'")
        return cur.fetchone() is not None


class _AutoBegin:
    """sqlite3 in autocommit mode (each read is its own snapshot) with explicit write
    transactions, so the shared code can commit and roll back as it does on PostgreSQL."""

    def __init__(self, conn: Any) -> None:
        self.raw = conn

    def cursor(self) -> Any:
        return self.raw.cursor()

    def begin_write(self) -> None:
        self.rollback()
        self.raw.execute("BEGIN IMMEDIATE")

    def commit(self) -> None:
        if self.raw.in_transaction:
            self.raw.execute("COMMIT")

    def rollback(self) -> None:
        if self.raw.in_transaction:
            self.raw.execute("ROLLBACK")

    def close(self) -> None:
        self.rollback()
        self.raw.close()


class PostgresStore(HistoryStore):
    """A shared PostgreSQL database (psycopg 3): several scanner hosts write one history.

    Writers take a transaction-level advisory lock, so two runs (or a migration) never interleave;
    results and new findings go in with ``COPY``.
    """

    placeholder = "%s"
    types = {"serial": "BIGSERIAL", "blob": "BYTEA", "without_rowid": ""}
    LOCK_KEY = 0x6C6D7363   # "lmsc"

    def __init__(self, url: str, password_env: str | None = None) -> None:
        super().__init__(_redact(url))
        self.url = url
        self.password_env = password_env

    def _errors(self) -> tuple[type[BaseException], ...]:
        import psycopg
        return (psycopg.Error,)

    def _connect(self) -> Any:
        try:
            import psycopg
        except ImportError:
            raise HistoryError(f"history {self.where}: PostgreSQL needs psycopg: "
                               "pip install 'lmscan[postgresql]'") from None
        kwargs: dict[str, Any] = {"connect_timeout": 15, "application_name": "lmscan"}
        if self.password_env:
            password = os.environ.get(self.password_env)
            if password is None:
                raise HistoryError(f"history {self.where}: environment variable {self.password_env} "
                                   "(history_password_env) is not set")
            kwargs["password"] = password
        return psycopg.connect(self.url, **kwargs)

    def _begin_write(self, cur: Any) -> None:
        cur.execute("SELECT pg_advisory_xact_lock(%s)", (self.LOCK_KEY,))

    def _lock_schema(self) -> None:
        # A session lock taken in its own transaction: the migrating transaction that follows
        # then starts after any other migration committed, and sees its tables.
        self._conn.execute("SELECT pg_advisory_lock(%s)", (self.LOCK_KEY,))
        self._conn.commit()

    def _unlock_schema(self) -> None:
        self._conn.execute("SELECT pg_advisory_unlock(%s)", (self.LOCK_KEY,))
        self._conn.commit()

    def _insert_run(self, cur: Any, values: Sequence[Any]) -> int:
        cur.execute(self._sql(
            "INSERT INTO runs (scan_id, started_at, finished_at, scanner_host, tool_version, complete, verdict, "
            "n_pass, n_fail, n_error, n_skip, n_waived, document) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "RETURNING run_no"), values)
        return int(cur.fetchone()[0])

    def _bulk_insert(self, cur: Any, table: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def _has_schema_table(self, cur: Any) -> bool:
        cur.execute("SELECT to_regclass('lmscan_schema') IS NOT NULL")
        return bool(cur.fetchone()[0])


def _redact(url: str) -> str:
    """A URL fit for messages: never a password, even one the config check would have refused."""
    from urllib.parse import urlsplit, urlunsplit
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

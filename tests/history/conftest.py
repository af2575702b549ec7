"""Fixtures for the history tests: a real PostgreSQL server on loopback, and synthetic runs.

PostgreSQL is Debian's package (``scripts/run-tests`` installs it), started here with
``initdb``/``pg_ctl`` in a temporary directory on a free loopback port, password
authentication over TCP. Without it the PostgreSQL half of the suite is skipped, unless CI is
set, where that is a failure.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from conftest import in_ci
from scanner.model import ClusterInfo, NodeInfo, Result, ScanReport, Status

DEMO = Path(__file__).parents[2] / "scanner" / "demo"
PG_PASSWORD = "pg-Secr3t-9d1e"
PG_PASSWORD_ENV = "LMSCAN_TEST_PG_PASSWORD"


def _pg_bindir() -> Path | None:
    for d in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True):
        if (Path(d) / "initdb").exists():
            return Path(d)
    found = shutil.which("pg_ctl")
    return Path(found).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The base URL (no database, no password) of a server this session started."""
    bindir = _pg_bindir()
    if bindir is None:
        if in_ci():
            pytest.fail("PostgreSQL is not installed (scripts/run-tests installs Debian's postgresql)")
        pytest.skip("PostgreSQL is not installed (apt-get install postgresql, or run scripts/run-tests)")
    # Not under pytest's temporary directory: that is private to root, and the server runs as postgres.
    base = Path(tempfile.mkdtemp(prefix="lmscan-pg-"))
    data, pwfile = base / "data", base / "pw"
    pwfile.write_text(PG_PASSWORD + "\n")
    as_user: list[str] = []
    if os.getuid() == 0:   # initdb refuses to run as root
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
        shutil.chown(pwfile, "postgres")
    port = _free_port()
    subprocess.run([*as_user, str(bindir / "initdb"), "-D", str(data), "-U", "lmscan", "--pwfile", str(pwfile),
                    "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True)
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -k {base} -c fsync=off -c max_connections=40"
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(base / "log"),
                    "-w", "-t", "60", "start"], check=True, capture_output=True)
    try:
        yield f"postgresql://lmscan@127.0.0.1:{port}"
    finally:
        subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


_DB_COUNTER = iter(range(1, 1_000_000))


@pytest.fixture
def postgres_url(postgres_server: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh, empty database; the password only in the environment variable named for the store."""
    import psycopg
    name = f"t{next(_DB_COUNTER)}"
    with psycopg.connect(f"{postgres_server}/postgres", password=PG_PASSWORD, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    monkeypatch.setenv(PG_PASSWORD_ENV, PG_PASSWORD)
    return f"{postgres_server}/{name}"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str | None]:
    """(location, password_env) of an empty store of each kind: the same tests run against both."""
    if request.param == "sqlite":
        return str(tmp_path / "history.db"), None
    return request.getfixturevalue("postgres_url"), PG_PASSWORD_ENV


@pytest.fixture(scope="session")
def demo_report() -> ScanReport:
    from scanner.pipeline import run_scan
    return run_scan([DEMO], DEMO / "policy.yaml")


def run_at(report: ScanReport, day: int, scan_id: str | None = None) -> ScanReport:
    """The report as if run on day ``day`` of November 2026 at 02:00 UTC, with its own id."""
    stamp = f"2026-11-{day:02d}T02:00:00Z"
    scan = dataclasses.replace(report.scan, id=scan_id or f"scan-{day:02d}", started_at=stamp,
                               finished_at=stamp.replace("02:00:00", "02:05:00"))
    return dataclasses.replace(report, scan=scan, _verdicts={})


def set_status(report: ScanReport, result_id: str, status: Status) -> ScanReport:
    assert any(r.id == result_id for r in report.results), result_id
    results = tuple(dataclasses.replace(r, status=status) if r.id == result_id else r for r in report.results)
    return dataclasses.replace(report, results=results, _verdicts={})


def without(report: ScanReport, result_id: str) -> ScanReport:
    return dataclasses.replace(report, results=tuple(r for r in report.results if r.id != result_id), _verdicts={})


def unreachable(report: ScanReport, cluster: str) -> ScanReport:
    """The cluster did not answer: no node collected, only cluster-level results, all ``error``."""
    key = cluster.casefold()
    clusters = tuple(ClusterInfo(c.name, c.os, tuple(NodeInfo(n.name, False, "connection refused") for n in c.nodes))
                     if c.name.casefold() == key else c for c in report.clusters)
    results: list[Result] = []
    for r in report.results:
        if r.cluster.casefold() != key:
            results.append(r)
        elif r.target.kind == "cluster":
            results.append(dataclasses.replace(r, status=Status.ERROR, message="no node could be collected"))
    return dataclasses.replace(report, clusters=clusters, results=tuple(results), _verdicts={})

"""The history store, the same tests against SQLite and a real PostgreSQL server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import zlib
from pathlib import Path

import pytest

from scanner.changes import mark_changes
from scanner.history import MIGRATIONS, SCHEMA_VERSION, HistoryError, open_store
from scanner.model import Change, ScanReport, Status
from scanner.render import render_json
from scanner.resultsfile import parse_results

from .conftest import run_at, set_status, unreachable, without

ROOT = Path(__file__).parents[2]
FAILING = "HOST002/HVCLU19/node/HV19-N3"          # fails in the demo


def _open(location: tuple[str, str | None]):  # type: ignore[no-untyped-def]
    return open_store(location[0], location[1]).open()


def _record(store, report: ScanReport) -> ScanReport:  # type: ignore[no-untyped-def]
    marked = mark_changes(report, store.baselines([c.name for c in report.clusters]), "history")
    store.record(marked, render_json(marked))
    return marked


def _change(report: ScanReport, rid: str) -> Change | None:
    return next(r.change for r in report.results if r.id == rid)


def _passing(report: ScanReport) -> str:
    return next(r.id for r in report.results if r.status is Status.PASS and r.cluster == "HVCLU22")


def test_record_list_find_and_document_round_trip(store_location, demo_report):
    with _open(store_location) as store:
        first = _record(store, run_at(demo_report, 1))
        second = _record(store, run_at(demo_report, 2))
        runs = store.runs()
        assert [r.scan_id for r in runs] == ["scan-01", "scan-02"]
        assert runs[0].counts == first.summary and runs[0].verdict == "fail" and runs[0].complete
        assert runs[0].clusters == ("AZLCLU01", "HVCLU08", "HVCLU19", "HVCLU22")
        assert store.runs(since="2026-11-02T00:00:00Z")[0].scan_id == "scan-02"
        assert store.runs(cluster="hvclu19") and not store.runs(cluster="NOPE")
        assert store.find("scan-02") == "scan-02"
        with pytest.raises(HistoryError, match="more than one"):
            store.find("scan-0")
        with pytest.raises(HistoryError, match="no scan"):
            store.find("zzz")
        # The document is the JSON that was written, byte for byte, and re-renders the same.
        raw = store.document("scan-02")
        assert raw == render_json(second)
        assert render_json(parse_results(raw, "x")) == raw
        latest = store.latest_per_cluster()
        assert [x.scan_id for x in latest] == ["scan-02"] * 4


def test_a_failure_appears_persists_is_fixed_and_comes_back(store_location, demo_report):
    ok = _passing(demo_report)
    base = set_status(demo_report, FAILING, Status.PASS)
    with _open(store_location) as store:
        day1 = _record(store, run_at(base, 1))
        assert _change(day1, FAILING) is Change.NEW                # first run: everything is new
        assert day1.changes is not None and day1.changes.scan_id is None
        day2 = _record(store, run_at(base, 2))
        assert {r.change for r in day2.results} == {Change.UNCHANGED}
        assert day2.changes is not None and day2.changes.scan_id == "scan-01"
        day3 = _record(store, run_at(demo_report, 3))              # the failure appears
        assert _change(day3, FAILING) is Change.NEW
        assert day3.changes is not None and day3.changes.counts["new"] == 1
        day4 = _record(store, run_at(demo_report, 4))              # persists
        assert _change(day4, FAILING) is Change.UNCHANGED
        day5 = _record(store, run_at(base, 5))                     # fixed
        assert _change(day5, FAILING) is Change.RESOLVED
        assert day5.changes is not None and [f.id for f in day5.changes.resolved] == [FAILING]
        day6 = _record(store, run_at(base, 6))
        assert _change(day6, FAILING) is Change.UNCHANGED
        day7 = _record(store, run_at(demo_report, 7))              # comes back
        assert _change(day7, FAILING) is Change.REOPENED
        assert day7.changes is not None and day7.changes.counts["reopened"] == 1
        # A passing result that disappears is simply gone; a failing one that disappears is resolved.
        day8 = _record(store, run_at(without(without(demo_report, FAILING), ok), 8))
        assert day8.changes is not None
        gone = [f for f in day8.changes.resolved if f.gone]
        assert [f.id for f in gone] == [FAILING] and gone[0].rule == "HOST002" and gone[0].cluster == "HVCLU19"
        assert gone[0].target.kind == "node"
        trend = day8.changes.trend["HVCLU19"]
        assert [p.fail for p in trend] == [10, 10, 11, 11, 10, 10, 11]   # HVCLU19 of the demo


def test_an_unreachable_cluster_is_compared_with_the_last_run_that_reached_it(store_location, demo_report):
    with _open(store_location) as store:
        _record(store, run_at(demo_report, 1))
        down = _record(store, run_at(unreachable(demo_report, "HVCLU19"), 2))
        assert down.changes is not None
        cmp = {c.cluster: c for c in down.changes.clusters}
        assert cmp["HVCLU19"].state == "stopped" and "did not answer" in cmp["HVCLU19"].note
        # Its findings are not known now: nothing of it is resolved, its errors are not news.
        assert not [f for f in down.changes.resolved if f.cluster == "HVCLU19"]
        assert {r.change for r in down.results if r.cluster == "HVCLU19"} <= {Change.UNCHANGED}
        still = _record(store, run_at(unreachable(demo_report, "HVCLU19"), 3))
        assert still.changes is not None
        assert {c.cluster: c.state for c in still.changes.clusters}["HVCLU19"] == "unreachable"
        # Back: compared with day 1 (the last run that reached it), not with the error run.
        back = _record(store, run_at(set_status(demo_report, FAILING, Status.PASS), 4))
        assert back.changes is not None
        cmp = {c.cluster: c for c in back.changes.clusters}
        assert cmp["HVCLU19"].state == "started" and cmp["HVCLU19"].scan_id == "scan-01"
        assert "answers again" in cmp["HVCLU19"].note
        marks = {r.id: r.change for r in back.results if r.cluster == "HVCLU19"}
        assert marks[FAILING] is Change.RESOLVED
        assert {m for rid, m in marks.items() if rid != FAILING} == {Change.UNCHANGED}
        assert cmp["HVCLU22"].state == "compared" and cmp["HVCLU22"].scan_id == "scan-03"


def test_prune_keeps_the_last_run_that_reached_each_cluster(store_location, demo_report):
    import datetime as dt
    with _open(store_location) as store:
        _record(store, run_at(demo_report, 1))
        _record(store, run_at(demo_report, 2))
        _record(store, run_at(unreachable(demo_report, "HVCLU19"), 3))
        _record(store, run_at(demo_report, 20))
        deleted = store.prune(5, now=dt.datetime(2026, 11, 21, tzinfo=dt.timezone.utc))
        assert deleted == 3
        assert [r.scan_id for r in store.runs()] == ["scan-20"]
        _record(store, run_at(unreachable(demo_report, "HVCLU19"), 21))
        # scan-20 is the last that reached HVCLU19, scan-21 the other clusters: both stay however old.
        assert store.prune(0, now=dt.datetime(2026, 12, 31, tzinfo=dt.timezone.utc)) == 0
        assert [r.scan_id for r in store.runs()] == ["scan-20", "scan-21"]
        _record(store, run_at(demo_report, 22))
        assert store.prune(0, now=dt.datetime(2026, 12, 31, tzinfo=dt.timezone.utc)) == 2
        assert [r.scan_id for r in store.runs()] == ["scan-22"]


def test_schema_migration_from_the_previous_version(store_location, demo_report):
    store = open_store(store_location[0], store_location[1])
    store._conn = store._connect()
    store.migrate(target=SCHEMA_VERSION - 1)       # a store as the previous lmscan left it
    assert store.schema_version() == SCHEMA_VERSION - 1
    cur = store._conn.cursor()
    store._begin_write(cur)
    for day, status in ((1, "fail"), (2, "pass")):  # the finding failed, then was fixed
        doc = zlib.compress(render_json(run_at(demo_report, day)))
        stamp = f"2026-11-0{day}T02:00:00Z"
        cur.execute(store._sql("INSERT INTO runs (scan_id, started_at, finished_at, scanner_host, tool_version,"
                               " complete, verdict, n_pass, n_fail, n_error, n_skip, n_waived, document)"
                               " VALUES (?, ?, ?, 'old', '0.9', 1, 'fail', 1, 1, 0, 0, 0, ?)"),
                    (f"old-{day}", stamp, stamp, doc))
        cur.execute(store._sql("SELECT run_no FROM runs WHERE scan_id = ?"), (f"old-{day}",))
        run_no = cur.fetchone()[0]
        cur.execute(store._sql("INSERT INTO run_clusters VALUES (?, 'hvclu19', 'HVCLU19', ?, 1, 4, 4, 1, 0)"),
                    (run_no, stamp))
        for rid, st in ((FAILING, status), ("LM002/HVCLU19/cluster/HVCLU19", "pass")):
            cur.execute(store._sql("INSERT INTO results (run_no, cluster_key, result_id, rule, status, severity,"
                                   " target_kind, target_name, target_id, target_node, message, change, waiver, title)"
                                   " VALUES (?, 'hvclu19', ?, ?, ?, 'medium', 'node', 'HV19-N3', NULL, 'HV19-N3',"
                                   " 'old message', NULL, NULL, 'Old title')"), (run_no, rid, rid.split("/")[0], st))
    store._conn.commit()
    store.close()
    with _open(store_location) as migrated:        # first use by this lmscan migrates forward
        assert migrated.schema_version() == SCHEMA_VERSION
        assert [r.scan_id for r in migrated.runs()] == ["old-1", "old-2"]
        base = migrated.baselines(["HVCLU19"])["hvclu19"]
        assert base.scan_id == "old-2" and base.results[FAILING].status is Status.PASS
        assert base.results[FAILING].title == "Old title" and base.failed_before == frozenset({FAILING})
        now = _record(migrated, run_at(demo_report, 3))
        assert _change(now, FAILING) is Change.REOPENED      # it failed on day 1, before the migration
        assert json.loads(migrated.document("old-1"))["scan"]["id"] == "scan-01"
    assert len(MIGRATIONS) == SCHEMA_VERSION


def test_a_newer_schema_is_refused(store_location):
    with _open(store_location) as store:
        cur = store._conn.cursor()
        store._begin_write(cur)
        cur.execute(f"UPDATE lmscan_schema SET version = {SCHEMA_VERSION + 1}")
        store._conn.commit()
    with pytest.raises(HistoryError, match="upgrade lmscan"):
        _open(store_location)


_WRITER = textwrap.dedent("""
    import dataclasses, sys
    from pathlib import Path
    from scanner.history import open_store
    from scanner.pipeline import run_scan
    from scanner.render import render_json
    from scanner.model import ScanReport
    location, password_env, tag, count = sys.argv[1], sys.argv[2] or None, sys.argv[3], int(sys.argv[4])
    copies = int(sys.argv[5])
    base = run_scan([Path("scanner/demo")], Path("scanner/demo/policy.yaml"))
    # A bigger run (copies of every result) so that a write takes a while.
    results = tuple(dataclasses.replace(r, id=f"{r.id}#{i}") for i in range(copies) for r in base.results)
    store = open_store(location, password_env).open()
    print("ready", flush=True)
    for n in range(count):
        scan = dataclasses.replace(base.scan, id=f"{tag}-{n}")
        report = dataclasses.replace(base, scan=scan, results=results, _verdicts={})
        store.record(report, render_json(report))
        print("recorded", n, flush=True)
    store.close()
""")


def _consistent(location: tuple[str, str | None]) -> list[str]:
    """Every recorded run is whole: its results match its counts and its document reads back."""
    with _open(location) as store:
        runs = store.runs()
        for run in runs:
            rows = store._query("SELECT COUNT(*) FROM results s JOIN runs r ON r.run_no = s.run_no "
                                "WHERE r.scan_id = ?", (run.scan_id,))
            assert not store._query("SELECT s.finding_no FROM results s LEFT JOIN findings f "
                                    "ON f.finding_no = s.finding_no WHERE f.finding_no IS NULL")
            assert rows[0][0] == sum(run.counts.values()), run.scan_id
            assert json.loads(store.document(run.scan_id))["scan"]["id"] == run.scan_id
        if not str(location[0]).startswith("postgresql"):
            assert store._query("PRAGMA integrity_check") == [("ok",)]
        return [r.scan_id for r in runs]


def test_kill_9_during_a_write_leaves_the_store_consistent(store_location):
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, store_location[0], store_location[1] or "", "k", "1000", "50"],
                            cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = [proc.stdout.readline() for _ in range(3)]    # ready, and two whole runs
    assert lines[0].startswith("ready") and lines[2].startswith("recorded 1"), lines
    time.sleep(0.05)                                      # well inside the next write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    recorded = _consistent(store_location)
    assert recorded[:2] == ["k-0", "k-1"]
    with _open(store_location) as store:                  # and nothing is left locked
        base = store.baselines(["HVCLU19"])["hvclu19"]
        assert base.scan_id == recorded[-1]


def test_two_scans_write_one_store_at_once(store_location):
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, store_location[0], store_location[1] or "", tag, "3", "10"],
                              cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for tag in ("a", "b")]
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err
    recorded = _consistent(store_location)
    assert sorted(recorded) == [f"{t}-{n}" for t in "ab" for n in range(3)]


def test_a_bad_store_is_one_line(tmp_path):
    bad = tmp_path / "not-a-db"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(HistoryError, match=r"history .*not-a-db: cannot open the store: file is not a database"):
        open_store(bad).open()


def test_postgres_password_comes_from_the_named_variable(postgres_url, monkeypatch):
    from scanner.history import PostgresStore
    monkeypatch.delenv("PGPASSWORD", raising=False)
    with pytest.raises(HistoryError, match="LMSCAN_NOPE .*is not set"):
        PostgresStore(postgres_url, "LMSCAN_NOPE").open()
    monkeypatch.setenv("LMSCAN_WRONG", "wrong-password")
    with pytest.raises(HistoryError) as err:
        PostgresStore(postgres_url, "LMSCAN_WRONG").open()
    assert "password authentication failed" in str(err.value) and "wrong-password" not in str(err.value)


def test_results_marked_in_the_store_match_the_json(store_location, demo_report):
    with _open(store_location) as store:
        _record(store, run_at(demo_report, 1))
        day2 = _record(store, run_at(set_status(demo_report, FAILING, Status.PASS), 2))
        rows = dict(store._query("SELECT f.result_id, s.change FROM results s JOIN runs r ON r.run_no = s.run_no "
                                 "JOIN findings f ON f.finding_no = s.finding_no WHERE r.scan_id = 'scan-02'"))
        assert rows == {r.id: r.change.value for r in day2.results if r.change}
        assert day2.scan.to_dict() == parse_results(store.document("scan-02"), "x").scan.to_dict()

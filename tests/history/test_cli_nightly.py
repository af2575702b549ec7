"""Nightly runs through the command line: change marks, --fail-on-new, --baseline, history commands."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
from pathlib import Path

import pytest

from scanner.cli import main
from scanner.history import open_store
from scanner.render import render_json

from .conftest import DEMO, PG_PASSWORD_ENV, run_at

HOST002 = "HOST002/HVCLU19/node/HV19-N3"


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """HVCLU19 and HVCLU22 as snapshot files we can change between runs; HV19-N3 starts compliant."""
    root = tmp_path / "snaps"
    for name in ("HVCLU19", "HVCLU22"):
        shutil.copytree(DEMO / name, root / name)
    _set_any_network(root, False)
    return root


def _set_any_network(root: Path, on: bool) -> None:
    node = root / "HVCLU19" / "HV19-N3.json"
    doc = json.loads(node.read_text(encoding="utf-8"))
    doc["sections"]["VMHost"]["UseAnyNetworkForMigration"] = on
    node.write_text(json.dumps(doc), encoding="utf-8")


def _scan(fleet: Path, tmp_path: Path, *extra: str) -> tuple[int, dict]:  # type: ignore[type-arg]
    out = tmp_path / "results.json"
    code = main(["scan", "--snapshot", str(fleet), "--policy", str(DEMO / "policy.yaml"), "--json", str(out),
                 "--history", str(tmp_path / "h.db"), *extra])
    return code, json.loads(out.read_text(encoding="utf-8"))


def _mark(doc: dict, rid: str) -> str:  # type: ignore[type-arg]
    return next(r["change"] for r in doc["results"] if r["id"] == rid)


def test_fail_on_new_exit_codes_and_the_summary(fleet, tmp_path, capsys):
    code, first = _scan(fleet, tmp_path, "--fail-on-new")
    assert code == 1                                    # the first run: every failure is new
    assert first["changes"]["scan_id"] is None and first["changes"]["counts"]["new"] == len(first["results"])
    capsys.readouterr()
    code, second = _scan(fleet, tmp_path, "--fail-on-new")
    assert code == 0                                    # the same failures again: tolerated
    known = second["summary"]["fail"]
    out = capsys.readouterr().out
    assert f"--fail-on-new: {known} known failures tolerated" in out
    assert second["changes"]["tolerated"] == known and second["changes"]["scan_id"] == first["scan"]["id"]
    assert {r["change"] for r in second["results"]} == {"unchanged"}
    code, _ = _scan(fleet, tmp_path)
    assert code == 1                                    # without the ratchet, known failures still fail
    _set_any_network(fleet, True)
    code, third = _scan(fleet, tmp_path, "--fail-on-new")
    assert code == 1 and _mark(third, HOST002) == "new"
    assert "2 new or reopened failures" in capsys.readouterr().out   # HOST005 too: the nodes now differ
    _set_any_network(fleet, False)
    code, fourth = _scan(fleet, tmp_path, "--fail-on-new")
    assert code == 0 and _mark(fourth, HOST002) == "resolved"
    assert [f["id"] for f in fourth["changes"]["resolved"]] == [HOST002, "HOST005/HVCLU19/cluster/HVCLU19"]
    _set_any_network(fleet, True)
    code, fifth = _scan(fleet, tmp_path, "--fail-on-new", "--fail-on", "critical")
    assert code == 0 and _mark(fifth, HOST002) == "reopened"   # below --fail-on: counts for nothing
    code, _ = _scan(fleet, tmp_path, "--fail-on-new", "--no-history")
    assert code == 2 and "--fail-on-new: needs something to compare with" in capsys.readouterr().err


def test_baseline_file_instead_of_history(fleet, tmp_path):
    code, base = _scan(fleet, tmp_path, "--no-history")
    assert "changes" not in base and all("change" not in r for r in base["results"])
    saved = tmp_path / "baseline.json"
    shutil.copy(tmp_path / "results.json", saved)
    _set_any_network(fleet, True)
    code, now = _scan(fleet, tmp_path, "--no-history", "--baseline", str(saved), "--fail-on-new")
    assert code == 1 and _mark(now, HOST002) == "new"
    assert now["changes"]["source"] == "baseline" and now["changes"]["scan_id"] == base["scan"]["id"]
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "results"}')
    code = main(["scan", "--snapshot", str(fleet), "--baseline", str(bad), "--no-history", "-q"])
    assert code == 2


def test_history_commands(fleet, tmp_path, capsys):
    _scan(fleet, tmp_path, "-q")
    first = (tmp_path / "results.json").read_bytes()
    _set_any_network(fleet, True)
    _scan(fleet, tmp_path, "-q", "--html", str(tmp_path / "r.html"), "--junit", str(tmp_path / "j.xml"))
    second = (tmp_path / "results.json").read_bytes()
    ids = [json.loads(x)["scan"]["id"] for x in (first, second)]
    capsys.readouterr()
    db = ["--history", str(tmp_path / "h.db")]
    assert main(["history", "list", *db]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and ids[0] in lines[0] and "HVCLU19, HVCLU22" in lines[0] and "FAIL" in lines[0]
    assert main(["history", "list", "--cluster", "nope", *db]) == 0
    assert "no recorded runs match" in capsys.readouterr().out
    assert main(["history", "list", "--since", "1h", *db]) == 0 and len(capsys.readouterr().out.splitlines()) == 2
    # history show: the JSON exactly as written then; other formats re-rendered from it.
    assert main(["history", "show", ids[0][:8], *db]) == 0
    assert capsys.readouterr().out.encode() == first
    out = tmp_path / "again"
    assert main(["history", "show", ids[1], "--out-dir", str(out), *db]) == 0
    assert (out / "results.json").read_bytes() == second
    html = (out / "report.html").read_text(encoding="utf-8")
    assert "Since the last run" in html and "HV19-N3" in html
    assert (out / "junit.xml").read_text(encoding="utf-8") == (tmp_path / "j.xml").read_text(encoding="utf-8")
    assert main(["history", "diff", ids[0], ids[1], *db]) == 0
    diff = capsys.readouterr().out
    assert "2 new" in diff and "+ new" in diff and "HOST002" in diff and "HV19-N3" in diff
    assert main(["history", "diff", ids[1], ids[0], *db]) == 0
    assert "- resolved" in capsys.readouterr().out
    assert main(["history", "show", "nope", *db]) == 2
    assert "no scan 'nope'" in capsys.readouterr().err
    assert main(["history", "prune", "--keep-days", "30", *db]) == 0
    assert "pruned 0 runs" in capsys.readouterr().out
    assert main(["history", "list", "--history", str(tmp_path / "none.db")]) == 2


def test_junit_carries_the_change_marks(fleet, tmp_path):
    _scan(fleet, tmp_path, "-q")
    _set_any_network(fleet, True)
    _scan(fleet, tmp_path, "-q", "--junit", str(tmp_path / "j.xml"))
    import xml.etree.ElementTree as ET
    root = ET.parse(tmp_path / "j.xml").getroot()
    suite = next(s for s in root if s.get("name") == "HVCLU19")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["changes.new"] == "2" and props[f"change.{HOST002}"] == "new"
    assert props["changes.compared_scan"] and props["changes.source"] == "history"
    failure = next(c for c in suite.iter("testcase") if c.get("name") == "HOST002 (medium) node HV19-N3")
    assert failure.find("failure").get("message").startswith("NEW [medium]")  # type: ignore[union-attr]


def test_merged_report_across_scanner_hosts(tmp_path, demo_report, capsys):
    import dataclasses
    db = tmp_path / "h.db"
    with open_store(db).open() as store:
        for day, host, cluster in ((1, "scan-eu", "HVCLU19"), (2, "scan-us", "HVCLU22"), (3, "scan-eu", "HVCLU22")):
            part = dataclasses.replace(
                demo_report, clusters=tuple(c for c in demo_report.clusters if c.name == cluster),
                results=tuple(r for r in demo_report.results if r.cluster == cluster), _verdicts={})
            report = run_at(part, day)
            store.record(report, render_json(report), host=host)
    out = tmp_path / "fleet.json"
    assert main(["report", "--from-history", "--history", str(db), "--json", str(out), "--max-age", "100000d"]) == 0
    doc = json.loads(out.read_text())
    origins = {o["cluster"]: o for o in doc["origins"]}
    assert origins["HVCLU19"]["scanner_host"] == "scan-eu" and origins["HVCLU19"]["scan_id"] == "scan-01"
    assert origins["HVCLU22"]["scan_id"] == "scan-03" and not origins["HVCLU22"]["stale"]
    assert {r["cluster"] for r in doc["results"]} == {"HVCLU19", "HVCLU22"}
    assert "scan-eu" in capsys.readouterr().out
    html = tmp_path / "fleet.html"
    assert main(["report", "--from-history", "--history", str(db), "--html", str(html), "-q"]) == 0
    text = html.read_text(encoding="utf-8")
    assert "Where each cluster comes from" in text and "STALE" in text and "scan-us" not in text
    assert main(["report", "--from-history", "--history", str(db), "--since", "2026-11-03", "--json", str(out)]) == 0
    assert [o["cluster"] for o in json.loads(out.read_text())["origins"]] == ["HVCLU22"]
    assert main(["report", "--from-history", "--history", str(db), "--since", "yesterday-ish"]) == 2


def test_scan_into_postgresql_with_the_password_by_reference(fleet, tmp_path, postgres_url, capsys):
    config = tmp_path / "lmscan.yaml"
    config.write_text(textwrap.dedent(f"""\
        lmscan_config: 1
        snapshots: [{fleet}]
        policy: {DEMO / "policy.yaml"}
        history: {postgres_url}
        history_password_env: {PG_PASSWORD_ENV}
        """))
    assert main(["scan", "--config", str(config), "-q", "--json", str(tmp_path / "a.json")]) == 1
    _set_any_network(fleet, True)
    assert main(["scan", "--config", str(config), "-q", "--json", str(tmp_path / "b.json"), "--fail-on-new"]) == 1
    doc = json.loads((tmp_path / "b.json").read_text())
    assert _mark(doc, HOST002) == "new"
    assert main(["history", "list", "--config", str(config)]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2
    assert main(["scan", "--config", str(config), "-q", "--history", postgres_url.replace("lmscan@", "lmscan:pw@")]) == 2
    err = capsys.readouterr().err
    assert "the URL holds a password" in err and ":pw@" not in err


def test_every_scan_is_recorded_by_default(fleet, tmp_path, monkeypatch):
    monkeypatch.delenv("LMSCAN_HISTORY")
    assert main(["scan", "--snapshot", str(fleet), "-q"]) == 1
    default = Path(os.environ["XDG_DATA_HOME"]) / "lmscan" / "history.db"
    with open_store(default).open() as store:
        assert len(store.runs()) == 1
    assert main(["scan", "--demo", "-q", "--out-dir", str(tmp_path / "demo")]) == 1
    with open_store(default).open() as store:
        assert len(store.runs()) == 1       # the bundled demo stays out of a real history
    monkeypatch.setenv("LMSCAN_HISTORY", "off")              # off for scans; the commands read the default
    assert main(["history", "list"]) == 0
    monkeypatch.setenv("LMSCAN_HISTORY", str(tmp_path / "elsewhere.db"))
    assert main(["scan", "--snapshot", str(fleet), "-q"]) == 1
    assert (tmp_path / "elsewhere.db").exists()


def test_sarif_baseline_state(fleet, tmp_path, shared_file):
    import jsonschema
    schema = json.loads(shared_file("schemas/sarif-2.1.0.json").read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    _scan(fleet, tmp_path, "-q")
    _set_any_network(fleet, True)
    _scan(fleet, tmp_path, "-q", "--sarif", str(tmp_path / "new.sarif"))
    _set_any_network(fleet, False)
    _scan(fleet, tmp_path, "-q", "--sarif", str(tmp_path / "fixed.sarif"))
    new = json.loads((tmp_path / "new.sarif").read_text(encoding="utf-8"))
    fixed = json.loads((tmp_path / "fixed.sarif").read_text(encoding="utf-8"))
    for doc in (new, fixed):
        assert not list(validator.iter_errors(doc))
    states = {r["partialFingerprints"]["lmscanResultId/v1"]: r["baselineState"] for r in new["runs"][0]["results"]}
    assert states[HOST002] == "new" and set(states.values()) == {"new", "unchanged"}
    absent = [r for r in fixed["runs"][0]["results"] if r["baselineState"] == "absent"]
    assert {r["partialFingerprints"]["lmscanResultId/v1"] for r in absent} == {HOST002,
                                                                                "HOST005/HVCLU19/cluster/HVCLU19"}
    assert all(r["kind"] == "pass" and r["message"]["text"].startswith("Resolved since") for r in absent)
    old = {r["partialFingerprints"]["lmscanResultId/v1"]: r for r in new["runs"][0]["results"]}
    assert absent[0]["correlationGuid"] == old[absent[0]["partialFingerprints"]["lmscanResultId/v1"]]["correlationGuid"]

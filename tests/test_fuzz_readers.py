"""Issue 7 fuzz suite: policy, rule pack, inventory and snapshot readers never crash.

For any input: exit 2 with exactly one line on stderr, or a valid outcome (a report that parses);
never exit 4, never a traceback. Inputs are valid documents with random parts replaced by
random values or hostile YAML/JSON constructs. The budget is a few dozen examples per reader
(seconds, not minutes); ``LMSCAN_FUZZ_EXAMPLES`` raises it for a longer local run.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scanner.cli import main
from scanner.errors import ScannerError

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "scanner" / "demo"
EXAMPLES = int(os.environ.get("LMSCAN_FUZZ_EXAMPLES", "25"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(10 ** 30), max_value=10 ** 30),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
    st.sampled_from(["iscsi", "10.10.10.0/24", "10.0.0.0/33", "::/0", "LM001", "critical", "HIGH", "Kerberos",
                     "2027-13-01", "2026-02-29", "0001-01-01T00:00:00+01:00", "{{ x }}", "{% include 'a' %}",
                     "^(a+)+$", "(a)\\1", "[", "*", "", " ", "\x00", "\u202e", "9" * 5000]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                      st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=12)
# Raw YAML fragments that exercise the parser rather than the schema.
YAML_HAZARDS = ["&a [x, *a]", "*nope", "!!timestamp 2024-13-45", "!!int abc", "!!binary AAA", "!!set {a}",
                ".nan", "-.inf", "2027-13-01", "[" * 300 + "]" * 300, "{a: 1, a: 2}", "'unterminated", "\t- x",
                "!!python/name:os.system", "<<: *nope", "0x" + "f" * 300, "\x00", "\ufeff", "|\n  x\n y"]


def run(argv: list[str]) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:      # argparse
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def check_outcome(code: int, err: str, ok_codes: tuple[int, ...]) -> None:
    assert "Traceback" not in err and "internal error" not in err, err
    if code == 2:
        assert err.count("\n") == 1 and err.startswith("lmscan"), err
    else:
        assert code in ok_codes, (code, err)


def mutate(doc: Any, data: st.DataObject, depth: int = 0) -> Any:
    """Replace, drop or add a few parts of a document, keeping most of it valid."""
    if depth > 6 or data.draw(st.integers(0, 9), label="keep") > 2:
        if isinstance(doc, dict):
            return {k: mutate(v, data, depth + 1) for k, v in doc.items()}
        if isinstance(doc, list):
            return [mutate(v, data, depth + 1) for v in doc]
        return doc
    action = data.draw(st.sampled_from(["replace", "drop", "add"]), label="action")
    if action == "replace" or not isinstance(doc, (dict, list)):
        return data.draw(values, label="value")
    if isinstance(doc, dict):
        doc = dict(doc)
        if action == "drop" and doc:
            doc.pop(data.draw(st.sampled_from(sorted(doc, key=str)), label="drop"))
        else:
            doc[data.draw(st.text(max_size=10), label="key")] = data.draw(values, label="value")
        return doc
    doc = list(doc)
    if action == "drop" and doc:
        doc.pop(data.draw(st.integers(0, len(doc) - 1), label="drop"))
    else:
        doc.append(data.draw(values, label="value"))
    return doc


def yaml_text(doc: Any, data: st.DataObject) -> str:
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    if data.draw(st.booleans(), label="hazard"):
        lines = text.splitlines()
        i = data.draw(st.integers(0, len(lines)), label="line")
        hazard = data.draw(st.sampled_from(YAML_HAZARDS), label="what")
        key = data.draw(st.sampled_from(["", "description: ", "x: ", "- "]), label="key")
        lines.insert(i, key + hazard)
        text = "\n".join(lines) + "\n"
    return text


POLICY = yaml.safe_load((DEMO / "policy.yaml").read_text()) | {
    "live_migration": {"allowed": ["live_migration", "cluster", "storage"], "preferred": ["live_migration"]},
    "overrides": {"LM008": {"enabled": False}, "HOST004": {"severity": "medium"}},
    "waivers": [{"rule": "LM003", "cluster": "HV*", "target": "VM-*", "reason": "r", "expires": "2027-01-31"}],
    "rules": [{"id": "SITE001", "title": "t", "severity": "high", "scope": "network",
               "select": {"fact": "name", "matches": "^Replica"}, "expect": {"fact": "carries_lm", "eq": False},
               "message": {"fail": "{{ network.name }} carries LM"}, "rationale": "r",
               "remediation": "# {{ network.name }}\n{{ set_exclude(exclude | union(failing_ids)) }}"}],
}
PACK = {"lmscan_rules": 1, "pack": {"name": "fuzz", "version": "1"}, "rules": [
    {"id": "FZ001", "title": "t", "severity": "low", "scope": "node", "skip_when": {"count": "migration_networks",
                                                                                   "eq": 0},
     "expect": {"each": "migration_networks", "holds": {"fact": "class", "in": {"policy": "live_migration.allowed"}}},
     "message": {"pass": "{{ node.name | upper }}", "fail": "{{ failing | map(attribute='subnet') | join(', ') }}"},
     "rationale": "r", "remediation": "{% for m in failing %}\nRemove-VMMigrationNetwork -Subnet {{ m.subnet | psq }}\n"
                                      "{% endfor %}"},
    {"id": "FZ002", "title": "t", "severity": "info", "scope": "cluster",
     "expect": {"all": [{"fact": "first_network_class", "in": ["live_migration"]},
                        {"fact": "name", "not_matches": "^TEST"}]},
     "rationale": "r", "remediation": "# {{ cluster.name }}"}]}
INVENTORY = {"lmscan_inventory": 1,
             "defaults": {"transport": "basic", "scheme": "http", "username": "svc", "password_env": "FUZZ_PW",
                          "allow_unencrypted": True, "timeout": 5},
             "clusters": [{"name": "C1", "nodes": ["hv01.example.test", {"name": "hv02.example.test", "port": 5985}]},
                          {"name": "C2", "discover_from": "hv11.example.test"}]}


@FUZZ
@given(st.data())
def test_fuzz_policy_reader(data):
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "policy.yaml"
        f.write_text(yaml_text(mutate(POLICY, data), data), encoding="utf-8")
        code, _, err = run(["rules", "validate", str(f)])
        check_outcome(code, err, (0,))


@FUZZ
@given(st.data())
def test_fuzz_rule_pack_reader(data):
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "pack.yaml"
        f.write_text(yaml_text(mutate(PACK, data), data), encoding="utf-8")
        code, _, err = run(["rules", "validate", str(f)])
        check_outcome(code, err, (0,))
        if code == 0:     # a pack that loads also scans: a report or exit 2, never a crash
            out = Path(tmp) / "r.json"
            code, _, err = run(["scan", "--snapshot", str(DEMO / "HVCLU19"), "--policy", str(DEMO / "policy.yaml"),
                                "--rules", str(f), "-q", "--json", str(out)])
            check_outcome(code, err, (0, 1, 3))
            if code != 2:
                assert json.loads(out.read_text())["lmscan_results"] == 1


@FUZZ
@given(st.data())
def test_fuzz_inventory_reader(data):
    from scanner.collect.inventory import load_inventory

    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "inventory.yaml"
        f.write_text(yaml_text(mutate(INVENTORY, data), data), encoding="utf-8")
        try:
            load_inventory(f, environ={"FUZZ_PW": "secret"}, prompt=None)
        except ScannerError as exc:
            assert "\n" not in str(exc) and str(exc).startswith(str(f)), str(exc)


SNAPSHOTS = {p.name: json.loads(p.read_text()) for p in sorted((DEMO / "HVCLU19").glob("*.json"))}


@FUZZ
@given(st.data())
def test_fuzz_snapshot_reader_and_every_report(data):
    with tempfile.TemporaryDirectory() as tmp:
        snaps = Path(tmp) / "in"
        snaps.mkdir()
        target = data.draw(st.sampled_from(sorted(SNAPSHOTS)), label="file")
        for name, doc in SNAPSHOTS.items():
            doc = mutate(doc, data) if name == target else doc
            raw = json.dumps(doc, ensure_ascii=False, allow_nan=True).encode("utf-8", "surrogatepass")
            if name == target and data.draw(st.booleans(), label="bytes"):
                cut = data.draw(st.integers(0, len(raw)), label="cut")
                raw = raw[:cut] + data.draw(st.binary(max_size=8), label="junk") + raw[cut:]
            (snaps / name).write_bytes(raw)
        out = Path(tmp) / "out"
        code, _, err = run(["scan", "--snapshot", str(snaps), "--policy", str(DEMO / "policy.yaml"), "-q",
                            "--out-dir", str(out)])
        check_outcome(code, err, (0, 1, 3))
        if code == 2:
            assert not out.exists() or not any(out.iterdir())
        else:
            assert json.loads((out / "results.json").read_text())["lmscan_results"] == 1
            assert (out / "report.html").stat().st_size > 0 and (out / "junit.xml").stat().st_size > 0

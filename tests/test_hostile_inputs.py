"""Issue 7 items 3, 4, 6 and 7: hostile or careless inputs give exit 2 with one line, or a true verdict.

Each bad input is run through the real command line (``python -m scanner`` in a subprocess with a
timeout, so a regression shows as a failure, never as a hung test run).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "scanner" / "demo"


def lmscan(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess[str]:
    full = dict(os.environ, NO_COLOR="1")
    full.pop("LMSCAN_POLICY", None)
    full.pop("LMSCAN_FAIL_ON", None)
    full.update(env or {})
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True, cwd=cwd,
                          env=full, timeout=timeout)


def assert_one_line_exit_2(p: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert p.stderr.count("\n") == 1 and p.stderr.startswith("lmscan: error: "), p.stderr
    assert "Traceback" not in p.stderr and "internal error" not in p.stderr
    for f in fragments:
        assert f in p.stderr, p.stderr


def cluster_copy(tmp_path: Path, name: str = "HVCLU19", rename: dict[str, str] | None = None) -> Path:
    """A copy of a demo cluster's snapshots, cluster networks renamed by ``rename``."""
    out = tmp_path / name
    out.mkdir(parents=True)
    for f in (DEMO / name).glob("*.json"):
        doc = json.loads(f.read_text())
        for net in doc["sections"].get("ClusterNetwork") or []:
            net["Name"] = (rename or {}).get(net["Name"], net["Name"])
        (out / f.name).write_text(json.dumps(doc))
    return out


def pack(tmp_path: Path, select: str) -> Path:
    p = tmp_path / "pack.yaml"
    p.write_text("lmscan_rules: 1\nrules:\n  - id: SITE001\n    title: t\n    severity: high\n    scope: network\n"
                 f"    select: {select}\n    expect: {{fact: carries_lm, eq: false}}\n"
                 "    rationale: r\n    remediation: '# r'\n")
    return p


# --- item 3: ReDoS ------------------------------------------------------------------------------

def test_item3_catastrophic_regex_runs_in_linear_time(tmp_path):
    """``^(a+)+$`` against ``a``*40 + ``!`` hung the scan with Python's backtracking engine."""
    snaps = cluster_copy(tmp_path, rename={"Cluster-CSV": "a" * 40 + "!", "LiveMigration": "a" * 5000})
    rules = pack(tmp_path, "{fact: name, matches: '^(a+)+$'}")
    out = tmp_path / "r.json"
    p = lmscan("scan", "--snapshot", str(snaps), "--policy", str(DEMO / "policy.yaml"), "--rules", str(rules),
               "-q", "--json", str(out), timeout=60)
    assert p.returncode in (0, 1), p.stderr
    site = [r for r in json.loads(out.read_text())["results"] if r["rule"] == "SITE001"]
    assert [r["target"]["name"] for r in site] == ["a" * 5000]    # selected: matches, case-insensitively too


def test_item3_regex_is_case_insensitive_re2(tmp_path):
    snaps = cluster_copy(tmp_path, rename={"LiveMigration": "REPLICA-1"})
    rules = pack(tmp_path, "{fact: name, matches: '^replica-\\d$'}")
    out = tmp_path / "r.json"
    p = lmscan("scan", "--snapshot", str(snaps), "--policy", str(DEMO / "policy.yaml"), "--rules", str(rules),
               "-q", "--json", str(out))
    assert p.returncode == 1, p.stderr
    site = [r for r in json.loads(out.read_text())["results"] if r["rule"] == "SITE001"]
    assert [(r["target"]["name"], r["status"]) for r in site] == [("REPLICA-1", "fail")]


@pytest.mark.parametrize("regex, why", [
    ("(a)\\1", "invalid escape sequence"),
    ("a(?=b)", "invalid perl operator"),
    ("(?<!x)a", "invalid perl operator"),
    ("a{1001}", "invalid repetition size"),
    ("Replica(", "missing )"),
])
def test_item3_patterns_re2_cannot_run_are_refused_at_load(tmp_path, regex, why):
    rules = pack(tmp_path, json.dumps({"fact": "name", "matches": regex}))
    p = lmscan("rules", "validate", str(rules))
    assert_one_line_exit_2(p, f"{rules}:7: rule SITE001: select.matches: bad regex", why, "RE2 syntax")


# --- item 4: duplicate snapshots ----------------------------------------------------------------

def test_item4_two_snapshots_of_one_node_are_refused_naming_both(tmp_path):
    snaps = cluster_copy(tmp_path / "in" / "new")
    old = tmp_path / "in" / "old"
    old.mkdir()
    doc = json.loads((snaps / "HV19-N2.json").read_text())
    doc["node"] = "hv19-n2.corp.contoso.com"          # the same node, by its FQDN and in another case
    doc["collected_at"] = "2026-10-01T02:00:00Z"
    (old / "copy-of-hv19-n2.json").write_text(json.dumps(doc))
    out = tmp_path / "r.json"
    p = lmscan("scan", "--snapshot", str(tmp_path / "in"), "--policy", str(DEMO / "policy.yaml"), "--json", str(out))
    assert_one_line_exit_2(p, str(snaps / "HV19-N2.json"), str(old / "copy-of-hv19-n2.json"),
                           "of cluster HVCLU19 has a second snapshot", "2026-10-01T02:00:00Z")
    assert not out.exists()


def test_item4_same_node_name_in_two_clusters_is_fine(tmp_path):
    a = cluster_copy(tmp_path / "a")
    b = cluster_copy(tmp_path / "b")
    for f in b.glob("*.json"):
        doc = json.loads(f.read_text())
        doc["sections"]["Cluster"]["Name"] = "OTHER"
        f.write_text(json.dumps(doc))
    p = lmscan("scan", "--snapshot", str(a), str(b), "--policy", str(DEMO / "policy.yaml"), "-q")
    assert p.returncode == 1, p.stderr

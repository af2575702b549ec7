"""Issue 7 items 3, 4, 6 and 7: hostile or careless inputs give exit 2 with one line, or a true verdict.

Each bad input is run through the real command line (``python -m scanner`` in a subprocess with a
timeout, so a regression shows as a failure, never as a hung test run).
"""

from __future__ import annotations

import json
import os
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
    assert p.stderr.count("\n") == 1 and p.stderr.startswith(("lmscan: error: ", "lmscan scan: error: ")), p.stderr
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


# --- item 7: every bad input is exit 2 with one line ----------------------------------------------

def _alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, levels)]
    return "\n".join(lines) + f"\nnetworks: *a{levels - 1}\n"


YAML_CASES = {
    "alias-bomb": ("lmscan_policy: 1\n" + _alias_bomb(), "once aliases are expanded"),
    "self-alias": ("lmscan_policy: 1\nnetworks: &x\n  - *x\n", "an alias refers to a value that contains it"),
    "month-13": ("lmscan_policy: 1\nwaivers:\n  - {rule: LM001, reason: r, expires: 2027-13-01}\n",
                 "waivers[0].expires: '2027-13-01' is not a valid date"),
    "feb-29": ("lmscan_policy: 1\nwaivers:\n  - {rule: LM001, reason: r, expires: 2026-02-29}\n",
               "'2026-02-29' is not a valid date (day is out of range for month)"),
    "timestamp-tag": ("lmscan_policy: 1\ndescription: !!timestamp 2024-13-45\n", "is not a valid date"),
    "int-tag": ("lmscan_policy: 1\ndescription: !!int abc\n", "'abc' is not a valid whole number"),
    "set-tag": ("lmscan_policy: 1\nhosts: !!set {a, b}\n", "the YAML tag !!set is not supported"),
    "python-tag": ("lmscan_policy: 1\ndescription: !!python/object:os.system x\n", "is not supported"),
    "nan": ("lmscan_policy: 1\nhosts: {max_migrations: .nan}\n", "'.nan' is not a finite number"),
    "inf": ("lmscan_policy: 1\nhosts: {max_migrations: -.inf}\n", "is not a finite number"),
    "huge-int": ("lmscan_policy: 1\nhosts: {max_migrations: " + "9" * 5000 + "}\n", "not a valid whole number"),
    "nul": ("lmscan_policy: 1\ndescription: a\x00b\n", "character U+0000 is not allowed"),
    "deep-flow": ("lmscan_policy: 1\ndescription: " + "[" * 10000 + "]" * 10000 + "\n", "nested too deeply"),
    "deep-block": ("lmscan_policy: 1\ndescription:\n" + "".join(" " * i + "- \n" for i in range(200)),
                   "nested"),
}


@pytest.mark.parametrize("name", sorted(YAML_CASES))
def test_item7_bad_yaml_is_exit_2_with_one_line(tmp_path, name):
    text, fragment = YAML_CASES[name]
    f = tmp_path / f"{name}.yaml"
    f.write_text(text, encoding="utf-8")
    p = lmscan("rules", "validate", str(f), timeout=60)
    assert_one_line_exit_2(p, str(f), fragment)


def test_item7_utf16_yaml_without_bom_is_read(tmp_path):
    f = tmp_path / "policy.yaml"
    f.write_bytes("lmscan_policy: 1\nnetworks:\n  - {class: iscsi, subnets: [10.10.10.0/24]}\n".encode("utf-16-le"))
    p = lmscan("rules", "validate", str(f))
    assert p.returncode == 0 and "valid site policy (1 network classes" in p.stdout, p.stderr


def test_item7_bad_json_is_exit_2_with_one_line(tmp_path):
    snap = json.loads((DEMO / "HVCLU22" / "HV22-N1.json").read_text())
    deep = tmp_path / "deep.json"
    deep.write_text('{"lmscan_snapshot": 1, "node": "x", "sections": ' + "[" * 10000 + "]" * 10000 + "}")
    bigint = tmp_path / "bigint.json"
    bigint.write_text(json.dumps(snap).replace('"Name": "HVCLU22"', '"Name": "HVCLU22", "Id": ' + "9" * 5000, 1))
    for f, fragment in ((deep, "nested too deeply"), (bigint, "4300 digits")):
        assert_one_line_exit_2(lmscan("scan", "--snapshot", str(f), "-q"), str(f), fragment)


def test_item7_collected_at_year_one_renders_every_report(tmp_path):
    """``0001-01-01T00:00:00+01:00`` has no UTC time: the HTML report crashed for the whole fleet."""
    snaps = cluster_copy(tmp_path / "in", "HVCLU22")
    doc = json.loads((snaps / "HV22-N1.json").read_text())
    doc["collected_at"] = "0001-01-01T00:00:00+01:00"
    (snaps / "HV22-N1.json").write_text(json.dumps(doc))
    out = tmp_path / "out"
    p = lmscan("scan", "--snapshot", str(snaps), "--policy", str(DEMO / "policy.yaml"), "--out-dir", str(out), "-q")
    assert p.returncode in (0, 1, 3), p.stderr
    assert {f.name for f in out.iterdir()} >= {"report.html", "junit.xml", "results.json"}


def test_item7_bad_arguments_and_environment_are_exit_2_before_any_work(tmp_path):
    for args in (["--workers", "0"], ["--workers", "-1"], ["--workers", "x"]):
        assert_one_line_exit_2(lmscan("scan", "--demo", *args, cwd=tmp_path), "--workers")
    p = lmscan("scan", "--demo", cwd=tmp_path, env={"LMSCAN_FAIL_ON": "HIGHEST"})
    assert p.returncode == 2 and "HIGHEST" in p.stderr and not (tmp_path / "lmscan-demo").exists(), p.stderr
    p = lmscan("scan", "--demo", "-q", cwd=tmp_path, env={"LMSCAN_FAIL_ON": "HIGH"})
    assert p.returncode == 1, p.stderr     # severities are case-insensitive


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs POSIX FIFOs")
def test_item7_fifo_inputs_are_refused_without_blocking(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    assert_one_line_exit_2(lmscan("rules", "validate", str(fifo), timeout=30), "not a regular file")
    assert_one_line_exit_2(lmscan("scan", "--demo", "-q", "--policy", str(fifo), timeout=30, cwd=tmp_path),
                           "not a regular file")
    inv = tmp_path / "inventory.yaml"
    inv.write_text(f"lmscan_inventory: 1\ndefaults: {{username: u, password_file: {fifo}}}\n"
                   "clusters:\n  - {name: C, nodes: [hv01.example.test]}\n")
    assert_one_line_exit_2(lmscan("collect", "--inventory", str(inv), "--out", str(tmp_path / "o"), timeout=30),
                           "is not a file")
    assert_one_line_exit_2(lmscan("collect", "--inventory", str(fifo), "--out", str(tmp_path / "o"), timeout=30))


# --- item 6: policy typos and required classes ---------------------------------------------------

@pytest.mark.parametrize("policy, line, fragment", [
    ("networks:\n  - class: iSCSI-fabric\n    subnets: [10.108.10.0/24]\n", 3,
     "networks[0].class: class 'iscsi-fabric' is used by no rule, live_migration list or required_classes"),
    ("networks:\n  - {class: live_migration, subnets: [10.108.2.0/24]}\n"
     "live_migration: {allowed: [live_migration], preferred: [live_migraton]}\n", 4,
     "live_migration.preferred[0]: class 'live_migraton' is not defined by any networks entry"),
    ("networks:\n  - {class: live_migration, subnets: [10.108.2.0/24]}\nrequired_classes: [iscsi]\n", 4,
     "required_classes[0]: class 'iscsi' is not defined by any networks entry"),
])
def test_item6_policy_class_typos_are_exit_2_with_did_you_mean(tmp_path, policy, line, fragment):
    f = tmp_path / "site.yaml"
    f.write_text("lmscan_policy: 1\n" + policy)
    assert_one_line_exit_2(lmscan("rules", "validate", str(f)), f"{f}:{line}: ", fragment)
    assert_one_line_exit_2(lmscan("scan", "--snapshot", str(DEMO / "HVCLU08"), "--policy", str(f), "-q"))


def test_item6_classes_named_by_rule_packs_count_as_used(tmp_path):
    f = tmp_path / "site.yaml"
    f.write_text("lmscan_policy: 1\nnetworks:\n  - {class: replication, subnets: [10.50.0.0/24]}\n")
    assert lmscan("rules", "validate", str(f)).returncode == 2
    rules = tmp_path / "pack.yaml"
    rules.write_text("lmscan_rules: 1\nrules:\n  - id: SITE001\n    title: t\n    severity: high\n    scope: network\n"
                     "    select: {fact: class, eq: Replication}\n    expect: {fact: carries_lm, eq: false}\n"
                     "    rationale: r\n    remediation: '# r'\n")
    p = lmscan("scan", "--snapshot", str(DEMO / "HVCLU08"), "--policy", str(f), "--rules", str(rules), "-q")
    assert p.returncode in (0, 1), p.stderr


def test_item6_required_class_missing_is_a_critical_fail(tmp_path):
    """The reported case: no network classified iscsi made LM001 skip and --fail-on critical exit 0."""
    f = tmp_path / "site.yaml"
    f.write_text("lmscan_policy: 1\nnetworks:\n  - {class: iscsi, subnets: [10.99.10.0/24]}   # the wrong subnet\n"
                 "  - {class: live_migration, subnets: [10.108.2.0/24]}\nrequired_classes: [iSCSI]\n")
    out = tmp_path / "r.json"
    p = lmscan("scan", "--snapshot", str(DEMO / "HVCLU08"), "--policy", str(f), "--fail-on", "critical", "-q",
               "--json", str(out))
    assert p.returncode == 1, p.stderr
    results = json.loads(out.read_text())["results"]
    pol = [r for r in results if r["rule"] == "POL001"]
    assert [(r["status"], r["severity"]) for r in pol] == [("fail", "critical")]
    assert "no cluster network is classified iscsi" in pol[0]["message"]
    assert {r["status"] for r in results if r["rule"] == "LM001"} == {"skip"}
    f.write_text(f.read_text().replace("10.99.10.0/24", "10.108.10.0/24"))
    p = lmscan("scan", "--snapshot", str(DEMO / "HVCLU08"), "--policy", str(f), "--fail-on", "critical", "-q",
               "--json", str(out))
    assert [r["status"] for r in json.loads(out.read_text())["results"] if r["rule"] == "POL001"] == ["pass"]


def test_item6_console_and_html_say_when_a_critical_rule_checked_nothing(tmp_path):
    f = tmp_path / "site.yaml"
    f.write_text("lmscan_policy: 1\nnetworks:\n  - {class: iscsi, subnets: [10.99.10.0/24]}\n"
                 "  - {class: live_migration, subnets: [10.108.2.0/24]}\n")
    p = lmscan("scan", "--snapshot", str(DEMO / "HVCLU08"), "--policy", str(f), "--json", str(tmp_path / "r.json"),
               "--html", str(tmp_path / "r.html"))
    assert "NOT CHECKED critical LM001   HVCLU08 cluster HVCLU08: no cluster network is classified iscsi" in p.stdout
    html = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert "Critical checks that checked nothing (1)" in html
    assert "no cluster network is classified iscsi by the site policy" in html


@pytest.mark.parametrize("section", ["waivers: true", "waivers: 'LM001'", "overrides: [1]", "networks: 5",
                                     "live_migration: [iscsi]", "hosts: yes"])
def test_item7_wrongly_shaped_policy_sections_are_exit_2(tmp_path, section):
    """Found by the fuzz suite: a section of the wrong type is reported by the schema, never a crash."""
    policy = tmp_path / "site.yaml"
    policy.write_text(f"lmscan_policy: 1\n{section}\n", encoding="utf-8")
    assert_one_line_exit_2(lmscan("rules", "validate", str(policy)), "site.yaml:2")

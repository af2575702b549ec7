"""What a CI job sees: whole finding lines in its log, honest verdicts, severity names in any case."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.cli import main

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "scanner" / "demo"
POLICY = str(DEMO / "policy.yaml")
LONG = "Cluster network {{ network.name }} " + "x" * 150 + " carries live migration; " + "y" * 120 + " END"


def lmscan(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """lmscan as a CI job runs it: standard output is a pipe, not a terminal."""
    full_env = dict(os.environ, NO_COLOR="1", **(env or {}))
    for k in ("LMSCAN_POLICY", "LMSCAN_FAIL_ON", "COLUMNS"):
        if k not in (env or {}):
            full_env.pop(k, None)
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True,
                          env=full_env, timeout=120)


def _long_pack(tmp_path: Path, severity: str = "high") -> Path:
    pack = tmp_path / "long.yaml"
    pack.write_text(
        "lmscan_rules: 1\nrules:\n  - id: SITE001\n    title: Every network is excluded\n"
        f"    severity: {severity}\n    scope: network\n    expect: {{fact: carries_lm, eq: false}}\n"
        f"    message:\n      fail: \"{LONG}\"\n    rationale: r\n    remediation: r\n", encoding="utf-8")
    return pack


def test_a_ci_log_keeps_every_character_of_every_finding(tmp_path: Path) -> None:
    p = lmscan("scan", "--demo", "--rules", str(_long_pack(tmp_path)), "--out-dir", str(tmp_path / "out"))
    assert p.returncode == 1, p.stderr
    lines = [l for l in p.stdout.splitlines() if l.startswith("FAIL  high     SITE001 ")]
    results = json.loads((tmp_path / "out" / "results.json").read_text())["results"]
    failing = [r for r in results if r["rule"] == "SITE001" and r["status"] == "fail"]
    assert len(lines) == len(failing) > 0
    every_fail = [r for r in results if r["status"] == "fail"]
    assert len([l for l in p.stdout.splitlines() if l.startswith("FAIL ")]) == len(every_fail) > 15
    for r in failing:
        assert len(r["message"]) >= 300
        assert any(l.endswith(": " + r["message"]) for l in lines), r["message"]
    assert "… " not in p.stdout and "... and" not in p.stdout


def test_full_and_severity_flags(tmp_path: Path) -> None:
    p = lmscan("scan", "--demo", "--full", "--severity", "High", "-q")
    assert p.returncode == 1 and p.stdout == ""
    p = lmscan("scan", "--demo", "--full", "--severity", "High", "--out-dir", str(tmp_path))
    findings = [l for l in p.stdout.splitlines() if l.startswith(("FAIL ", "ERROR "))]
    assert findings and all(l.split()[1] in ("critical", "high") for l in findings)
    assert re.search(r"^\d+ findings below --severity high not shown$", p.stdout, re.M)
    p = lmscan("scan", "--demo", "--severity", "urgent")
    assert p.returncode == 2 and "invalid choice: 'urgent'" in p.stderr


def test_fail_on_is_case_insensitive_in_the_flag_and_the_environment(tmp_path: Path) -> None:
    hv19 = str(DEMO / "HVCLU19")
    assert main(["scan", "--snapshot", hv19, "--policy", POLICY, "-q", "--fail-on", "High"]) == 1
    assert main(["scan", "--snapshot", hv19, "--policy", POLICY, "-q", "--fail-on", "CRITICAL"]) == 0
    p = lmscan("scan", "--snapshot", hv19, "--policy", POLICY, env={"LMSCAN_FAIL_ON": "Critical"})
    assert p.returncode == 0, p.stderr
    # The cluster has failures below critical: its verdict says so instead of a bare PASS.
    assert re.search(r"^HVCLU19 +PASS \(11 below --fail-on\) +11 ", p.stdout, re.M), p.stdout
    assert "Verdict: PASS (11 below --fail-on)  0 failures at or above critical" in p.stdout


def test_severity_names_in_packs_and_overrides_are_case_insensitive(tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text((DEMO / "policy.yaml").read_text(encoding="utf-8")
                      + "\noverrides:\n  LM002: {severity: Critical}\n", encoding="utf-8")
    if "overrides:" in (DEMO / "policy.yaml").read_text(encoding="utf-8"):
        pytest.skip("the demo policy has its own overrides block")
    out = tmp_path / "r.json"
    assert main(["scan", "--demo", "--policy", str(policy), "--rules", str(_long_pack(tmp_path, "HIGH")),
                 "--json", str(out), "-q"]) == 1
    doc = json.loads(out.read_text())
    assert doc["rules"]["LM002"]["severity"] == "critical"
    assert doc["rules"]["SITE001"]["severity"] == "high"
    assert {r["severity"] for r in doc["results"] if r["rule"] == "LM002"} == {"critical"}


def test_html_verdict_never_reads_pass_next_to_failures(tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    assert main(["scan", "--snapshot", str(DEMO / "HVCLU19"), "--policy", POLICY, "-q",
                 "--fail-on", "critical", "--html", str(out)]) == 0
    html = out.read_text(encoding="utf-8")
    assert "PASS (11 below --fail-on)" in html
    assert not re.search(r">PASS<", html)


def test_an_unknown_severity_in_the_environment_is_bad_input() -> None:
    p = lmscan("scan", "--demo", "-q", env={"LMSCAN_FAIL_ON": "urgent"})
    assert p.returncode == 2 and "Traceback" not in p.stderr
    assert p.stderr.startswith("lmscan: error: LMSCAN_FAIL_ON") and "'urgent'" in p.stderr

"""The command line as a user and a pipeline see it: exit codes, files written or not, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scanner.cli import main

ROOT = Path(__file__).parents[1]
DEMO = ROOT / "scanner" / "demo"
BAD = ROOT / "tests" / "data" / "bad"


def run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("LMSCAN_POLICY", None)
    return subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True, cwd=cwd,
                          env=env, timeout=120)


def test_demo_writes_every_report_and_exits_1(tmp_path):
    p = run("scan", "--demo", cwd=tmp_path)
    assert p.returncode == 1, p.stderr
    out = tmp_path / "lmscan-demo"
    assert {f.name for f in out.iterdir()} == {"report.html", "junit.xml", "results.json", "results.sarif",
                                               "summary.md"}
    results = json.loads((out / "results.json").read_text())
    assert results["lmscan_results"] == 1 and results["summary"]["fail"] > 0
    assert "lmscan-demo/report.html" in p.stdout
    assert "Traceback" not in p.stderr


def test_clean_cluster_exits_0(tmp_path):
    assert main(["scan", "--snapshot", str(DEMO / "HVCLU22"), "--policy", str(DEMO / "policy.yaml"), "-q",
                 "--json", str(tmp_path / "r.json")]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["summary"]["fail"] == 0


def test_incomplete_scan_exits_3_unless_a_counted_failure_exists(tmp_path):
    azl = str(DEMO / "AZLCLU01")
    policy = str(DEMO / "policy.yaml")
    assert main(["scan", "--snapshot", azl, "--policy", policy, "-q", "--fail-on", "critical"]) == 3
    assert main(["scan", "--snapshot", azl, "--policy", policy, "-q"]) == 1   # 1 wins over 3


def test_fail_on_threshold(tmp_path):
    hv19 = str(DEMO / "HVCLU19")
    policy = str(DEMO / "policy.yaml")
    assert main(["scan", "--snapshot", hv19, "--policy", policy, "-q", "--fail-on", "high"]) == 1
    assert main(["scan", "--snapshot", hv19, "--policy", policy, "-q", "--fail-on", "critical"]) == 0


@pytest.mark.parametrize("args", [
    ["--policy", str(BAD / "policy-bad-subnet.yaml")],
    ["--rules", str(BAD / "rules-unknown-operator.yaml")],
    ["--snapshot", str(BAD / "snapshot-truncated.json")],
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args):
    existing = tmp_path / "old.html"
    existing.write_text("previous report")
    src = [] if "--snapshot" in args else ["--snapshot", str(DEMO)]
    p = run("scan", *src, *args, "--html", str(existing), "--junit", str(tmp_path / "j.xml"))
    assert p.returncode == 2
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("lmscan: error: ") and "Traceback" not in p.stderr
    assert existing.read_text() == "previous report"
    assert not (tmp_path / "j.xml").exists()
    assert list(tmp_path.iterdir()) == [existing]


def test_usage_errors_exit_2(tmp_path):
    assert run("scan").returncode == 2
    assert run("scan", "--demo", "--fail-on", "severe").returncode == 2
    p = run("scan", "--demo", "--html", str(tmp_path))
    assert p.returncode == 2 and "names a directory" in p.stderr


def test_rules_list_show_validate(tmp_path, capsys):
    assert main(["rules", "list"]) == 0
    listing = capsys.readouterr().out
    assert listing.count("\n") == 24 and listing.startswith("ID ") and "LM001" in listing and "HOST007" in listing
    assert main(["rules", "show", "LM001"]) == 0
    shown = capsys.readouterr().out
    for part in ("LM001: iSCSI networks are excluded", "critical", "Rationale:", "Remediation",
                 "References:", "Definition:", "  - id: LM001", "fix 'exclude_failing'"):
        assert part in shown
    assert main(["rules", "show", "NOPE1"]) == 2
    assert "no rule with id" in capsys.readouterr().err
    pack = tmp_path / "extra.yaml"
    pack.write_text("lmscan_rules: 1\npack: {name: extra, version: '2'}\nrules:\n  - id: SITE001\n    title: t\n"
                    "    severity: low\n    scope: network\n    expect: {fact: carries_lm, eq: false}\n"
                    "    rationale: r\n    remediation: r\n")
    assert main(["rules", "validate", str(pack)]) == 0
    assert "valid rule pack 'extra' 2 (1 rules: SITE001)" in capsys.readouterr().out
    assert main(["rules", "validate", str(DEMO / "policy.yaml")]) == 0
    assert main(["rules", "validate", str(BAD / "rules-bad-regex.yaml")]) == 2


def test_extra_rule_pack_adds_results(tmp_path):
    pack = tmp_path / "extra.yaml"
    pack.write_text("lmscan_rules: 1\nrules:\n  - id: SITE001\n    title: Networks have a metric\n"
                    "    severity: low\n    scope: network\n    expect: {fact: metric, present: true}\n"
                    "    rationale: r\n    remediation: r\n")
    out = tmp_path / "r.json"
    main(["scan", "--demo", "--rules", str(pack), "--json", str(out), "-q"])
    results = json.loads(out.read_text())["results"]
    assert any(r["rule"] == "SITE001" and r["status"] == "pass" for r in results)
    assert {p["name"] for p in json.loads(out.read_text())["scan"]["rule_packs"]} == {"builtin", "extra"}   # pack name defaults to the file stem


def test_default_policy_is_flagged_in_results(tmp_path):
    out = tmp_path / "r.json"
    main(["scan", "--snapshot", str(DEMO), "--json", str(out), "-q"])
    scan = json.loads(out.read_text())["scan"]
    assert scan["policy"]["default"] is True and scan["policy"]["path"] is None


def test_several_paths_after_one_flag(tmp_path):
    """contracts §6: --snapshot PATH ... and --rules PATH ... take several paths (and repeat)."""
    out = tmp_path / "r.json"
    code = main(["scan", "--snapshot", str(DEMO / "HVCLU19"), str(DEMO / "HVCLU22"), "--snapshot",
                 str(DEMO / "HVCLU08"), "--policy", str(DEMO / "policy.yaml"), "--json", str(out), "-q"])
    assert code == 1
    assert {c["name"] for c in json.loads(out.read_text())["clusters"]} == {"HVCLU08", "HVCLU19", "HVCLU22"}


def test_a_report_can_go_to_standard_output(tmp_path):
    p = run("scan", "--snapshot", str(DEMO / "HVCLU22"), "--policy", str(DEMO / "policy.yaml"), "--json", "-")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["lmscan_results"] == 1      # nothing but the report on stdout
    p = run("scan", "--demo", "--json", "-", "--junit", "-")
    assert p.returncode == 2 and "only one report" in p.stderr


def test_rules_facts_lists_every_fact(capsys):
    from scanner.facts import FACTS
    assert main(["rules", "facts"]) == 0
    out = capsys.readouterr().out
    for scope, facts in FACTS.items():
        assert f"{scope}:\n" in out
        for name in facts:
            assert f"  {name} " in out
    assert "(a collection of network items)" in out


def test_severity_choices_are_the_model_severities() -> None:
    """cli.py spells the severities out so that argument parsing imports no model; they must agree."""
    from scanner import cli
    from scanner.model import Severity

    assert cli.SEVERITIES == [s.value for s in Severity]


def test_rules_list_and_show_from_the_cache_match_the_full_load(capsys: pytest.CaptureFixture[str],
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The start-up fast path (scanner.rulecache) prints what loading the rule pack prints."""
    from scanner import cli, rulecache

    monkeypatch.delenv("LMSCAN_POLICY", raising=False)
    outputs = []
    for cached in (True, False):
        if not cached:
            monkeypatch.setattr(rulecache, "cached_builtin_docs", lambda: None)
        for argv in (["rules", "list"], ["rules", "show", "lm001"], ["rules", "show", "HOST004"]):
            assert cli.main(argv) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1]


def test_builtin_rule_cache_is_up_to_date() -> None:
    """rules/builtin.cache.json is made from rules/builtin.yaml; regenerate it with
    ``python -m scanner.rulecache`` after editing the built-in rules."""
    from scanner import rulecache

    shipped = (Path(__file__).parents[1] / "rules" / rulecache.CACHE).read_text(encoding="utf-8")
    assert shipped == rulecache.render_cache(), (
        "rules/builtin.yaml changed: run `python -m scanner.rulecache` and commit rules/builtin.cache.json")
    assert rulecache.cached_builtin_docs() is not None

"""Choosing what runs (--only/--skip), rules list/facts for people and scripts, shell completion."""

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


def _rules_run(tmp_path: Path, *args: str) -> set[str]:
    out = tmp_path / "r.json"
    main(["scan", "--demo", "-q", "--json", str(out), *args])
    return {r["rule"] for r in json.loads(out.read_text())["results"]}


def test_only_and_skip_take_ids_and_globs(tmp_path: Path) -> None:
    assert _rules_run(tmp_path, "--only", "lm001,HOST*") == {"LM001"} | {
        r for r in _rules_run(tmp_path) if r.startswith("HOST")}
    every = _rules_run(tmp_path)
    assert _rules_run(tmp_path, "--skip", "HOST*", "--skip", "LM012") == {
        r for r in every if not r.startswith("HOST") and r != "LM012"}
    assert _rules_run(tmp_path, "--only", "LM00?", "--skip", "LM001") == {
        r for r in every if r.startswith("LM00") and r != "LM001"}


@pytest.mark.parametrize("args, says", [
    (["--only", "LM01"], "unknown rule id 'LM01'; did you mean LM01"),
    (["--skip", "HOTS001"], "unknown rule id 'HOTS001'; did you mean HOST001"),
    (["--only", "XYZ*"], "'XYZ*' matches no rule id"),
    (["--only", "LM001", "--skip", "LM*"], "--only/--skip leave no rule to run"),
])
def test_unknown_ids_are_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str],
                                   says: str) -> None:
    assert main(["scan", "--demo", "-q", "--out-dir", str(tmp_path / "out"), *args]) == 2
    err = capsys.readouterr().err
    assert says in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_rules_list_table_has_a_header_and_json_is_parseable(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["ID", "SEVERITY", "SCOPE", "TITLE"]
    assert lines[1].startswith("LM001 ") and "critical" in lines[1]
    assert main(["rules", "list", "--format", "json", "--policy", str(DEMO / "policy.yaml")]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0] == {"id": "LM001", "title": rows[0]["title"], "severity": "critical", "scope": "network",
                       "enabled": True, "pack": rows[0]["pack"]}
    assert len(rows) == len(lines) - 1


def test_rules_facts_lists_enum_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["rules", "facts"]) == 0
    out = capsys.readouterr().out
    for values in ("values: None, Cluster, Client, ClusterAndClient", "values: CredSSP, Kerberos",
                   "values: TCPIP, Compression, SMB", "values: Unknown, Up, Down, Paused, Joining",
                   "values: Unknown, Unavailable, Down, Partitioned, Up"):
        assert values in out, values
    lines = out.splitlines()
    role = next(i for i, l in enumerate(lines) if l.split()[:1] == ["role"])
    assert "ClusterAndClient" in lines[role + 1]


def _lmscan(*args: str) -> str:
    p = subprocess.run([sys.executable, "-m", "scanner", *args], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def test_bash_completion_defines_and_answers() -> None:
    code = _lmscan("completion", "bash")
    script = (f'source /dev/stdin <<"LMSCAN_EOF"\n{code}\nLMSCAN_EOF\n'
              "complete -p lmscan\n"
              # What bash does on <Tab>: run the program with the line so far; it answers on fd 8.
              f'COMP_LINE="lmscan sc" COMP_POINT=9 _ARGCOMPLETE=1 "{sys.executable}" -m scanner '
              "8>&1 9>/dev/null 1>/dev/null 2>/dev/null\necho\n"
              f'COMP_LINE="lmscan scan --fail" COMP_POINT=18 _ARGCOMPLETE=1 "{sys.executable}" -m scanner '
              "8>&1 9>/dev/null 1>/dev/null 2>/dev/null\n")
    p = subprocess.run(["bash", "--norc", "--noprofile"], input=script, capture_output=True, text=True,
                       timeout=60, env={k: v for k, v in os.environ.items() if not k.startswith("_ARC")})
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert "-F _python_argcomplete" in lines[0] and lines[0].endswith(" lmscan")
    assert lines[1].strip() == "scan"
    assert "--fail-on" in lines[2]


def test_zsh_and_powershell_completion_code() -> None:
    assert _lmscan("completion", "zsh").startswith("#compdef lmscan")
    ps = _lmscan("completion", "powershell")
    assert "Register-ArgumentCompleter -Native -CommandName lmscan" in ps

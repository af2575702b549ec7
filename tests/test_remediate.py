"""The fix script (`lmscan remediate`, `scan --remediate`): PowerShell that parses, runs only what
the actions say, stays inert for hostile names, and keeps to PowerShell 2.0 where 2008 R2 is in it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from scanner.cli import main
from scanner.model import Status
from scanner.normalize import group_clusters
from scanner.pipeline import load_ruleset, read_clusters, scan_clusters
from scanner.remediate import fix_script
from scanner.pwsh import quote
from scanner.snapshot import parse_snapshot

ts = pytest.importorskip("tree_sitter")
tsp = pytest.importorskip("tree_sitter_powershell")

DEMO = Path(__file__).resolve().parents[1] / "scanner" / "demo"
#: Every command the script may run: its own helpers, the cmdlets the actions render to, and setup.
COMMANDS = {
    "Invoke-LmChange", "Invoke-LmListChange", "ConvertTo-LmIdList", "Test-LmList", "Write-Host", "Write-Warning",
    "Write-Error", "Set-StrictMode", "Import-Module", "Get-Cluster", "Join-Path", "Get-Date", "Start-Transcript",
    "Stop-Transcript", "Out-Null", "Get-ClusterResourceType", "Get-ClusterResource", "Get-ClusterParameter",
    "Set-ClusterParameter", "Get-ClusterNetwork", "Where-Object", "Set-VMHost", "Enable-VMMigration",
    "Remove-VMMigrationNetwork", "New-NetIntentGlobalClusterOverrides", "Set-NetIntent",
    "Get-ADComputer", "Set-ADObject", "Get-NetRoute", "Remove-NetRoute",
}
# PowerShell 3.0+ only (the collector's list, tests/collect/test_script.py): breaks 2008 R2.
NOT_IN_POWERSHELL_2 = [r"ConvertTo-Json\b", r"\[ordered\]", r"\[pscustomobject\]", r"::new\(", r"\s-(not)?in\s",
                       r"\$PSItem", r"\.(ForEach|Where)\(", r"-ErrorAction\s+'?Ignore", r"\$PSScriptRoot",
                       r"#Requires -(Modules|RunAsAdministrator)"]


def parse(source: str) -> tuple[ts.Tree, bytes]:
    data = source.encode("utf-8")
    return ts.Parser(ts.Language(tsp.language())).parse(data), data


def nodes(tree: ts.Tree) -> list[ts.Node]:
    out, stack = [], [tree.root_node]
    while stack:
        n = stack.pop()
        out.append(n)
        stack.extend(n.children)
    return out


def check_script(source: str) -> list[ts.Node]:
    """No ERROR/MISSING node, only known commands, one-line comments; returns the string literals."""
    tree, data = parse(source)
    found = nodes(tree)
    bad = [f"{n.start_point[0] + 1}: {data[n.start_byte:n.end_byte][:60]!r}" for n in found
           if n.is_error or n.is_missing]
    assert not bad, "syntax errors:\n" + "\n".join(bad)
    names = {data[n.start_byte:n.end_byte].decode() for n in found if n.type == "command_name"}
    assert names <= COMMANDS, f"unexpected commands: {sorted(names - COMMANDS)}"
    for n in found:
        if n.type == "comment":
            text = data[n.start_byte:n.end_byte].decode()
            assert "\n" not in text or text.startswith("<#"), text
    return [n for n in found if n.type == "verbatim_string_characters"]


def demo_report():
    return scan_clusters(load_ruleset(DEMO / "policy.yaml"), read_clusters([DEMO]))


def test_demo_fix_script_parses_and_holds_every_action() -> None:
    report = demo_report()
    script = fix_script(report)
    check_script(script)
    for pattern in NOT_IN_POWERSHELL_2:   # the demo has a 2008 R2 cluster
        assert not re.search(pattern, script), pattern
    assert script.startswith("#Requires -Version 2.0\n")
    assert "param([switch]$Apply)" in script and "Start-Transcript" in script
    assert "$here = [string](Get-Cluster -ErrorAction Stop).Name" in script
    for r in report.results:
        if r.status is Status.FAIL and r.actions:
            assert r.id in script
            for line in r.remediation.splitlines():
                if not line.startswith("#") and line != "Import-Module FailoverClusters":
                    assert line in script, line
    # Nothing for the clean cluster, and every findings' block names its rule.
    assert "HVCLU22" not in script
    assert "# fixes LM002 LM002/HVCLU19/network/" in script


def test_clusters_of_2012_and_later_get_version_and_module_requirements() -> None:
    script = fix_script(demo_report(), ["HVCLU19"])
    check_script(script)
    assert script.startswith("#Requires -Version 3.0\n#Requires -Modules FailoverClusters\n")
    assert "HVCLU08" not in script and "Import-Module Hyper-V" in script


def test_atc_cluster_takes_the_selection_over_before_setting_the_lists() -> None:
    script = fix_script(demo_report(), ["AZLCLU01"])
    check_script(script)
    override = script.index("New-NetIntentGlobalClusterOverrides -EnableLiveMigrationNetworkSelection $false")
    assert override < script.index("Set-ClusterParameter -Name MigrationExcludeNetworks")
    assert "Set-NetIntent -GlobalClusterOverrides $override" in script


HOSTILE = "Net'; Remove-Item C:\\ -Recurse #\r\n$(Stop-Computer) `\"x\" <# #> \u2028\u2019 Invoke-Expression"


def test_hostile_names_stay_inert(tmp_path: Path) -> None:
    """Names from the field (networks, VMs, nodes, clusters) never become code."""
    iscsi, lm = "0b1e6f0e-1111-4a63-b5fd-0a3b2f6a1c11", "5c0d9a7e-2222-4a63-b5fd-0a3b2f6a1c11"
    nets = [{"Name": HOSTILE + " iSCSI", "Id": iscsi, "Role": 0, "State": 3, "Address": "10.10.10.0",
             "AddressMask": "255.255.255.0", "Metric": 40000},
            {"Name": HOSTILE, "Id": lm, "Role": 1, "State": 3, "Address": "10.20.0.0",
             "AddressMask": "255.255.255.0", "Metric": 30000}]
    policy = tmp_path / "policy.yaml"
    policy.write_text("lmscan_policy: 1\nnetworks:\n  - {class: iscsi, subnets: [10.10.10.0/24]}\n"
                      "  - {class: live_migration, subnets: [10.20.0.0/24]}\n"
                      "live_migration: {allowed: [live_migration], preferred: [live_migration]}\n"
                      "hosts: {authentication: Kerberos}\n")
    docs = []
    for node in (HOSTILE + "N1", "HV02"):
        sections = {"Cluster": {"Name": HOSTILE + "CLU"}, "ClusterNode": [{"Name": HOSTILE + "N1"}, {"Name": "HV02"}],
                    "ClusterNetwork": nets,
                    "VirtualMachineResourceType": {"MigrationExcludeNetworks": "", "MigrationNetworkOrder": ""},
                    "VMHost": {"VirtualMachineMigrationEnabled": True, "UseAnyNetworkForMigration": True,
                               "VirtualMachineMigrationAuthenticationType": 0},
                    "VMMigrationNetwork": [{"Subnet": "10.10.10.0/24", "Priority": 1}]}
        docs.append(parse_snapshot(json.dumps({"lmscan_snapshot": 1, "node": node, "sections": sections}).encode(),
                                   "n.json"))
    legacy = {"Cluster": {"Name": HOSTILE + "OLD"}, "ClusterNode": [{"Name": "OLD1"}], "ClusterNetwork": nets,
              "VirtualMachineResource": [{"Name": HOSTILE + "VM", "OwnerGroup": HOSTILE, "MigrationExcludeNetworks": "",
                                          "MigrationNetworkOrder": ""}]}
    docs.append(parse_snapshot(json.dumps({"lmscan_snapshot": 1, "node": "OLD1", "sections": legacy}).encode(),
                               "o.json"))
    report = scan_clusters(load_ruleset(policy), group_clusters(docs))
    kinds = {a.kind for r in report.results for a in r.actions}
    assert {"set_lm_list", "set_host", "remove_migration_network"} <= kinds
    script = fix_script(report)
    check_script(script)
    for value in (HOSTILE + "VM", HOSTILE + "N1", HOSTILE + "CLU"):   # values intact, as one expression
        assert quote(value) in script
    # ... and the remediation text of each result is as inert as the script.
    for r in report.results:
        if r.remediation:
            check_script(r.remediation)


def test_cli_remediate_writes_a_windows_script(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results, fix = tmp_path / "results.json", tmp_path / "fix.ps1"
    assert main(["scan", "--demo", "--json", str(results), "--remediate", str(tmp_path / "scan-fix.ps1"),
                 "--quiet"]) == 1
    assert main(["remediate", str(results), "-o", str(fix)]) == 0
    data = fix.read_bytes()
    assert data.startswith(b"\xef\xbb\xbf#Requires") and b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")
    assert "change(s)" in capsys.readouterr().err
    # The scan's own --remediate writes the same script (apart from the scan it names).
    same = (tmp_path / "scan-fix.ps1").read_bytes()
    assert same.count(b"Invoke-Lm") == data.count(b"Invoke-Lm") > 5
    assert main(["remediate", str(results), "--cluster", "HVCLU08", "-o", str(fix)]) == 0
    assert b"HVCLU19" not in fix.read_bytes()
    assert main(["remediate", str(results), "--cluster", "NOPE", "-o", str(fix)]) == 2
    assert "no cluster 'NOPE'" in capsys.readouterr().err


def test_cli_remediate_refuses_bad_actions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results.json"
    assert main(["scan", "--demo", "--json", str(results), "--quiet"]) == 1
    doc = json.loads(results.read_text())
    victim = next(i for i, r in enumerate(doc["results"]) if r.get("actions"))
    doc["results"][victim]["actions"][0]["kind"] = "run_anything"
    results.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["remediate", str(results), "-o", str(tmp_path / "fix.ps1")]) == 2
    err = capsys.readouterr().err
    assert f"results[{victim}].actions[0].kind" in err and "unknown action kind" in err and err.count("\n") == 1
    assert not (tmp_path / "fix.ps1").exists()


def test_nothing_to_fix_says_so() -> None:
    report = demo_report()
    script = fix_script(report, ["HVCLU22"])
    check_script(script)
    assert "Nothing to change" in script and "Invoke-LmChange -Finding" not in script

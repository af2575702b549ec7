"""Engine behaviour beyond single rules: remediation, waivers, overrides, errors, stable ids."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest

from scanner.model import Severity, Status
from scanner.normalize import group_clusters
from scanner.pipeline import load_ruleset, scan_clusters
from scanner.snapshot import parse_snapshot

ISCSI = "0b1e6f0e-1111-4a63-b5fd-0a3b2f6a1c11"
LM = "5c0d9a7e-2222-4a63-b5fd-0a3b2f6a1c11"
MGMT = "9a9a9a9a-3333-4a63-b5fd-0a3b2f6a1c11"
NETS = [
    {"Name": "iSCSI-A", "Id": ISCSI, "Role": 0, "State": 3, "Address": "10.10.10.0", "AddressMask": "255.255.255.0",
     "Metric": 40000},
    {"Name": "LiveMigration", "Id": LM, "Role": 1, "State": 3, "Address": "10.20.0.0", "AddressMask": "255.255.255.0",
     "Metric": 30240},
    {"Name": "Management", "Id": MGMT, "Role": 3, "State": 3, "Address": "192.168.10.0",
     "AddressMask": "255.255.255.0", "Metric": 70240},
]
POLICY = """lmscan_policy: 1
networks:
  - {class: iscsi, subnets: [10.10.10.0/24]}
  - {class: management, subnets: [192.168.10.0/24]}
  - {class: live_migration, subnets: [10.20.0.0/24]}
live_migration: {allowed: [live_migration], preferred: [live_migration]}
"""


def snapshot(node, **sections):
    base = {"Cluster": {"Name": "HVCLU01"}, "ClusterNode": [{"Name": "HV01"}, {"Name": "HV02"}],
            "ClusterNetwork": NETS,
            "VirtualMachineResourceType": {"MigrationExcludeNetworks": MGMT, "MigrationNetworkOrder": LM}}
    base.update(sections)
    errors = {k: v for k, v in base.items() if isinstance(v, Exception)}
    doc = {"lmscan_snapshot": 1, "node": node, "sections": {k: v for k, v in base.items() if k not in errors},
           "errors": {k: str(v) for k, v in errors.items()}}
    return parse_snapshot(json.dumps(doc).encode(), f"{node}.json")


def scan(tmp_path, snaps, policy=POLICY, today=None):
    p = tmp_path / "policy.yaml"
    p.write_text(policy)
    rs = load_ruleset(p)
    return scan_clusters(rs, group_clusters(snaps), today=today)


def by(report, rule):
    return {(r.target.kind, r.target.name): r for r in report.results if r.rule == rule}


def test_remediation_is_exact_powershell_with_real_ids(tmp_path):
    report = scan(tmp_path, [snapshot("HV01"), snapshot("HV02")])
    r = by(report, "LM001")[("network", "iSCSI-A")]
    assert r.status is Status.FAIL
    assert r.remediation.splitlines()[-1] == (
        "Get-ClusterResourceType -Name 'Virtual Machine' | Set-ClusterParameter -Name MigrationExcludeNetworks "
        f"-Value '{MGMT};{ISCSI}'")
    assert r.id == f"LM001/HVCLU01/network/{ISCSI}"
    assert r.evidence["id"] == ISCSI and r.evidence["carries_lm"] is True
    assert "expected" not in r.expected and "carries live migration" in r.expected


def test_2008r2_remediation_targets_the_vm_resource(tmp_path):
    vms = [{"Name": "Virtual Machine SQL'01", "OwnerGroup": "SQL'01", "MigrationExcludeNetworks": "",
            "MigrationNetworkOrder": LM},
           {"Name": "Virtual Machine WEB01", "OwnerGroup": "WEB01",
            "MigrationExcludeNetworks": f"{ISCSI};{MGMT}", "MigrationNetworkOrder": LM},
           {"Name": "Virtual Machine WEB02", "OwnerGroup": "WEB02",
            "MigrationExcludeNetworks": f"{MGMT};{ISCSI}", "MigrationNetworkOrder": LM}]
    s = snapshot("HV01", VirtualMachineResource=vms, ClusterNode=[{"Name": "HV01"}])
    del s.document["sections"]["VirtualMachineResourceType"]
    s = parse_snapshot(json.dumps(s.document).encode(), "HV01.json")
    report = scan(tmp_path, [s])
    lm001 = by(report, "LM001")
    assert set(lm001) == {("vm", "SQL'01"), ("vm", "WEB01"), ("vm", "WEB02")}
    bad = lm001[("vm", "SQL'01")]
    assert bad.status is Status.FAIL and lm001[("vm", "WEB01")].status is Status.PASS
    assert "iSCSI-A" in bad.message
    # One value for the VM, planned with its other findings (LM002: management carries LM too).
    assert bad.remediation.splitlines()[-1] == (
        "Get-ClusterResource -Name 'Virtual Machine SQL''01' | Set-ClusterParameter -Name MigrationExcludeNetworks "
        f"-Value '{ISCSI};{MGMT}'")
    lm007 = by(report, "LM007")
    assert lm007[("vm", "SQL'01")].status is Status.FAIL and lm007[("vm", "WEB02")].status is Status.PASS
    assert lm007[("vm", "SQL'01")].remediation.splitlines()[-1].endswith(f"-Value '{ISCSI};{MGMT}'")


def test_uncollected_node_is_error_never_pass(tmp_path):
    report = scan(tmp_path, [snapshot("HV01", VMHost={"VirtualMachineMigrationEnabled": True})])
    host = by(report, "HOST001")
    assert host[("node", "HV01")].status is Status.PASS
    assert host[("node", "HV02")].status is Status.ERROR
    assert by(report, "LM010")[("cluster", "HVCLU01")].status is Status.ERROR
    assert by(report, "LM001")[("network", "iSCSI-A")].status is Status.FAIL   # the rest is still evaluated
    for r in report.results:
        if r.target.name == "HV02":
            assert r.status is Status.ERROR


def test_failed_section_is_error_and_unexplained_missing_section_is_error(tmp_path):
    """Contracts §1 as amended: a required section neither present, failed nor absent is an error."""
    report = scan(tmp_path, [snapshot("HV01", VMHost=RuntimeError("Access is denied")),
                             snapshot("HV02")])
    host = by(report, "HOST001")
    assert host[("node", "HV01")].status is Status.ERROR and "Access is denied" in host[("node", "HV01")].message
    assert host[("node", "HV02")].status is Status.ERROR
    assert host[("node", "HV02")].message.startswith("not collected: VMHost")


def test_absent_section_is_skip_with_the_collectors_reason(tmp_path):
    snaps = [snapshot("HV01", VMHost={"VirtualMachineMigrationEnabled": True}), snapshot("HV02")]
    doc = dict(snaps[1].document, absent={"VMHost": "Hyper-V role not installed (no vmms service)"})
    snaps[1] = parse_snapshot(json.dumps(doc).encode(), "HV02.json")
    host = by(scan(tmp_path, snaps), "HOST001")
    assert host[("node", "HV01")].status is Status.PASS
    assert host[("node", "HV02")].status is Status.SKIP
    assert "Hyper-V role not installed (no vmms service)" in host[("node", "HV02")].message


def test_section_missing_on_2008r2_is_skip(tmp_path):
    os08 = {"Caption": "Microsoft Windows Server 2008 R2 Enterprise", "Version": "6.1.7601"}
    report = scan(tmp_path, [snapshot(n, OperatingSystem=os08) for n in ("HV01", "HV02")])
    host = by(report, "HOST001")
    assert {r.status for r in host.values()} == {Status.SKIP}
    assert "does not exist on Windows Server 2008 R2" in host[("node", "HV01")].message


def test_overrides_disable_and_change_severity(tmp_path):
    policy = POLICY + "overrides:\n  LM008: {enabled: false}\n  LM001: {severity: low}\n"
    report = scan(tmp_path, [snapshot("HV01"), snapshot("HV02")], policy)
    assert not by(report, "LM008")
    assert by(report, "LM001")[("network", "iSCSI-A")].severity is Severity.LOW
    assert report.rules["LM001"].severity is Severity.LOW


@pytest.mark.parametrize("expires, status", [("2027-01-31", Status.WAIVED), ("2026-01-31", Status.FAIL),
                                             (None, Status.WAIVED)])
def test_waivers(tmp_path, expires, status):
    waiver = "waivers:\n  - {rule: LM001, target: 'iscsi-*', reason: storage move pending, ticket: CHG-1"
    waiver += f", expires: {expires}}}\n" if expires else "}\n"
    report = scan(tmp_path, [snapshot("HV01"), snapshot("HV02")], POLICY + waiver, today=dt.date(2026, 11, 26))
    r = by(report, "LM001")[("network", "iSCSI-A")]
    assert r.status is status
    assert ("storage move pending" in r.message) is (status is Status.WAIVED)
    if expires and status is Status.FAIL:
        assert "expired on 2026-01-31" in r.message


def test_field_data_passes_through_unchanged(tmp_path):
    nets = [dict(NETS[0], Name="<script>alert(1)</script>")] + NETS[1:]
    report = scan(tmp_path, [snapshot("HV01", ClusterNetwork=nets), snapshot("HV02", ClusterNetwork=nets)])
    assert ("network", "<script>alert(1)</script>") in by(report, "LM001")


def test_result_ids_are_stable_and_unique(tmp_path):
    a = scan(tmp_path, [snapshot("HV01"), snapshot("HV02")])
    b = scan(tmp_path, [snapshot("HV02"), snapshot("HV01")])
    assert [r.id for r in a.results] == [r.id for r in b.results]
    assert len({r.id for r in a.results}) == len(a.results)


def test_demo_scan_has_every_status_it_should():
    from scanner.pipeline import run_scan
    demo = Path(__file__).parents[1] / "scanner" / "demo"
    report = run_scan([demo], demo / "policy.yaml")
    s = report.summary
    assert s["fail"] > 0 and s["pass"] > 0 and s["error"] > 0 and s["skip"] > 0
    assert len(report.clusters) >= 3


def test_policy_rules_are_evaluated_and_checked(tmp_path):
    policy = POLICY + """rules:
  - id: SITE010
    title: Live-migration network metric below management
    severity: medium
    scope: network
    select: {fact: class, eq: live_migration}
    expect: {fact: metric, lt: 40000}
    rationale: keep LM ahead of management in metric order
    remediation: "(Get-ClusterNetwork | Where-Object Id -eq {{ network.id | psq }}).Metric = 30000"
"""
    report = scan(tmp_path, [snapshot("HV01"), snapshot("HV02")], policy)
    r = by(report, "SITE010")[("network", "LiveMigration")]
    assert r.status is Status.PASS
    bad = tmp_path / "bad.yaml"
    bad.write_text(policy.replace("lt: 40000", "lt: forty"))
    from scanner.errors import InputError
    with pytest.raises(InputError, match=r"bad.yaml:\d+: rule SITE010: expect.lt: expected a number"):
        load_ruleset(bad)


def test_stale_and_expiring_waivers_are_noted(tmp_path):
    from scanner.pipeline import waiver_notes
    policy = POLICY + ("waivers:\n"
                       "  - {rule: LM001, target: 'iscsi-*', reason: storage move, expires: 2026-12-01}\n"
                       "  - {rule: LM003, reason: no guest network here any more}\n")
    report = scan(tmp_path, [snapshot("HV01"), snapshot("HV02")], policy, today=dt.date(2026, 11, 26))
    rs = load_ruleset(tmp_path / "policy.yaml")
    notes = waiver_notes(report, rs.policy, dt.date(2026, 11, 26))
    assert len(notes) == 2
    assert "waiver for LM001 (1 finding(s)) expires on 2026-12-01" in notes[0]
    assert notes[1].endswith("waiver for LM003 matched no finding; remove it if the finding is fixed")
    assert notes[1].startswith(f"{tmp_path / 'policy.yaml'}:")


def test_node_comparisons_name_what_differs_and_where(tmp_path):
    hosts = {"VirtualMachineMigrationEnabled": True, "UseAnyNetworkForMigration": False,
             "VirtualMachineMigrationAuthenticationType": 1, "VirtualMachineMigrationPerformanceOption": 2,
             "MaximumVirtualMachineMigrations": 2}
    odd_nets = [dict(NETS[0], Role=1)] + NETS[1:]
    report = scan(tmp_path, [snapshot("HV01", VMHost=hosts),
                             snapshot("HV02", VMHost=dict(hosts, UseAnyNetworkForMigration="True"),
                                      ClusterNetwork=odd_nets)])
    host5 = by(report, "HOST005")[("cluster", "HVCLU01")]
    assert host5.status is Status.FAIL
    assert host5.actual == "UseAnyNetworkForMigration: no on HV01 / yes on HV02"
    assert host5.evidence["node_host_settings"] == {"UseAnyNetworkForMigration": {"no": ["HV01"], "yes": ["HV02"]}}
    lm10 = by(report, "LM010")[("cluster", "HVCLU01")]
    assert lm10.status is Status.FAIL
    assert "HV01 agree / HV02: +iSCSI-A [" in lm10.actual and "role Cluster 10.10.10.0/24" in lm10.actual

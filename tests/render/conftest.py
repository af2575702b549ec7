"""Hand-built scan reports for the renderer tests.

The reports are built directly from ``scanner.model`` so the renderers can be tested before
(and independently of) the engine: a realistic multi-cluster scan (a 2022 cluster with
failures, a 2019 cluster with an unreachable node, a 2008 R2 cluster evaluated per VM, a
clean cluster with dotted names), a "hostile" variant whose field data holds markup, control
characters and non-ASCII, an empty scan, and a 100-cluster scan for size and layout.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import pytest

from scanner.model import (
    ClusterInfo,
    NodeInfo,
    PackInfo,
    PolicyInfo,
    Result,
    RuleInfo,
    ScanInfo,
    ScanReport,
    Severity,
    Status,
    Target,
)

MS = "https://learn.microsoft.com/en-us"
RULES: dict[str, RuleInfo] = {r.id: r for r in [
    RuleInfo("LM001", "iSCSI networks are excluded from live migration", Severity.CRITICAL,
             "Live migration traffic on an iSCSI network competes with storage I/O; a migration "
             "can starve the disks of every VM on the cluster.",
             (f"{MS}/previous-versions/windows/desktop/mscs/virtual-machines-migrationexcludenetworks",)),
    RuleInfo("LM002", "Management networks are excluded from live migration", Severity.HIGH,
             "Migrations on the management network can cut off remote administration and backups.",
             ()),
    RuleInfo("LM003", "Guest networks are excluded from live migration", Severity.HIGH,
             "Memory pages of VMs must not cross networks that tenants or guests can reach.", ()),
    RuleInfo("LM004", "Only allowed network classes carry live migration", Severity.HIGH,
             "A network the site has not classified may be anything; it must not carry memory "
             "contents of running VMs.", ()),
    RuleInfo("LM005", "A preferred live-migration network is available", Severity.HIGH,
             "Without an Up preferred network, migrations fall back to whatever is left.", ()),
    RuleInfo("LM006", "Live migration prefers the designated network", Severity.MEDIUM,
             "The first network of the effective order is the one migrations use.", ()),
    RuleInfo("LM007", "All VMs carry the same live-migration settings", Severity.HIGH,
             "On Windows Server 2008 R2 the settings are per VM; an outlier migrates elsewhere.",
             ()),
    RuleInfo("LM008", "iSCSI networks have cluster role None", Severity.MEDIUM,
             "Cluster traffic on iSCSI networks competes with storage I/O.", ()),
    RuleInfo("LM009", "Every node has an Up interface on the preferred network", Severity.MEDIUM,
             "A node without it migrates over another network.", ()),
    RuleInfo("LM010", "All nodes agree on networks and live-migration settings", Severity.MEDIUM,
             "Nodes that disagree point to a partition or an unfinished change.", ()),
    RuleInfo("LM011", "Live-migration settings name only existing networks", Severity.LOW,
             "Stale Ids hide what the settings were meant to do.", ()),
    RuleInfo("LM012", "Network ATC live-migration network selection", Severity.INFO,
             "Network ATC owns the live-migration settings and reverts manual edits.", ()),
    RuleInfo("HOST001", "Live migration is enabled on the Hyper-V host", Severity.HIGH,
             "A host with live migration disabled cannot be drained for maintenance.",
             (f"{MS}/powershell/module/hyper-v/set-vmhost",)),
    RuleInfo("HOST002", "The host does not use any network for migration", Severity.MEDIUM,
             "UseAnyNetworkForMigration bypasses the cluster's network selection.", ()),
    RuleInfo("HOST003", "Host migration networks are of an allowed class", Severity.MEDIUM,
             "The host's migration subnets must belong to allowed classes.", ()),
    RuleInfo("HOST004", "Host live-migration settings match the site policy", Severity.LOW,
             "Authentication, transport and concurrency are site decisions.", ()),
    RuleInfo("HOST005", "Host live-migration settings are the same on every node", Severity.LOW,
             "A migration behaves differently depending on the node it starts on.", ()),
]}

NET = {
    "Management": "0d6f3c39-5a0e-4f64-9a52-6f1e3c7a2b10",
    "iSCSI-A": "3f2c8b1e-7d44-4c1a-9e0b-2a6d5c4b3a21",
    "iSCSI-B": "8a9b0c1d-2e3f-4a5b-8c7d-9e0f1a2b3c42",
    "LiveMigration": "5c0d9a7e-1d7b-4a63-b5fd-0a3b2f6a1c11",
    "Cluster": "b7e6d5c4-a3b2-4c1d-8e0f-1a2b3c4d5e63",
    "VM Backup": "e1f2a3b4-c5d6-4e7f-8a9b-0c1d2e3f4a84",
}
LONG_REMEDIATION = (
    "# Exclude iSCSI-A from live migration; keep the networks that are already excluded.\n"
    "$vmType = Get-ClusterResourceType -Name 'Virtual Machine'\n"
    "$vmType | Set-ClusterParameter -Name MigrationExcludeNetworks -Value "
    f"'{NET['Management']};{NET['iSCSI-B']};{NET['iSCSI-A']}'\n"
    "# Check: iSCSI-A must no longer appear in the effective order\n"
    "$vmType | Get-ClusterParameter -Name MigrationExcludeNetworks,MigrationNetworkOrder | "
    "Format-List Name,Value"
)


def result(rule: str, status: Status, cluster: str, kind: str, name: str, *,
           id: str | None = None, node: str | None = None, message: str = "",
           expected: str = "", actual: str = "", evidence: Mapping[str, Any] | None = None,
           remediation: str = "") -> Result:
    """A Result with title and severity taken from :data:`RULES` and a contract-shaped id."""
    info = RULES[rule]
    rid = "/".join([rule, cluster, kind, id or name] + ([node] if node and kind != "node" else []))
    return Result(id=rid, rule=rule, title=info.title, severity=info.severity, status=status,
                  cluster=cluster, target=Target(kind=kind, name=name, id=id, node=node),
                  message=message or f"{name}: {status.value}", expected=expected,
                  actual=actual, remediation=remediation, evidence=dict(evidence or {}))


def scan_info(*, default_policy: bool = False, fail_on: Severity = Severity.LOW) -> ScanInfo:
    policy = (PolicyInfo(None, "9f4a" * 16, default=True) if default_policy else
              PolicyInfo("C:\\lmscan\\policy\\contoso-site.yaml",
                         "4b227777d4dd1fc61c6f884f48641d02b4d121d3fd328cb08b5531fcacdabf8a"))
    return ScanInfo(id="2f1e6c1a-9a4b-4d0e-8f3c-0b5a7d9e1c2f",
                    started_at="2026-11-26T02:00:00Z", finished_at="2026-11-26T02:00:41Z",
                    tool_version="1.0.0", policy=policy,
                    rule_packs=(PackInfo("lmscan-builtin", "1.0.0", "a3f1" * 16),),
                    fail_on=fail_on)


def _hvclu01() -> tuple[ClusterInfo, list[Result]]:
    c = "HVCLU01"
    nodes = tuple(NodeInfo(n, True, None, f"2026-11-26T02:00:0{i}Z")
                  for i, n in enumerate(["HV01", "HV02", "HV03"], start=1))
    excl = f"{NET['Management']};{NET['iSCSI-B']}"
    rs = [
        result("LM001", Status.FAIL, c, "network", "iSCSI-A", id=NET["iSCSI-A"],
               message="iSCSI-A (10.10.10.0/24, class iscsi) carries live migration: its Id is "
                       "not in MigrationExcludeNetworks.",
               expected="excluded from live migration",
               actual="carries live migration (2nd in the effective order)",
               evidence={"network": "iSCSI-A", "subnets": ["10.10.10.0/24"], "class": "iscsi",
                         "matched_by": "subnet 10.10.10.0/24",
                         "MigrationExcludeNetworks": excl.split(";"),
                         "effective_order": ["LiveMigration", "iSCSI-A", "VM Backup", "Cluster"]},
               remediation=LONG_REMEDIATION),
        result("LM001", Status.PASS, c, "network", "iSCSI-B", id=NET["iSCSI-B"],
               message="iSCSI-B is excluded from live migration.",
               expected="excluded from live migration", actual="excluded"),
        result("LM002", Status.PASS, c, "network", "Management", id=NET["Management"],
               message="Management is excluded from live migration.",
               expected="excluded from live migration", actual="excluded"),
        result("LM003", Status.SKIP, c, "cluster", c,
               message="No cluster network is of class guest."),
        result("LM004", Status.FAIL, c, "network", "VM Backup", id=NET["VM Backup"],
               message="VM Backup (10.40.0.0/24) matches no network class of the site policy "
                       "and carries live migration.",
               expected="class in [live_migration, cluster, storage]", actual="unclassified",
               evidence={"subnets": ["10.40.0.0/24"], "role": "ClusterAndClient", "metric": 70240},
               remediation="$vmType = Get-ClusterResourceType -Name 'Virtual Machine'\n"
                           "$vmType | Set-ClusterParameter -Name MigrationExcludeNetworks -Value "
                           f"'{excl};{NET['VM Backup']}'"),
        result("LM004", Status.PASS, c, "network", "LiveMigration", id=NET["LiveMigration"],
               message="LiveMigration is of class live_migration.",
               expected="class in [live_migration, cluster, storage]", actual="live_migration"),
        result("LM004", Status.PASS, c, "network", "Cluster", id=NET["Cluster"],
               message="Cluster is of class cluster.",
               expected="class in [live_migration, cluster, storage]", actual="cluster"),
        result("LM005", Status.PASS, c, "cluster", c,
               message="LiveMigration (class live_migration) carries live migration and is Up."),
        result("LM006", Status.FAIL, c, "cluster", c,
               message="The first network of the effective order is Cluster (class cluster), "
                       "not a preferred network.",
               expected="first network of class live_migration", actual="Cluster (cluster)",
               evidence={"MigrationNetworkOrder": [NET["Cluster"], NET["LiveMigration"]]},
               remediation="$vmType = Get-ClusterResourceType -Name 'Virtual Machine'\n"
                           "$vmType | Set-ClusterParameter -Name MigrationNetworkOrder -Value "
                           f"'{NET['LiveMigration']};{NET['Cluster']}'"),
        result("LM008", Status.FAIL, c, "network", "iSCSI-A", id=NET["iSCSI-A"],
               message="iSCSI-A has cluster role Cluster (1).", expected="Role None (0)",
               actual="Role Cluster (1)",
               remediation="(Get-ClusterNetwork -Name 'iSCSI-A').Role = 0"),
        result("LM008", Status.PASS, c, "network", "iSCSI-B", id=NET["iSCSI-B"],
               message="iSCSI-B has cluster role None.", expected="Role None (0)",
               actual="Role None (0)"),
        result("LM010", Status.PASS, c, "cluster", c, message="All 3 nodes agree."),
        result("LM011", Status.PASS, c, "cluster", c, message="All Ids exist."),
        result("LM012", Status.SKIP, c, "cluster", c, message="Network ATC is not in use."),
        result("HOST005", Status.FAIL, c, "cluster", c,
               message="HV02 differs from HV01 and HV03 in UseAnyNetworkForMigration.",
               expected="the same host settings on every node",
               actual="HV02: UseAnyNetworkForMigration=True; HV01, HV03: False",
               remediation="Set-VMHost -ComputerName HV02 -UseAnyNetworkForMigration $false"),
    ]
    for n in nodes:
        rs.append(result("LM009", Status.PASS, c, "node", n.name, node=n.name,
                         message=f"{n.name} has an Up interface on LiveMigration."))
        rs.append(result("HOST001", Status.PASS, c, "node", n.name, node=n.name,
                         message="Live migration is enabled."))
        if n.name == "HV02":
            rs.append(result("HOST002", Status.FAIL, c, "node", n.name, node=n.name,
                             message="HV02 lets live migration use any network.",
                             expected="UseAnyNetworkForMigration = False",
                             actual="UseAnyNetworkForMigration = True",
                             remediation="Set-VMHost -ComputerName HV02 "
                                         "-UseAnyNetworkForMigration $false"))
        else:
            rs.append(result("HOST002", Status.PASS, c, "node", n.name, node=n.name,
                             message="UseAnyNetworkForMigration is False."))
        if n.name == "HV03":
            rs.append(result("HOST004", Status.WAIVED, c, "node", n.name, node=n.name,
                             message="Waived until 2026-12-31 (CHG0012345): performance option "
                                     "TCPIP while the RDMA adapters are replaced.",
                             expected="performance option in [SMB, Compression]",
                             actual="TCPIP"))
        else:
            rs.append(result("HOST004", Status.PASS, c, "node", n.name, node=n.name,
                             message="Kerberos, SMB, 2 parallel migrations."))
    return ClusterInfo(c, "Microsoft Windows Server 2022 Datacenter", nodes), rs


def _hvclu02() -> tuple[ClusterInfo, list[Result]]:
    c = "HVCLU02"
    why = ("WinRM HV-B02.corp.contoso.com:5986: no answer within 30 s (connection timed out). "
           "Is the host up and is TCP 5986 open from the scanner?")
    nodes = (NodeInfo("HV-B01", True, None, "2026-11-26T02:00:11Z"),
             NodeInfo("HV-B02", False, why, None))
    nc = "Node HV-B02 was not collected, so this cannot be evaluated."
    rs = [
        result("LM001", Status.PASS, c, "network", "iSCSI", id="6a1b2c3d-0000-4000-8000-00000000a001",
               message="iSCSI is excluded from live migration."),
        result("LM002", Status.PASS, c, "network", "MGMT", id="6a1b2c3d-0000-4000-8000-00000000a002",
               message="MGMT is excluded from live migration."),
        result("LM005", Status.PASS, c, "cluster", c, message="LM (live_migration) is Up."),
        result("LM006", Status.PASS, c, "cluster", c, message="LM is first."),
        result("LM009", Status.PASS, c, "node", "HV-B01", node="HV-B01", message="Up on LM."),
        result("LM009", Status.ERROR, c, "node", "HV-B02", node="HV-B02", message=nc),
        result("LM010", Status.ERROR, c, "cluster", c,
               message="1 of 2 nodes was not collected (HV-B02); all nodes cannot be compared."),
        result("HOST001", Status.PASS, c, "node", "HV-B01", node="HV-B01", message="Enabled."),
        result("HOST001", Status.ERROR, c, "node", "HV-B02", node="HV-B02", message=nc),
        result("HOST003", Status.ERROR, c, "node", "HV-B01", node="HV-B01",
               message="Get-VMMigrationNetwork failed on HV-B01: Access is denied.",
               evidence={"section": "VMMigrationNetwork",
                         "error": "Access is denied. (0x80070005)"}),
        result("HOST005", Status.ERROR, c, "cluster", c,
               message="1 of 2 nodes was not collected (HV-B02); all nodes cannot be compared."),
        result("LM011", Status.FAIL, c, "cluster", c,
               message="MigrationExcludeNetworks names an Id that is no cluster network: "
                       "0b0e0e0f-1111-4222-8333-444455556666.",
               expected="only Ids of existing cluster networks",
               actual="1 unknown Id", evidence={"unknown_ids": ["0b0e0e0f-1111-4222-8333-444455556666"]},
               remediation="$vmType = Get-ClusterResourceType -Name 'Virtual Machine'\n"
                           "$vmType | Set-ClusterParameter -Name MigrationExcludeNetworks -Value "
                           "'6a1b2c3d-0000-4000-8000-00000000a001;6a1b2c3d-0000-4000-8000-00000000a002'"),
    ]
    return ClusterInfo(c, "Microsoft Windows Server 2019 Standard", nodes), rs


def _legacy08() -> tuple[ClusterInfo, list[Result]]:
    c = "LEGACY08"
    nodes = (NodeInfo("OLDHV1", True, None, "2026-11-26T02:00:21Z"),
             NodeInfo("OLDHV2", True, None, "2026-11-26T02:00:22Z"))
    iscsi = "c0ffee00-1234-4abc-8def-0123456789ab"
    rs = [
        result("LM001", Status.FAIL, c, "vm", "SQL01", id="Virtual Machine SQL01",
               message="SQL01 lets live migration use the iSCSI network iSCSI (10.1.1.0/24).",
               expected="iSCSI excluded for this VM", actual="MigrationExcludeNetworks is empty",
               evidence={"OwnerGroup": "SQL01", "OwnerNode": "OLDHV1",
                         "MigrationExcludeNetworks": [], "iscsi_networks": [iscsi]},
               remediation="Import-Module FailoverClusters\n"
                           "Get-ClusterResource -Name 'Virtual Machine SQL01' | "
                           f"Set-ClusterParameter -Name MigrationExcludeNetworks -Value '{iscsi}'"),
        result("LM001", Status.PASS, c, "vm", "FILE01", id="Virtual Machine FILE01",
               message="FILE01 excludes iSCSI."),
        result("LM001", Status.PASS, c, "vm", "WEB01", id="Virtual Machine WEB01",
               message="WEB01 excludes iSCSI."),
        result("LM007", Status.FAIL, c, "vm", "SQL01", id="Virtual Machine SQL01",
               message="SQL01 differs from the majority (2 of 3 VMs).",
               expected=f"MigrationExcludeNetworks = {iscsi}",
               actual="MigrationExcludeNetworks = (empty)",
               remediation="Import-Module FailoverClusters\n"
                           "Get-ClusterResource -Name 'Virtual Machine SQL01' | "
                           f"Set-ClusterParameter -Name MigrationExcludeNetworks -Value '{iscsi}'"),
        result("LM012", Status.SKIP, c, "cluster", c,
               message="Network ATC does not exist on Windows Server 2008 R2."),
    ]
    for n in nodes:
        rs.append(result("HOST001", Status.SKIP, c, "node", n.name, node=n.name,
                         message="No Hyper-V PowerShell module on Windows Server 2008 R2."))
    return ClusterInfo(c, "Microsoft Windows Server 2008 R2 Enterprise", nodes), rs


def _hvclu03() -> tuple[ClusterInfo, list[Result]]:
    c = "hvclu03.contoso.com"
    nodes = (NodeInfo("hv31.contoso.com", True, None, "2026-11-26T02:00:31Z"),
             NodeInfo("hv32.contoso.com", True, None, "2026-11-26T02:00:32Z"))
    rs = [result("LM001", Status.PASS, c, "network", "Storage1", id="aa00aa00-0000-4000-8000-0000000000c1",
                 message="Storage1 is excluded.")]
    for n in nodes:
        rs.append(result("HOST001", Status.PASS, c, "node", n.name, node=n.name, message="Enabled."))
    rs.append(result("LM010", Status.PASS, c, "cluster", c, message="Both nodes agree."))
    return ClusterInfo(c, "Microsoft Windows Server 2025 Datacenter", nodes), rs


HOSTILE_NAME = "<script>alert(1)</script>"
HOSTILE_TEXT = ("a & b \"quoted\" 'single' ]]> <b>bold</b> \x1b[31mred\x1b[0m bell\x07 nul\x00 "
                "Réseau invité — 网络 ✓")


def build_sample(*, hostile: bool = False, default_policy: bool = False,
                 fail_on: Severity = Severity.LOW) -> ScanReport:
    """The realistic four-cluster scan; ``hostile`` adds field data that must be escaped."""
    clusters, results = [], []
    for part in (_hvclu01, _hvclu02, _legacy08, _hvclu03):
        info, rs = part()
        clusters.append(info)
        results.extend(rs)
    if hostile:
        results.append(result(
            "LM004", Status.FAIL, "HVCLU01", "network", HOSTILE_NAME,
            id="deadbeef-0000-4000-8000-000000000bad", message=f"{HOSTILE_NAME} {HOSTILE_TEXT}",
            expected="class in [live_migration]", actual=HOSTILE_TEXT,
            evidence={"name": HOSTILE_NAME, "text": HOSTILE_TEXT, "nested": {"k": [1, None, True]}},
            remediation=f"Get-ClusterNetwork -Name '{HOSTILE_NAME}' # {HOSTILE_TEXT}"))
        clusters[1] = replace(clusters[1], nodes=(
            clusters[1].nodes[0],
            replace(clusters[1].nodes[1], error=f"\x1b[1mWinRM\x1b[0m said <nope> & {HOSTILE_TEXT}")))
    return ScanReport(scan=scan_info(default_policy=default_policy, fail_on=fail_on),
                      clusters=tuple(clusters), results=tuple(results), rules=RULES)


def build_empty(*, clusters: bool = False) -> ScanReport:
    """A scan that produced no results, with or without clusters."""
    infos = (ClusterInfo("EMPTY01", "Microsoft Windows Server 2022 Standard",
                         (NodeInfo("E1", True, None, "2026-11-26T02:00:00Z"),)),) if clusters else ()
    return ScanReport(scan=scan_info(), clusters=infos, results=(), rules=RULES)


def build_big(n: int = 100) -> ScanReport:
    """``n`` clusters of 4 nodes: every 7th fails LM001, every 11th has an unreachable node."""
    clusters, results = [], []
    for i in range(1, n + 1):
        c = f"HVC{i:03d}"
        nodes = tuple(NodeInfo(f"{c}-N{k}", not (i % 11 == 0 and k == 4),
                               None if not (i % 11 == 0 and k == 4) else "WinRM: connection refused",
                               "2026-11-26T02:01:00Z") for k in range(1, 5))
        clusters.append(ClusterInfo(c, "Microsoft Windows Server 2022 Datacenter", nodes))
        for net in ("iSCSI-A", "iSCSI-B"):
            failing = i % 7 == 0 and net == "iSCSI-A"
            results.append(result(
                "LM001", Status.FAIL if failing else Status.PASS, c, "network", net,
                id=f"{i:08x}-0000-4000-8000-{net[-1]}00000000000",
                message=f"{net} {'carries' if failing else 'is excluded from'} live migration.",
                expected="excluded", actual="carries" if failing else "excluded",
                remediation=LONG_REMEDIATION if failing else ""))
        for rule in ("LM002", "LM005", "LM006", "LM010", "LM011"):
            results.append(result(rule, Status.PASS, c, "cluster", c, message="ok"))
        results.append(result("LM012", Status.SKIP, c, "cluster", c, message="Network ATC is not in use."))
        for node in nodes:
            status = Status.PASS if node.collected else Status.ERROR
            for rule in ("HOST001", "HOST002", "LM009"):
                results.append(result(rule, status, c, "node", node.name, node=node.name,
                                      message="ok" if node.collected else "not collected"))
    return ScanReport(scan=scan_info(), clusters=tuple(clusters), results=tuple(results), rules=RULES)


@pytest.fixture
def sample_report() -> ScanReport:
    return build_sample()


@pytest.fixture
def hostile_report() -> ScanReport:
    return build_sample(hostile=True)


@pytest.fixture
def make_report() -> Callable[..., ScanReport]:
    """The sample builder, for tests that need a variant (default policy, --fail-on)."""
    return build_sample


@pytest.fixture
def empty_report() -> ScanReport:
    return build_empty()


@pytest.fixture(scope="session")
def big_report() -> ScanReport:
    return build_big()

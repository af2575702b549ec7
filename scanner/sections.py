"""The snapshot sections of contracts §1 and what a missing one means (amended 2026-11-30).

A section a rule needs can be present, failed (``errors``: the rule gives ``error``), absent
(``absent``: the feature is not installed, the rule gives ``skip`` with the collector's reason)
or simply missing. Missing means different things: a required section that is missing was
never collected (``error``), a section that does not exist on the node's OS version or an
optional one does not apply (``skip``). This module is the one table of which is which; the
README's "What each rule needs" table and the collector tests read the same facts.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SectionInfo:
    """One section of the contract table and what the node needs to report it."""

    name: str
    source: str                 # the command or class it comes from
    needs: str                  # what must be installed or granted on the node
    required: str = ""          # "" (optional) | "all" | "2012+" | "2008r2"
    since_2012: bool = False    # does not exist on Windows Server 2008 R2
    added: bool = False         # added after the first collector (an older one never reports it)
    missing: str = ""           # what a missing optional section usually means


SECTIONS: tuple[SectionInfo, ...] = (
    SectionInfo("OperatingSystem", "Win32_OperatingSystem (CIM, WMI on PowerShell 2.0)", "nothing", "all"),
    SectionInfo("Cluster", "Get-Cluster, else MSCluster_Cluster", "Failover Clustering; module "
                "RSAT-Clustering-PowerShell (else WMI root\\MSCluster)", "all"),
    SectionInfo("ClusterNode", "Get-ClusterNode, else MSCluster_Node", "as Cluster", "all"),
    SectionInfo("ClusterNetwork", "Get-ClusterNetwork, else MSCluster_Network", "as Cluster", "all"),
    SectionInfo("ClusterNetworkInterface", "Get-ClusterNetworkInterface, else MSCluster_NetworkInterface",
                "as Cluster", "all"),
    SectionInfo("VirtualMachineResourceType", "Get-ClusterResourceType 'Virtual Machine' | Get-ClusterParameter, "
                "else MSCluster_ResourceType", "as Cluster; Hyper-V clustered (the resource type exists)",
                "2012+", since_2012=True),
    SectionInfo("VirtualMachineResource", "Get-ClusterResource (type Virtual Machine) | Get-ClusterParameter",
                "as Cluster (2008 R2 only)", "2008r2"),
    SectionInfo("VMHost", "Get-VMHost", "Hyper-V role (vmms service); module Hyper-V-PowerShell", "2012+",
                since_2012=True),
    SectionInfo("VMMigrationNetwork", "Get-VMMigrationNetwork", "as VMHost", "2012+", since_2012=True),
    SectionInfo("SmbBandwidthLimit", "Get-SmbBandwidthLimit -Category LiveMigration",
                "feature FS-SMBBW (SMB Bandwidth Limit)", since_2012=True),
    SectionInfo("NetIntent", "Get-NetIntent", "Network ATC (Azure Local, Windows Server 2025)", since_2012=True,
                missing="Network ATC is not installed"),
    SectionInfo("NetIntentGlobalOverrides", "(Get-NetIntent -GlobalOverrides).ClusterOverride", "as NetIntent",
                since_2012=True, missing="Network ATC is not installed"),
    SectionInfo("NetAdapter", "Get-NetAdapter", "module NetAdapter (in the OS from 2012)", since_2012=True,
                added=True),
    SectionInfo("DefaultRoute", "Get-NetRoute -DestinationPrefix 0.0.0.0/0, ::/0", "module NetTCPIP",
                since_2012=True, added=True),
    SectionInfo("SmbMultichannelConstraint", "Get-SmbMultichannelConstraint", "module SmbShare",
                since_2012=True, added=True),
    SectionInfo("SmbClientNetworkInterface", "Get-SmbClientNetworkInterface", "module SmbShare",
                since_2012=True, added=True),
    SectionInfo("ComputerAccountDelegation", "the node's computer object in AD via ADSI",
                "domain member; read access to the computer object (any domain user)", added=True),
    SectionInfo("DeviceGuard", "Win32_DeviceGuard (root\\Microsoft\\Windows\\DeviceGuard)",
                "Windows Server 2016 or later", since_2012=True, added=True),
)
BY_NAME = {s.name.casefold(): s for s in SECTIONS}
NAMES = tuple(s.name for s in SECTIONS)


def canonical(name: str) -> str:
    """The contract's spelling of a section name (snapshots may use any case)."""
    info = BY_NAME.get(name.casefold())
    return info.name if info else name


def required(name: str, legacy: bool) -> bool:
    """Must a node of this generation (2008 R2 when ``legacy``) report the section?"""
    info = BY_NAME.get(name.casefold())
    if info is None or not info.required:
        return False
    return info.required == "all" or (info.required == "2008r2") == legacy


def missing_reason(name: str, legacy: bool) -> str:
    """Why a section that is missing (and not required) does not apply: the ``skip`` reason."""
    info = BY_NAME.get(name.casefold())
    if info is None:
        return f"{name} was not reported"
    if legacy and info.since_2012:
        return f"{name} does not exist on Windows Server 2008 R2"
    if not legacy and info.required == "2008r2":
        return f"{name} exists only on Windows Server 2008 R2"
    if info.added:
        return (f"{name} was not reported: the collector that wrote this snapshot does not collect it "
                "(collect again with this lmscan's collector)")
    return f"{name} was not reported: {info.missing or 'needs ' + info.needs}"


def not_collected_reason(name: str) -> str:
    """The ``error`` reason for a required section that is neither present, failed nor absent."""
    return (f"not collected: {name} is missing from the snapshot and named neither in its errors nor in "
            "absent (a collector that stopped early, or an edited file); collect again")

"""Write the per-rule case directories (``<RULE>.<outcome>[-variant]/``) of tests/data/rules.

Each case is a small cluster built from one of two base topologies (a 2019-style cluster and a
2008 R2 cluster), changed in the one place that makes the rule pass, fail, skip or error. The
expected results are written next to the snapshots, derived from the contract text (contracts
§2 and §4), not from the engine. Generated files are committed; rerun after editing:

    python tests/data/rules/make_cases.py
"""

from __future__ import annotations

import ipaddress
import json
import shutil
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
NS = uuid.UUID("6f1c2e0a-3b7d-4c1e-9a55-0d7e2b1f4c10")
COLLECTED_AT = "2026-11-26T02:00:03Z"

ROLE = {0: "None", 1: "Cluster", 2: "Client", 3: "ClusterAndClient"}
NET_STATE = {-1: "Unknown", 0: "Unavailable", 1: "Down", 2: "Partitioned", 3: "Up"}
IF_STATE = {-1: "Unknown", 0: "Unavailable", 1: "Failed", 2: "Unreachable", 3: "Up"}
NODE_STATE = {-1: "Unknown", 0: "Up", 1: "Down", 2: "Paused", 3: "Joining"}
AUTH = {0: "CredSSP", 1: "Kerberos"}
PERF = {0: "TCPIP", 1: "Compression", 2: "SMB"}

#: OS key -> (Caption, Version, BuildNumber, PowerShell version)
OS = {
    "2008r2": ("Microsoft Windows Server 2008 R2 Enterprise ", "6.1.7601", "7601", "2.0"),
    "2012": ("Microsoft Windows Server 2012 Datacenter", "6.2.9200", "9200", "3.0"),
    "2019": ("Microsoft Windows Server 2019 Datacenter", "10.0.17763", "17763", "5.1.17763.2931"),
    "2022": ("Microsoft Windows Server 2022 Datacenter", "10.0.20348", "20348", "5.1.20348.2849"),
}


def gid(*parts: str) -> str:
    """A stable lower-case random-looking (version 4) GUID for a named object, as Ids look."""
    return str(uuid.UUID(bytes=uuid.uuid5(NS, "/".join(p.casefold() for p in parts)).bytes, version=4))


@dataclass(frozen=True)
class Net:
    """A cluster network of a case topology. ``subnets`` are CIDRs; the first IPv4 one is Address."""

    name: str
    subnets: tuple[str, ...]
    role: int
    metric: int
    state: int = 3


@dataclass(frozen=True)
class VM:
    """A 2008 R2 virtual machine resource with its own live-migration pair (network names)."""

    group: str
    exclude: tuple[str, ...]
    order: tuple[str, ...]
    owner: str = ""


@dataclass(frozen=True)
class Host:
    """``Get-VMHost`` live-migration settings of one node (enums as numbers)."""

    enabled: Any = True
    use_any: Any = False
    auth: int = 1
    perf: int = 2
    max_vm: int = 2
    max_storage: int = 2


@dataclass
class Topo:
    """One cluster as a case needs it; ``enums`` is "names" (2016+ printing) or "numbers"."""

    name: str
    nodes: list[str]
    nets: list[Net]
    os: str = "2019"
    enums: str = "names"
    exclude: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    vms: list[VM] = field(default_factory=list)
    absent: list[str] = field(default_factory=list)   # listed by ClusterNode, no snapshot
    hosts: dict[str, Host] = field(default_factory=dict)
    migration_networks: tuple[str, ...] = ("10.20.0.0/24", "10.30.0.0/24")
    max_parallel: int | None = None

    def net(self, name: str) -> Net:
        return next(n for n in self.nets if n.name == name)

    def nid(self, name: str) -> str:
        return gid(self.name, name)

    def ids(self, names: Iterable[str], style: str = "plain") -> str:
        """Join network Ids with ``;`` in one of the shapes seen in the field."""
        raw = [self.nid(n) for n in names]
        if style == "braces":
            return " ; ".join("{" + i.upper() + "}" for i in raw) + ";"
        return ";".join(raw)

    def enum(self, value: int, names: dict[int, str]) -> int | str:
        return names[value] if self.enums == "names" else value


MGMT = Net("Management", ("192.168.10.0/24",), role=3, metric=70240)
CLUS = Net("Cluster", ("10.30.0.0/24",), role=1, metric=30240)
LMN = Net("LiveMigration", ("10.20.0.0/24",), role=1, metric=30241)
ISA = Net("iSCSI-A", ("10.10.10.0/24",), role=0, metric=79840)
ISB = Net("iSCSI-B", ("10.10.11.0/24",), role=0, metric=79841)
GUEST = Net("VM Traffic", ("172.16.50.0/24",), role=3, metric=70241)
BACKUP = Net("Backup", ("10.99.0.0/24",), role=1, metric=40000)


def std(**changes: Any) -> Topo:
    """The 2019-style base: every rule passes on it (LM003/LM007/LM012 skip)."""
    t = Topo(name="HVCLU01", nodes=["HV01", "HV02"], nets=[MGMT, CLUS, LMN, ISA, ISB],
             exclude=("Management", "iSCSI-A", "iSCSI-B"), order=("LiveMigration", "Cluster"))
    for k, val in changes.items():
        setattr(t, k, val)
    return t


L_PUBLIC = Net("Public", ("192.168.10.0/24",), role=3, metric=10100)
L_HEART = Net("Heartbeat", ("10.30.0.0/24",), role=1, metric=1000)
L_LM = Net("LiveMigration", ("10.20.0.0/24",), role=1, metric=1100)
L_ISCSI = Net("iSCSI", ("10.10.10.0/24",), role=0, metric=1200)
L_OK = VM("", exclude=("Public", "iSCSI"), order=("LiveMigration", "Heartbeat"))


def legacy(*vms: VM) -> Topo:
    """The 2008 R2 base: per-VM settings, no Hyper-V module sections, enums as numbers."""
    default = [replace(L_OK, group=g) for g in ("SQL01", "WEB01", "FILE01")]
    return Topo(name="HVCLU08", nodes=["HV08A", "HV08B"], os="2008r2", enums="numbers",
                nets=[L_PUBLIC, L_HEART, L_LM, L_ISCSI], vms=list(vms) or default)


# --------------------------------------------------------------------------- section builders

def network_obj(t: Topo, n: Net) -> dict[str, Any]:
    nets = [ipaddress.ip_network(s) for s in n.subnets]
    v4 = [x for x in nets if x.version == 4]
    v6 = [x for x in nets if x.version == 6]
    o: dict[str, Any] = {
        "Name": n.name, "Id": t.nid(n.name),
        "Role": t.enum(n.role, ROLE), "State": t.enum(n.state, NET_STATE),
        "Address": str(v4[0].network_address) if v4 else "",
        "AddressMask": str(v4[0].netmask) if v4 else "",
        "Ipv4Addresses": [str(x.network_address) for x in v4],
        "Ipv4PrefixLengths": [x.prefixlen for x in v4],
        "Ipv6Addresses": [str(x.network_address) for x in v6],
        "Ipv6PrefixLengths": [x.prefixlen for x in v6],
        "Metric": n.metric, "AutoMetric": True, "Description": "",
    }
    if t.os == "2008r2":   # no address lists on 2008 R2; PowerShell 2.0 hand-made JSON
        for k in ("Ipv4Addresses", "Ipv4PrefixLengths", "Ipv6Addresses", "Ipv6PrefixLengths"):
            del o[k]
        o["AutoMetric"] = "True"
    return o


def host_address(n: Net, index: int) -> tuple[str, str]:
    """(IPv4 address, IPv6 address) of node ``index`` (1-based) on network ``n``."""
    v4 = [ipaddress.ip_network(s) for s in n.subnets if ":" not in s]
    v6 = [ipaddress.ip_network(s) for s in n.subnets if ":" in s]
    a4 = str(v4[0].network_address + 10 + index) if v4 else ""
    a6 = str(v6[0].network_address + 0x1000 + index) if v6 else ""
    return a4, a6


def interface_obj(t: Topo, node: str, index: int, n: Net, state: int = 3) -> dict[str, Any]:
    a4, a6 = host_address(n, index)
    return {
        "Name": f"{node} - {n.name}", "Node": node, "Network": n.name, "NetworkId": t.nid(n.name),
        "Adapter": "Intel(R) Ethernet Controller X710 for 10GbE SFP+" + (f" #{t.nets.index(n) + 1}" if t.nets.index(n) else ""),
        "AdapterId": gid(t.name, node, n.name).upper(),
        "Address": a4 or a6, "Ipv4Addresses": [a4] if a4 else [], "Ipv6Addresses": [a6] if a6 else [],
        "State": t.enum(state, IF_STATE),
    }


def host_obj(t: Topo, h: Host) -> dict[str, Any]:
    return {
        "VirtualMachineMigrationEnabled": h.enabled,
        "UseAnyNetworkForMigration": h.use_any,
        "VirtualMachineMigrationAuthenticationType": t.enum(h.auth, AUTH),
        "VirtualMachineMigrationPerformanceOption": t.enum(h.perf, PERF),
        "MaximumVirtualMachineMigrations": h.max_vm,
        "MaximumStorageMigrations": h.max_storage,
    }


def build(t: Topo) -> dict[str, dict[str, Any]]:
    """Snapshot documents of every collected node of ``t``, keyed by node name."""
    caption, version, build_no, ps = OS[t.os]
    every = t.nodes + t.absent
    cluster: dict[str, Any] = {"Name": t.name, "Id": gid("cluster", t.name), "Domain": "contoso.com"}
    if t.max_parallel is not None:
        cluster.update(MaximumParallelMigrations=t.max_parallel, SetSMBBandwidthLimit=1,
                       SMBBandwidthLimitFactor=2500)
    nodes = [{"Name": n, "Id": str(i + 1), "State": t.enum(1 if n in t.absent else 0, NODE_STATE)}
             for i, n in enumerate(every)]
    ifaces = [interface_obj(t, node, i + 1, n, 2 if node in t.absent else 3)
              for i, node in enumerate(every) for n in t.nets]
    docs = {}
    for node in t.nodes:
        s: dict[str, Any] = {
            "OperatingSystem": {"Caption": caption, "Version": version, "BuildNumber": build_no},
            "Cluster": cluster,
            "ClusterNode": nodes,
            "ClusterNetwork": [network_obj(t, n) for n in t.nets],
            "ClusterNetworkInterface": ifaces,
        }
        if t.os == "2008r2":
            s["VirtualMachineResource"] = [
                {"Name": f"Virtual Machine {vm.group}", "OwnerGroup": vm.group,
                 "OwnerNode": vm.owner or t.nodes[i % len(t.nodes)],
                 "MigrationExcludeNetworks": t.ids(vm.exclude), "MigrationNetworkOrder": t.ids(vm.order)}
                for i, vm in enumerate(t.vms)]
        else:
            s["VirtualMachineResourceType"] = {"MigrationExcludeNetworks": t.ids(t.exclude),
                                               "MigrationNetworkOrder": t.ids(t.order)}
            s["VMHost"] = host_obj(t, t.hosts.get(node, Host()))
            s["VMMigrationNetwork"] = [{"Subnet": sn, "Priority": p} for p, sn in enumerate(t.migration_networks)]
        docs[node] = {
            "lmscan_snapshot": 1, "node": node, "collected_at": COLLECTED_AT,
            "collector": {"version": "1.0.0", "powershell": ps, "method": "winrm"},
            "sections": s, "errors": {},
        }
    return docs


# --------------------------------------------------------------------------- case plumbing

Docs = dict[str, dict[str, Any]]
Row = tuple[str, str, str]


@dataclass
class Case:
    docs: Docs
    results: list[Row]
    note: str
    policy: str | None = None


CASES: dict[str, Callable[[], Case]] = {}


def case(name: str) -> Callable[[Callable[[], Case]], Callable[[], Case]]:
    def register(fn: Callable[[], Case]) -> Callable[[], Case]:
        CASES[name] = fn
        return fn
    return register


def sections(docs: Docs, node: str) -> dict[str, Any]:
    return docs[node]["sections"]


def set_all(docs: Docs, section: str, value: Any) -> None:
    for d in docs.values():
        d["sections"][section] = value


def drop(docs: Docs, *names: str) -> Docs:
    """Remove sections that do not apply (the collector leaves them out)."""
    for d in docs.values():
        for n in names:
            d["sections"].pop(n, None)
    return docs


def fail(docs: Docs, section: str, message: str, nodes: Iterable[str] | None = None) -> None:
    """Make a section's command fail: missing from ``sections``, its message in ``errors``."""
    for node, d in docs.items():
        if nodes is None or node in nodes:
            d["sections"].pop(section, None)
            d["errors"][section] = message


def lm_only(t: Topo) -> Docs:
    """Snapshots with only what network rules read (no Hyper-V host sections)."""
    return drop(build(t), "VMHost", "VMMigrationNetwork")


def host_only(t: Topo) -> Docs:
    return drop(build(t), "ClusterNetworkInterface")


def net(name: str, status: str) -> Row:
    return ("network", name, status)


def vm(name: str, status: str) -> Row:
    return ("vm", name, status)


def node(name: str, status: str) -> Row:
    return ("node", name, status)


def clu(status: str, name: str = "HVCLU01") -> Row:
    return ("cluster", name, status)


# --------------------------------------------------------------------------- LM001 iSCSI excluded

@case("LM001.pass")
def _() -> Case:
    return Case(lm_only(std()), [net("iSCSI-A", "pass"), net("iSCSI-B", "pass")],
                "Both iSCSI networks are in MigrationExcludeNetworks.")


@case("LM001.fail")
def _() -> Case:
    return Case(lm_only(std(exclude=("Management", "iSCSI-A"))), [net("iSCSI-A", "pass"), net("iSCSI-B", "fail")],
                "iSCSI-B has Role None but is not excluded: Role does not remove a network from LM (§2).")


@case("LM001.fail-empty-exclude")
def _() -> Case:
    return Case(lm_only(std(exclude=())), [net("iSCSI-A", "fail"), net("iSCSI-B", "fail")],
                "An empty MigrationExcludeNetworks is the system default: every network carries LM.")


@case("LM001.fail-merged-subnets")
def _() -> Case:
    merged = Net("Cluster Network 5", ("10.99.0.0/24", "10.10.11.0/24"), role=0, metric=79841)
    t = std(nets=[MGMT, CLUS, LMN, ISA, merged])
    return Case(lm_only(t), [net("iSCSI-A", "pass"), net("Cluster Network 5", "fail")],
                "A merged network whose second Ipv4Addresses subnet is iSCSI is classified iscsi (§3: any "
                "of its subnets); Address shows only the first subnet.")


@case("LM001.pass-ids-braces-case")
def _() -> Case:
    t = std()
    docs = lm_only(t)
    set_all(docs, "VirtualMachineResourceType", {
        "MigrationExcludeNetworks": t.ids(["iSCSI-B", "Management", "iSCSI-A"], "braces"),
        "MigrationNetworkOrder": t.ids(["LiveMigration", "Cluster"], "braces")})
    return Case(docs, [net("iSCSI-A", "pass"), net("iSCSI-B", "pass")],
                "Ids in braces, upper case, with blanks and a trailing ';' still name the networks.")


@case("LM001.fail-2008r2")
def _() -> Case:
    t = legacy(replace(L_OK, group="SQL01"), VM("WEB01", ("Public",), ("LiveMigration", "iSCSI", "Heartbeat")),
               replace(L_OK, group="FILE01"))
    return Case(build(t), [vm("SQL01", "pass"), vm("WEB01", "fail"), vm("FILE01", "pass")],
                "2008 R2: one result per VM resource, named by OwnerGroup; WEB01 does not exclude iSCSI.")


@case("LM001.skip-no-iscsi")
def _() -> Case:
    return Case(lm_only(std(nets=[MGMT, CLUS, LMN], exclude=("Management",))), [clu("skip")],
                "No network is classified iscsi: nothing to evaluate, one skip for the cluster.")


@case("LM001.error-section-failed")
def _() -> Case:
    docs = lm_only(std())
    fail(docs, "VirtualMachineResourceType",
         "Get-ClusterResourceType : The cluster service is not running on this node.")
    return Case(docs, [net("iSCSI-A", "error"), net("iSCSI-B", "error")],
                "The LM setting could not be read on any node: each iSCSI network's result is error.")


# --------------------------------------------------------------------------- LM002 management excluded

@case("LM002.pass")
def _() -> Case:
    return Case(lm_only(std()), [net("Management", "pass")], "Management is excluded.")


@case("LM002.fail")
def _() -> Case:
    t = std(exclude=("iSCSI-A", "iSCSI-B"), order=("Management", "LiveMigration", "Cluster"))
    return Case(lm_only(t), [net("Management", "fail")], "Management carries LM (first in the order, too).")


@case("LM002.fail-name-glob")
def _() -> Case:
    oob = Net("Mgmt-OOB", ("10.88.0.0/24",), role=3, metric=70300)
    t = std(nets=[MGMT, CLUS, LMN, ISA, ISB, oob])
    return Case(lm_only(t), [net("Management", "pass"), net("Mgmt-OOB", "fail")],
                "Mgmt-OOB matches the policy name glob MGMT* case-insensitively and is not excluded.")


@case("LM002.skip-no-management")
def _() -> Case:
    t = std(nets=[CLUS, LMN, ISA, ISB], exclude=("iSCSI-A", "iSCSI-B"))
    return Case(lm_only(t), [clu("skip")], "No management network: nothing to evaluate.")


@case("LM002.fail-2008r2")
def _() -> Case:
    t = legacy(replace(L_OK, group="SQL01"), VM("WEB01", ("iSCSI",), ("LiveMigration", "Heartbeat")))
    return Case(build(t), [vm("SQL01", "pass"), vm("WEB01", "fail")], "WEB01 lets LM use Public.")


# --------------------------------------------------------------------------- LM003 guest excluded

@case("LM003.pass")
def _() -> Case:
    t = std(nets=[MGMT, CLUS, LMN, ISA, ISB, GUEST], exclude=("Management", "iSCSI-A", "iSCSI-B", "VM Traffic"))
    return Case(lm_only(t), [net("VM Traffic", "pass")], "The guest network with a host vNIC is excluded.")


@case("LM003.fail")
def _() -> Case:
    t = std(nets=[MGMT, CLUS, LMN, ISA, ISB, GUEST])
    return Case(lm_only(t), [net("VM Traffic", "fail")], "The guest network carries LM.")


@case("LM003.skip-no-guest")
def _() -> Case:
    return Case(lm_only(std()), [clu("skip")], "No guest network (guest vSwitch without host vNIC).")


# --------------------------------------------------------------------------- LM004 only allowed classes

@case("LM004.pass")
def _() -> Case:
    return Case(lm_only(std()), [net("Cluster", "pass"), net("LiveMigration", "pass")],
                "Networks carrying LM that are not iscsi/management/guest: Cluster and LiveMigration, "
                "both of allowed classes.")


@case("LM004.fail")
def _() -> Case:
    t = std(nets=[MGMT, CLUS, LMN, ISA, ISB, BACKUP, GUEST])
    return Case(lm_only(t), [net("Cluster", "pass"), net("LiveMigration", "pass"), net("Backup", "fail")],
                "Backup is unclassified and carries LM. The guest network also carries LM, but that is "
                "LM003's finding, not LM004's.")


@case("LM004.fail-partitioned-ipv6")
def _() -> Case:
    bmc = Net("Cluster Network 7", ("fde1:53ba:e9a0:de11::/64",), role=1, metric=40000, state=2)
    t = std(nets=[MGMT, CLUS, LMN, ISA, ISB, bmc])
    return Case(lm_only(t), [net("Cluster", "pass"), net("LiveMigration", "pass"),
                             net("Cluster Network 7", "fail")],
                "An IPv6-only Partitioned network (BMC USB NIC) is unclassified; its State does not "
                "remove it from LM (§2).")


@case("LM004.pass-excluded-unclassified")
def _() -> Case:
    t = std(nets=[MGMT, CLUS, LMN, ISA, ISB, BACKUP], exclude=("Management", "iSCSI-A", "iSCSI-B", "Backup"))
    return Case(lm_only(t), [net("Cluster", "pass"), net("LiveMigration", "pass")],
                "Backup is unclassified but excluded, so it is not a network that carries LM: "
                "read as no LM004 result for it.")


@case("LM004.pass-ipv6-classified")
def _() -> Case:
    v6 = Net("Cluster Network 3", ("fd00:30::/64",), role=1, metric=30250)
    t = std(nets=[MGMT, CLUS, LMN, ISA, ISB, v6])
    return Case(lm_only(t), [net("Cluster", "pass"), net("LiveMigration", "pass"),
                             net("Cluster Network 3", "pass")],
                "An IPv6-only network is classified by Ipv6Addresses/Ipv6PrefixLengths (policy: "
                "fd00:30::/64 is cluster).")


@case("LM004.fail-2008r2")
def _() -> Case:
    t = legacy()
    t.nets = [L_PUBLIC, L_HEART, L_LM, L_ISCSI, replace(BACKUP, metric=1300)]
    t.vms = [VM("SQL01", ("Public", "iSCSI", "Backup"), ("LiveMigration", "Heartbeat")),
             VM("WEB01", ("Public", "iSCSI"), ("LiveMigration", "Heartbeat"))]
    return Case(build(t), [vm("SQL01", "pass"), vm("WEB01", "fail")],
                "WEB01 does not exclude the unclassified Backup network.")


# --------------------------------------------------------------------------- LM005 preferred network up

@case("LM005.pass")
def _() -> Case:
    return Case(lm_only(std()), [clu("pass")], "LiveMigration (preferred) carries LM and is Up.")


@case("LM005.fail")
def _() -> Case:
    t = std(exclude=("Management", "iSCSI-A", "iSCSI-B", "LiveMigration"), order=("Cluster",))
    return Case(lm_only(t), [clu("fail")], "The only preferred network is excluded.")


@case("LM005.fail-preferred-down")
def _() -> Case:
    t = std(nets=[MGMT, CLUS, replace(LMN, state=1), ISA, ISB])
    return Case(lm_only(t), [clu("fail")], "LiveMigration carries LM but is Down.")


@case("LM005.fail-2008r2")
def _() -> Case:
    t = legacy(replace(L_OK, group="SQL01"), VM("WEB01", ("Public", "iSCSI", "LiveMigration"), ("Heartbeat",)))
    return Case(build(t), [vm("SQL01", "pass"), vm("WEB01", "fail")], "WEB01 excludes the LM network.")


# --------------------------------------------------------------------------- LM006 first in order preferred

@case("LM006.pass")
def _() -> Case:
    return Case(lm_only(std()), [clu("pass")], "LiveMigration is first in MigrationNetworkOrder.")


@case("LM006.fail")
def _() -> Case:
    t = std(exclude=("iSCSI-A", "iSCSI-B"), order=("Management", "LiveMigration", "Cluster"))
    return Case(lm_only(t), [clu("fail")], "Management carries LM and is first in the order.")


@case("LM006.pass-excluded-in-order")
def _() -> Case:
    t = std(order=("Management", "iSCSI-A", "LiveMigration", "Cluster", "iSCSI-B"))
    return Case(lm_only(t), [clu("pass")],
                "The order names excluded networks first; they do not carry LM, so the effective "
                "order starts with LiveMigration.")


@case("LM006.fail-empty-order-lowest-last")
def _() -> Case:
    t = std(nets=[MGMT, replace(CLUS, metric=30241), replace(LMN, metric=30240), ISA, ISB], order=())
    return Case(lm_only(t), [clu("fail")],
                "Empty order: by ascending metric, but the lowest-metric network (LiveMigration, 30240) "
                "goes last, so Cluster (30241) is first.")


@case("LM006.pass-empty-order")
def _() -> Case:
    return Case(lm_only(std(order=())), [clu("pass")],
                "Empty order: Cluster (30240, lowest) goes last; LiveMigration (30241) is first.")


@case("LM006.pass-order-only-excluded")
def _() -> Case:
    t = std(nets=[MGMT, replace(CLUS, metric=30241), replace(LMN, metric=30240), ISA, ISB], order=("iSCSI-A",))
    return Case(lm_only(t), [clu("pass")],
                "The order is not empty (it names only an excluded network), so no network is moved "
                "last: the carrying networks follow by ascending metric and LiveMigration (30240) is first.")


@case("LM006.fail-2008r2")
def _() -> Case:
    t = legacy(replace(L_OK, group="SQL01"), VM("WEB01", ("Public", "iSCSI"), ("Heartbeat", "LiveMigration")))
    return Case(build(t), [vm("SQL01", "pass"), vm("WEB01", "fail")], "WEB01 puts Heartbeat first.")


STOR1 = Net("storage(Storage_VLAN711)", ("10.71.1.0/24",), role=1, metric=20401)
STOR2 = Net("storage(Storage_VLAN712)", ("10.71.2.0/24",), role=1, metric=20402)


def atc_storage_first(selection: Any, order: tuple[str, ...]) -> Docs:
    """An Azure Local cluster whose Network ATC put its storage networks first (policy: LM preferred)."""
    t = std(os="2022", nets=[MGMT, STOR1, STOR2], exclude=("Management",), order=order)
    docs = lm_only(t)
    set_all(docs, "NetIntent", {"IntentName": "managementcomputestorage", "IsComputeIntentSet": True,
                                "IsStorageIntentSet": True, "IsManagementIntentSet": True})
    set_all(docs, "NetIntentGlobalOverrides", {"EnableLiveMigrationNetworkSelection": selection})
    return docs


@case("LM006.pass-atc-storage-first")
def _() -> Case:
    return Case(atc_storage_first(None, ("storage(Storage_VLAN711)", "storage(Storage_VLAN712)")), [clu("pass")],
                "Network ATC selects (override not set) and put storage first; storage is allowed, so that "
                "counts (contracts §4 amended).")


@case("LM006.fail-atc-selection-off")
def _() -> Case:
    return Case(atc_storage_first(False, ("storage(Storage_VLAN711)", "storage(Storage_VLAN712)")), [clu("fail")],
                "ATC's selection is turned off: the order is the site's own, and storage is not preferred.")


@case("LM006.fail-atc-management-first")
def _() -> Case:
    docs = atc_storage_first(True, ("Management", "storage(Storage_VLAN711)"))
    set_all(docs, "VirtualMachineResourceType", {"MigrationExcludeNetworks": "",
                                                 "MigrationNetworkOrder": gid("HVCLU01", "Management")})
    return Case(docs, [clu("fail")], "ATC selects, but Management carries LM and is first: only storage counts.")


# --------------------------------------------------------------------------- LM007 2008 R2 VM consistency

@case("LM007.pass")
def _() -> Case:
    t = legacy()
    docs = build(t)
    for d in docs.values():   # same setting written with braces, upper case and blanks
        d["sections"]["VirtualMachineResource"][1]["MigrationExcludeNetworks"] = t.ids(L_OK.exclude, "braces")
    return Case(docs, [vm("SQL01", "pass"), vm("WEB01", "pass"), vm("FILE01", "pass")],
                "All VMs carry the same setting; WEB01 only spells the Ids differently.")


@case("LM007.fail")
def _() -> Case:
    t = legacy(*(replace(L_OK, group=g) for g in ("SQL01", "FILE01", "DC01")),
               VM("WEB01", ("Public",), ("LiveMigration", "iSCSI", "Heartbeat")))
    return Case(build(t), [vm("SQL01", "pass"), vm("FILE01", "pass"), vm("DC01", "pass"), vm("WEB01", "fail")],
                "WEB01 differs from the setting the other three VMs share.")


@case("LM007.skip-2012-plus")
def _() -> Case:
    return Case(lm_only(std()), [clu("skip")], "The setting is cluster-wide from 2012 on: not applicable.")


# --------------------------------------------------------------------------- LM008 iSCSI role None

@case("LM008.pass")
def _() -> Case:
    docs = lm_only(std())
    for d in docs.values():
        d["sections"]["ClusterNetwork"][4]["Role"] = 0
    return Case(docs, [net("iSCSI-A", "pass"), net("iSCSI-B", "pass")],
                "Both iSCSI networks have Role None (iSCSI-B printed as the number 0).")


@case("LM008.fail")
def _() -> Case:
    t = std(nets=[MGMT, CLUS, LMN, ISA, replace(ISB, role=1)])
    return Case(lm_only(t), [net("iSCSI-A", "pass"), net("iSCSI-B", "fail")], "iSCSI-B has Role Cluster.")


@case("LM008.skip-no-iscsi")
def _() -> Case:
    return Case(lm_only(std(nets=[MGMT, CLUS, LMN], exclude=("Management",))), [clu("skip")],
                "No iSCSI network.")


# --------------------------------------------------------------------------- LM009 node on preferred network

@case("LM009.pass")
def _() -> Case:
    return Case(lm_only(std()), [node("HV01", "pass"), node("HV02", "pass")],
                "Both nodes have an Up interface on LiveMigration.")


@case("LM009.fail")
def _() -> Case:
    docs = lm_only(std())
    for d in docs.values():
        for i in d["sections"]["ClusterNetworkInterface"]:
            if i["Node"] == "HV02" and i["Network"] == "LiveMigration":
                i["State"] = "Failed"
    return Case(docs, [node("HV01", "pass"), node("HV02", "fail")], "HV02's LiveMigration interface is Failed.")


@case("LM009.fail-no-interface")
def _() -> Case:
    docs = lm_only(std())
    for d in docs.values():
        d["sections"]["ClusterNetworkInterface"] = [
            i for i in d["sections"]["ClusterNetworkInterface"]
            if not (i["Node"] == "HV01" and i["Network"] == "LiveMigration")]
    return Case(docs, [node("HV01", "fail"), node("HV02", "pass")], "HV01 has no interface on LiveMigration.")


@case("LM009.error-node-missing")
def _() -> Case:
    return Case(lm_only(std(absent=["HV03"])), [node("HV01", "pass"), node("HV02", "pass"), node("HV03", "error")],
                "HV03 is listed by ClusterNode (Down) but has no snapshot.")


# --------------------------------------------------------------------------- LM010 nodes agree

def three() -> Topo:
    return std(nodes=["HV01", "HV02", "HV03"])


@case("LM010.pass")
def _() -> Case:
    return Case(lm_only(three()), [clu("pass")], "All three nodes report the same networks and settings.")


@case("LM010.pass-format-variants")
def _() -> Case:
    t = three()
    docs = lm_only(t)
    t.enums = "numbers"
    s2 = sections(docs, "HV02")
    s2["ClusterNetwork"] = [network_obj(t, n) for n in t.nets]
    for o in s2["ClusterNetwork"]:
        o["AutoMetric"] = "True"
        o["Id"] = o["Id"].upper()
        o["Ipv4Addresses"] = o["Ipv4Addresses"][0]
        o["Ipv4PrefixLengths"] = o["Ipv4PrefixLengths"][0]
        o["Ipv6Addresses"] = None
        del o["Ipv6PrefixLengths"]
    s2["VirtualMachineResourceType"] = [{"MigrationExcludeNetworks": t.ids(t.exclude, "braces"),
                                         "MigrationNetworkOrder": t.ids(t.order, "braces")}]
    docs["HV02"]["bom"] = True
    return Case(docs, [clu("pass")],
                "HV02 prints roles as numbers, Ids upper case, address lists as bare values or null, "
                "the setting in braces and as a one-element array, in a UTF-8 file with a BOM: the same facts.")


@case("LM010.fail")
def _() -> Case:
    t = three()
    docs = lm_only(t)
    sections(docs, "HV03")["VirtualMachineResourceType"] = {
        "MigrationExcludeNetworks": t.ids(["Management", "iSCSI-A"]), "MigrationNetworkOrder": t.ids(t.order)}
    return Case(docs, [clu("fail")], "HV03 reports a different MigrationExcludeNetworks.")


@case("LM010.fail-role-differs")
def _() -> Case:
    t = three()
    docs = lm_only(t)
    sections(docs, "HV02")["ClusterNetwork"][3]["Role"] = "Cluster"
    return Case(docs, [clu("fail")], "HV02 reports iSCSI-A with Role Cluster; the others None.")


@case("LM010.error-node-missing")
def _() -> Case:
    return Case(lm_only(std(absent=["HV03"])), [clu("error")],
                "HV03 is a member without a snapshot: 'all nodes' cannot be shown.")


# --------------------------------------------------------------------------- LM011 no unknown Ids

STALE = gid("removed", "network")


@case("LM011.pass")
def _() -> Case:
    t = std()
    docs = lm_only(t)
    set_all(docs, "VirtualMachineResourceType", {"MigrationExcludeNetworks": t.ids(t.exclude, "braces"),
                                                 "MigrationNetworkOrder": t.ids(t.order) + ";"})
    return Case(docs, [clu("pass")], "Every listed Id exists (braces, case and a trailing ';' do not matter).")


@case("LM011.fail")
def _() -> Case:
    t = std()
    docs = lm_only(t)
    set_all(docs, "VirtualMachineResourceType", {"MigrationExcludeNetworks": t.ids(t.exclude) + ";" + STALE,
                                                 "MigrationNetworkOrder": t.ids(t.order)})
    return Case(docs, [clu("fail")], "The exclude list names the Id of a removed network.")


@case("LM011.fail-order")
def _() -> Case:
    t = std()
    docs = lm_only(t)
    set_all(docs, "VirtualMachineResourceType", {"MigrationExcludeNetworks": t.ids(t.exclude),
                                                 "MigrationNetworkOrder": STALE.upper() + ";" + t.ids(t.order)})
    return Case(docs, [clu("fail")], "The order list names the Id of a removed network.")


@case("LM011.fail-2008r2")
def _() -> Case:
    t = legacy()
    docs = build(t)
    for d in docs.values():
        d["sections"]["VirtualMachineResource"][2]["MigrationNetworkOrder"] += ";" + STALE
    return Case(docs, [vm("SQL01", "pass"), vm("WEB01", "pass"), vm("FILE01", "fail")],
                "FILE01's order names a removed network.")


# --------------------------------------------------------------------------- LM012 Network ATC (info)

def atc(selection: Any = None, overrides: bool = True) -> Docs:
    docs = lm_only(std())
    set_all(docs, "NetIntent", {"IntentName": "managementcomputestorage", "IsComputeIntentSet": True,
                                "IsStorageIntentSet": True, "IsManagementIntentSet": True,
                                "StorageVLANs": [711, 712], "NetAdapterNamesAsList": ["ethernet", "ethernet 2"]})
    if overrides:
        set_all(docs, "NetIntentGlobalOverrides", {
            "EnableLiveMigrationNetworkSelection": selection,
            "EnableVirtualMachineMigrationPerformanceSelection": None,
            "VirtualMachineMigrationPerformanceOption": None, "MaximumVirtualMachineMigrations": None,
            "MaximumSMBMigrationBandwidthInGbps": None})
    return docs


@case("LM012.pass")
def _() -> Case:
    return Case(atc(None), [clu("pass")], "Network ATC present, selection null = on (its default).")


@case("LM012.pass-selection-off")
def _() -> Case:
    return Case(atc("False"), [clu("pass")], "Network ATC present, selection turned off: still pass (info).")


@case("LM012.pass-no-overrides")
def _() -> Case:
    return Case(atc(overrides=False), [clu("pass")], "Network ATC present, no override object: selection on.")


@case("LM012.skip-no-atc")
def _() -> Case:
    return Case(lm_only(std()), [clu("skip")], "No NetIntent section: no Network ATC.")


@case("LM012.error-section-failed")
def _() -> Case:
    docs = lm_only(std())
    fail(docs, "NetIntent", "Get-NetIntent : Access is denied.")
    return Case(docs, [clu("error")], "Get-NetIntent failed on every node.")


# --------------------------------------------------------------------------- HOST001..HOST005

@case("HOST001.pass")
def _() -> Case:
    return Case(host_only(std(hosts={"HV02": Host(enabled="True")})), [node("HV01", "pass"), node("HV02", "pass")],
                "Live migration enabled on both hosts (HV02 prints \"True\").")


@case("HOST001.fail")
def _() -> Case:
    return Case(host_only(std(hosts={"HV02": Host(enabled=False)})), [node("HV01", "pass"), node("HV02", "fail")],
                "HV02 has live migration disabled.")


@case("HOST001.skip-2008r2")
def _() -> Case:
    return Case(build(legacy()), [node("HV08A", "skip"), node("HV08B", "skip")],
                "No Hyper-V module on 2008 R2: VMHost does not apply.")


@case("HOST001.error-section-failed")
def _() -> Case:
    docs = host_only(std())
    fail(docs, "VMHost", "Get-VMHost : The Hyper-V Virtual Machine Management service is not running.", ["HV02"])
    return Case(docs, [node("HV01", "pass"), node("HV02", "error")], "Get-VMHost failed on HV02.")


@case("HOST001.error-node-missing")
def _() -> Case:
    return Case(host_only(std(absent=["HV03"])), [node("HV01", "pass"), node("HV02", "pass"), node("HV03", "error")],
                "HV03 was not collected.")


@case("HOST002.pass")
def _() -> Case:
    return Case(host_only(std(hosts={"HV02": Host(use_any="False")})), [node("HV01", "pass"), node("HV02", "pass")],
                "UseAnyNetworkForMigration false on both hosts.")


@case("HOST002.fail")
def _() -> Case:
    return Case(host_only(std(hosts={"HV01": Host(use_any=True)})), [node("HV01", "fail"), node("HV02", "pass")],
                "HV01 accepts incoming migrations on any network.")


@case("HOST003.pass")
def _() -> Case:
    docs = host_only(std())
    sections(docs, "HV02")["VMMigrationNetwork"] = {"Subnet": "10.20.0.0/24", "Priority": 0}
    return Case(docs, [node("HV01", "pass"), node("HV02", "pass")],
                "Host migration subnets are live_migration and cluster (HV02 lists one, printed bare).")


@case("HOST003.pass-address-and-ipv6")
def _() -> Case:
    docs = host_only(std())
    sections(docs, "HV01")["VMMigrationNetwork"] = [{"Subnet": "10.20.0.11", "Priority": 0}]
    sections(docs, "HV02")["VMMigrationNetwork"] = [{"Subnet": "fd00:30::/64", "Priority": None}]
    return Case(docs, [node("HV01", "pass"), node("HV02", "pass")],
                "A single address inside the LM subnet, and an IPv6 prefix of the cluster class.")


@case("HOST003.fail")
def _() -> Case:
    docs = host_only(std())
    sections(docs, "HV01")["VMMigrationNetwork"] = [{"Subnet": "10.20.0.0/24", "Priority": 0},
                                                     {"Subnet": "10.99.0.0/24", "Priority": 1}]
    sections(docs, "HV02")["VMMigrationNetwork"] = [{"Subnet": "192.168.10.0/24", "Priority": 0}]
    return Case(docs, [node("HV01", "fail"), node("HV02", "fail")],
                "HV01 lists an unclassified subnet, HV02 the management subnet.")


@case("HOST003.skip-none-listed")
def _() -> Case:
    docs = host_only(std())
    sections(docs, "HV01")["VMMigrationNetwork"] = []
    sections(docs, "HV02")["VMMigrationNetwork"] = None
    return Case(docs, [node("HV01", "skip"), node("HV02", "skip")], "Neither host lists migration networks.")


POLICY_NO_HOSTS = """\
lmscan_policy: 1
networks:
  - class: live_migration
    subnets: [10.20.0.0/24]
live_migration:
  allowed: [live_migration]
  preferred: [live_migration]
"""

POLICY_AUTH_ONLY = POLICY_NO_HOSTS + "hosts:\n  authentication: Kerberos\n"


@case("HOST004.pass")
def _() -> Case:
    return Case(host_only(std(hosts={"HV02": Host(perf=1)})), [node("HV01", "pass"), node("HV02", "pass")],
                "Kerberos, SMB/Compression, 2 migrations (no cluster MaximumParallelMigrations on 2019).")


@case("HOST004.fail")
def _() -> Case:
    t = std(hosts={"HV01": Host(perf=0), "HV02": Host(auth=0)})
    return Case(host_only(t), [node("HV01", "fail"), node("HV02", "fail")], "HV01 uses TCPIP, HV02 CredSSP.")


@case("HOST004.fail-cluster-concurrency")
def _() -> Case:
    t = std(os="2022", max_parallel=4)
    return Case(host_only(t), [node("HV01", "fail"), node("HV02", "fail")],
                "Hosts say 2, but the cluster's MaximumParallelMigrations 4 takes precedence and exceeds 2.")


@case("HOST004.pass-cluster-precedence")
def _() -> Case:
    t = std(os="2022", max_parallel=1, hosts={n: Host(max_vm=8) for n in ("HV01", "HV02")})
    return Case(host_only(t), [node("HV01", "pass"), node("HV02", "pass")],
                "Hosts say 8, but the cluster's MaximumParallelMigrations 1 is what counts.")


@case("HOST004.pass-partial-hosts")
def _() -> Case:
    t = std(hosts={n: Host(perf=0, max_vm=8) for n in ("HV01", "HV02")})
    return Case(host_only(t), [node("HV01", "pass"), node("HV02", "pass")],
                "The policy sets only authentication; absent hosts: keys are not checked.", POLICY_AUTH_ONLY)


@case("HOST004.pass-2012-no-performance-option")
def _() -> Case:
    docs = host_only(std(os="2012"))
    for d in docs.values():
        del d["sections"]["VMHost"]["VirtualMachineMigrationPerformanceOption"]
    return Case(docs, [node("HV01", "pass"), node("HV02", "pass")],
                "Windows Server 2012 has no VirtualMachineMigrationPerformanceOption: not reported, not a failure.")


@case("HOST004.skip-no-hosts-policy")
def _() -> Case:
    return Case(host_only(std()), [node("HV01", "skip"), node("HV02", "skip")],
                "The policy has no hosts: section.", POLICY_NO_HOSTS)


@case("HOST005.pass")
def _() -> Case:
    t = std(nodes=["HV01", "HV02", "HV03"])
    docs = host_only(t)
    t.enums = "numbers"
    sections(docs, "HV03")["VMHost"] = host_obj(t, Host(enabled="True", use_any="False"))
    return Case(docs, [clu("pass")], "Same host settings everywhere; HV03 prints enums as numbers.")


@case("HOST005.fail")
def _() -> Case:
    t = std(nodes=["HV01", "HV02", "HV03"], hosts={"HV02": Host(perf=1)})
    return Case(host_only(t), [clu("fail")], "HV02 uses Compression, the others SMB.")


@case("HOST005.error-node-missing")
def _() -> Case:
    return Case(host_only(std(absent=["HV03"])), [clu("error")], "HV03 was not collected.")


@case("HOST005.skip-2008r2")
def _() -> Case:
    return Case(build(legacy()), [clu("skip", "HVCLU08")], "No Hyper-V host settings on 2008 R2.")


# --------------------------------------------------------------------------- sections of the amended §1

JUMBO = 9014


def if_index(t: Topo, n: Net) -> int:
    return 11 + t.nets.index(n)


def extras(t: Topo, docs: Docs, mtu: dict[tuple[str, str], int] | None = None) -> Docs:
    """Add NetAdapter, DefaultRoute, SMB, delegation and Device Guard sections, all "healthy".

    Adapters are named after their network; InterfaceGuid is the interface's AdapterId in braces,
    as Get-NetAdapter prints it. The default route goes through Management; SMB to each other
    node is constrained to the LiveMigration adapter; the computer account may delegate to every
    other node; Credential Guard runs.
    """
    mtu = mtu or {}
    for node, d in docs.items():
        i = t.nodes.index(node) + 1
        others = [o for o in t.nodes + t.absent if o != node]
        s = d["sections"]
        s["NetAdapter"] = [
            {"Name": n.name, "InterfaceDescription": f"Intel(R) Ethernet Controller X710 #{t.nets.index(n) + 1}",
             "InterfaceGuid": "{" + gid(t.name, node, n.name).upper() + "}", "InterfaceIndex": if_index(t, n),
             "Status": "Up", "MtuSize": mtu.get((node, n.name), JUMBO if n.name in ("LiveMigration", "Cluster") else 1514),
             "LinkSpeed": "10 Gbps"} for n in t.nets]
        s["SmbClientNetworkInterface"] = [
            {"InterfaceIndex": if_index(t, n), "FriendlyName": n.name,
             "IpAddresses": [a for a in host_address(n, i) if a] + [f"fe80::1:{i}"], "RdmaCapable": False,
             "LinkSpeed": 10000000000} for n in t.nets]
        mgmt = next((n for n in t.nets if n.name == "Management"), None)
        s["DefaultRoute"] = [] if mgmt is None else [
            {"InterfaceIndex": if_index(t, mgmt), "InterfaceAlias": "Management", "DestinationPrefix": "0.0.0.0/0",
             "NextHop": "192.168.10.1"}]
        lmnet = next((n for n in t.nets if n.name == "LiveMigration"), None)
        s["SmbMultichannelConstraint"] = [] if lmnet is None else [
            {"ServerName": o, "InterfaceAlias": "LiveMigration", "InterfaceIndex": if_index(t, lmnet)} for o in others]
        s["ComputerAccountDelegation"] = {
            "AllowedToDelegateTo": [f"{svc}/{o}{suffix}" for o in others for svc in
                                    ("cifs", "Microsoft Virtual System Migration Service") for suffix in ("", ".contoso.com")],
            "TrustedToAuthForDelegation": False}
        s["DeviceGuard"] = {"SecurityServicesConfigured": [1, 2], "SecurityServicesRunning": [1, 2]}
    return docs


def smb_limit(docs: Docs, limit: int | None) -> Docs:
    """The LiveMigration SMB bandwidth limit on every node; None: no limit set (empty output)."""
    set_all(docs, "SmbBandwidthLimit", [] if limit is None else [{"Category": "LiveMigration", "BytesPerSecond": limit}])
    return docs


def full(t: Topo, mtu: dict[tuple[str, str], int] | None = None) -> Docs:
    return extras(t, build(t), mtu)


def nodes2(status1: str, status2: str) -> list[Row]:
    return [node("HV01", status1), node("HV02", status2)]


# LM013 SMB bandwidth limit

@case("LM013.pass")
def _() -> Case:
    return Case(smb_limit(full(std()), 786432000), nodes2("pass", "pass"),
                "SMB performance option with Set-SmbBandwidthLimit -Category LiveMigration 750MB on both nodes.")


@case("LM013.pass-cluster-automatic")
def _() -> Case:
    docs = smb_limit(full(std(os="2022", max_parallel=1)), None)
    return Case(docs, nodes2("pass", "pass"),
                "WS2022: no explicit limit (Get-SmbBandwidthLimit prints nothing), but the cluster sets it "
                "(SetSMBBandwidthLimit = 1) and FS-SMBBW is installed.")


@case("LM013.pass-atc-override")
def _() -> Case:
    docs = full(std())
    drop(docs, "SmbBandwidthLimit")
    set_all(docs, "NetIntent", [{"IntentName": "compute_storage", "IsComputeIntentSet": True}])
    set_all(docs, "NetIntentGlobalOverrides", {"VirtualMachineMigrationPerformanceOption": "SMB",
                                               "MaximumSMBMigrationBandwidthInGbps": 5})
    return Case(docs, nodes2("pass", "pass"), "Network ATC override: SMB with MaximumSMBMigrationBandwidthInGbps 5.")


@case("LM013.fail")
def _() -> Case:
    return Case(smb_limit(full(std()), None), nodes2("fail", "fail"),
                "SMB performance option, FS-SMBBW installed but no LiveMigration limit (empty list), and no "
                "cluster or ATC limit.")


@case("LM013.fail-feature-absent")
def _() -> Case:
    docs = full(std(os="2022", max_parallel=1))
    for d in docs.values():
        d["absent"] = {"SmbBandwidthLimit": "SMB Bandwidth Limit feature (FS-SMBBW) not installed"}
    return Case(docs, nodes2("fail", "fail"),
                "SetSMBBandwidthLimit = 1, but the SMB Bandwidth Limit feature is not installed, so nothing "
                "limits live migration (research/domain.md §3.4).")


@case("LM013.skip-not-smb")
def _() -> Case:
    t = std(hosts={n: Host(perf=1) for n in ("HV01", "HV02")})
    return Case(smb_limit(full(t), None), nodes2("skip", "skip"), "Compression: the SMB limit does not matter.")


@case("LM013.error-section-failed")
def _() -> Case:
    docs = smb_limit(full(std()), None)
    fail(docs, "SmbBandwidthLimit", "Get-SmbBandwidthLimit : Access is denied.", ["HV02"])
    return Case(docs, nodes2("fail", "error"), "HV01 has no limit; on HV02 it could not be read.")


# LM014 SMB Multichannel constraints

@case("LM014.pass")
def _() -> Case:
    return Case(full(std()), nodes2("pass", "pass"),
                "SMB to the other node is constrained to the LiveMigration adapter on both nodes.")


@case("LM014.pass-client-interfaces")
def _() -> Case:
    t = std()
    docs = full(t)
    for d in docs.values():
        s = d["sections"]
        s["SmbMultichannelConstraint"] = []
        s["SmbClientNetworkInterface"] = [c for c in s["SmbClientNetworkInterface"]
                                          if c["FriendlyName"] in ("LiveMigration", "Cluster")]
    return Case(docs, nodes2("pass", "pass"),
                "No constraints, but the SMB client only has interfaces on LiveMigration and Cluster (allowed).")


@case("LM014.fail")
def _() -> Case:
    docs = full(std())
    sections(docs, "HV02")["SmbMultichannelConstraint"] = []
    sections(docs, "HV01")["SmbMultichannelConstraint"][0]["InterfaceAlias"] = "Management"
    sections(docs, "HV01")["SmbMultichannelConstraint"][0]["InterfaceIndex"] = if_index(std(), MGMT)
    return Case(docs, nodes2("fail", "fail"),
                "HV01's constraint to HV02 names the Management adapter; HV02 has no constraints and its SMB "
                "client interfaces include Management and iSCSI.")


@case("LM014.skip-not-smb")
def _() -> Case:
    t = std(hosts={n: Host(perf=0) for n in ("HV01", "HV02")})
    return Case(full(t), nodes2("skip", "skip"), "TCP/IP option: SMB Multichannel is not used for live migration.")


@case("LM014.skip-not-reported")
def _() -> Case:
    docs = drop(build(std()), "SmbMultichannelConstraint", "SmbClientNetworkInterface")
    return Case(docs, nodes2("skip", "skip"),
                "SMB option, but the snapshots come from a collector without the SMB sections (optional).")


@case("LM014.error-section-failed")
def _() -> Case:
    docs = full(std())
    sections(docs, "HV02")["SmbClientNetworkInterface"] = sections(docs, "HV02")["SmbClientNetworkInterface"][:1]
    fail(docs, "SmbMultichannelConstraint", "Get-SmbMultichannelConstraint : Access is denied.", ["HV02"])
    return Case(docs, nodes2("pass", "error"),
                "HV02: constraints could not be read and its SMB client has a Management interface, so "
                "nothing proves or disproves the restriction.")


# LM015 MTU

@case("LM015.pass")
def _() -> Case:
    return Case(full(std()), [net("Cluster", "pass"), net("LiveMigration", "pass")],
                "Jumbo frames (9014) on both nodes on both networks that carry LM.")


@case("LM015.pass-ip-mapping")
def _() -> Case:
    docs = full(std())
    for d in docs.values():
        for i in d["sections"]["ClusterNetworkInterface"]:
            i["AdapterId"] = None
    return Case(docs, [net("Cluster", "pass"), net("LiveMigration", "pass")],
                "No AdapterId: adapters are found through the SMB client interfaces' IP addresses.")


@case("LM015.fail")
def _() -> Case:
    docs = full(std(), {("HV02", "LiveMigration"): 1514})
    return Case(docs, [net("Cluster", "pass"), net("LiveMigration", "fail")],
                "HV02's LiveMigration adapter has MTU 1514, HV01's 9014.")


@case("LM015.skip-no-netadapter")
def _() -> Case:
    return Case(build(std()), [net("Cluster", "skip"), net("LiveMigration", "skip")],
                "No NetAdapter section (an older collector): MTU cannot be compared.")


@case("LM015.error-section-failed")
def _() -> Case:
    docs = full(std())
    fail(docs, "NetAdapter", "Get-NetAdapter : Invalid class", ["HV02"])
    return Case(docs, [net("Cluster", "error"), net("LiveMigration", "error")],
                "HV02's adapters could not be read: the MTUs cannot be compared.")


# LM016 default gateway on a preferred network

@case("LM016.pass")
def _() -> Case:
    return Case(full(std()), [net("LiveMigration", "pass")], "The only default route goes through Management.")


@case("LM016.fail")
def _() -> Case:
    t = std()
    docs = full(t)
    sections(docs, "HV02")["DefaultRoute"].append(
        {"InterfaceIndex": if_index(t, LMN), "InterfaceAlias": "LiveMigration", "DestinationPrefix": "0.0.0.0/0",
         "NextHop": "10.20.0.1"})
    return Case(docs, [net("LiveMigration", "fail")], "HV02 has a second default gateway on LiveMigration.")


@case("LM016.pass-on-link-route")
def _() -> Case:
    t = std()
    docs = full(t)
    sections(docs, "HV02")["DefaultRoute"].append(
        {"InterfaceIndex": if_index(t, LMN), "InterfaceAlias": "LiveMigration", "DestinationPrefix": "::/0",
         "NextHop": "::"})
    return Case(docs, [net("LiveMigration", "pass")], "A ::/0 route without a next hop is not a gateway.")


@case("LM016.skip-no-preferred")
def _() -> Case:
    t = std(nets=[MGMT, CLUS, ISA, ISB], order=("Cluster",))
    return Case(full(t), [clu("skip")], "No network of a preferred class.")


@case("LM016.error-section-failed")
def _() -> Case:
    docs = full(std())
    fail(docs, "DefaultRoute", "Get-NetRoute : Access is denied.", ["HV01"])
    return Case(docs, [net("LiveMigration", "error")], "HV01's routes could not be read.")


# HOST006 constrained delegation

@case("HOST006.pass")
def _() -> Case:
    return Case(full(std()), nodes2("pass", "pass"), "Each node may delegate cifs and the migration service to the other.")


@case("HOST006.pass-fqdn-only")
def _() -> Case:
    docs = full(std())
    for d in docs.values():
        deleg = d["sections"]["ComputerAccountDelegation"]
        deleg["AllowedToDelegateTo"] = [x for x in deleg["AllowedToDelegateTo"] if x.endswith(".contoso.com")]
    return Case(docs, nodes2("pass", "pass"), "Only FQDN SPNs are listed: that is enough.")


@case("HOST006.fail")
def _() -> Case:
    docs = full(std())
    deleg = sections(docs, "HV01")["ComputerAccountDelegation"]
    deleg["AllowedToDelegateTo"] = [x for x in deleg["AllowedToDelegateTo"] if x.startswith("cifs/")]
    return Case(docs, nodes2("fail", "pass"), "HV01 may delegate cifs but not the migration service to HV02.")


@case("HOST006.skip-credssp")
def _() -> Case:
    t = std(hosts={n: Host(auth=0) for n in ("HV01", "HV02")})
    return Case(full(t), nodes2("skip", "skip"), "CredSSP needs no delegation.")


@case("HOST006.skip-not-reported")
def _() -> Case:
    return Case(build(std()), nodes2("skip", "skip"), "No ComputerAccountDelegation section (optional).")


@case("HOST006.error-section-failed")
def _() -> Case:
    docs = full(std())
    fail(docs, "ComputerAccountDelegation", "ADSI: The specified domain either does not exist or could not be contacted.",
         ["HV02"])
    return Case(docs, nodes2("pass", "error"), "HV02's computer object could not be read.")


# HOST007 CredSSP under Credential Guard

@case("HOST007.pass")
def _() -> Case:
    return Case(full(std()), nodes2("pass", "pass"), "Kerberos with Credential Guard running.")


@case("HOST007.pass-credssp-no-credential-guard")
def _() -> Case:
    docs = full(std(hosts={n: Host(auth=0) for n in ("HV01", "HV02")}))
    set_all(docs, "DeviceGuard", {"SecurityServicesConfigured": [], "SecurityServicesRunning": []})
    return Case(docs, nodes2("pass", "pass"), "CredSSP, but Credential Guard does not run.")


@case("HOST007.fail")
def _() -> Case:
    return Case(full(std(hosts={"HV02": Host(auth=0)})), nodes2("pass", "fail"),
                "HV02 uses CredSSP while Credential Guard runs (SecurityServicesRunning contains 1).")


@case("HOST007.skip-not-reported")
def _() -> Case:
    docs = drop(full(std(hosts={n: Host(auth=0) for n in ("HV01", "HV02")})), "DeviceGuard")
    return Case(docs, nodes2("skip", "skip"), "CredSSP, but no DeviceGuard section (optional).")


@case("HOST007.error-section-failed")
def _() -> Case:
    docs = full(std(hosts={n: Host(auth=0) for n in ("HV01", "HV02")}))
    fail(docs, "DeviceGuard", "Get-CimInstance : Invalid namespace", ["HV01"])
    return Case(docs, nodes2("error", "fail"), "HV01's Device Guard state could not be read.")


# A missing section must never look like "does not apply" (contracts §1 as amended)

@case("HOST001.skip-hyperv-absent")
def _() -> Case:
    docs = host_only(std())
    for name in ("HV02",):
        drop({name: docs[name]}, "VMHost", "VMMigrationNetwork")
        docs[name]["absent"] = {"VMHost": "Hyper-V role not installed (no vmms service)",
                                "VMMigrationNetwork": "Hyper-V role not installed (no vmms service)"}
    return Case(docs, nodes2("pass", "skip"), "HV02 has no vmms service: the collector says so under absent.")


@case("HOST001.error-module-missing")
def _() -> Case:
    docs = host_only(std())
    fail(docs, "VMHost", "Hyper-V is installed (vmms service) but the Hyper-V PowerShell module is not: "
                         "Install-WindowsFeature Hyper-V-PowerShell", ["HV02"])
    return Case(docs, nodes2("pass", "error"), "vmms runs, the module is missing: an error naming the module.")


@case("HOST001.error-not-collected")
def _() -> Case:
    docs = host_only(std())
    drop({"HV02": docs["HV02"]}, "VMHost")
    return Case(docs, nodes2("pass", "error"),
                "HV02's snapshot lacks VMHost with no errors or absent entry: not collected, never skip.")


@case("LM001.error-not-collected")
def _() -> Case:
    docs = lm_only(std())
    drop(docs, "VirtualMachineResourceType")
    return Case(docs, [net("iSCSI-A", "error"), net("iSCSI-B", "error")],
                "No node reports the required VirtualMachineResourceType nor explains why: error, not skip.")


@case("LM001.skip-hyperv-absent")
def _() -> Case:
    docs = lm_only(std())
    drop(docs, "VirtualMachineResourceType")
    for d in docs.values():
        d["absent"] = {"VirtualMachineResourceType": "Hyper-V role not installed (no vmms service)"}
    return Case(docs, [net("iSCSI-A", "skip"), net("iSCSI-B", "skip")],
                "A failover cluster without Hyper-V (absent, with the reason): the LM rules do not apply.")


# --------------------------------------------------------------------------- writing

def yaml_str(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)


def write_case(name: str, c: Case) -> None:
    d = HERE / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir()
    for node_name, doc in c.docs.items():
        bom = doc.pop("bom", False)
        data = (json.dumps(doc, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
        (d / f"{node_name}.json").write_bytes(b"\xef\xbb\xbf" + data if bom else data)
    rule = name.split(".", 1)[0]
    lines = [f"rule: {rule}", f"note: {yaml_str(c.note)}", "results:"]
    lines += [f"  - {{kind: {k}, name: {yaml_str(n)}, status: {s}}}" for k, n, s in c.results]
    (d / "expected.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if c.policy is not None:
        (d / "policy.yaml").write_text(c.policy, encoding="utf-8")


def main() -> None:
    for old in HERE.iterdir():
        if old.is_dir() and "." in old.name and (old / "expected.yaml").exists() and old.name not in CASES:
            shutil.rmtree(old)
    for name, fn in CASES.items():
        write_case(name, fn())


if __name__ == "__main__":
    main()

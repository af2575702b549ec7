"""Write a synthetic, deterministic fleet of node snapshots for the offline-scan benchmark.

A fleet is ``clusters`` clusters of 16 nodes and 10 cluster networks each (2016, 2019, 2022 and
Azure Local flavours), plus one Windows Server 2008 R2 cluster with 300 VM resources per 50
clusters. Cluster *i* is the same in every fleet of the same seed, whatever its size, so fleets
of different sizes differ only in how many clusters they hold. About a third of the clusters
carry a violation (management or iSCSI carrying live migration, a bad order, an unclassified
network, a drifting or unreachable node, a failed section), so reports have findings to show.

Usage: ``python benchmarks/fleet.py OUT_DIR --clusters 50 [--seed 2026]``; ``policy.yaml``
for the fleet is written next to the cluster folders.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODES = 16
LEGACY_EVERY = 50          # one 2008 R2 cluster per this many clusters
LEGACY_NODES = 4
LEGACY_VMS = 300

#: Network kinds: (name, role, base metric, policy class or None for unclassified).
KINDS = (
    ("Management", 3, 70240, "management"),
    ("Cluster", 1, 30240, "cluster"),
    ("LiveMigration", 1, 30241, "live_migration"),
    ("iSCSI-A", 0, 79840, "iscsi"),
    ("iSCSI-B", 0, 79841, "iscsi"),
    ("VM-Prod", 3, 70241, "guest"),
    ("VM-DMZ", 3, 70242, "guest"),
    ("Backup", 1, 40000, None),
    ("SMB1", 1, 20401, "storage"),
    ("SMB2", 1, 20402, "storage"),
)
ALWAYS_EXCLUDED = ("iSCSI-A", "iSCSI-B", "VM-Prod", "VM-DMZ", "Management", "Backup")

#: OS flavour: (caption, version, build, PowerShell, enums as names?, cluster has 2022 fields?)
FLAVOURS = (
    ("Microsoft Windows Server 2016 Datacenter", "10.0.14393", "14393", "5.1.14393.7426", True, False),
    ("Microsoft Windows Server 2019 Datacenter", "10.0.17763", "17763", "5.1.17763.6414", True, False),
    ("Microsoft Windows Server 2022 Datacenter", "10.0.20348", "20348", "5.1.20348.2849", False, True),
    ("Microsoft Azure Stack HCI", "10.0.25398", "25398", "5.1.25398.1189", True, True),
)
ROLE = ("None", "Cluster", "Client", "ClusterAndClient")
PERF = ("TCPIP", "Compression", "SMB")


def subnet(kind: int, cluster: int) -> str:
    """A /24 per network kind and cluster: kind k owns 10.(16k).0.0/12, room for 4096 clusters."""
    return f"10.{16 * kind + (cluster >> 8)}.{cluster & 255}.0"


def guid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def policy_text() -> str:
    """The fleet's site policy: every network kind's /12 block mapped to its class."""
    by_class: dict[str, list[str]] = {}
    for k, (_, _, _, cls) in enumerate(KINDS):
        if cls:
            by_class.setdefault(cls, []).append(f"10.{16 * k}.0.0/12")
    lines = ["lmscan_policy: 1", "networks:"]
    lines += [f"  - class: {cls}\n    subnets: [{', '.join(nets)}]" for cls, nets in by_class.items()]
    lines += ["live_migration:", "  allowed: [live_migration, cluster, storage]",
              "  preferred: [live_migration, storage]",
              "hosts:", "  authentication: Kerberos", "  performance_option: [SMB, Compression]",
              "  max_migrations: 2", ""]
    return "\n".join(lines)


@dataclass
class FleetStats:
    """What :func:`generate_fleet` wrote."""

    clusters: int
    legacy_clusters: int
    files: int
    bytes: int
    violations: int


class _Writer:
    """Writes one node document, counting files and bytes."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.files = 0
        self.bytes = 0

    def write(self, cluster: str, node: str, ps: str, sections: dict[str, Any], errors: dict[str, str],
              stamp: str) -> None:
        doc = {"lmscan_snapshot": 1, "node": node, "collected_at": stamp,
               "collector": {"version": "1.0.0", "powershell": ps, "method": "winrm"},
               "sections": sections, "errors": errors}
        data = json.dumps(doc, separators=(",", ":")).encode("utf-8")
        folder = self.out / cluster
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{node}.json").write_bytes(data)
        self.files += 1
        self.bytes += len(data)


def _networks(rng: random.Random, index: int, names: bool, kinds: range) -> list[dict[str, Any]]:
    nets = []
    for k in kinds:
        name, role, metric, _ = KINDS[k]
        addr = subnet(k, index)
        nets.append({
            "Name": name, "Id": guid(rng), "Role": ROLE[role] if names else role,
            "State": "Up" if names else 3, "Address": addr, "AddressMask": "255.255.255.0",
            "Ipv4Addresses": [addr] if rng.random() < 0.9 else addr, "Ipv4PrefixLengths": [24],
            "Ipv6Addresses": [], "Ipv6PrefixLengths": [],
            "Metric": metric + rng.randrange(0, 3) * 100, "AutoMetric": True, "Description": "",
        })
    return nets


def _interfaces(rng: random.Random, nodes: list[str], nets: list[dict[str, Any]],
                names: bool, down: set[str]) -> list[dict[str, Any]]:
    """Every interface of the cluster, as ``Get-ClusterNetworkInterface`` lists them on any node."""
    out = []
    for n, node in enumerate(nodes):
        for net in nets:
            host = net["Address"].rsplit(".", 1)[0] + f".{11 + n}"
            up = node not in down
            out.append({
                "Name": f"{node} - {net['Name']}", "Node": node, "Network": net["Name"],
                "NetworkId": net["Id"], "Adapter": "Mellanox ConnectX-5 Adapter", "AdapterId": guid(rng).upper(),
                "Address": host, "Ipv4Addresses": [host], "Ipv6Addresses": [],
                "State": ("Up" if up else "Unavailable") if names else (3 if up else 0),
            })
    return out


def _id_list(nets: list[dict[str, Any]], names: list[str], braces: bool) -> str:
    by_name = {n["Name"]: n["Id"] for n in nets}
    ids = [by_name[n] for n in names]
    return ";".join("{%s}" % i.upper() for i in ids) if braces else ";".join(ids)


def modern_cluster(w: _Writer, index: int, seed: int, own_interfaces: bool = False) -> bool:
    """Write one 16-node cluster; return whether it carries a deliberate violation."""
    rng = random.Random(seed * 1_000_003 + index)
    caption, version, build, ps, names, has_2022 = FLAVOURS[index % len(FLAVOURS)]
    name = f"HVCLU{index:04d}"
    nodes = [f"HV{index:04d}N{n:02d}" for n in range(1, NODES + 1)]
    nets = _networks(rng, index, names, range(len(KINDS)))
    excluded = list(ALWAYS_EXCLUDED)
    order = ["LiveMigration", "SMB1", "SMB2", "Cluster"]
    problem = rng.choice(["none"] * 12 + ["mgmt", "iscsi", "order", "backup", "useany", "missing",
                                         "drift", "failed", "perf"])
    if problem == "mgmt":
        excluded.remove("Management")
    elif problem == "iscsi":
        excluded.remove("iSCSI-B")
    elif problem == "order":
        order = ["Cluster", "LiveMigration", "SMB1", "SMB2"]
    elif problem == "backup":
        excluded.remove("Backup")
    down = {nodes[-1]} if problem == "missing" else set()
    ifaces = _interfaces(rng, nodes, nets, names, down)
    cluster = {"Name": name, "Id": guid(rng), "Domain": "corp.contoso.com"}
    if has_2022:
        cluster.update(MaximumParallelMigrations=2, SetSMBBandwidthLimit=1, SMBBandwidthLimitFactor=2500)
    members = [{"Name": n, "Id": str(i + 1), "State": ("Down" if n in down else "Up") if names else int(n in down)}
               for i, n in enumerate(nodes)]
    braces = rng.random() < 0.2
    setting = {"MigrationExcludeNetworks": _id_list(nets, excluded, braces),
               "MigrationNetworkOrder": _id_list(nets, order, braces)}
    for n, node in enumerate(nodes):
        if node in down:
            continue
        node_setting = setting
        if problem == "drift" and n == 3:
            node_setting = {**setting, "MigrationExcludeNetworks": _id_list(nets, excluded[1:], False)}
        perf = 1 if (problem == "perf" and n == 5) else 2
        sections: dict[str, Any] = {
            "OperatingSystem": {"Caption": caption, "Version": version, "BuildNumber": build,
                                "LastBootUpTime": f"/Date({1763000000000 + rng.randrange(10**9)})/"},
            "Cluster": cluster, "ClusterNode": members, "ClusterNetwork": nets,
            "ClusterNetworkInterface": [i for i in ifaces if i["Node"] == node] if own_interfaces else ifaces,
            "VirtualMachineResourceType": node_setting,
            "VMHost": {"VirtualMachineMigrationEnabled": True if rng.random() < 0.8 else "True",
                       "UseAnyNetworkForMigration": problem == "useany" and n == 0,
                       "VirtualMachineMigrationAuthenticationType": "Kerberos" if names else 1,
                       "VirtualMachineMigrationPerformanceOption": PERF[perf] if names else perf,
                       "MaximumVirtualMachineMigrations": 2, "MaximumStorageMigrations": 2},
            "VMMigrationNetwork": [{"Subnet": f"{subnet(2, index)}/24", "Priority": 0},
                                   {"Subnet": f"{subnet(8, index)}/24", "Priority": 1}],
        }
        errors: dict[str, str] = {}
        if problem == "failed" and n == 7:
            del sections["VMMigrationNetwork"]
            errors["VMMigrationNetwork"] = "Get-VMMigrationNetwork : Access is denied."
        if caption.startswith("Microsoft Azure"):
            sections["NetIntent"] = {"IntentName": "managementcomputestorage", "IsComputeIntentSet": True,
                                     "IsStorageIntentSet": True, "IsManagementIntentSet": True,
                                     "StorageVLANs": [711, 712], "NetAdapterNamesAsList": ["ethernet", "ethernet 2"]}
            sections["NetIntentGlobalOverrides"] = {"EnableLiveMigrationNetworkSelection": None}
        w.write(name, node, ps, sections, errors, f"2026-11-26T02:{n:02d}:{index % 60:02d}Z")
    return problem != "none"


def legacy_cluster(w: _Writer, index: int, seed: int, vms: int = LEGACY_VMS) -> None:
    """Write one 2008 R2 cluster whose VM resources each carry their own LM setting."""
    rng = random.Random(seed * 7_000_003 + index)
    name = f"HVLEG{index:03d}"
    nodes = [f"HVL{index:03d}N{n}" for n in range(1, LEGACY_NODES + 1)]
    kinds = range(5)    # Management, Cluster, LiveMigration, iSCSI-A, iSCSI-B
    nets = _networks(rng, 4000 + index, False, kinds)
    for net, metric in zip(nets, (10000, 1000, 1100, 1200, 1300)):
        net["Metric"], net["AutoMetric"] = metric, "True"
        for key in ("Ipv4Addresses", "Ipv4PrefixLengths", "Ipv6Addresses", "Ipv6PrefixLengths"):
            del net[key]
    ifaces = _interfaces(rng, nodes, nets, False, set())
    good = (_id_list(nets, ["Management", "iSCSI-A", "iSCSI-B"], False),
            _id_list(nets, ["LiveMigration", "Cluster"], False))
    resources = []
    for v in range(vms):
        exclude, order = good
        if rng.random() < 0.03:   # drifted onto iSCSI
            exclude = _id_list(nets, ["Management"], False)
        resources.append({"Name": f"Virtual Machine VM{index:03d}-{v:03d}", "OwnerGroup": f"VM{index:03d}-{v:03d}",
                          "OwnerNode": nodes[v % len(nodes)], "MigrationExcludeNetworks": exclude,
                          "MigrationNetworkOrder": order})
    members = [{"Name": n, "Id": str(i + 1), "State": 0} for i, n in enumerate(nodes)]
    cluster = {"Name": name, "Id": guid(rng), "Domain": "corp.contoso.com"}
    for node in nodes:
        sections = {
            "OperatingSystem": {"Caption": "Microsoft Windows Server 2008 R2 Enterprise ", "Version": "6.1.7601",
                                "BuildNumber": "7601"},
            "Cluster": cluster, "ClusterNode": members, "ClusterNetwork": nets,
            "ClusterNetworkInterface": ifaces, "VirtualMachineResource": resources,
        }
        w.write(name, node, "2.0", sections, {}, "2026-11-26T03:00:00Z")


def generate_fleet(out: Path, clusters: int, seed: int = 2026, own_interfaces: bool = False) -> FleetStats:
    """Write ``clusters`` 16-node clusters plus the 2008 R2 ones below ``out``, and ``policy.yaml``.

    By default every node lists all interfaces of its cluster, as ``Get-ClusterNetworkInterface``
    prints them; ``own_interfaces`` keeps only the node's own (a sixteenth of the volume).
    """
    out.mkdir(parents=True, exist_ok=True)
    w = _Writer(out)
    violations = sum(modern_cluster(w, i, seed, own_interfaces) for i in range(clusters))
    legacy = max(1, clusters // LEGACY_EVERY)
    for i in range(legacy):
        legacy_cluster(w, i, seed)
    (out / "policy.yaml").write_text(policy_text(), encoding="utf-8")
    return FleetStats(clusters=clusters, legacy_clusters=legacy, files=w.files, bytes=w.bytes,
                      violations=violations + legacy)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path, help="directory to write the cluster folders into")
    ap.add_argument("--clusters", type=int, default=50)
    ap.add_argument("--seed", type=int, default=2026)
    ap.add_argument("--own-interfaces", action="store_true", help="each node lists only its own interfaces")
    args = ap.parse_args(argv)
    stats = generate_fleet(args.out, args.clusters, args.seed, args.own_interfaces)
    sys.stdout.write(f"{stats.files} snapshot files, {stats.bytes / 1e6:.1f} MB, {stats.clusters} + "
                     f"{stats.legacy_clusters} (2008 R2) clusters, {stats.violations} with violations\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

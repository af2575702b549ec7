"""Snapshot sections -> cluster model: enums, id lists, subnets, consensus views, LM order.

Everything here is pure interpretation of what nodes reported; nothing knows about rules. A
cluster-wide section (networks, the live-migration setting) is reported by every node: the
model uses the view most nodes agree on and keeps each node's own view for consistency checks.
"""

from __future__ import annotations

import ipaddress
import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

from scanner import values as v
from scanner.snapshot import Snapshot

IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]  # noqa: UP007 - a runtime alias

#: Section states at cluster or node level.
OK, MISSING, FAILED, UNCOLLECTED = "ok", "missing", "failed", "uncollected"


@dataclass(frozen=True, slots=True)
class Network:
    """A cluster network as reported by ``Get-ClusterNetwork``."""

    id: str
    name: str
    role: str
    state: str
    metric: int | None
    auto_metric: bool | None
    subnets: tuple[IPNetwork, ...]
    description: str = ""

    def key(self) -> tuple[Any, ...]:
        """What LM010 compares across nodes."""
        return (self.id, self.name.casefold(), self.role, tuple(sorted(str(s) for s in self.subnets)))


@dataclass(frozen=True, slots=True)
class Interface:
    """A node's adapter on a cluster network (``Get-ClusterNetworkInterface``)."""

    name: str
    node: str
    network: str
    network_id: str
    adapter: str
    address: str
    state: str


@dataclass(frozen=True, slots=True)
class LMSetting:
    """One live-migration network setting: cluster-wide (2012+) or one VM resource (2008 R2)."""

    exclude: tuple[str, ...]
    order: tuple[str, ...]
    raw_exclude: str = ""
    raw_order: str = ""

    def key(self) -> tuple[tuple[str, ...], tuple[str, ...]]:
        """Equality as live migration sees it: the exclude list is a set, the order is an order."""
        return (tuple(sorted(self.exclude)), self.order)


@dataclass(frozen=True, slots=True)
class VMResource:
    """A 2008 R2 "Virtual Machine" cluster resource, carrying its own LM setting."""

    name: str
    group: str
    owner_node: str
    setting: LMSetting


@dataclass(frozen=True, slots=True)
class MigrationNetwork:
    """A host migration network (``Get-VMMigrationNetwork``)."""

    subnet: str
    priority: int | None
    network: IPNetwork | None


@dataclass(frozen=True, slots=True)
class HostSettings:
    """Hyper-V host live-migration settings (``Get-VMHost``) of one node."""

    migration_enabled: bool | None
    use_any_network: bool | None
    authentication: str | None
    performance_option: str | None
    max_vm_migrations: int | None
    max_storage_migrations: int | None

    def key(self) -> tuple[Any, ...]:
        return (self.migration_enabled, self.use_any_network, self.authentication,
                self.performance_option, self.max_vm_migrations, self.max_storage_migrations)


@dataclass(frozen=True, slots=True)
class Node:
    """One cluster node: collected (with its snapshot) or not (with the reason)."""

    name: str
    collected: bool
    error: str | None
    snapshot: Snapshot | None = None
    state: str | None = None
    host: HostSettings | None = None
    migration_networks: tuple[MigrationNetwork, ...] = ()
    networks: tuple[Network, ...] | None = None
    setting: LMSetting | None = None

    def section_state(self, section: str) -> str:
        if self.snapshot is None:
            return UNCOLLECTED
        if self.snapshot.has(section):
            return OK
        if self.snapshot.failed(section):
            return FAILED
        return MISSING

    def section_error(self, section: str) -> str:
        if self.snapshot is None:
            return self.error or "not collected"
        return str(self.snapshot.errors.get(section, ""))


@dataclass(frozen=True, slots=True)
class Cluster:
    """A cluster assembled from its nodes' snapshots."""

    name: str
    os: str
    nodes: tuple[Node, ...]
    networks: tuple[Network, ...]
    interfaces: tuple[Interface, ...]
    setting: LMSetting | None
    vms: tuple[VMResource, ...]
    legacy: bool
    sections: Mapping[str, str]
    section_errors: Mapping[str, str]
    max_parallel_migrations: int | None = None
    network_atc: bool = False
    atc_lm_selection: bool | None = None
    intents: tuple[str, ...] = ()
    smb_bandwidth_limit: int | None = None
    notes: tuple[str, ...] = field(default=())

    def section_state(self, section: str) -> str:
        return self.sections.get(section, UNCOLLECTED if not self.collected_nodes() else MISSING)

    def collected_nodes(self) -> list[Node]:
        return [n for n in self.nodes if n.collected]

    def network_by_id(self, nid: str) -> Network | None:
        for n in self.networks:
            if n.id == nid:
                return n
        return None


# --------------------------------------------------------------------------- parsing helpers

def _ip_network(address: Any, prefix: Any) -> IPNetwork | None:
    addr = v.text(address)
    if not addr:
        return None
    pfx = v.text(prefix)
    try:
        if pfx:
            return ipaddress.ip_network(f"{addr}/{pfx}", strict=False)
        return ipaddress.ip_network(addr, strict=False)
    except ValueError:
        return None


def network_subnets(obj: Mapping[str, Any]) -> tuple[IPNetwork, ...]:
    """Every subnet of a cluster network: Address/AddressMask, IPv4 and IPv6 address lists."""
    found: list[IPNetwork] = []

    def add(n: IPNetwork | None) -> None:
        if n is not None and n not in found:
            found.append(n)

    add(_ip_network(obj.get("Address"), obj.get("AddressMask")))
    for fam in ("Ipv4", "Ipv6"):
        addrs = v.as_list(obj.get(f"{fam}Addresses"))
        prefixes = v.as_list(obj.get(f"{fam}PrefixLengths"))
        for i, a in enumerate(addrs):
            p = prefixes[i] if i < len(prefixes) else (prefixes[0] if len(prefixes) == 1 else None)
            if p is None and fam == "Ipv4" and v.text(a) == v.text(obj.get("Address")):
                p = obj.get("AddressMask")
            add(_ip_network(a, p))
    return tuple(found)


def parse_networks(section: Any) -> tuple[Network, ...]:
    nets = []
    for o in v.as_objects(section):
        nets.append(Network(
            id=v.norm_id(o.get("Id")),
            name=v.text(o.get("Name")),
            role=v.as_enum(o.get("Role"), v.NETWORK_ROLE) or "Unknown",
            state=v.as_enum(o.get("State"), v.NETWORK_STATE) or "Unknown",
            metric=v.as_int(o.get("Metric")),
            auto_metric=v.as_bool(o.get("AutoMetric")),
            subnets=network_subnets(o),
            description=v.text(o.get("Description")),
        ))
    return tuple(sorted(nets, key=lambda n: (n.name.casefold(), n.id)))


def parse_interfaces(section: Any, networks: Sequence[Network]) -> tuple[Interface, ...]:
    by_name = {n.name.casefold(): n.id for n in networks}
    out = []
    for o in v.as_objects(section):
        net_name = v.text(o.get("Network"))
        nid = v.norm_id(o.get("NetworkId")) or by_name.get(net_name.casefold(), "")
        out.append(Interface(
            name=v.text(o.get("Name")), node=v.text(o.get("Node")), network=net_name,
            network_id=nid, adapter=v.text(o.get("Adapter")), address=v.text(o.get("Address")),
            state=v.as_enum(o.get("State"), v.INTERFACE_STATE) or "Unknown",
        ))
    return tuple(out)


def parse_setting(obj: Mapping[str, Any] | None) -> LMSetting | None:
    if obj is None:
        return None
    ex, order = obj.get("MigrationExcludeNetworks"), obj.get("MigrationNetworkOrder")
    return LMSetting(exclude=v.id_list(ex), order=v.id_list(order),
                     raw_exclude=";".join(str(x) for x in v.as_list(ex)),
                     raw_order=";".join(str(x) for x in v.as_list(order)))


def parse_vms(section: Any) -> tuple[VMResource, ...]:
    vms = []
    for o in v.as_objects(section):
        setting = parse_setting(o)
        assert setting is not None
        name = v.text(o.get("Name"))
        vms.append(VMResource(name=name, group=v.text(o.get("OwnerGroup")) or name,
                              owner_node=v.text(o.get("OwnerNode")), setting=setting))
    return tuple(sorted(vms, key=lambda x: (x.group.casefold(), x.name.casefold())))


def parse_host(section: Any) -> HostSettings | None:
    o = v.as_object(section)
    if o is None:
        return None
    return HostSettings(
        migration_enabled=v.as_bool(o.get("VirtualMachineMigrationEnabled")),
        use_any_network=v.as_bool(o.get("UseAnyNetworkForMigration")),
        authentication=v.as_enum(o.get("VirtualMachineMigrationAuthenticationType"), v.MIGRATION_AUTH),
        performance_option=v.as_enum(o.get("VirtualMachineMigrationPerformanceOption"), v.MIGRATION_PERF),
        max_vm_migrations=v.as_int(o.get("MaximumVirtualMachineMigrations")),
        max_storage_migrations=v.as_int(o.get("MaximumStorageMigrations")),
    )


def parse_migration_networks(section: Any) -> tuple[MigrationNetwork, ...]:
    out = []
    for o in v.as_objects(section):
        subnet = v.text(o.get("Subnet"))
        if not subnet:
            continue
        try:
            net: IPNetwork | None = ipaddress.ip_network(subnet, strict=False)
        except ValueError:
            net = None
        out.append(MigrationNetwork(subnet=subnet, priority=v.as_int(o.get("Priority")), network=net))
    return tuple(sorted(out, key=lambda m: (m.priority if m.priority is not None else 1 << 31, m.subnet)))


# --------------------------------------------------------------------------- node names

def short_name(name: str) -> str:
    """``hv01.contoso.com`` and ``HV01`` name the same node."""
    return name.strip().split(".", 1)[0].casefold()


def _majority(items: Sequence[tuple[Any, Any]]) -> Any:
    """The value whose key most items share; ties go to the first one seen."""
    if not items:
        return None
    counts = Counter(k for k, _ in items)
    best = max(counts.values())
    for k, val in items:
        if counts[k] == best:
            return val
    return None  # pragma: no cover


@dataclass(frozen=True, slots=True)
class NodeFailure:
    """A node that could not be collected, as the collector (or inventory) reports it."""

    cluster: str
    node: str
    error: str


# --------------------------------------------------------------------------- assembly

CLUSTER_SECTIONS = ("OperatingSystem", "Cluster", "ClusterNode", "ClusterNetwork", "ClusterNetworkInterface",
                    "VirtualMachineResourceType", "VirtualMachineResource", "VMHost", "VMMigrationNetwork",
                    "SmbBandwidthLimit", "NetIntent", "NetIntentGlobalOverrides")


def _cluster_section_states(snaps: Sequence[Snapshot]) -> tuple[dict[str, str], dict[str, str]]:
    states: dict[str, str] = {}
    errors: dict[str, str] = {}
    names = {s.casefold(): s for s in CLUSTER_SECTIONS}
    for snap in snaps:
        for key in list(snap.sections) + list(snap.errors):
            names.setdefault(key.casefold(), key)
    for name in names.values():
        if any(s.has(name) for s in snaps):
            states[name] = OK
        elif any(s.failed(name) for s in snaps):
            states[name] = FAILED
            errors[name] = next(f"{s.node}: {s.errors.get(name)}" for s in snaps if s.failed(name))
        elif snaps:
            states[name] = MISSING
        else:
            states[name] = UNCOLLECTED
    return states, errors


def build_cluster(name: str, snaps: Sequence[Snapshot], failures: Sequence[NodeFailure]) -> Cluster:
    """Assemble one cluster from the snapshots of its collected nodes and the failed ones."""
    snaps = sorted(snaps, key=lambda s: s.node.casefold())
    states, errors = _cluster_section_states(snaps)

    # Membership: every node that reported, failed, or is listed by ClusterNode.
    members: dict[str, str] = {}
    node_state: dict[str, str | None] = {}
    for snap in snaps:
        for o in v.as_objects(snap.section("ClusterNode")):
            nm = v.text(o.get("Name"))
            if nm:
                members.setdefault(short_name(nm), nm)
                node_state.setdefault(short_name(nm), v.as_enum(o.get("State"), v.NODE_STATE))
    by_short = {short_name(s.node): s for s in snaps}
    fail_by_short = {short_name(f.node): f for f in failures}
    for key, reported in by_short.items():
        members.setdefault(key, reported.node)
    for key, f in fail_by_short.items():
        members.setdefault(key, f.node)

    nodes: list[Node] = []
    for key, display in sorted(members.items()):
        found = by_short.get(key)
        if found is None:
            f = fail_by_short.get(key)
            err = f.error if f else "listed by Get-ClusterNode but no snapshot was collected for it"
            nodes.append(Node(name=display, collected=False, error=err, state=node_state.get(key)))
            continue
        node_nets = parse_networks(found.section("ClusterNetwork")) if found.has("ClusterNetwork") else None
        node_setting = (parse_setting(v.as_object(found.section("VirtualMachineResourceType")))
                        if found.has("VirtualMachineResourceType") else None)
        nodes.append(Node(
            name=found.node, collected=True, error=None, snapshot=found, state=node_state.get(key),
            host=parse_host(found.section("VMHost")),
            migration_networks=parse_migration_networks(found.section("VMMigrationNetwork")),
            networks=node_nets, setting=node_setting,
        ))

    collected = [n for n in nodes if n.collected]
    networks = _majority([(tuple(x.key() for x in n.networks), n.networks)
                          for n in collected if n.networks is not None]) or ()
    setting = _majority([(n.setting.key(), n.setting) for n in collected if n.setting is not None])
    iface_src = _majority([(json.dumps(s.section("ClusterNetworkInterface"), sort_keys=True, default=str), s)
                           for s in snaps if s.has("ClusterNetworkInterface")])
    interfaces = parse_interfaces(iface_src.section("ClusterNetworkInterface"), networks) if iface_src else ()
    vm_src = _majority([(json.dumps(s.section("VirtualMachineResource"), sort_keys=True, default=str), s)
                        for s in snaps if s.has("VirtualMachineResource")])
    vms = parse_vms(vm_src.section("VirtualMachineResource")) if vm_src else ()
    legacy = setting is None and (bool(vm_src) or states.get("VirtualMachineResource") == FAILED)

    cluster_obj = _majority([(json.dumps(s.section("Cluster"), sort_keys=True, default=str), v.as_object(s.section("Cluster")))
                             for s in snaps if s.has("Cluster")])
    os_caption = _majority([(v.text(o.get("Caption")), f"{v.text(o.get('Caption'))} ({v.text(o.get('Version'))})".strip())
                            for s in snaps for o in v.as_objects(s.section("OperatingSystem"))])
    overrides = None
    intents: tuple[str, ...] = ()
    for s in snaps:
        if s.has("NetIntent") and not intents:
            intents = tuple(v.text(o.get("IntentName")) for o in v.as_objects(s.section("NetIntent")))
        if s.has("NetIntentGlobalOverrides") and overrides is None:
            overrides = v.as_object(s.section("NetIntentGlobalOverrides"))
    atc_sel: bool | None = None
    if intents:
        raw = overrides.get("EnableLiveMigrationNetworkSelection") if overrides else None
        atc_sel = True if v.as_bool(raw) is None else v.as_bool(raw)
    smb_limit = None
    for s in snaps:
        for o in v.as_objects(s.section("SmbBandwidthLimit")):
            if v.text(o.get("Category")).casefold() in ("livemigration", "2", ""):
                smb_limit = v.as_int(o.get("BytesPerSecond"))
    return Cluster(
        name=name,
        os=os_caption or "",
        nodes=tuple(nodes),
        networks=networks,
        interfaces=interfaces,
        setting=setting,
        vms=vms,
        legacy=legacy,
        sections=states,
        section_errors=errors,
        max_parallel_migrations=v.as_int(cluster_obj.get("MaximumParallelMigrations")) if cluster_obj else None,
        network_atc=bool(intents),
        atc_lm_selection=atc_sel,
        intents=intents,
        smb_bandwidth_limit=smb_limit,
    )


def group_clusters(snapshots: Iterable[Snapshot], failures: Iterable[NodeFailure] = (),
                   inventory_cluster: Mapping[str, str] | None = None) -> list[Cluster]:
    """Group snapshots into clusters by ``Cluster.Name`` (case-insensitive) and build each.

    ``inventory_cluster`` maps a snapshot's source to the cluster name the inventory gave it, so
    that failed nodes land in the same cluster as their collected siblings.
    """
    inventory_cluster = inventory_cluster or {}
    groups: dict[str, list[Snapshot]] = {}
    display: dict[str, Counter[str]] = {}
    alias: dict[str, str] = {}          # inventory name (folded) -> cluster key
    orphans: list[Snapshot] = []
    for snap in snapshots:
        cname = snap.cluster_name()
        inv = inventory_cluster.get(snap.source)
        if cname is None and inv:
            cname = inv
        if cname is None:
            orphans.append(snap)
            continue
        key = cname.casefold()
        groups.setdefault(key, []).append(snap)
        display.setdefault(key, Counter())[cname] += 1
        if inv:
            alias.setdefault(inv.casefold(), key)
    # A snapshot without a cluster name joins the cluster whose ClusterNode lists it.
    for snap in orphans:
        home = None
        for key, snaps in groups.items():
            if any(short_name(v.text(o.get("Name"))) == short_name(snap.node)
                   for s in snaps for o in v.as_objects(s.section("ClusterNode"))):
                home = key
                break
        if home is None:
            home = snap.node.casefold()
            display.setdefault(home, Counter())[snap.node] += 1
        groups.setdefault(home, []).append(snap)
    fails: dict[str, list[NodeFailure]] = {}
    for f in failures:
        key = alias.get(f.cluster.casefold(), f.cluster.casefold())
        fails.setdefault(key, []).append(f)
        display.setdefault(key, Counter())[f.cluster] += 0
    clusters = []
    for key in sorted(set(groups) | set(fails)):
        name = display[key].most_common(1)[0][0] if display.get(key) else key
        clusters.append(build_cluster(name, groups.get(key, []), fails.get(key, [])))
    return clusters


# --------------------------------------------------------------------------- LM semantics

def carries_lm(network: Network, setting: LMSetting | None) -> bool:
    """Contracts §2: a network carries LM unless its Id is in MigrationExcludeNetworks."""
    if setting is None:
        return True
    return network.id not in setting.exclude


def effective_order(networks: Sequence[Network], setting: LMSetting | None) -> list[Network]:
    """Contracts §2: ordered networks that carry LM, then the others by ascending Metric.

    With an empty MigrationNetworkOrder the cluster-communication network (the lowest metric
    among networks the cluster uses, role Cluster or ClusterAndClient) goes last.
    """
    carrying = [n for n in networks if carries_lm(n, setting)]
    by_id = {n.id: n for n in carrying}
    order = setting.order if setting else ()
    first = [by_id[i] for i in order if i in by_id]
    seen = {n.id for n in first}

    def metric_key(n: Network) -> tuple[int, int, str]:
        return (n.metric is None, n.metric if n.metric is not None else 0, n.name.casefold())

    rest = sorted((n for n in carrying if n.id not in seen), key=metric_key)
    if not order and rest:
        used = [n for n in networks if n.role in ("Cluster", "ClusterAndClient")] or list(networks)
        comm = min(used, key=metric_key)
        if comm in rest:
            rest.remove(comm)
            rest.append(comm)
    return first + rest

"""Snapshot sections -> cluster model: enums, id lists, subnets, consensus views, LM order.

Everything here is pure interpretation of what nodes reported; nothing knows about rules. A
cluster-wide section (networks, the live-migration setting) is reported by every node: the
model uses the view most nodes agree on and keeps each node's own view for consistency checks.
"""

from __future__ import annotations

import functools
import ipaddress
import json
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar, Union

import orjson

from scanner import sections as sec
from scanner import values as v
from scanner.errors import InputError
from scanner.snapshot import Snapshot
from scanner.values import prop as P

T = TypeVar("T")
IPNetwork = Union[ipaddress.IPv4Network, ipaddress.IPv6Network]  # noqa: UP007 - a runtime alias

#: Section states at cluster or node level (contracts §1, "a missing section"): reported; missing
#: and not required (skip); failed (error); absent, the feature is not installed (skip with the
#: reason); required but neither reported, failed nor absent (error); node not collected (error).
OK, MISSING, FAILED, UNCOLLECTED = "ok", "missing", "failed", "uncollected"
ABSENT, UNREPORTED = "absent", "unreported"


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
    adapter_id: str = ""                  # the NetAdapter's InterfaceGuid (braces and case dropped)
    addresses: tuple[str, ...] = ()       # Address, Ipv4Addresses and Ipv6Addresses


@dataclass(frozen=True, slots=True)
class Adapter:
    """A network adapter of the node (``Get-NetAdapter``)."""

    name: str
    description: str
    guid: str
    index: int | None
    status: str
    mtu: int | None


@dataclass(frozen=True, slots=True)
class Route:
    """A default route of the node (``Get-NetRoute -DestinationPrefix 0.0.0.0/0, ::/0``)."""

    index: int | None
    alias: str
    prefix: str
    next_hop: str

    @property
    def has_gateway(self) -> bool:
        """An on-link route (next hop 0.0.0.0 or ::) leads nowhere beyond the subnet."""
        try:
            return not ipaddress.ip_address(self.next_hop).is_unspecified
        except ValueError:
            return bool(self.next_hop)


@dataclass(frozen=True, slots=True)
class SmbConstraint:
    """``Get-SmbMultichannelConstraint``: SMB to ``server`` only over this local interface."""

    server: str
    alias: str
    index: int | None


@dataclass(frozen=True, slots=True)
class SmbClientInterface:
    """``Get-SmbClientNetworkInterface``: an interface the SMB client may use."""

    index: int | None
    name: str
    addresses: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Delegation:
    """The node's computer account in AD: where it may delegate to (constrained delegation)."""

    allowed_to: tuple[str, ...]
    trusted_to_auth: bool | None


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
class NodeData:
    """One node's snapshot reduced to what the rules need; the raw document is not kept.

    Reducing each file as it is read keeps a scan of thousands of nodes small: every node
    reports the whole cluster's interface list, but only its own rows are kept.
    """

    node: str
    source: str
    collected_at: str | None
    cluster_name: str | None
    sections: Mapping[str, str]          # canonical section name -> OK | FAILED | ABSENT | UNREPORTED
    errors: Mapping[str, str]            # section -> the failure message, or the reason it is absent
    members: tuple[tuple[str, str | None], ...] = ()
    member: str = ""                     # this node's name as Get-ClusterNode lists it
    legacy: bool = False                 # Windows Server 2008 R2 (per-VM live-migration settings)
    os: str = ""
    networks: tuple[Network, ...] | None = None
    setting: LMSetting | None = None
    vms: tuple[VMResource, ...] | None = None
    host: HostSettings | None = None
    migration_networks: tuple[MigrationNetwork, ...] = ()
    interfaces: tuple[Interface, ...] = ()
    all_interfaces: tuple[Interface, ...] | None = None
    max_parallel_migrations: int | None = None
    intents: tuple[str, ...] = ()
    atc_lm_selection: Any = None
    atc_perf_selection: Any = None
    smb_bandwidth_limit: int | None = None
    cluster_smb_limit: bool | None = None        # Cluster.SetSMBBandwidthLimit (WS2022+)
    atc_performance_option: str | None = None    # NetIntentGlobalOverrides
    atc_smb_bandwidth_gbps: int | None = None
    adapters: tuple[Adapter, ...] = ()
    default_routes: tuple[Route, ...] = ()
    smb_constraints: tuple[SmbConstraint, ...] = ()
    smb_client_interfaces: tuple[SmbClientInterface, ...] = ()
    delegation: Delegation | None = None
    credential_guard: bool | None = None         # DeviceGuard.SecurityServicesRunning contains 1
    domain: str = ""                             # Cluster.Domain

    def state(self, section: str) -> str:
        return self.sections.get(section, MISSING)

    @property
    def name(self) -> str:
        """The cluster's name for the node (its snapshot may say COMPUTERNAME or an FQDN)."""
        return self.member or self.node


@dataclass(frozen=True, slots=True)
class Node:
    """One cluster node: collected (with its reduced snapshot) or not (with the reason)."""

    name: str
    collected: bool
    error: str | None
    data: NodeData | None = None
    state: str | None = None

    @property
    def host(self) -> HostSettings | None:
        return self.data.host if self.data else None

    @property
    def migration_networks(self) -> tuple[MigrationNetwork, ...]:
        return self.data.migration_networks if self.data else ()

    @property
    def networks(self) -> tuple[Network, ...] | None:
        return self.data.networks if self.data else None

    @property
    def setting(self) -> LMSetting | None:
        return self.data.setting if self.data else None

    @property
    def collected_at(self) -> str | None:
        return self.data.collected_at if self.data else None

    def section_state(self, section: str) -> str:
        if self.data is None:
            return UNCOLLECTED
        return self.data.state(section)

    def section_error(self, section: str) -> str:
        if self.data is None:
            return self.error or "not collected"
        return self.data.errors.get(section, "")


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
    atc_perf_selection: bool | None = None   # ATC sets the hosts' migration performance option and concurrency
    intents: tuple[str, ...] = ()
    smb_bandwidth_limit: int | None = None
    vm_majority: LMSetting | None = None     # 2008 R2: the setting most VM resources share

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
    return _parse_subnet(addr, v.text(prefix))


@functools.lru_cache(maxsize=8192)
def _parse_subnet(addr: str, pfx: str) -> IPNetwork | None:
    """Subnets repeat on every node of a cluster: parse each one once (ipaddress is slow)."""
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

    address = P(obj, "Address")
    add(_ip_network(address, P(obj, "AddressMask")))
    for fam in ("Ipv4", "Ipv6"):
        addrs = v.as_list(P(obj, f"{fam}Addresses"))
        prefixes = v.as_list(P(obj, f"{fam}PrefixLengths"))
        for i, a in enumerate(addrs):
            p = prefixes[i] if i < len(prefixes) else (prefixes[0] if len(prefixes) == 1 else None)
            if p is None and fam == "Ipv4" and v.text(a) == v.text(address):
                p = P(obj, "AddressMask")
            add(_ip_network(a, p))
    return tuple(found)


def parse_networks(section: Any) -> tuple[Network, ...]:
    nets = []
    for o in v.as_objects(section):
        nets.append(Network(
            id=v.norm_id(P(o, "Id")),
            name=v.text(P(o, "Name")),
            role=v.as_enum(P(o, "Role"), v.NETWORK_ROLE) or "Unknown",
            state=v.as_enum(P(o, "State"), v.NETWORK_STATE) or "Unknown",
            metric=v.as_int(P(o, "Metric")),
            auto_metric=v.as_bool(P(o, "AutoMetric")),
            subnets=network_subnets(o),
            description=v.text(P(o, "Description")),
        ))
    return tuple(sorted(nets, key=lambda n: (n.name.casefold(), n.id)))


def _text_of(o: Mapping[str, Any], key: str) -> str:
    """``v.text(P(o, key))``, with the common case (the key as spelled, a string value) first."""
    x = o.get(key)
    return x.strip() if x.__class__ is str else v.text(P(o, key))


def _id_of(o: Mapping[str, Any], key: str) -> str:
    """``v.norm_id(P(o, key))``, with the common case first."""
    x = o.get(key)
    return x.strip().strip("{}").strip().casefold() if x.__class__ is str else v.norm_id(P(o, key))


def _texts(value: Any) -> list[str]:
    """The non-empty ``v.text`` of each item of ``v.as_list(value)``; a list of strings first."""
    if value.__class__ is list and all(x.__class__ is str for x in value):
        return [t for x in value if (t := x.strip())]
    return [t for t in (v.text(x) for x in v.as_list(value)) if t]


def _enum_table(names: Mapping[int, str]) -> dict[Any, str | None]:
    """What ``v.as_enum`` gives for each canonical name and each number, computed by it."""
    return {x: v.as_enum(x, names) for x in (*names, *names.values())}


_INTERFACE_STATES = _enum_table(v.INTERFACE_STATE)
_NODE_STATES = _enum_table(v.NODE_STATE)


def _enum_of(o: Mapping[str, Any], key: str, names: Mapping[int, str], table: Mapping[Any, str | None]) -> str | None:
    """``v.as_enum(P(o, key), names)``; a canonical name or a plain number is looked up in ``table``.

    Only ``str`` and ``int`` values use the table: ``True`` and ``1.0`` hash like ``1`` but mean
    something else to ``as_enum``.
    """
    x = o.get(key)
    if x.__class__ is str or x.__class__ is int:
        hit = table.get(x)
        if hit is not None:
            return hit
    return v.as_enum(P(o, key), names)


def _interface(o: Mapping[str, Any], by_name: Mapping[str, str]) -> Interface:
    net_name = _text_of(o, "Network")
    address = _text_of(o, "Address")
    addrs = [address] if address else []
    for key in ("Ipv4Addresses", "Ipv6Addresses"):
        value = o.get(key)
        if value.__class__ is list and (not value or value == addrs):
            continue       # the common case ([Address] and []): it adds nothing
        addrs += [a for a in _texts(P(o, key)) if a not in addrs]
    return Interface(
        name=_text_of(o, "Name"), node=_text_of(o, "Node"), network=net_name,
        network_id=_id_of(o, "NetworkId") or by_name.get(net_name.casefold(), ""),
        adapter=_text_of(o, "Adapter"), address=address,
        state=_enum_of(o, "State", v.INTERFACE_STATE, _INTERFACE_STATES) or "Unknown",
        adapter_id=_id_of(o, "AdapterId"), addresses=tuple(addrs),
    )


def _row_node(o: Mapping[str, Any]) -> str | None:
    """The short name of the node an interface row names; None when its Node is not text."""
    raw = P(o, "Node")
    return short_name(raw) if raw.__class__ is str else None


InterfaceTable = tuple[tuple[Interface, ...], dict[str, tuple[Interface, ...]]]


def parse_interfaces(section: Any, networks: Sequence[Network], only_node: str | None = None) -> tuple[Interface, ...]:
    """Interfaces as reported; with ``only_node``, just that node's rows."""
    table = interface_table(section, networks)
    return own_interfaces(table, only_node) if only_node else table[0]


def interface_table(section: Any, networks: Sequence[Network]) -> InterfaceTable:
    """Every row parsed, and the rows of each node by its short name (rows whose Node is not text: none).

    Every node of a cluster reports the same rows: the table is parsed once per cluster (the
    memo of :func:`reduce_snapshot`) and each node picks its own rows from it.
    """
    by_name = {n.name.casefold(): n.id for n in networks}
    rows = []
    by_node: dict[str, list[Interface]] = {}
    for o in v.as_objects(section):
        row = _interface(o, by_name)
        rows.append(row)
        node = _row_node(o)
        if node is not None:
            by_node.setdefault(node, []).append(row)
    return tuple(rows), {node: tuple(own) for node, own in by_node.items()}


def own_interfaces(table: InterfaceTable, node: str) -> tuple[Interface, ...]:
    """The rows of ``node`` (compared by short name) from an :func:`interface_table`."""
    return table[1].get(short_name(node), ())


def parse_setting(obj: Mapping[str, Any] | None) -> LMSetting | None:
    if obj is None:
        return None
    ex, order = P(obj, "MigrationExcludeNetworks"), P(obj, "MigrationNetworkOrder")
    return LMSetting(exclude=v.id_list(ex), order=v.id_list(order),
                     raw_exclude=";".join(str(x) for x in v.as_list(ex)),
                     raw_order=";".join(str(x) for x in v.as_list(order)))


def parse_vms(section: Any) -> tuple[VMResource, ...]:
    vms = []
    for o in v.as_objects(section):
        setting = parse_setting(o)
        assert setting is not None
        name = v.text(P(o, "Name"))
        vms.append(VMResource(name=name, group=v.text(P(o, "OwnerGroup")) or name,
                              owner_node=v.text(P(o, "OwnerNode")), setting=setting))
    return tuple(sorted(vms, key=lambda x: (x.group.casefold(), x.name.casefold())))


def parse_host(section: Any) -> HostSettings | None:
    o = v.as_object(section)
    if o is None:
        return None
    return HostSettings(
        migration_enabled=v.as_bool(P(o, "VirtualMachineMigrationEnabled")),
        use_any_network=v.as_bool(P(o, "UseAnyNetworkForMigration")),
        authentication=v.as_enum(P(o, "VirtualMachineMigrationAuthenticationType"), v.MIGRATION_AUTH),
        performance_option=v.as_enum(P(o, "VirtualMachineMigrationPerformanceOption"), v.MIGRATION_PERF),
        max_vm_migrations=v.as_int(P(o, "MaximumVirtualMachineMigrations")),
        max_storage_migrations=v.as_int(P(o, "MaximumStorageMigrations")),
    )


def parse_migration_networks(section: Any) -> tuple[MigrationNetwork, ...]:
    out = []
    for o in v.as_objects(section):
        subnet = v.text(P(o, "Subnet"))
        if not subnet:
            continue
        out.append(MigrationNetwork(subnet=subnet, priority=v.as_int(P(o, "Priority")),
                                    network=_parse_subnet(subnet, "")))
    return tuple(sorted(out, key=lambda m: (m.priority if m.priority is not None else 1 << 31, m.subnet)))


def parse_adapters(section: Any) -> tuple[Adapter, ...]:
    return tuple(Adapter(name=v.text(P(o, "Name")), description=v.text(P(o, "InterfaceDescription")),
                         guid=v.norm_id(P(o, "InterfaceGuid")), index=v.as_int(P(o, "InterfaceIndex")),
                         status=v.text(P(o, "Status")), mtu=v.as_int(P(o, "MtuSize")))
                 for o in v.as_objects(section))


def parse_routes(section: Any) -> tuple[Route, ...]:
    return tuple(Route(index=v.as_int(P(o, "InterfaceIndex")), alias=v.text(P(o, "InterfaceAlias")),
                       prefix=v.text(P(o, "DestinationPrefix")), next_hop=v.text(P(o, "NextHop")))
                 for o in v.as_objects(section))


def parse_smb_constraints(section: Any) -> tuple[SmbConstraint, ...]:
    return tuple(SmbConstraint(server=v.text(P(o, "ServerName")), alias=v.text(P(o, "InterfaceAlias")),
                               index=v.as_int(P(o, "InterfaceIndex")))
                 for o in v.as_objects(section))


def parse_smb_clients(section: Any) -> tuple[SmbClientInterface, ...]:
    return tuple(SmbClientInterface(index=v.as_int(P(o, "InterfaceIndex")), name=v.text(P(o, "FriendlyName")),
                                    addresses=tuple(_texts(P(o, "IpAddresses"))))
                 for o in v.as_objects(section))


def parse_delegation(section: Any) -> Delegation | None:
    o = v.as_object(section)
    if o is None:
        return None
    return Delegation(allowed_to=tuple(_texts(P(o, "AllowedToDelegateTo"))),
                      trusted_to_auth=v.as_bool(P(o, "TrustedToAuthForDelegation")))


def parse_credential_guard(section: Any) -> bool | None:
    """Credential Guard runs when ``SecurityServicesRunning`` contains 1 (Win32_DeviceGuard)."""
    o = v.as_object(section)
    if o is None:
        return None
    return any(v.as_int(x) == 1 for x in v.as_list(P(o, "SecurityServicesRunning")))


def smb_live_migration_limit(section: Any) -> int | None:
    """The LiveMigration category's BytesPerSecond; 0 when the category has no limit.

    ``Get-SmbBandwidthLimit`` prints nothing when no limit is set, so an empty section is
    "no limit", not an error. The category is matched on its name: the documented numbers
    disagree (research/domain.md §7).
    """
    limit = 0
    for o in v.as_objects(section):
        # "2": what collectors before 2026-11-30 wrote (the enum's number) for LiveMigration.
        if v.text(P(o, "Category")).casefold() in ("livemigration", "live migration", "2", ""):
            limit = max(limit, v.as_int(P(o, "BytesPerSecond")) or 0)
    return limit


# --------------------------------------------------------------------------- node names

@functools.lru_cache(maxsize=16384)
def short_name(name: str) -> str:
    """``hv01.contoso.com`` and ``HV01`` name the same node."""
    return name.strip().split(".", 1)[0].casefold()


def _keyed(values: Sequence[T], key: Callable[[T], Hashable]) -> list[tuple[Hashable, T]]:
    """``(key(value), value)`` pairs for :func:`_majority`, each key computed once per distinct object.

    The nodes of a cluster share the objects parsed from equal sections (the memo of
    :func:`reduce_snapshot`): one cluster's 16 nodes usually carry one networks tuple.
    """
    keys: dict[int, Hashable] = {}
    out = []
    for value in values:
        if id(value) not in keys:
            keys[id(value)] = key(value)
        out.append((keys[id(value)], value))
    return out


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

CLUSTER_SECTIONS = sec.NAMES


def snapshot_is_legacy(snap: Snapshot) -> bool:
    """Windows Server 2008 R2 (6.1) or older, from OperatingSystem.Version; else from what was collected."""
    os_obj = v.as_object(snap.section("OperatingSystem"))
    version = v.text(P(os_obj, "Version")) if os_obj is not None else ""
    parts = version.split(".")
    if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
        return (int(parts[0]), int(parts[1])) < (6, 2)
    for key in ("VirtualMachineResource", "VirtualMachineResourceType"):
        if key in snap.sections or key in snap.errors or key in snap.absent:
            return key == "VirtualMachineResource"
    return v.text(snap.collector.get("powershell")).startswith("2.")


def section_states(snap: Snapshot, legacy: bool) -> tuple[dict[str, str], dict[str, str]]:
    """Each section's state on this node, and the message (failure or absence reason) behind it.

    Precedence: reported, then failed, then absent. A required section that is none of these
    is UNREPORTED (contracts §1 as amended: its rules give ``error``, never ``skip``).
    """
    states: dict[str, str] = {}
    messages: dict[str, str] = {}
    for key in snap.absent:
        name = sec.canonical(key)
        states[name] = ABSENT
        messages[name] = str(snap.absent.get(key)) or "the feature is not installed"
    for key in snap.errors:
        name = sec.canonical(key)
        states[name] = FAILED
        messages[name] = str(snap.errors.get(key))
    for key in snap.sections:      # null is an empty value, reported (contracts §1)
        name = sec.canonical(key)
        states[name] = OK
        messages.pop(name, None)
    for name in _REQUIRED[legacy]:
        if name not in states:
            states[name] = UNREPORTED
            messages[name] = sec.not_collected_reason(name)
    return states, messages


#: The sections a node must report, for 2012+ (False) and 2008 R2 (True), in the contract's order.
_REQUIRED = {legacy: tuple(name for name in sec.NAMES if sec.required(name, legacy)) for legacy in (False, True)}


def match_member(names: Iterable[str], members: Iterable[str]) -> str | None:
    """The ``Get-ClusterNode`` name among ``members`` that one of ``names`` (how a node calls itself) means.

    A node may call itself by its COMPUTERNAME (the NetBIOS name, cut to 15 characters), its
    short DNS name or its FQDN, while the cluster lists its DNS host name: compare full names,
    then short names, then a 15-character NetBIOS name with the start of a longer member name
    (only when exactly one member fits, never by guessing).
    """
    members = [m for m in members if m]
    names = [n for n in names if n]
    for name in names:
        for m in members:
            if m.casefold() == name.casefold():
                return m
    for name in names:
        for m in members:
            if short_name(m) == short_name(name):
                return m
    for name in names:
        short = short_name(name)
        if len(short) == 15:
            fits = [m for m in members if len(short_name(m)) > 15 and short_name(m)[:15] == short]
            if len(fits) == 1:
                return fits[0]
    return None


def section_key(section: Any, plain_json: bool) -> str | bytes:
    """A memo key equal for two sections only when they are the same JSON, keys in the same order.

    orjson is exact for what it decoded itself (``plain_json``); ``json.dumps`` for the rest
    (NaN, integers beyond 64 bits; orjson would write NaN as null). The order of keys is kept:
    ``prop`` reads ``name`` and ``NAME`` in the order they come.
    """
    return orjson.dumps(section) if plain_json else json.dumps(section, default=str)


def _members(section: Any) -> tuple[tuple[str, str | None], ...]:
    """``Get-ClusterNode``: each node's name and state."""
    return tuple((name, _enum_of(o, "State", v.NODE_STATE, _NODE_STATES))
                 for o in v.as_objects(section) if (name := _text_of(o, "Name")))


class SectionMemo:
    """Parsed sections by exact content (:func:`section_key`), shared between the nodes of a cluster.

    The nodes of a cluster are read one after the other: the last section of each kind is
    compared first (bytes equality; hashing a 50 kB key costs more than comparing it); then the
    last ``size`` distinct sections, for snapshots of several clusters read interleaved.
    """

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self._last: dict[str, tuple[Hashable, Any]] = {}
        self._parsed: dict[Hashable, Any] = {}

    def __len__(self) -> int:
        return len(self._parsed)

    def get(self, kind: str, section: Any, plain_json: bool, parse: Callable[[Any], Any],
            extra: Hashable = None) -> Any:
        """``parse(section)``, or what it gave for an equal section of this ``kind`` and ``extra``."""
        key = (kind, section_key(section, plain_json), extra)
        last = self._last.get(kind)
        if last is not None and last[0] == key:
            return last[1]
        if key in self._parsed:
            value = self._parsed[key]
        else:
            value = self._parsed[key] = parse(section)
            if len(self._parsed) > self.size:     # the oldest: a cluster read before this one
                del self._parsed[next(iter(self._parsed))]
        self._last[kind] = (key, value)
        return value


def reduce_snapshot(snap: Snapshot, keep_all_interfaces: bool = False, memo: SectionMemo | None = None) -> NodeData:
    """Interpret one node's snapshot. ``keep_all_interfaces`` keeps every row, not only the node's own.

    ``memo`` shares parsed sections between the nodes of a cluster: every node reports the same
    members, networks, interface rows, live-migration setting (on 2008 R2, VM resources), and
    usually the same host settings, so each distinct section is parsed once and the nodes share
    the resulting (immutable) objects.
    """
    def shared(kind: str, section: Any, parse: Callable[[Any], Any], extra: Hashable = None) -> Any:
        return parse(section) if memo is None else memo.get(kind, section, snap.plain_json, parse, extra)

    legacy = snapshot_is_legacy(snap)
    sections, errors = section_states(snap, legacy)

    def has(name: str) -> bool:
        return sections.get(name) == OK

    members: tuple[tuple[str, str | None], ...] = shared("members", snap.section("ClusterNode"), _members)
    iface_section = snap.section("ClusterNetworkInterface") if has("ClusterNetworkInterface") else None
    member = match_member((snap.node, snap.dns_host_name or ""), [m for m, _ in members]) or ""
    if not member and iface_section:
        member = match_member((snap.node, snap.dns_host_name or ""),
                              {_text_of(o, "Node") for o in v.as_objects(iface_section)}) or ""
    os_obj = v.as_object(snap.section("OperatingSystem"))
    os_text = ""
    if os_obj is not None:
        caption, version = v.text(P(os_obj, "Caption")), v.text(P(os_obj, "Version"))
        os_text = f"{caption} ({version})" if caption and version else caption or version
    networks = shared("net", snap.section("ClusterNetwork"), parse_networks) if has("ClusterNetwork") else None
    own: tuple[Interface, ...] = ()
    everyone = None
    if iface_section:
        nets = networks or ()
        table = shared("interfaces", iface_section, lambda s: interface_table(s, nets),
                       tuple((n.name, n.id) for n in nets))
        own = own_interfaces(table, member or snap.node)
        everyone = table[0] if keep_all_interfaces else None
    cluster_obj = v.as_object(snap.section("Cluster"))
    intents = tuple(v.text(P(o, "IntentName")) or "(unnamed)" for o in v.as_objects(snap.section("NetIntent")))
    overrides = v.as_object(snap.section("NetIntentGlobalOverrides"))
    smb = smb_live_migration_limit(snap.section("SmbBandwidthLimit")) if has("SmbBandwidthLimit") else None
    return NodeData(
        node=snap.node, source=snap.source, collected_at=v.as_date(snap.collected_at),
        cluster_name=snap.cluster_name(), sections=sections, errors=errors, members=members, os=os_text,
        member=member, legacy=legacy,
        networks=networks,
        setting=shared("setting", snap.section("VirtualMachineResourceType"), lambda s: parse_setting(v.as_object(s)))
        if has("VirtualMachineResourceType") else None,
        vms=shared("vms", snap.section("VirtualMachineResource"), parse_vms) if has("VirtualMachineResource") else None,
        host=shared("host", snap.section("VMHost"), parse_host) if has("VMHost") else None,
        migration_networks=shared("migration", snap.section("VMMigrationNetwork"), parse_migration_networks),
        interfaces=own, all_interfaces=everyone,
        max_parallel_migrations=v.as_int(P(cluster_obj, "MaximumParallelMigrations")) if cluster_obj else None,
        intents=intents,
        atc_lm_selection=P(overrides, "EnableLiveMigrationNetworkSelection") if overrides else None,
        atc_perf_selection=P(overrides, "EnableVirtualMachineMigrationPerformanceSelection") if overrides else None,
        smb_bandwidth_limit=smb,
        cluster_smb_limit=v.as_bool(P(cluster_obj, "SetSMBBandwidthLimit")) if cluster_obj else None,
        atc_performance_option=v.as_enum(P(overrides, "VirtualMachineMigrationPerformanceOption"), v.MIGRATION_PERF)
        if overrides else None,
        atc_smb_bandwidth_gbps=v.as_int(P(overrides, "MaximumSMBMigrationBandwidthInGbps")) if overrides else None,
        adapters=parse_adapters(snap.section("NetAdapter")),
        default_routes=parse_routes(snap.section("DefaultRoute")),
        smb_constraints=parse_smb_constraints(snap.section("SmbMultichannelConstraint")),
        smb_client_interfaces=parse_smb_clients(snap.section("SmbClientNetworkInterface")),
        delegation=parse_delegation(snap.section("ComputerAccountDelegation")),
        credential_guard=parse_credential_guard(snap.section("DeviceGuard")),
        domain=v.text(P(cluster_obj, "Domain")) if cluster_obj else "",
    )


def _cluster_section_states(data: Sequence[NodeData]) -> tuple[dict[str, str], dict[str, str]]:
    states: dict[str, str] = {}
    errors: dict[str, str] = {}
    names = list(CLUSTER_SECTIONS)
    for d in data:
        names.extend(n for n in d.sections if n not in names)
    for name in names:
        got = {d.sections.get(name, MISSING) for d in data}     # d.state(name), without a call each
        if not data:
            states[name] = UNCOLLECTED
            continue
        # Reported by any node wins; then what proves least: failed, never reported, absent.
        state = next((s for s in (OK, FAILED, UNREPORTED, ABSENT) if s in got), MISSING)
        states[name] = state
        if state in (FAILED, UNREPORTED, ABSENT):
            d = next(d for d in data if d.state(name) == state)
            errors[name] = f"{d.name}: {d.errors.get(name, '')}"
    return states, errors


def build_cluster(name: str, data: Sequence[NodeData], failures: Sequence[NodeFailure]) -> Cluster:
    """Assemble one cluster from its collected nodes' data and the nodes that failed."""
    data = sorted(data, key=lambda d: d.node.casefold())
    states, errors = _cluster_section_states(data)

    # Membership: every node that reported, failed, or is listed by ClusterNode.
    members: dict[str, str] = {}
    node_state: dict[str, str | None] = {}
    seen: set[int] = set()
    for d in data:
        if id(d.members) in seen:   # the same list again (the memo's): it would change nothing
            continue
        seen.add(id(d.members))
        for member, state in d.members:
            members.setdefault(short_name(member), member)
            node_state.setdefault(short_name(member), state)
    by_short = {short_name(d.name): d for d in data}
    fail_by_short = {short_name(match_member([f.node], members.values()) or f.node): f for f in failures}
    for key, d in by_short.items():
        members.setdefault(key, d.name)
    for key, f in fail_by_short.items():
        members.setdefault(key, f.node)

    nodes: list[Node] = []
    for key, display in sorted(members.items()):
        found = by_short.get(key)
        if found is None:
            failed = fail_by_short.get(key)
            err = failed.error if failed else "listed by Get-ClusterNode but no snapshot was collected for it"
            nodes.append(Node(name=display, collected=False, error=err, state=node_state.get(key)))
        else:
            nodes.append(Node(name=found.name, collected=True, error=None, data=found, state=node_state.get(key)))

    networks = _majority(_keyed([d.networks for d in data if d.networks is not None],
                                lambda nets: tuple(x.key() for x in nets))) or ()
    setting = _majority(_keyed([d.setting for d in data if d.setting is not None], LMSetting.key))
    vms = _majority(_keyed([d.vms for d in data if d.vms is not None],
                           lambda vms: tuple((vm.name, vm.group, vm.setting.key()) for vm in vms))) or ()
    legacy = setting is None and (any(d.vms is not None for d in data) or states.get("VirtualMachineResource") == FAILED
                                  or (bool(data) and sum(d.legacy for d in data) * 2 > len(data)))
    # Interfaces: each node's own rows from its own snapshot; for a node whose snapshot has none,
    # the rows another node reported for it.
    interfaces: list[Interface] = []
    covered: set[str] = set()
    for d in data:
        if d.interfaces:
            interfaces.extend(d.interfaces)
            covered.add(short_name(d.name))
    for d in data:                     # sorted by node: the first full report wins
        extra = [i for i in d.all_interfaces or () if short_name(i.node) not in covered]
        interfaces.extend(extra)
        covered.update(short_name(i.node) for i in extra)
    intents = next((d.intents for d in data if d.intents), ())
    atc_raw = next((d.atc_lm_selection for d in data if d.atc_lm_selection is not None), None)
    perf_raw = next((d.atc_perf_selection for d in data if d.atc_perf_selection is not None), None)
    atc_sel: bool | None = None
    atc_perf: bool | None = None
    if intents:   # an override that is absent or null means the feature's default: on
        atc_sel = True if v.as_bool(atc_raw) is None else v.as_bool(atc_raw)
        atc_perf = True if v.as_bool(perf_raw) is None else v.as_bool(perf_raw)
    return Cluster(
        name=name,
        os=_majority([(d.os, d.os) for d in data if d.os]) or "",
        nodes=tuple(nodes),
        networks=networks,
        interfaces=tuple(interfaces),
        setting=setting,
        vms=vms,
        legacy=legacy,
        sections=states,
        section_errors=errors,
        max_parallel_migrations=_majority([(d.max_parallel_migrations, d.max_parallel_migrations) for d in data
                                           if d.max_parallel_migrations is not None]),
        network_atc=bool(intents),
        atc_lm_selection=atc_sel,
        atc_perf_selection=atc_perf,
        intents=intents,
        smb_bandwidth_limit=next((d.smb_bandwidth_limit for d in data if d.smb_bandwidth_limit is not None), None),
        vm_majority=majority_setting(vms),
    )


def majority_setting(vms: Sequence[VMResource]) -> LMSetting | None:
    """2008 R2: the live-migration setting most VM resources share (what LM007 compares with)."""
    found: LMSetting | None = _majority([(vm.setting.key(), vm.setting) for vm in vms])
    return found


class Reducer:
    """Reduce snapshots, keeping every interface row only from the first node seen of a cluster.

    Every node reports the whole cluster's interfaces; keeping one full copy per cluster (for a
    node whose own snapshot lacks them) and each node's own rows is enough.
    """

    def __init__(self) -> None:
        self._seen: set[str] = set()
        self._memo = SectionMemo()

    def reduce(self, snap: Snapshot) -> NodeData:
        cname = snap.cluster_name()
        key = cname.casefold() if cname is not None else None
        first = key is None or key not in self._seen
        if key is not None:
            self._seen.add(key)
        return reduce_snapshot(snap, keep_all_interfaces=first, memo=self._memo)


class ClusterGrouper:
    """Reduce snapshots one by one (so no raw document is kept) and group them into clusters.

    Snapshots of several nodes form one cluster when their ``Cluster.Name`` is equal,
    case-insensitively. ``inventory_cluster`` (the cluster name the inventory gave the node) places
    a node without a cluster name, and the failed nodes, next to their collected siblings.
    """

    def __init__(self) -> None:
        self._groups: dict[str, list[NodeData]] = {}
        self._display: dict[str, Counter[str]] = {}
        self._alias: dict[str, str] = {}
        self._orphans: list[tuple[NodeData, str | None]] = []
        self._failures: list[NodeFailure] = []
        self._reducer = Reducer()

    def add(self, snap: Snapshot, inventory_cluster: str | None = None) -> None:
        self.add_data(self._reducer.reduce(snap), inventory_cluster)

    def add_data(self, d: NodeData, inventory_cluster: str | None = None) -> None:
        cname = d.cluster_name or inventory_cluster
        if cname is None:
            self._orphans.append((d, inventory_cluster))
            return
        key = cname.casefold()
        self._groups.setdefault(key, []).append(d)
        self._display.setdefault(key, Counter())[cname] += 1
        if inventory_cluster:
            self._alias.setdefault(inventory_cluster.casefold(), key)

    def fail(self, failure: NodeFailure) -> None:
        self._failures.append(failure)

    def clusters(self) -> list[Cluster]:
        groups = {k: list(v) for k, v in self._groups.items()}
        display = {k: Counter(v) for k, v in self._display.items()}
        for d, _ in self._orphans:
            # A snapshot without a cluster name joins the cluster whose ClusterNode lists it.
            home = next((key for key, members in groups.items()
                         if match_member([d.node, d.name], [m for x in members for m, _ in x.members])), None)
            if home is None:
                home = d.node.casefold()
                display.setdefault(home, Counter())[d.node] += 1
            groups.setdefault(home, []).append(d)
        fails: dict[str, list[NodeFailure]] = {}
        for f in self._failures:
            key = self._alias.get(f.cluster.casefold(), f.cluster.casefold())
            fails.setdefault(key, []).append(f)
            display.setdefault(key, Counter())[f.cluster] += 0
        out = []
        for key in sorted(set(groups) | set(fails)):
            name = display[key].most_common(1)[0][0] if display.get(key) else key
            _refuse_duplicates(name, groups.get(key, []))
            out.append(build_cluster(name, groups.get(key, []), fails.get(key, [])))
        return out


def _refuse_duplicates(cluster: str, data: Sequence[NodeData]) -> None:
    """Two snapshots of one node (an old and a new copy in the tree): neither may silently win."""
    seen: dict[str, NodeData] = {}
    for d in data:
        key = short_name(d.name)
        first = seen.setdefault(key, d)
        if first is not d:
            when = f"collected {first.collected_at or 'at an unknown time'} and {d.collected_at or 'at an unknown time'}"
            raise InputError(first.source, f"node {d.name} of cluster {cluster} has a second snapshot, {d.source} "
                                           f"({when}): scan one snapshot per node; move the other out of the "
                                           "scanned paths")


def group_clusters(snapshots: Iterable[Snapshot], failures: Iterable[NodeFailure] = (),
                   inventory_cluster: Mapping[str, str] | None = None) -> list[Cluster]:
    """Group snapshots into clusters; see :class:`ClusterGrouper`."""
    grouper = ClusterGrouper()
    inventory_cluster = inventory_cluster or {}
    for snap in snapshots:
        grouper.add(snap, inventory_cluster.get(snap.source))
    for f in failures:
        grouper.fail(f)
    return grouper.clusters()


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

"""Remediation as data: small frozen action values and a pure ``apply(actions, cluster)``.

An action says what to change on a cluster (a live-migration list, a host setting, a Network
ATC override, ...), with the real Ids, the names an administrator knows and the value found at
scan time. The engine computes them from the site policy (``scanner.plan``); renderers turn them
into PowerShell (``scanner.fixps``); ``apply`` changes the cluster model the way Windows would,
so tests can evaluate again and check that a fix never breaks another rule.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from scanner.normalize import Cluster, Delegation, HostSettings, LMSetting, Network, Node, NodeData, VMResource

#: The two live-migration lists and their property names.
LIST_PROPERTY = {"exclude": "MigrationExcludeNetworks", "order": "MigrationNetworkOrder"}
#: Host settings an action may set, with the type of their value (Get-VMHost property names).
HOST_SETTINGS: dict[str, type] = {
    "VirtualMachineMigrationEnabled": bool,
    "UseAnyNetworkForMigration": bool,
    "VirtualMachineMigrationAuthenticationType": str,
    "VirtualMachineMigrationPerformanceOption": str,
    "MaximumVirtualMachineMigrations": int,
}
#: Network ATC global cluster override properties an action may set.
ATC_OVERRIDES: dict[str, type] = {
    "EnableLiveMigrationNetworkSelection": bool,
    "EnableVirtualMachineMigrationPerformanceSelection": bool,
    "VirtualMachineMigrationPerformanceOption": str,
    "MaximumVirtualMachineMigrations": int,
    "MaximumSMBMigrationBandwidthInGbps": int,
}
CLUSTER_PROPERTIES: dict[str, type] = {"MaximumParallelMigrations": int}
ROLES = ("None", "Cluster", "Client", "ClusterAndClient")


class ActionError(ValueError):
    """An action read from results JSON is malformed; ``where`` locates the field."""

    def __init__(self, where: str, problem: str) -> None:
        super().__init__(f"{where}: {problem}")
        self.where = where
        self.problem = problem


@dataclass(frozen=True, slots=True)
class SetLMList:
    """Set MigrationExcludeNetworks or MigrationNetworkOrder: cluster-wide, or on one 2008 R2 VM resource."""

    kind: ClassVar[str] = "set_lm_list"
    list: str                       # "exclude" | "order"
    ids: tuple[str, ...]            # the new value, network Ids in order
    names: tuple[str, ...]          # the same networks by name (for comments)
    previous: tuple[str, ...]       # the value found at scan time
    vm: str | None = None           # the VM resource's name on 2008 R2; None = the "Virtual Machine" resource type
    vm_group: str | None = None     # its group (the name administrators know)

    @property
    def property(self) -> str:
        return LIST_PROPERTY[self.list]


@dataclass(frozen=True, slots=True)
class SetAtcOverride:
    """Set Network ATC global cluster overrides (``Set-NetIntent -GlobalClusterOverrides``)."""

    kind: ClassVar[str] = "set_atc_override"
    settings: tuple[tuple[str, Any], ...]


@dataclass(frozen=True, slots=True)
class SetHost:
    """Set one Hyper-V host setting of one node."""

    kind: ClassVar[str] = "set_host"
    node: str
    setting: str
    value: Any
    previous: Any = None


@dataclass(frozen=True, slots=True)
class RemoveMigrationNetwork:
    """Remove a subnet from a host's migration networks (``Remove-VMMigrationNetwork``)."""

    kind: ClassVar[str] = "remove_migration_network"
    node: str
    subnet: str


@dataclass(frozen=True, slots=True)
class SetClusterProperty:
    """Set a common property of the cluster (``(Get-Cluster).Name = value``)."""

    kind: ClassVar[str] = "set_cluster_property"
    name: str
    value: Any
    previous: Any = None


@dataclass(frozen=True, slots=True)
class SetNetworkRole:
    """Set a cluster network's role."""

    kind: ClassVar[str] = "set_network_role"
    network_id: str
    network: str                    # its name
    role: str
    previous: str | None = None


@dataclass(frozen=True, slots=True)
class AddDelegation:
    """Let a node's computer account delegate to these services (``msDS-AllowedToDelegateTo``)."""

    kind: ClassVar[str] = "add_delegation"
    node: str
    spns: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class RemoveDefaultRoute:
    """Remove a default route of a node (``Remove-NetRoute``)."""

    kind: ClassVar[str] = "remove_default_route"
    node: str
    prefix: str
    interface: str
    next_hop: str = ""


Action = Union[SetLMList, SetAtcOverride, SetHost, RemoveMigrationNetwork, SetClusterProperty,  # noqa: UP007
               SetNetworkRole, AddDelegation, RemoveDefaultRoute]
KINDS: dict[str, type[Any]] = {c.kind: c for c in (SetLMList, SetAtcOverride, SetHost, RemoveMigrationNetwork,
                                                   SetClusterProperty, SetNetworkRole, AddDelegation,
                                                   RemoveDefaultRoute)}


# ----------------------------------------------------------------------------- JSON

def to_dict(action: Action) -> dict[str, Any]:
    """The results-JSON form: ``{"kind": ..., field: value, ...}`` (tuples as lists)."""
    out: dict[str, Any] = {"kind": action.kind}
    for f in dataclasses.fields(action):
        value = getattr(action, f.name)
        if f.name == "settings":
            value = {k: v for k, v in value}
        elif isinstance(value, tuple):
            value = list(value)
        out[f.name] = value
    return out


def _text(where: str, value: Any, optional: bool = False) -> Any:
    if value is None and optional:
        return None
    if not isinstance(value, str):
        raise ActionError(where, f"must be a string, not {type(value).__name__}")
    return value


def _texts(where: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise ActionError(where, "must be a list of strings")
    return tuple(_text(f"{where}[{i}]", x) for i, x in enumerate(value))


def _typed(where: str, value: Any, kind: type) -> Any:
    ok = isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
    if not ok:
        raise ActionError(where, f"must be {kind.__name__}, not {type(value).__name__}")
    return value


def from_dict(data: Any, where: str = "action") -> Action:
    """Read one action back from results JSON; anything unexpected raises :class:`ActionError`."""
    if not isinstance(data, Mapping):
        raise ActionError(where, "must be an object")
    kind = data.get("kind")
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ActionError(f"{where}.kind", f"unknown action kind {kind!r} (known: {', '.join(KINDS)})")
    names = {f.name for f in dataclasses.fields(cls)}
    extra = sorted(set(data) - names - {"kind"})
    if extra:
        raise ActionError(f"{where}.{extra[0]}", "unknown field")
    required = {f.name for f in dataclasses.fields(cls)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING}
    missing = sorted(required - set(data))
    if missing:
        raise ActionError(f"{where}.{missing[0]}", "missing")

    def at(name: str) -> str:
        return f"{where}.{name}"

    if cls is SetLMList:
        lst = data["list"]
        if lst not in LIST_PROPERTY:
            raise ActionError(at("list"), f"must be one of {', '.join(LIST_PROPERTY)}")
        return SetLMList(list=lst, ids=_texts(at("ids"), data["ids"]), names=_texts(at("names"), data["names"]),
                         previous=_texts(at("previous"), data["previous"]),
                         vm=_text(at("vm"), data.get("vm"), True), vm_group=_text(at("vm_group"), data.get("vm_group"), True))
    if cls is SetAtcOverride:
        settings = data["settings"]
        if not isinstance(settings, Mapping) or not settings:
            raise ActionError(at("settings"), "must be a non-empty object")
        out = []
        for k, v in settings.items():
            if k not in ATC_OVERRIDES:
                raise ActionError(f"{at('settings')}.{k}", f"unknown override (known: {', '.join(ATC_OVERRIDES)})")
            out.append((k, _typed(f"{at('settings')}.{k}", v, ATC_OVERRIDES[k])))
        return SetAtcOverride(settings=tuple(out))
    if cls is SetHost:
        setting = data["setting"]
        if setting not in HOST_SETTINGS:
            raise ActionError(at("setting"), f"unknown host setting (known: {', '.join(HOST_SETTINGS)})")
        return SetHost(node=_text(at("node"), data["node"]), setting=setting,
                       value=_typed(at("value"), data["value"], HOST_SETTINGS[setting]), previous=data.get("previous"))
    if cls is RemoveMigrationNetwork:
        return RemoveMigrationNetwork(node=_text(at("node"), data["node"]), subnet=_text(at("subnet"), data["subnet"]))
    if cls is SetClusterProperty:
        name = data["name"]
        if name not in CLUSTER_PROPERTIES:
            raise ActionError(at("name"), f"unknown cluster property (known: {', '.join(CLUSTER_PROPERTIES)})")
        return SetClusterProperty(name=name, value=_typed(at("value"), data["value"], CLUSTER_PROPERTIES[name]),
                                  previous=data.get("previous"))
    if cls is AddDelegation:
        return AddDelegation(node=_text(at("node"), data["node"]), spns=_texts(at("spns"), data["spns"]))
    if cls is RemoveDefaultRoute:
        return RemoveDefaultRoute(node=_text(at("node"), data["node"]), prefix=_text(at("prefix"), data["prefix"]),
                                  interface=_text(at("interface"), data["interface"]),
                                  next_hop=_text(at("next_hop"), data.get("next_hop", "")))
    role = data["role"]
    if role not in ROLES:
        raise ActionError(at("role"), f"must be one of {', '.join(ROLES)}")
    return SetNetworkRole(network_id=_text(at("network_id"), data["network_id"]),
                          network=_text(at("network"), data["network"]), role=role,
                          previous=_text(at("previous"), data.get("previous"), True))


# ----------------------------------------------------------------------------- apply

def apply(actions: Iterable[Action], cluster: Cluster) -> Cluster:
    """The cluster as it would be after running ``actions``, in order. Pure: returns a new value."""
    for a in actions:
        cluster = _APPLY[a.kind](a, cluster)
    return cluster


def _nodes(cluster: Cluster, change: Callable[[NodeData], NodeData], only: str | None = None) -> tuple[Node, ...]:
    from scanner.normalize import short_name
    out = []
    for n in cluster.nodes:
        if n.data is not None and (only is None or short_name(n.name) == short_name(only)):
            n = dataclasses.replace(n, data=change(n.data))
        out.append(n)
    return tuple(out)


def _with_list(s: LMSetting | None, lst: str, ids: Sequence[str]) -> LMSetting:
    s = s or LMSetting(exclude=(), order=())
    raw = ";".join(ids)
    if lst == "exclude":
        return dataclasses.replace(s, exclude=tuple(ids), raw_exclude=raw)
    return dataclasses.replace(s, order=tuple(ids), raw_order=raw)


def _apply_list(a: SetLMList, cluster: Cluster) -> Cluster:
    from scanner.normalize import majority_setting
    if a.vm is None:
        # A cluster-wide setting lives in the cluster database: every node reads the new value.
        return dataclasses.replace(
            cluster, setting=_with_list(cluster.setting, a.list, a.ids),
            nodes=_nodes(cluster, lambda d: dataclasses.replace(d, setting=_with_list(d.setting, a.list, a.ids))
                         if d.setting is not None else d))

    def vms(items: Sequence[VMResource] | None) -> tuple[VMResource, ...] | None:
        if items is None:
            return None
        return tuple(dataclasses.replace(vm, setting=_with_list(vm.setting, a.list, a.ids))
                     if vm.name.casefold() == (a.vm or "").casefold() else vm for vm in items)

    new_vms = vms(cluster.vms) or ()
    return dataclasses.replace(cluster, vms=new_vms, vm_majority=majority_setting(new_vms),
                               nodes=_nodes(cluster, lambda d: dataclasses.replace(d, vms=vms(d.vms))))


def _with_host(h: HostSettings | None, setting: str, value: Any) -> HostSettings | None:
    if h is None:
        return None
    attr = {"VirtualMachineMigrationEnabled": "migration_enabled", "UseAnyNetworkForMigration": "use_any_network",
            "VirtualMachineMigrationAuthenticationType": "authentication",
            "VirtualMachineMigrationPerformanceOption": "performance_option",
            "MaximumVirtualMachineMigrations": "max_vm_migrations"}[setting]
    return dataclasses.replace(h, **{attr: value})


def _apply_host(a: SetHost, cluster: Cluster) -> Cluster:
    return dataclasses.replace(cluster, nodes=_nodes(
        cluster, lambda d: dataclasses.replace(d, host=_with_host(d.host, a.setting, a.value)), only=a.node))


def _apply_remove_mn(a: RemoveMigrationNetwork, cluster: Cluster) -> Cluster:
    return dataclasses.replace(cluster, nodes=_nodes(cluster, lambda d: dataclasses.replace(
        d, migration_networks=tuple(m for m in d.migration_networks if m.subnet != a.subnet)), only=a.node))


def _apply_cluster_property(a: SetClusterProperty, cluster: Cluster) -> Cluster:
    return dataclasses.replace(cluster, max_parallel_migrations=a.value, nodes=_nodes(
        cluster, lambda d: dataclasses.replace(d, max_parallel_migrations=a.value)))


def _apply_role(a: SetNetworkRole, cluster: Cluster) -> Cluster:
    def nets(items: Sequence[Network] | None) -> tuple[Network, ...] | None:
        if items is None:
            return None
        return tuple(dataclasses.replace(n, role=a.role) if n.id == a.network_id else n for n in items)

    return dataclasses.replace(cluster, networks=nets(cluster.networks) or (),
                               nodes=_nodes(cluster, lambda d: dataclasses.replace(d, networks=nets(d.networks))))


def _apply_atc(a: SetAtcOverride, cluster: Cluster) -> Cluster:
    settings = dict(a.settings)
    if "EnableLiveMigrationNetworkSelection" in settings and cluster.network_atc:
        cluster = dataclasses.replace(cluster, atc_lm_selection=bool(settings["EnableLiveMigrationNetworkSelection"]))
    if "EnableVirtualMachineMigrationPerformanceSelection" in settings and cluster.network_atc:
        cluster = dataclasses.replace(
            cluster, atc_perf_selection=bool(settings["EnableVirtualMachineMigrationPerformanceSelection"]))
    # ATC writes the host settings it owns on every node.
    owned = [(k, settings[k]) for k in ("VirtualMachineMigrationPerformanceOption", "MaximumVirtualMachineMigrations")
             if k in settings]

    def hosts(d: NodeData) -> NodeData:
        host = d.host
        for k, value in owned:
            host = _with_host(host, k, value)
        return dataclasses.replace(d, host=host)

    return dataclasses.replace(cluster, nodes=_nodes(cluster, hosts)) if owned else cluster


def _apply_delegation(a: AddDelegation, cluster: Cluster) -> Cluster:
    def add(d: NodeData) -> NodeData:
        old = d.delegation or Delegation(allowed_to=(), trusted_to_auth=None)
        have = {x.casefold() for x in old.allowed_to}
        new = old.allowed_to + tuple(x for x in a.spns if x.casefold() not in have)
        return dataclasses.replace(d, delegation=dataclasses.replace(old, allowed_to=new))
    return dataclasses.replace(cluster, nodes=_nodes(cluster, add, only=a.node))


def _apply_route(a: RemoveDefaultRoute, cluster: Cluster) -> Cluster:
    def drop(d: NodeData) -> NodeData:
        return dataclasses.replace(d, default_routes=tuple(
            r for r in d.default_routes
            if not (r.prefix == a.prefix and (r.alias or str(r.index)) == a.interface)))
    return dataclasses.replace(cluster, nodes=_nodes(cluster, drop, only=a.node))


_APPLY: dict[str, Callable[[Any, Cluster], Cluster]] = {
    SetLMList.kind: _apply_list, SetHost.kind: _apply_host, RemoveMigrationNetwork.kind: _apply_remove_mn,
    SetClusterProperty.kind: _apply_cluster_property, SetNetworkRole.kind: _apply_role, SetAtcOverride.kind: _apply_atc,
    AddDelegation.kind: _apply_delegation, RemoveDefaultRoute.kind: _apply_route,
}

"""The facts rules can name, per scope, computed from the cluster model and the site policy.

Python holds facts; rules (YAML) hold the logic. A view wraps one object of a scope (a cluster,
node, network, interface, VM or host migration network) together with the live-migration
setting in force. A fact that cannot be known (its section failed, its node was not collected)
raises :class:`Unavailable`, which the engine turns into ``error`` or ``skip``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from scanner import sections as sec
from scanner.model import Status
from scanner.normalize import (ABSENT, FAILED, OK, UNCOLLECTED, UNREPORTED, Adapter, Cluster, HostSettings, Interface,
                               LMSetting, MigrationNetwork, Network, Node, SmbClientInterface, VMResource, carries_lm,
                               effective_order)
from scanner.policy import Policy


class Unavailable(Exception):
    """A fact cannot be evaluated: ``status`` is ERROR (could not be collected) or SKIP (does not apply)."""

    def __init__(self, status: Status, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def unavailable(section: str, state: str, message: str, legacy: bool, where: str = "") -> Unavailable:
    """Why a section in ``state`` cannot give a fact (contracts §1 as amended, "a missing section").

    ``where`` names the node (" on HV01") for node-level messages. Missing and absent sections
    give ``skip`` with the reason; failed, never reported (when required) and uncollected ones
    give ``error``.
    """
    if state == UNCOLLECTED:
        return Unavailable(Status.ERROR, message or "no node of this cluster could be collected")
    if state == FAILED:
        return Unavailable(Status.ERROR, f"{section} could not be read{where}: {message}".rstrip(": "))
    if state == UNREPORTED:
        return Unavailable(Status.ERROR, f"{message}{where and ' (' + where.strip() + ')'}")
    if state == ABSENT:
        return Unavailable(Status.SKIP, f"{section} does not apply: {message}")
    # No node name: the target names the node, and equal reasons group in the reports.
    return Unavailable(Status.SKIP, sec.missing_reason(section, legacy))


@dataclass(frozen=True, slots=True)
class Fact:
    """A named fact of one scope: how to compute it and how to show it."""

    name: str
    fn: Callable[[Any], Any]
    label: str
    collection: str | None = None   # scope of the items when the fact is a collection


FACTS: dict[str, dict[str, Fact]] = {s: {} for s in ("cluster", "node", "network", "interface", "vm",
                                                     "migration_network")}


def fact(scope: str, name: str, label: str, collection: str | None = None) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    def deco(fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
        FACTS[scope][name] = Fact(name, fn, label, collection)
        return fn
    return deco


def attribute_facts(scope: str, target: Callable[[Any], Any], table: tuple[tuple[str, str, str], ...]) -> None:
    """Facts that are plain attributes of a view's object: ``(fact name, label, attribute)`` rows."""
    for name, label, attr in table:
        def get(v: Any, _attr: str = attr) -> Any:
            return getattr(target(v), _attr)
        fact(scope, name, label)(get)


_MISSING: Any = object()


class View:
    """Base of the scope views: facts by attribute, cached.

    The cache of a view of a model object is shared by every view of that object under the same
    :class:`ClusterView` (:meth:`ClusterView.facts_of`): each rule makes views of its own, and
    without the sharing every rule would compute the cluster's facts again.
    """

    scope = ""
    _facts: dict[str, Fact] = {}

    def __init__(self, ctx: ClusterView | None, cache: dict[str, Any] | None = None) -> None:
        self._ctx = ctx
        self._cache: dict[str, Any] = {} if cache is None else cache

    @property
    def ctx(self) -> ClusterView:
        assert self._ctx is not None
        return self._ctx

    def get(self, name: str) -> Any:
        value = self._cache.get(name, _MISSING)
        if value is not _MISSING:
            return value
        f = self._facts.get(name)
        if f is None:
            raise KeyError(f"no fact {name!r} for scope {self.scope}")
        value = f.fn(self)
        self._cache[name] = value
        return value

    def available(self, names: tuple[str, ...], key: str) -> tuple[tuple[str, Any], ...]:
        """``(name, value)`` of the facts among ``names`` that can be known, in that order.

        Worked out once for every view of the object (``key``, not a fact name, keeps the answer
        among its facts): the engine shows the same identifying facts with each rule's result.
        """
        answers = self._answers()
        found: tuple[tuple[str, Any], ...] | None = answers.get(key)
        if found is None:
            pairs = []
            for name in names:
                try:
                    pairs.append((name, self.get(name)))
                except Unavailable:
                    continue
            found = answers[key] = tuple(pairs)
        return found

    def _answers(self) -> dict[str, Any]:
        """Where :meth:`available` keeps its answers: with the facts they come from."""
        return self._cache

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self.get(name)
        except KeyError:
            raise AttributeError(name) from None

    def display(self) -> str:
        return str(self.get("name"))


class ClusterView(View):
    """A cluster under one live-migration setting: the cluster-wide one, or one 2008 R2 VM's."""

    scope = "cluster"
    _facts = FACTS["cluster"]

    def __init__(self, cluster: Cluster, policy: Policy, vm: VMResource | None = None) -> None:
        super().__init__(None)
        self.cluster = cluster
        self.policy = policy
        self.vm = vm
        # Facts of the cluster's objects (by identity; the cluster keeps them alive), section
        # states, and the view of each 2008 R2 VM's setting: all the same for every rule.
        self._shared: dict[tuple[int, int], dict[str, Any]] = {}
        self._states: dict[str, str] = {}
        self._vm_views: dict[int, ClusterView] = {}
        self._by_setting: dict[LMSetting, dict[tuple[int, int], dict[str, Any]]] = {}
        #: What the engine works out once per cluster view for all its rules (the targets of a scope).
        self.memo: dict[str, Any] = {}

    @property
    def ctx(self) -> ClusterView:
        return self

    def release(self) -> None:
        """Empty the caches. They and the views in them refer to each other (a view to this one,
        this one's caches to the views); emptied, all of a cluster's views are freed at once
        instead of being left to the cycle collector, which a large fleet keeps busy."""
        for view in self._vm_views.values():
            view.release()
        for cache in self._shared.values():
            cache.clear()
        for shared in self._by_setting.values():
            for cache in shared.values():
                cache.clear()
        for mapping in (self._shared, self._vm_views, self._cache, self._states, self._by_setting, self.memo):
            mapping.clear()

    def facts_of(self, obj: object, node: object = None) -> dict[str, Any]:
        """The fact cache of every view of ``obj`` (seen from ``node``) under this view."""
        key = (id(obj), id(node))
        cache = self._shared.get(key)
        if cache is None:
            cache = self._shared[key] = {}
        return cache

    def for_vm(self, vm: VMResource) -> ClusterView:
        """This cluster under one 2008 R2 VM's setting (made once, then shared by the rules)."""
        view = self._vm_views.get(id(vm))
        if view is None:
            view = self._vm_views[id(vm)] = ClusterView(self.cluster, self.policy, vm)
            # The facts of the cluster's objects depend on the setting, not on which VM has it:
            # VMs with equal settings (most VMs of a cluster) share them.
            view._shared = self._by_setting.setdefault(vm.setting, view._shared)
            view._states = self._states
        return view

    def section_state(self, section: str) -> str:
        state = self._states.get(section)
        if state is None:
            state = self._states[section] = self.cluster.section_state(section)
        return state

    # -- sections -------------------------------------------------------------------------
    def need(self, *sections: str) -> None:
        """Raise :class:`Unavailable` unless every section was reported by some node."""
        for section in sections:
            state = self.section_state(section)
            if state != OK:
                raise unavailable(section, state, self.cluster.section_errors.get(section, ""), self.cluster.legacy)

    def setting(self) -> LMSetting | None:
        """The LM setting in force here; raises when it was not reported at all."""
        if self.vm is not None:
            return self.vm.setting
        c = self.cluster
        if c.setting is not None:
            return c.setting
        if c.legacy:
            return None  # 2008 R2 outside a VM context: see carries_lm
        if not c.collected_nodes():
            raise Unavailable(Status.ERROR, "no node of this cluster could be collected")
        self.need("VirtualMachineResourceType")
        raise Unavailable(Status.SKIP, "the live-migration network setting was not reported "
                                       "(no \"Virtual Machine\" resource type: Hyper-V is not clustered here)")

    def carries(self, net: Network) -> bool:
        setting = self.setting()
        if self.vm is None and self.cluster.legacy:
            # 2008 R2 without a VM in view: a network carries LM if any VM lets it.
            return any(carries_lm(net, vm.setting) for vm in self.cluster.vms)
        return carries_lm(net, setting)

    def order(self) -> list[Network]:
        self.need("ClusterNetwork")
        cache = self.facts_of(self.cluster)     # shared as the facts of the networks are (for_vm)
        key = "_order"
        if key not in cache:
            cache[key] = effective_order(self.cluster.networks, self.setting())
        return cache[key]  # type: ignore[no-any-return]

    def interface_states(self) -> dict[tuple[str, str], list[str]]:
        """Interface states by (network Id, node), indexed once per cluster view."""
        from scanner.normalize import short_name
        index: dict[tuple[str, str], list[str]] | None = self._cache.get("_ifaces")
        if index is None:
            index = {}
            for i in self.cluster.interfaces:
                index.setdefault((i.network_id, short_name(i.node)), []).append(i.state)
            self._cache["_ifaces"] = index
        return index

    def interfaces_of(self, node_name: str) -> list[Interface]:
        """The cluster interfaces of one node (by short name), in cluster order; indexed once."""
        from scanner.normalize import short_name
        index: dict[str, list[Interface]] | None = self._cache.get("_ifaces_by_node")
        if index is None:
            index = {}
            for i in self.cluster.interfaces:
                index.setdefault(short_name(i.node), []).append(i)
            self._cache["_ifaces_by_node"] = index
        return index.get(short_name(node_name), [])

    def network_views(self, node: Node | None = None) -> list[NetworkView]:
        self.need("ClusterNetwork")
        if node is None:
            return [NetworkView(self, n) for n in self.cluster.networks]
        return [NodeNetworkView(self, n, node) for n in self.cluster.networks]

    def node(self, name: str) -> Node | None:
        from scanner.normalize import short_name
        for n in self.cluster.nodes:
            if short_name(n.name) == short_name(name):
                return n
        return None

    def display(self) -> str:
        return self.cluster.name


class NetworkView(View):
    scope = "network"
    _facts = FACTS["network"]

    def __init__(self, ctx: ClusterView, network: Network, node: Node | None = None) -> None:
        super().__init__(ctx, ctx.facts_of(network, node))
        self.network = network
        self.node = node

    def display(self) -> str:
        return self.network.name or self.network.id


#: Network facts that depend on the node the network is seen from (``node.networks``).
PER_NODE_FACTS = frozenset({"interface_state"})


class NodeNetworkView(NetworkView):
    """A network seen from one node: the facts of :data:`PER_NODE_FACTS` are this node's, the
    others the network's own, shared with every node's view of it (one computation, not one per node)."""

    def __init__(self, ctx: ClusterView, network: Network, node: Node) -> None:
        View.__init__(self, ctx, ctx.facts_of(network))
        self.network = network
        self.node = node
        self._per_node = ctx.facts_of(network, node)

    def get(self, name: str) -> Any:
        if name not in PER_NODE_FACTS:
            return View.get(self, name)
        value = self._per_node.get(name, _MISSING)
        if value is _MISSING:
            value = self._per_node[name] = self._facts[name].fn(self)
        return value

    def _answers(self) -> dict[str, Any]:
        return self._per_node     # an answer may hold a fact of this node


class NodeView(View):
    scope = "node"
    _facts = FACTS["node"]

    def __init__(self, ctx: ClusterView, node: Node) -> None:
        super().__init__(ctx, ctx.facts_of(node))
        self.node = node

    def need(self, section: str) -> None:
        state = self.node.section_state(section)
        if state == OK:
            return
        if state == UNCOLLECTED:
            raise Unavailable(Status.ERROR, f"node {self.node.name} was not collected: {self.node.error}")
        legacy = self.node.data.legacy if self.node.data else self.ctx.cluster.legacy
        raise unavailable(section, state, self.node.section_error(section), legacy, f" on {self.node.name}")

    def display(self) -> str:
        return self.node.name


class InterfaceView(View):
    scope = "interface"
    _facts = FACTS["interface"]

    def __init__(self, ctx: ClusterView, iface: Interface) -> None:
        super().__init__(ctx, ctx.facts_of(iface))
        self.iface = iface

    def display(self) -> str:
        return self.iface.name or f"{self.iface.node} - {self.iface.network}"


class VMView(View):
    scope = "vm"
    _facts = FACTS["vm"]

    def __init__(self, ctx: ClusterView, vm: VMResource) -> None:
        super().__init__(ctx, ctx.facts_of(vm))
        self.vm = vm

    def display(self) -> str:
        return self.vm.group


class MigrationNetworkView(View):
    scope = "migration_network"
    _facts = FACTS["migration_network"]

    def __init__(self, ctx: ClusterView, mn: MigrationNetwork) -> None:
        super().__init__(ctx, ctx.facts_of(mn))
        self.mn = mn

    def display(self) -> str:
        return self.mn.subnet


# ================================================================ network facts

attribute_facts("network", lambda v: v.network, (
    ("name", "name", "name"), ("id", "Id", "id"), ("role", "cluster role", "role"), ("state", "state", "state"),
    ("metric", "metric", "metric")))


@fact("network", "subnets", "subnets")
def _n_subnets(v: NetworkView) -> list[str]:
    return [str(s) for s in v.network.subnets]


@fact("network", "class", "class")
def _n_class(v: NetworkView) -> str:
    return v.ctx.policy.classify(v.network)


@fact("network", "carries_lm", "carries live migration")
def _n_carries(v: NetworkView) -> bool:
    return v.ctx.carries(v.network)


@fact("network", "in_order_list", "listed in MigrationNetworkOrder")
def _n_in_order(v: NetworkView) -> bool:
    s = v.ctx.setting()
    return s is not None and v.network.id in s.order


@fact("network", "order_position", "place in the effective live-migration order")
def _n_position(v: NetworkView) -> int | None:
    for i, n in enumerate(v.ctx.order(), start=1):
        if n.id == v.network.id:
            return i
    return None


@fact("network", "interface_state", "state of this node's interface on the network")
def _n_iface_state(v: NetworkView) -> str | None:
    v.ctx.need("ClusterNetworkInterface")
    if v.node is None:
        return None
    from scanner.normalize import short_name
    states = v.ctx.interface_states().get((v.network.id, short_name(v.node.name)), [])
    if "Up" in states:
        return "Up"
    return states[0] if states else "none"


@fact("network", "up_nodes", "nodes with an Up interface")
def _n_up_nodes(v: NetworkView) -> list[str]:
    v.ctx.need("ClusterNetworkInterface")
    return sorted({i.node for i in v.ctx.cluster.interfaces if i.network_id == v.network.id and i.state == "Up"})


# ================================================================ cluster facts

@fact("cluster", "name", "name")
def _c_name(v: ClusterView) -> str:
    return v.cluster.name


@fact("cluster", "os", "operating system")
def _c_os(v: ClusterView) -> str:
    return v.cluster.os


@fact("cluster", "per_vm_setting", "live-migration setting kept per VM (2008 R2)")
def _c_legacy(v: ClusterView) -> bool:
    return v.cluster.legacy


@fact("cluster", "networks", "cluster networks", collection="network")
def _c_networks(v: ClusterView) -> list[NetworkView]:
    return v.network_views()


@fact("cluster", "lm_networks", "networks that carry live migration", collection="network")
def _c_lm_networks(v: ClusterView) -> list[NetworkView]:
    return [n for n in v.network_views() if n.get("carries_lm")]


@fact("cluster", "effective_order", "effective live-migration order")
def _c_order(v: ClusterView) -> list[str]:
    return [n.name for n in v.order()]


@fact("cluster", "first_network", "first network of the effective order")
def _c_first(v: ClusterView) -> str | None:
    order = v.order()
    return order[0].name if order else None


@fact("cluster", "first_network_class", "class of the first network of the effective order")
def _c_first_class(v: ClusterView) -> str | None:
    order = v.order()
    return v.policy.classify(order[0]) if order else None


@fact("cluster", "first_network_atc_storage",
      "the first network is a storage network Network ATC chose (and storage is allowed)")
def _c_first_atc(v: ClusterView) -> bool:
    """Contracts §4 (amended): where ATC selects the networks it puts storage first, and that counts."""
    if v.vm is not None or not v.cluster.atc_lm_selection:
        return False
    order = v.order()
    return bool(order) and v.policy.classify(order[0]) == "storage" and "storage" in v.policy.allowed


@fact("cluster", "exclude_ids", "MigrationExcludeNetworks")
def _c_exclude(v: ClusterView) -> list[str]:
    s = v.setting()
    return list(s.exclude) if s else []


@fact("cluster", "order_ids", "MigrationNetworkOrder")
def _c_order_ids(v: ClusterView) -> list[str]:
    s = v.setting()
    return list(s.order) if s else []


def _names(v: View, ids: list[str]) -> list[str]:
    """Network Ids as the names an administrator knows (unknown Ids stay visible)."""
    known = {n.id: n.name for n in v.ctx.cluster.networks}
    return [known.get(i) or f"unknown network {i}" for i in ids]


@fact("cluster", "excluded_networks", "networks excluded from live migration")
def _c_excluded_names(v: ClusterView) -> list[str]:
    return _names(v, v.get("exclude_ids"))


@fact("cluster", "ordered_networks", "networks named in MigrationNetworkOrder")
def _c_ordered_names(v: ClusterView) -> list[str]:
    return _names(v, v.get("order_ids"))


@fact("cluster", "unknown_ids", "Ids in the exclude and order lists that name no cluster network")
def _c_unknown(v: ClusterView) -> list[str]:
    v.need("ClusterNetwork")
    known = {n.id for n in v.cluster.networks}
    if v.vm is None and v.cluster.legacy:
        settings = [vm.setting for vm in v.cluster.vms]
    else:
        s = v.setting()
        settings = [s] if s else []
    out: list[str] = []
    for s in settings:
        for i in s.exclude + s.order:
            if i not in known and i not in out:
                out.append(i)
    return out


@fact("cluster", "missing_classes", "classes of the policy's required_classes that no cluster network is of")
def _c_missing(v: ClusterView) -> list[str]:
    v.need("ClusterNetwork")
    present = {v.policy.classify(n) for n in v.cluster.networks}
    return [c for c in v.policy.required if c not in present]


@fact("cluster", "network_atc", "Network ATC in use")
def _c_atc(v: ClusterView) -> bool:
    v.need("NetIntent")
    return v.cluster.network_atc


@fact("cluster", "atc_lm_selection", "Network ATC selects the live-migration networks")
def _c_atc_sel(v: ClusterView) -> bool | None:
    return v.cluster.atc_lm_selection


@fact("cluster", "nodes", "nodes", collection="node")
def _c_nodes(v: ClusterView) -> list[NodeView]:
    return [NodeView(v, n) for n in v.cluster.nodes]


@fact("cluster", "uncollected_nodes", "nodes that could not be collected")
def _c_uncollected(v: ClusterView) -> list[str]:
    return [n.name for n in v.cluster.nodes if not n.collected]


@fact("cluster", "vms", "virtual machine resources", collection="vm")
def _c_vms(v: ClusterView) -> list[VMView]:
    return [VMView(v, vm) for vm in v.cluster.vms]


def _per_node(v: ClusterView, section: str, key: Callable[[Node], Any]) -> dict[str, Any]:
    v.need(section)
    out: dict[str, Any] = {}
    for n in v.cluster.nodes:
        if not n.collected:
            raise Unavailable(Status.ERROR, f"node {n.name} was not collected, so all nodes cannot be compared: "
                                            f"{n.error}")
        state = n.section_state(section)
        if state in (FAILED, UNREPORTED):
            raise unavailable(section, state, n.section_error(section), v.cluster.legacy, f" on {n.name}")
        out[n.name] = key(n) if state == OK else f"(not reported: {n.section_error(section) or 'missing'})"
    return out


def _net_key(n: Network) -> str:
    subnets = ",".join(sorted(str(s) for s in n.subnets))
    return f"{n.name} [{n.id}] role {n.role} {subnets}".strip()


@fact("cluster", "node_network_views", "cluster networks as each node reports them")
def _c_node_nets(v: ClusterView) -> dict[str, Any]:
    keys: dict[int, str] = {}     # nodes that report a network alike share its record (normalize)

    def key(x: Network) -> str:
        found = keys.get(id(x))
        if found is None:
            found = keys[id(x)] = _net_key(x)
        return found
    return _per_node(v, "ClusterNetwork", lambda n: sorted(key(x) for x in n.networks or ()))


@fact("cluster", "node_lm_settings", "cluster-wide live-migration setting as each node reports it")
def _c_node_settings(v: ClusterView) -> dict[str, Any]:
    if v.cluster.legacy:
        return _per_node(v, "VirtualMachineResource", lambda n: [
            f"{vm.group}: exclude={';'.join(sorted(vm.setting.exclude))} order={';'.join(vm.setting.order)}"
            for vm in (n.data.vms if n.data and n.data.vms else ())])
    v.setting()
    return _per_node(v, "VirtualMachineResourceType", lambda n: {
        "MigrationExcludeNetworks": ";".join(sorted(n.setting.exclude)) if n.setting else "",
        "MigrationNetworkOrder": ";".join(n.setting.order) if n.setting else ""})


def _host_dict(n: Node) -> dict[str, Any]:
    h = n.host
    if h is None:
        return {}
    return {"VirtualMachineMigrationEnabled": h.migration_enabled, "UseAnyNetworkForMigration": h.use_any_network,
            "VirtualMachineMigrationAuthenticationType": h.authentication,
            "VirtualMachineMigrationPerformanceOption": h.performance_option,
            "MaximumVirtualMachineMigrations": h.max_vm_migrations,
            "MaximumStorageMigrations": h.max_storage_migrations,
            "MigrationNetworks": [f"{m.subnet} (priority {m.priority})" for m in n.migration_networks]}


@fact("cluster", "node_host_settings", "Hyper-V host live-migration settings of each node")
def _c_node_hosts(v: ClusterView) -> dict[str, Any]:
    return _per_node(v, "VMHost", _host_dict)


@fact("cluster", "max_parallel_migrations", "cluster MaximumParallelMigrations")
def _c_maxpar(v: ClusterView) -> int | None:
    return v.cluster.max_parallel_migrations


# ================================================================ node facts

@fact("node", "name", "name")
def _nd_name(v: NodeView) -> str:
    return v.node.name


@fact("node", "state", "cluster node state")
def _nd_state(v: NodeView) -> str | None:
    return v.node.state


def _host(v: NodeView) -> HostSettings:
    v.need("VMHost")
    if v.node.host is None:
        raise Unavailable(Status.ERROR, f"VMHost is empty on {v.node.name} (Get-VMHost always returns the host)")
    return v.node.host


# Hyper-V host settings (Get-VMHost), one fact each.
attribute_facts("node", _host, (
    ("migration_enabled", "live migration enabled (VirtualMachineMigrationEnabled)", "migration_enabled"),
    ("use_any_network", "UseAnyNetworkForMigration", "use_any_network"),
    ("authentication", "migration authentication", "authentication"),
    ("performance_option", "migration performance option", "performance_option"),
    ("max_vm_migrations", "MaximumVirtualMachineMigrations", "max_vm_migrations")))


@fact("node", "performance_option_reported", "migration performance option reported (Windows Server 2012 has none)")
def _nd_perf_reported(v: NodeView) -> bool:
    return _host(v).performance_option is not None


@fact("node", "concurrency", "simultaneous live migrations")
def _nd_concurrency(v: NodeView) -> int | None:
    if v.ctx.cluster.max_parallel_migrations is not None:
        return v.ctx.cluster.max_parallel_migrations
    return _host(v).max_vm_migrations


@fact("node", "migration_networks", "host migration networks (Get-VMMigrationNetwork)", collection="migration_network")
def _nd_mnets(v: NodeView) -> list[MigrationNetworkView]:
    v.need("VMMigrationNetwork")
    return [MigrationNetworkView(v.ctx, m) for m in v.node.migration_networks]


@fact("node", "networks", "cluster networks seen from this node", collection="network")
def _nd_networks(v: NodeView) -> list[NetworkView]:
    if not v.node.collected:
        raise Unavailable(Status.ERROR, f"node {v.node.name} was not collected: {v.node.error}")
    return v.ctx.network_views(v.node)


@fact("node", "interfaces", "this node's cluster network interfaces", collection="interface")
def _nd_ifaces(v: NodeView) -> list[InterfaceView]:
    v.ctx.need("ClusterNetworkInterface")
    return [InterfaceView(v.ctx, i) for i in v.ctx.interfaces_of(v.node.name)]


# ================================================================ interface facts

attribute_facts("interface", lambda v: v.iface, (
    ("name", "name", "name"), ("node", "node", "node"), ("network", "network", "network"),
    ("network_id", "network Id", "network_id"), ("adapter", "adapter", "adapter"), ("address", "address", "address"),
    ("state", "state", "state")))


@fact("interface", "network_class", "class of the interface's network")
def _i_class(v: InterfaceView) -> str | None:
    net = v.ctx.cluster.network_by_id(v.iface.network_id)
    return v.ctx.policy.classify(net) if net else None


# ================================================================ VM facts (2008 R2)

attribute_facts("vm", lambda v: v.vm, (
    ("name", "resource name", "name"), ("group", "group", "group"), ("owner_node", "owner node", "owner_node")))


@fact("vm", "exclude_ids", "MigrationExcludeNetworks")
def _vm_ex(v: VMView) -> list[str]:
    return list(v.vm.setting.exclude)


@fact("vm", "order_ids", "MigrationNetworkOrder")
def _vm_order(v: VMView) -> list[str]:
    return list(v.vm.setting.order)


@fact("vm", "excluded_networks", "networks excluded from live migration")
def _vm_excluded_names(v: VMView) -> list[str]:
    return _names(v, list(v.vm.setting.exclude))


@fact("vm", "ordered_networks", "networks named in MigrationNetworkOrder")
def _vm_ordered_names(v: VMView) -> list[str]:
    return _names(v, list(v.vm.setting.order))


@fact("vm", "matches_majority", "same live-migration setting as most VMs")
def _vm_major(v: VMView) -> bool:
    m = v.ctx.cluster.vm_majority
    return m is not None and m.key() == v.vm.setting.key()


# ================================================================ host migration network facts

attribute_facts("migration_network", lambda v: v.mn, (
    ("subnet", "subnet", "subnet"), ("name", "subnet", "subnet"), ("priority", "priority", "priority")))


@fact("migration_network", "class", "class")
def _mn_class(v: MigrationNetworkView) -> str:
    return v.ctx.policy.classify_subnet(v.mn.network)


# ================================================================ adapters, routes and SMB (LM013-LM016, HOST006-HOST007)

def _usable_ip(text: str) -> Any:
    """An address that can place an interface on a subnet (not link-local, not unspecified)."""
    import ipaddress
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0])
    except ValueError:
        return None
    return None if ip.is_link_local or ip.is_unspecified or ip.is_loopback else ip


class NodeNets:
    """How one node's adapters map to cluster networks (contracts §1).

    ``ClusterNetworkInterface.AdapterId`` = ``NetAdapter.InterfaceGuid`` (braces and case
    ignored), else an IP address of the interface (``SmbClientNetworkInterface.IpAddresses``)
    lying in the network's subnet, or equal to the cluster interface's own address.
    """

    def __init__(self, cluster: Cluster, node: Node, ifaces: list[Interface] | None = None) -> None:
        from scanner.normalize import short_name
        d = node.data
        self.node = node
        self.ifaces = [i for i in cluster.interfaces if short_name(i.node) == short_name(node.name)] \
            if ifaces is None else list(ifaces)
        self.by_guid = {i.adapter_id: i for i in self.ifaces if i.adapter_id}
        self.networks = cluster.networks
        self.adapters = d.adapters if d else ()
        self.clients = d.smb_client_interfaces if d else ()

    def adapter(self, index: int | None = None, alias: str = "") -> Adapter | None:
        for a in self.adapters:
            if (index is not None and a.index == index) or (alias and a.name.casefold() == alias.casefold()):
                return a
        return None

    def client(self, index: int | None = None, alias: str = "") -> SmbClientInterface | None:
        for c in self.clients:
            if (index is not None and c.index == index) or (alias and c.name.casefold() == alias.casefold()):
                return c
        return None

    def network_of_addresses(self, addresses: tuple[str, ...]) -> tuple[Network | None, bool]:
        """(network, known): the cluster network one of ``addresses`` lies in."""
        ips = [ip for ip in (_usable_ip(a) for a in addresses) if ip is not None]
        for i in self.ifaces:
            if any(_usable_ip(a) in ips for a in i.addresses):
                return next((n for n in self.networks if n.id == i.network_id), None), True
        for n in self.networks:
            if any(ip.version == s.version and ip in s for ip in ips for s in n.subnets):
                return n, True
        return None, bool(ips)

    def network_of(self, index: int | None = None, alias: str = "") -> tuple[Network | None, bool]:
        """(network, known) of the local interface with ``index`` or ``alias``.

        ``known`` is False when nothing reported lets the interface be placed; a known
        ``None`` means it is on no cluster network.
        """
        a = self.adapter(index, alias)
        if a is not None and a.guid in self.by_guid:
            nid = self.by_guid[a.guid].network_id
            return next((n for n in self.networks if n.id == nid), None), True
        c = self.client(index if index is not None else (a.index if a else None), alias)
        if c is not None:
            net, known = self.network_of_addresses(c.addresses)
            if known:
                return net, True
        if a is not None and self.by_guid:
            return None, True    # a known adapter whose Guid no cluster interface has
        return None, False

    def adapter_of(self, iface: Interface) -> Adapter | None:
        """The NetAdapter behind a cluster interface: by Guid, else by a shared IP address."""
        if iface.adapter_id:
            for a in self.adapters:
                if a.guid == iface.adapter_id:
                    return a
        ips = [ip for ip in (_usable_ip(x) for x in iface.addresses) if ip is not None]
        for c in self.clients:
            if any(_usable_ip(x) in ips for x in c.addresses):
                return self.adapter(c.index)
        return None


def _node_nets(v: View, node: Node) -> NodeNets:
    key = f"_nodenets/{node.name}"
    hit = v.ctx._cache.get(key)
    if hit is None:
        hit = v.ctx._cache[key] = NodeNets(v.ctx.cluster, node, v.ctx.interfaces_of(node.name))
    return hit


def _node_section(node: Node, section: str, legacy: bool) -> Unavailable | None:
    """Why ``section`` cannot be used on ``node``, or None when it was reported."""
    if not node.collected:
        return Unavailable(Status.ERROR, f"node {node.name} was not collected: {node.error}")
    state = node.section_state(section)
    if state == OK:
        return None
    return unavailable(section, state, node.section_error(section), legacy, f" on {node.name}")


def _settle(found: Any, problems: list[Unavailable], proven: bool) -> Any:
    """A finding that is proven stands; otherwise the first error, else the first skip, is raised."""
    if proven or not problems:
        return found
    errors = [p for p in problems if p.status is Status.ERROR]
    first = (errors or problems)[0]
    # A new exception: raising the listed one would tie it to its traceback, whose frames hold
    # the list (a cycle that keeps every frame's locals until the cycle collector runs).
    raise Unavailable(first.status, first.reason)


@fact("network", "mtu_by_node", "MTU (NetAdapter.MtuSize) of each node's adapter on the network")
def _n_mtu(v: NetworkView) -> dict[str, int | None]:
    v.ctx.need("ClusterNetworkInterface")
    if v.ctx.cluster.section_state("NetAdapter") != OK:
        v.ctx.need("NetAdapter")
    out: dict[str, int | None] = {}
    problems: list[Unavailable] = []
    legacy = v.ctx.cluster.legacy
    for node in v.ctx.cluster.nodes:
        ifaces = [i for i in v.ctx.interfaces_of(node.name) if i.network_id == v.network.id]
        if not ifaces:
            continue
        why = _node_section(node, "NetAdapter", legacy)
        if why is not None:
            problems.append(why)
            continue
        nets = _node_nets(v, node)
        for i in ifaces:
            a = nets.adapter_of(i)
            if a is None:
                problems.append(Unavailable(Status.ERROR, f"no NetAdapter of {node.name} matches its interface "
                                                          f"{i.name or i.adapter} (AdapterId {i.adapter_id or 'none'})"))
            else:
                out[node.name] = a.mtu
    return _settle(out, problems, len({m for m in out.values()}) > 1)  # type: ignore[no-any-return]


@fact("network", "default_route_hosts", "default routes through the network: node, prefix, interface, next hop")
def _n_default_route_hosts(v: NetworkView) -> list[dict[str, str]]:
    if v.ctx.cluster.section_state("DefaultRoute") != OK:
        v.ctx.need("DefaultRoute")
    found: list[dict[str, str]] = []
    problems: list[Unavailable] = []
    legacy = v.ctx.cluster.legacy
    for node in v.ctx.cluster.nodes:
        why = _node_section(node, "DefaultRoute", legacy)
        if why is not None:
            problems.append(why)
            continue
        nets = _node_nets(v, node)
        for r in node.data.default_routes if node.data else ():
            if not r.has_gateway:
                continue
            net, known = nets.network_of(r.index, r.alias)
            if not known:
                problems.append(Unavailable(Status.ERROR, f"the default route of {node.name} via "
                                            f"{r.alias or r.index} cannot be placed on a network (no NetAdapter "
                                            "or SmbClientNetworkInterface reports that interface)"))
            elif net is not None and net.id == v.network.id:
                found.append({"node": node.name, "prefix": r.prefix, "interface": r.alias or str(r.index),
                              "next_hop": r.next_hop})
    return _settle(found, problems, bool(found))  # type: ignore[no-any-return]


@fact("network", "default_route_nodes", "nodes with a default route through an interface on the network")
def _n_default_routes(v: NetworkView) -> list[str]:
    return [f"{r['node']} ({r['prefix']} via {r['next_hop']} on {r['interface']})"
            for r in v.get("default_route_hosts")]


def _node_data(v: NodeView) -> Any:
    if v.node.data is None:
        raise Unavailable(Status.ERROR, f"node {v.node.name} was not collected: {v.node.error}")
    return v.node.data


@fact("node", "smb_migration", "live migration uses SMB (host option, or a Network ATC override)")
def _nd_smb(v: NodeView) -> bool:
    _node_data(v)
    # The ATC override is cluster-wide: any node that reports it speaks for all.
    if any((n.data.atc_performance_option or "").casefold() == "smb" for n in v.ctx.cluster.collected_nodes() if n.data):
        return True
    return (_host(v).performance_option or "").casefold() == "smb"


@fact("node", "lm_bandwidth_limit", "bandwidth limit for SMB live migration (none: not set)")
def _nd_bw(v: NodeView) -> str | None:
    d = _node_data(v)
    c = v.ctx.cluster
    gbps = max((n.data.atc_smb_bandwidth_gbps or 0 for n in c.collected_nodes() if n.data), default=0)
    if gbps > 0:
        return f"Network ATC MaximumSMBMigrationBandwidthInGbps {gbps}"
    state = v.node.section_state("SmbBandwidthLimit")
    if state == OK and d.smb_bandwidth_limit:
        return f"SMB bandwidth limit for LiveMigration {d.smb_bandwidth_limit} bytes/s"
    # The cluster's automatic limit (WS2022+) works through the SMB Bandwidth Limit feature:
    # it does not limit anything where the collector saw that feature is not installed.
    if d.cluster_smb_limit and state != ABSENT:
        return "the cluster sets the SMB bandwidth limit (SetSMBBandwidthLimit = 1)"
    if state in (OK, ABSENT):
        return None
    v.need("SmbBandwidthLimit")
    return None


def _policy_allowed(v: View, net: Network | None) -> bool:
    return net is not None and v.ctx.policy.classify(net) in set(v.ctx.policy.allowed)


def _net_label(v: View, net: Network | None) -> str:
    return f"{net.name} ({v.ctx.policy.classify(net)})" if net is not None else "no cluster network"


@fact("node", "smb_multichannel_problems", "SMB paths live migration could take outside the allowed networks")
def _nd_smb_mc(v: NodeView) -> list[str]:
    from scanner.normalize import match_member, short_name
    d = _node_data(v)
    v.ctx.need("ClusterNetwork", "ClusterNetworkInterface")
    nets = _node_nets(v, v.node)
    problems: list[Unavailable] = []
    findings: list[str] = []
    legacy = v.ctx.cluster.legacy
    # 1. Multichannel constraints: every other node reached only over allowed networks.
    why = _node_section(v.node, "SmbMultichannelConstraint", legacy)
    if why is None:
        others = [n.name for n in v.ctx.cluster.nodes if short_name(n.name) != short_name(v.node.name)]
        bad: list[str] = []
        for other in others:
            rows = [c for c in d.smb_constraints if match_member([c.server], [other])]
            if not rows:
                bad.append(f"no SMB Multichannel constraint for {other}")
            for c in rows:
                net, known = nets.network_of(c.index, c.alias)
                if not known:
                    problems.append(Unavailable(Status.ERROR, f"the constraint to {c.server} names interface "
                                                f"{c.alias or c.index}, which no NetAdapter reports"))
                elif not _policy_allowed(v, net):
                    bad.append(f"constraint to {c.server} allows {c.alias or c.index} on {_net_label(v, net)}")
        if not bad and not problems:
            return []
        findings += bad
    else:
        problems.append(why)
    # 2. Or every interface the SMB client may use is on an allowed network.
    why = _node_section(v.node, "SmbClientNetworkInterface", legacy)
    if why is None:
        bad = []
        for c in d.smb_client_interfaces:
            net, known = nets.network_of_addresses(c.addresses)
            if not known:
                continue    # no usable address: SMB cannot use the interface
            if not _policy_allowed(v, net):
                bad.append(f"SMB client interface {c.name or c.index} on {_net_label(v, net)}")
        if not bad:
            return []
        findings += bad
    else:
        problems.append(why)
    # A failed branch leaves the other unproven: both must have been read to fail.
    return _settle(findings, problems, not problems)  # type: ignore[no-any-return]


SPN_SERVICES = ("cifs", "Microsoft Virtual System Migration Service")


@fact("node", "other_nodes", "the other nodes of the cluster")
def _nd_others(v: NodeView) -> list[str]:
    from scanner.normalize import short_name
    return [n.name for n in v.ctx.cluster.nodes if short_name(n.name) != short_name(v.node.name)]


@fact("node", "lm_adapter_aliases", "names of this node's adapters on allowed networks that carry live migration")
def _nd_lm_aliases(v: NodeView) -> list[str]:
    nets = _node_nets(v, v.node)
    out = []
    for i in nets.ifaces:
        net = v.ctx.cluster.network_by_id(i.network_id)
        a = nets.adapter_of(i)
        if a is not None and a.name and _policy_allowed(v, net) and net is not None and v.ctx.carries(net):
            out.append(a.name)
    return sorted(set(out), key=str.casefold)


@fact("node", "delegation_missing", "constrained delegation entries (SPNs) the computer account lacks")
def _nd_deleg(v: NodeView) -> list[str]:
    from scanner.normalize import short_name
    v.need("ComputerAccountDelegation")
    d = _node_data(v)
    have: set[tuple[str, str]] = set()
    for spn in d.delegation.allowed_to if d.delegation else ():
        service, _, host = spn.partition("/")
        have.add((service.strip().casefold(), short_name(host.split(":", 1)[0])))
    missing = []
    for n in v.ctx.cluster.nodes:
        if short_name(n.name) == short_name(v.node.name):
            continue
        for service in SPN_SERVICES:
            if (service.casefold(), short_name(n.name)) not in have:
                missing.append(f"{service}/{n.name}")
    return missing


@fact("node", "delegation_to_add", "SPNs to add to msDS-AllowedToDelegateTo (short name and FQDN)")
def _nd_deleg_add(v: NodeView) -> list[str]:
    domain = next((n.data.domain for n in v.ctx.cluster.collected_nodes() if n.data and n.data.domain), "")
    out = []
    for spn in v.get("delegation_missing"):
        out.append(spn)
        if domain and "." not in spn.split("/", 1)[1]:
            out.append(f"{spn}.{domain}")
    return out


@fact("node", "credential_guard", "Credential Guard runs (DeviceGuard.SecurityServicesRunning contains 1)")
def _nd_cg(v: NodeView) -> bool:
    v.need("DeviceGuard")
    return bool(_node_data(v).credential_guard)


@fact("node", "credssp_under_credential_guard", "CredSSP migration authentication while Credential Guard runs")
def _nd_credssp_cg(v: NodeView) -> bool:
    if (_host(v).authentication or "").casefold() != "credssp":
        return False
    return bool(v.get("credential_guard"))

"""Remediation actions for a cluster's findings, computed from the site policy.

A rule names its fix (``fix:`` in YAML); this module turns the failing results of one cluster
into actions. Fixes of the live-migration lists are planned per place the setting lives (the
cluster, or one VM resource on 2008 R2): every finding at that place gets the same target value,
so the actions of all findings agree and applying them leaves each rule that passed passing.
Values come from the policy's classes, never from what most nodes or VMs happen to have.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from scanner.actions import (Action, AddDelegation, RemoveDefaultRoute, RemoveMigrationNetwork, SetAtcOverride,
                             SetClusterProperty, SetHost, SetLMList, SetNetworkRole)
from scanner.normalize import Cluster, LMSetting, Network, effective_order, short_name
from scanner.policy import Policy

#: Fixes that need a fact of the failing target (computed by the rule's view): fix -> fact.
FIX_FACTS = {"add_delegation": "delegation_to_add", "remove_default_routes": "default_route_hosts"}
LIST_FIXES = frozenset({"exclude_failing", "include_preferred", "preferred_first", "drop_unknown_ids", "policy_lists"})
#: Classes the built-in rules always exclude (LM001-LM003); any class outside `allowed` is excluded too (LM004).
EXCLUDED_CLASSES = ("iscsi", "management", "guest")
ATC_INTENT_NOTE = ("Network ATC selects the live-migration networks on this cluster and would revert a direct "
                   "change; taking the selection over would leave no preferred network first. Change the "
                   "intents so that ATC leaves this network out (Get-NetIntent, Set-NetIntent).")
ATC_ROLE_NOTE = ("Network ATC selects the live-migration networks on this cluster, and a new role for this "
                 "network would change which network live migration tries first; taking the selection over "
                 "would leave no preferred network first. Change the role together with the intents "
                 "(Get-NetIntent, Set-NetIntent).")
ATC_TAKEOVER = SetAtcOverride(settings=(("EnableLiveMigrationNetworkSelection", False),))


@dataclass(frozen=True, slots=True)
class Finding:
    """What the planner needs of one failing result."""

    fix: str
    vm: str | None = None                     # the VM resource (2008 R2 results judged per VM)
    node: str | None = None
    network_ids: tuple[str, ...] = ()         # the failing networks
    subnets: tuple[str, ...] = ()             # the failing host migration networks
    items: tuple[Any, ...] = ()               # the fact FIX_FACTS names for the fix, as the rule saw it


@dataclass(frozen=True, slots=True)
class Fix:
    """The actions for one finding, and a note when they need saying (ATC) or there are none (why)."""

    actions: tuple[Action, ...] = ()
    note: str = ""
    atc: bool = False                         # the lists are Network ATC's: the actions take them over


@dataclass
class _Place:
    """One place a live-migration setting lives, and what the findings there ask of it."""

    vm: str | None
    group: str | None
    setting: LMSetting                        # what it has now
    base: LMSetting | None = None             # what the target is built on, when not ``setting``
    adds: list[str] = field(default_factory=list)
    fixes: set[str] = field(default_factory=set)
    exclude: tuple[str, ...] = ()
    order: tuple[str, ...] = ()
    takeover: bool = False
    blocked: bool = False                     # ATC owns the lists and taking them over would break LM006
    pinned: bool = False
    role_moves: bool = False                  # the findings' role changes alone reorder today's lists
    held_back: bool = False                   # LM007's policy lists would make this VM worse


def plan(cluster: Cluster, policy: Policy, findings: Sequence[Finding]) -> list[Fix]:
    """One :class:`Fix` per finding, in order."""
    roles = {nid: "None" for f in findings if f.fix == "role_none" for nid in f.network_ids}
    places = _places(cluster, findings)
    after = tuple(dataclasses.replace(n, role=roles[n.id]) if n.id in roles else n for n in cluster.networks)
    for place in places.values():
        _target(cluster, policy, place, after, bool(roles))
        if "policy_lists" in place.fixes and _worse(cluster, policy, place):
            # The policy's lists would take from this VM something that holds today (a preferred
            # network it can use): fix its own findings only, and leave LM007 to the administrator.
            place.fixes.discard("policy_lists")
            place.base, place.held_back = None, True
            _target(cluster, policy, place, after, bool(roles))
    return [_fix(cluster, policy, f, places, roles) for f in findings]


def _key(vm: str | None) -> str:
    return (vm or "").casefold()


def _places(cluster: Cluster, findings: Sequence[Finding]) -> dict[str, _Place]:
    places: dict[str, _Place] = {}
    wanted = {_key(f.vm if cluster.legacy else None) for f in findings if f.fix in LIST_FIXES}
    if any(f.fix == "role_none" for f in findings):   # a role change can move any place's order
        wanted |= {_key(vm.name) for vm in cluster.vms} if cluster.legacy else {""}
    for key in wanted:
        if not key:
            if cluster.setting is not None and not cluster.legacy:
                places[key] = _Place(None, None, cluster.setting)
            continue
        vm = next((v for v in cluster.vms if v.name.casefold() == key), None)
        if vm is not None:
            places[key] = _Place(vm.name, vm.group, vm.setting)
            # LM007: a VM that differs from the others gets the policy's lists, built on the
            # setting most VMs share (which their own findings bring to the policy's lists too).
            if cluster.vm_majority is not None and any(
                    f.fix == "policy_lists" and _key(f.vm) == key for f in findings):
                places[key].base = cluster.vm_majority
    for f in findings:
        place = places.get(_key(f.vm if cluster.legacy else None))
        if place is None or f.fix not in LIST_FIXES:
            continue
        place.fixes.add(f.fix)
        place.adds.extend(i for i in f.network_ids if f.fix == "exclude_failing" and i not in place.adds)
    return places


def _preferred(policy: Policy, n: Network) -> bool:
    return policy.classify(n) in policy.preferred


def must_exclude(cluster: Cluster, policy: Policy, with_preferred: bool = False) -> list[str]:
    """Networks the policy keeps out of live migration (LM001-LM004), except preferred ones."""
    out = []
    for n in cluster.networks:
        cls = policy.classify(n)
        if (cls in EXCLUDED_CLASSES or cls not in policy.allowed) and (with_preferred or cls not in policy.preferred):
            out.append(n.id)
    return out


def _target(cluster: Cluster, policy: Policy, place: _Place, after: tuple[Network, ...], roles_change: bool) -> None:
    """The lists this place should have: the findings' changes on top of what it has now."""
    s, fixes = place.base or place.setting, place.fixes
    full = "policy_lists" in fixes
    place.takeover = place.vm is None and bool(cluster.atc_lm_selection) and bool(fixes)
    known = {n.id for n in cluster.networks}
    exclude, order = list(s.exclude), list(s.order)
    if full or "drop_unknown_ids" in fixes:
        exclude = [i for i in exclude if i in known]
        order = [i for i in order if i in known]
    preferred = [n for n in cluster.networks if _preferred(policy, n)]
    pref_ids = {n.id for n in preferred}
    for i in place.adds + (must_exclude(cluster, policy) if full else []):
        if i not in exclude and i not in pref_ids:
            exclude.append(i)
    if full or "include_preferred" in fixes:
        # Never a network the policy also keeps out (LM001-LM004 would fail for it then).
        keep_out = set(must_exclude(cluster, policy, with_preferred=True))
        up = [n.id for n in preferred if n.state == "Up" and n.id not in keep_out]
        if not any(i not in exclude for i in up):
            # LM009 wants every node Up on each preferred network that carries LM: take the networks
            # every node reaches; others only when no preferred network carries LM yet (LM009 skips).
            reached = [i for i in up if _every_node_up(cluster, i)]
            carrying = any(n.id not in exclude for n in preferred)
            take = set(reached or ([] if carrying else up))
            exclude = [i for i in exclude if i not in take]
    if roles_change:
        today = [n.id for n in effective_order(cluster.networks, s)]
        place.role_moves = today != [n.id for n in effective_order(after, s)]
    if roles_change and not order:
        # With an empty order the cluster-communication network goes last; a new role can change
        # which network that is, so keep today's order explicitly.
        now = [n.id for n in effective_order(cluster.networks, LMSetting(tuple(exclude), ()))]
        if now != [n.id for n in effective_order(after, LMSetting(tuple(exclude), ()))]:
            order, place.pinned = now, True
    if full or place.takeover or "preferred_first" in fixes:
        eff = effective_order(after, LMSetting(tuple(exclude), tuple(order)))
        if eff and not _preferred(policy, eff[0]):
            first = [n.id for n in eff if _preferred(policy, n)]
            if first:
                order = first + [i for i in order if i not in first]
    place.exclude, place.order = tuple(exclude), tuple(order)
    if place.takeover:
        # Today ATC's storage-first order counts as preferred (LM006); once the lists are ours it
        # no longer does. Without a preferred network to put first, taking over would break LM006.
        current = effective_order(cluster.networks, place.setting)
        eff = effective_order(after, LMSetting(place.exclude, place.order))
        if current and not _preferred(policy, current[0]) and policy.classify(current[0]) == "storage" \
                and "storage" in policy.allowed and not (eff and _preferred(policy, eff[0])):
            place.blocked = True
    if place.takeover and (place.exclude, place.order) == (place.setting.exclude, place.setting.order):
        place.takeover = False


def _worse(cluster: Cluster, policy: Policy, place: _Place) -> bool:
    """Whether the target loses LM005 or LM006 for this place where the current setting has it."""
    def lm005(s: LMSetting) -> bool:
        return any(_preferred(policy, n) and n.state == "Up" and n.id not in s.exclude for n in cluster.networks)

    def lm006(s: LMSetting) -> bool:
        eff = effective_order(cluster.networks, s)
        return bool(eff) and _preferred(policy, eff[0])

    target = LMSetting(place.exclude, place.order)
    return any(check(place.setting) and not check(target) for check in (lm005, lm006))


def _every_node_up(cluster: Cluster, network_id: str) -> bool:
    up = {short_name(i.node) for i in cluster.interfaces if i.network_id == network_id and i.state == "Up"}
    return all(short_name(n.name) in up for n in cluster.collected_nodes())


def _reaches(cluster: Cluster, policy: Policy, place: _Place, f: Finding) -> bool:
    """Whether the place's target lists give what the finding asks for."""
    target = LMSetting(place.exclude, place.order)
    if f.fix == "exclude_failing":
        return all(i in target.exclude for i in f.network_ids)
    if f.fix not in ("include_preferred", "preferred_first"):
        return True
    if f.fix == "include_preferred":
        return any(_preferred(policy, n) and n.state == "Up" and n.id not in target.exclude for n in cluster.networks)
    eff = effective_order(cluster.networks, target)
    return bool(eff) and _preferred(policy, eff[0])


def _list_actions(cluster: Cluster, place: _Place, lists: Sequence[str]) -> list[Action]:
    names = {n.id: n.name for n in cluster.networks}
    out: list[Action] = []
    for lst in lists:
        new = place.exclude if lst == "exclude" else place.order
        old = place.setting.exclude if lst == "exclude" else place.setting.order
        if new != old:
            out.append(SetLMList(list=lst, ids=new, names=tuple(names.get(i, f"unknown network {i}") for i in new),
                                 previous=old, vm=place.vm, vm_group=place.group))
    return out


def _fix(cluster: Cluster, policy: Policy, f: Finding, places: dict[str, _Place], roles: dict[str, str]) -> Fix:
    if f.fix in LIST_FIXES:
        place = places.get(_key(f.vm if cluster.legacy else None))
        if place is None:
            return Fix(note="the live-migration setting was not reported, so no change can be computed")
        if place.blocked:
            return Fix(note=ATC_INTENT_NOTE)
        if f.fix == "policy_lists" and place.held_back:
            return Fix(note="the site policy's lists would leave this VM without a preferred network it uses "
                            "today (a preferred network is down or excluded on most VMs): align the VMs by hand")
        if not _reaches(cluster, policy, place, f):
            bad = [n.name for n in cluster.networks if n.id in f.network_ids and _preferred(policy, n)]
            note = (f"the site policy prefers {', '.join(bad)} for live migration and also keeps its class out: "
                    "fix the policy") if bad else ""
            return Fix(note=note)   # no change of the lists makes this hold: the rule's own guidance says why
        if place.takeover:
            return Fix((ATC_TAKEOVER, *_list_actions(cluster, place, ("exclude", "order"))), atc=True)
        # Excluding a network only changes the exclude list; what is tried first depends on both.
        lists = ("exclude",) if f.fix == "exclude_failing" else ("exclude", "order")
        actions = _list_actions(cluster, place, lists)
        return Fix(tuple(actions))
    if f.fix == "role_none":
        if any(p.blocked and p.role_moves for p in places.values()):
            # The lists stay ATC's (taking them over would break LM006), so no order can be pinned.
            return Fix(note=ATC_ROLE_NOTE)
        role_actions: list[Action] = [SetNetworkRole(network_id=n.id, network=n.name, role="None", previous=n.role)
                                 for n in cluster.networks if n.id in f.network_ids]
        takeover = False
        for place in places.values():
            if place.pinned:
                takeover = takeover or place.takeover
                role_actions += _list_actions(cluster, place, ("order",))
        return Fix(((ATC_TAKEOVER,) if takeover else ()) + tuple(role_actions), atc=takeover)
    return _host_fix(cluster, policy, f)


def _node_fix(cluster: Cluster, policy: Policy, f: Finding) -> Fix | None:
    """Fixes of LM016 and HOST006-HOST007 (None: not one of them)."""
    if f.fix == "remove_default_routes":
        return Fix(tuple(RemoveDefaultRoute(node=str(r["node"]), prefix=str(r["prefix"]), interface=str(r["interface"]),
                                            next_hop=str(r.get("next_hop") or "")) for r in f.items))
    if f.fix == "add_delegation":
        return Fix((AddDelegation(node=f.node, spns=tuple(str(x) for x in f.items)),) if f.node and f.items else ())
    if f.fix != "kerberos_auth":
        return None
    if str(policy.hosts.get("authentication") or "").casefold() == "credssp":
        return Fix(note="the site policy asks for CredSSP, which Credential Guard blocks: change the policy to "
                        "Kerberos (hosts.authentication)")
    # Every node that uses CredSSP, so that the nodes keep agreeing (HOST005).
    nodes = sorted((n for n in cluster.collected_nodes() if n.host is not None
                    and (n.host.authentication or "").casefold() == "credssp"),
                   key=lambda n: (not (f.node and short_name(n.name) == short_name(f.node)), n.name.casefold()))
    return Fix(tuple(SetHost(n.name, "VirtualMachineMigrationAuthenticationType", "Kerberos",
                             n.host.authentication if n.host else None) for n in nodes))


def _host_fix(cluster: Cluster, policy: Policy, f: Finding) -> Fix:
    special = _node_fix(cluster, policy, f)
    if special is not None:
        return special
    node = next((n for n in cluster.nodes if f.node and short_name(n.name) == short_name(f.node)), None)
    host = node.host if node is not None else None
    if node is None or host is None:
        return Fix(note="the host settings were not reported, so no change can be computed")
    name = node.name
    if f.fix == "enable_migration":
        return Fix((SetHost(name, "VirtualMachineMigrationEnabled", True, host.migration_enabled),))
    if f.fix == "use_listed_networks":
        return Fix((SetHost(name, "UseAnyNetworkForMigration", False, host.use_any_network),))
    if f.fix == "remove_migration_networks":
        return Fix(tuple(RemoveMigrationNetwork(name, s) for s in f.subnets))
    # host_policy
    actions: list[Action] = []
    atc: list[tuple[str, object]] = []
    auth, perf, most = (policy.hosts.get(k) for k in ("authentication", "performance_option", "max_migrations"))
    by_atc = bool(cluster.atc_perf_selection)
    guarded = node.data is not None and bool(node.data.credential_guard) and str(auth).casefold() == "credssp"
    if auth is not None and not guarded and (host.authentication or "").casefold() != str(auth).casefold():
        actions.append(SetHost(name, "VirtualMachineMigrationAuthenticationType", str(auth), host.authentication))
    if perf and host.performance_option is not None and \
            host.performance_option.casefold() not in {str(p).casefold() for p in perf}:
        if by_atc:
            atc.append(("VirtualMachineMigrationPerformanceOption", str(perf[0])))
        else:
            actions.append(SetHost(name, "VirtualMachineMigrationPerformanceOption", str(perf[0]),
                                   host.performance_option))
    if most is not None:
        if cluster.max_parallel_migrations is not None:
            if cluster.max_parallel_migrations > most:
                actions.append(SetClusterProperty("MaximumParallelMigrations", int(most),
                                                  cluster.max_parallel_migrations))
        elif host.max_vm_migrations is not None and host.max_vm_migrations > most:
            if by_atc:
                atc.append(("MaximumVirtualMachineMigrations", int(most)))
            else:
                actions.append(SetHost(name, "MaximumVirtualMachineMigrations", int(most), host.max_vm_migrations))
    if atc:
        return Fix((SetAtcOverride(tuple(atc)), *actions), atc=True)
    return Fix(tuple(actions))

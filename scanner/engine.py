"""evaluate(rules, clusters, policy) -> results. Pure: no I/O, no clock but the one passed in."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from collections.abc import Callable, Sequence
from typing import Any, cast

import jinja2
from jinja2.exceptions import SecurityError

from scanner import templating
from scanner.conditions import Outcome, show
from scanner import fixps
from scanner.errors import InputError
from scanner.facts import (ClusterView, InterfaceView, MigrationNetworkView, NetworkView, NodeView, Unavailable, View,
                           VMView)
from scanner.loader import Rule
from scanner.model import Result, Severity, Status, Target
from scanner.normalize import Cluster
from scanner.plan import FIX_FACTS, Finding, plan
from scanner.policy import Policy
from scanner.pwsh import quote
from scanner.templating import PsCode, readonly


def evaluate(rules: Sequence[Rule], clusters: Sequence[Cluster], policy: Policy,
             today: _dt.date | None = None) -> list[Result]:
    """Every enabled rule against every cluster, in rule then target order."""
    today = today or _dt.date.today()
    results: list[Result] = []
    for cluster in clusters:
        drafts: list[tuple[Rule, _Draft]] = []
        start = len(results)
        cv = ClusterView(cluster, policy)    # one per cluster: the rules share its facts
        try:
            for rule in rules:
                override = policy.overrides.get(rule.id, {})
                if override.get("enabled", True) is False:
                    continue
                severity = Severity(override.get("severity", rule.severity.value))
                for item in _evaluate_rule(rule, cv):
                    drafts.append((rule, item[2]))
                    results.append(_finish(item, severity, policy, today))
        finally:
            cv.release()
        _remediate(cluster, policy, drafts, results, start)
    return results


_FIXABLE = (Status.FAIL, Status.WAIVED)


def _remediate(cluster: Cluster, policy: Policy, drafts: list[tuple[Rule, _Draft]], results: list[Result],
               start: int) -> None:
    """Attach the actions of every failure with a ``fix``, planned together for the cluster.

    Waived findings get the text of their fix (as if they failed) but no actions: the fix script
    leaves accepted exceptions alone.
    """
    fixable = [k for k, (rule, d) in enumerate(drafts) if rule.fix and results[start + k].status in _FIXABLE]
    if not fixable:
        return
    failing = [k for k in fixable if results[start + k].status is Status.FAIL]
    waived = [k for k in fixable if results[start + k].status is Status.WAIVED]
    for group, keep in ((failing, True), (failing + waived, False)):
        if not group or (not keep and not waived):
            continue
        fixes = plan(cluster, policy, [_finding(*drafts[k]) for k in group])
        for k, fx in zip(group, fixes, strict=True):
            r = results[start + k]
            if keep != (r.status is Status.FAIL):
                continue
            text = fixps.render(fx.actions, fx.note) if fx.actions else \
                "\n".join(x for x in (fixps.ps_comment(fx.note) if fx.note else "", drafts[k][1].remediation) if x)
            results[start + k] = dataclasses.replace(r, remediation=text, actions=fx.actions if keep else ())


def _finding(rule: Rule, d: _Draft) -> Finding:
    assert rule.fix is not None
    return Finding(fix=rule.fix, vm=d.vm, node=d.target.node, network_ids=d.network_ids, subnets=d.subnets,
                   items=d.items)


# ----------------------------------------------------------------------------- one rule

class _Draft:
    __slots__ = ("target", "status", "message", "expected", "actual", "evidence", "remediation", "vm",
                 "network_ids", "subnets", "items")

    def __init__(self, target: Target, status: Status, message: str, expected: str = "", actual: str = "",
                 evidence: dict[str, Any] | None = None, remediation: str = "") -> None:
        self.target = target
        self.status = status
        self.message = message
        self.expected = expected
        self.actual = actual
        self.evidence = evidence or {}
        self.remediation = remediation
        # What a fix needs to know (scanner.plan): the VM resource judged, the failing networks and subnets.
        self.vm: str | None = None
        self.network_ids: tuple[str, ...] = ()
        self.subnets: tuple[str, ...] = ()
        self.items: tuple[Any, ...] = ()        # a fact the fix needs (scanner.plan.FIX_FACTS)


def _evaluate_rule(rule: Rule, cv: ClusterView) -> list[tuple[Rule, Cluster, _Draft]]:
    cluster, policy = cv.cluster, cv.policy
    cluster_target = Target("cluster", cluster.name, None, None)

    def one(status: Status, message: str) -> list[tuple[Rule, Cluster, _Draft]]:
        return [(rule, cluster, _Draft(cluster_target, status, message))]

    if rule.skip_if_unset and all(policy.lookup(p) is None for p in rule.skip_if_unset):
        reason = f"the site policy sets none of {', '.join(rule.skip_if_unset)}: nothing to check"
        if rule.scope == "node":
            return [(rule, cluster, _Draft(target_of(NodeView(cv, n)), Status.SKIP, reason) if n.collected
                     else _uncollected(NodeView(cv, n))) for n in cluster.nodes]
        return one(Status.SKIP, reason)
    if not cluster.collected_nodes():
        return one(Status.ERROR, "no node of this cluster could be collected: "
                   + "; ".join(f"{n.name}: {n.error}" for n in cluster.nodes))
    if rule.requires_all_nodes:
        missing = [n for n in cluster.nodes if not n.collected]
        if missing:
            return one(Status.ERROR, "not every node could be collected, so the nodes cannot be compared: "
                       + "; ".join(f"{n.name}: {n.error}" for n in missing))
    try:
        if rule.skip_when is not None and rule.scope != "node" and rule.skip_when.test(cv):
            return one(Status.SKIP, rule.skip_message)
        drafts = _targets(rule, cv, cluster_target)
    except Unavailable as exc:
        return one(exc.status, exc.reason)
    return [(rule, cluster, d) for d in drafts]


def _targets(rule: Rule, cv: ClusterView, cluster_target: Target) -> list[_Draft]:
    cluster = cv.cluster
    scope = rule.scope
    if rule.per_vm and cluster.legacy:
        return _per_vm(rule, cv)
    if scope == "cluster":
        return [_judge(rule, cv, cv, cluster_target)]
    if scope == "vm" and not cluster.legacy:
        raise Unavailable(Status.SKIP, "from Windows Server 2012 on the live-migration setting is cluster-wide; "
                                       "there are no per-VM settings to compare")
    views = _scope_views(cv, scope)
    drafts: list[_Draft] = []
    any_selected = False
    for view, target in views:
        try:
            if isinstance(view, NodeView) and not view.node.collected:
                any_selected = True
                drafts.append(_uncollected(view))
                continue
            if isinstance(view, NodeView) and rule.skip_when is not None and rule.skip_when.test(view):
                any_selected = True
                drafts.append(_Draft(target, Status.SKIP, rule.skip_message))
                continue
            if rule.select is not None and not rule.select.test(view):
                continue
            any_selected = True
            drafts.append(_judge(rule, view, cv, target))
        except Unavailable as exc:
            any_selected = True
            drafts.append(_Draft(target, exc.status, exc.reason))
    if not any_selected:
        raise Unavailable(Status.SKIP, rule.skip_message if rule.select is not None or not views
                          else f"no {scope} to evaluate")
    return drafts


def _scope_views(cv: ClusterView, scope: str) -> list[tuple[View, Target]]:
    """The targets of a scope with their Target values, made once per cluster view for all rules.

    A view holds nothing of its own but its object (its facts are shared anyway), so the rules can
    share it; the views a fact returns (``cluster.networks``) stay other objects, as before.
    """
    if scope == "network":
        cv.need("ClusterNetwork")
    elif scope == "interface":
        cv.need("ClusterNetworkInterface")
    found: list[tuple[View, Target]] | None = cv.memo.get(scope)
    if found is None:
        cluster = cv.cluster
        views: list[View]
        if scope == "vm":
            views = [VMView(cv, vm) for vm in cluster.vms]
        elif scope == "network":
            views = list(cv.network_views())
        elif scope == "node":
            views = [NodeView(cv, n) for n in cluster.nodes]
        elif scope == "interface":
            views = [InterfaceView(cv, i) for i in cluster.interfaces]
        else:  # pragma: no cover - the loader validates scopes
            raise ValueError(scope)
        found = cv.memo[scope] = [(v, target_of(v)) for v in views]
    return found


def _uncollected(view: NodeView) -> _Draft:
    return _Draft(target_of(view), Status.ERROR, f"node {view.node.name} could not be collected: {view.node.error}")


def _per_vm(rule: Rule, base: ClusterView) -> list[_Draft]:
    """2008 R2: the setting lives on each VM resource, so the rule is judged once per VM."""
    cluster = base.cluster
    if not cluster.vms:
        base.need("VirtualMachineResource")
        raise Unavailable(Status.SKIP, "no virtual machine resources in this cluster")
    drafts = []
    selected_any = False
    for vm in cluster.vms:
        cv = base.for_vm(vm)
        target = cv.memo.get("target")
        if target is None:
            target = cv.memo["target"] = target_of(VMView(cv, vm))
        try:
            if rule.scope == "cluster":
                selected_any = True
                drafts.append(_judge(rule, cv, cv, target))
                continue
            networks = cast("list[tuple[NetworkView, Target]]", _scope_views(cv, "network"))
            nets = [n for n, _ in networks if rule.select is None or rule.select.test(n)]
            if not nets:
                drafts.append(_Draft(target, Status.SKIP, rule.skip_message))
                continue
            selected_any = True
            drafts.append(_judge_group(rule, cv, nets, target))
        except Unavailable as exc:
            selected_any = True
            drafts.append(_Draft(target, exc.status, exc.reason))
    if not selected_any:
        raise Unavailable(Status.SKIP, rule.skip_message)
    return drafts


def target_of(view: View) -> Target:
    if isinstance(view, NetworkView):
        return Target("network", view.network.name or view.network.id, view.network.id or None, None)
    if isinstance(view, NodeView):
        return Target("node", view.node.name, None, view.node.name)
    if isinstance(view, InterfaceView):
        return Target("interface", view.display(), None, view.iface.node or None)
    if isinstance(view, VMView):
        return Target("vm", view.vm.group, view.vm.name, None)
    return Target("cluster", view.display(), None, None)


# ----------------------------------------------------------------------------- judging

def _judge(rule: Rule, view: View, cv: ClusterView, target: Target) -> _Draft:
    out = rule.expect.evaluate(view)
    failing = list(out.failing) if not out.ok else []
    if not out.ok and isinstance(view, NetworkView):
        failing = [view]
    return _draft(rule, view, cv, target, out, failing)


def _judge_group(rule: Rule, cv: ClusterView, nets: list[NetworkView], target: Target) -> _Draft:
    """One VM's verdict over the networks a network rule selects."""
    outs = [(n, rule.expect.evaluate(n)) for n in nets]
    bad = [(n, o) for n, o in outs if not o.ok]
    ok = not bad
    per_net = {n.display(): ("ok" if o.ok else o.actual) for n, o in outs}
    first = outs[0][1]
    expected = f"every selected network: {first.expected}"
    actual = "; ".join(f"{n.display()}: {o.actual}" for n, o in (bad or outs))
    summary = Outcome(ok, expected, actual, {"networks": per_net}, [n for n, _ in bad])
    # The message speaks of the networks (the rule's own templates), one sentence each.
    message = None
    if not ok and rule.message_fail is not None:
        fail = rule.message_fail
        message = "; ".join(_render(fail, _context(n, cv, [n], o, _names(fail))) for n, o in bad)
    elif ok and rule.message_pass is not None:
        done = rule.message_pass
        message = "; ".join(_render(done, _context(n, cv, [], o, _names(done))) for n, o in outs)
    assert cv.vm is not None
    return _draft(rule, VMView(cv, cv.vm), cv, target, summary, [n for n, _ in bad], message)


def _draft(rule: Rule, view: View, cv: ClusterView, target: Target, out: Outcome, failing: list[View],
           message: str | None = None) -> _Draft:
    status = Status.PASS if out.ok else Status.FAIL
    tmpl = rule.message_pass if out.ok else rule.message_fail
    if message is None and tmpl is not None:
        names = _names(tmpl) if out.ok else _names(tmpl) | _names(rule.remediation)
        ctx = _context(view, cv, failing, out, names)
        message = _render(tmpl, ctx)
    elif message is None:
        message = (f"{view.display()}: {out.actual}" if out.ok
                   else f"{view.display()}: expected {out.expected}; found {out.actual}")
        ctx = None
    else:
        ctx = None
    evidence = identity(view)
    evidence.update(out.evidence)
    remediation = ""
    if not out.ok:
        remediation = _render(rule.remediation, ctx if ctx is not None else
                              _context(view, cv, failing, out, _names(rule.remediation)))
    d = _Draft(target, status, message, out.expected, out.actual, evidence, remediation)
    if not out.ok and rule.fix:
        vm = cv.vm or (view.vm if isinstance(view, VMView) else None)
        d.vm = vm.name if vm is not None else None
        d.network_ids = tuple(f.network.id for f in failing if isinstance(f, NetworkView))
        d.subnets = tuple(f.mn.subnet for f in failing if isinstance(f, MigrationNetworkView))
        if rule.fix in FIX_FACTS:
            try:
                d.items = tuple(view.get(FIX_FACTS[rule.fix]))
            except Unavailable:
                d.items = ()
    return d


#: Facts that identify the target, per scope, shown with every result's evidence.
_IDENTITY = {"network": ("name", "id", "class", "role", "state", "metric", "subnets", "carries_lm", "order_position"),
             "node": ("name", "state"),
             "vm": ("name", "group", "owner_node", "excluded_networks", "ordered_networks"),
             "interface": ("name", "node", "network", "state", "address"),
             "cluster": ("name", "excluded_networks", "ordered_networks", "effective_order")}


def identity(view: View) -> dict[str, Any]:
    """Facts that identify the target, shown with every result's evidence."""
    return dict(view.available(_IDENTITY.get(view.scope, ()), "_identity"))


def _setting_target(cv: ClusterView, view: View) -> str:
    """Where the LM setting lives: the VM resource type (2012+) or one VM resource (2008 R2)."""
    vm = cv.vm or (view.vm if isinstance(view, VMView) else None)
    return PsCode(fixps.setting_target(vm.name if vm is not None else None))


def _names(tmpl: jinja2.Template) -> frozenset[str]:
    """The context names a template uses (all of them for a template not compiled by the loader)."""
    names: frozenset[str] | None = getattr(tmpl, "lmscan_names", None)
    return _ALL_NAMES if names is None else names


def _safe(fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except Unavailable:
        return default


def _setting(view: View, cv: ClusterView) -> Any:
    return view.vm.setting if isinstance(view, VMView) else _safe(cv.setting, None)


def _set_param(cv: ClusterView, view: View, name: str) -> Callable[[Any], PsCode]:
    setting_target = _setting_target(cv, view)

    def helper(ids: Any) -> PsCode:
        return PsCode(f"{setting_target} | Set-ClusterParameter -Name {name} "
                      f"-Value {quote(';'.join(str(i) for i in ids))}")
    return helper


def _network_names(cv: ClusterView) -> Callable[[Any], str]:
    names_by_id = {n.id: n.name for n in cv.cluster.networks}

    def network_names(ids: Any) -> str:
        return ", ".join(names_by_id.get(str(i)) or f"unknown network {i}" for i in ids) or "none"
    return network_names


def _majority(cv: ClusterView, part: str) -> list[str]:
    majority = cv.cluster.vm_majority
    return list(getattr(majority, part)) if majority else []


_Values = Callable[[View, ClusterView, list[View], Outcome], Any]

#: What each template name stands for. The values are made read-only (templating.readonly);
#: the helpers (the last four) are functions templates call.
_VALUES: dict[str, _Values] = {
    "target": lambda view, cv, failing, out: view,
    "cluster": lambda view, cv, failing, out: cv,
    "node": lambda view, cv, failing, out: view if isinstance(view, NodeView) else None,
    "network": lambda view, cv, failing, out: view if isinstance(view, NetworkView) else None,
    "vm": lambda view, cv, failing, out: (VMView(cv, cv.vm) if cv.vm is not None
                                          else (view if isinstance(view, VMView) else None)),
    "failing": lambda view, cv, failing, out: failing,
    "failing_ids": lambda view, cv, failing, out: [f.network.id for f in failing if isinstance(f, NetworkView)],
    "exclude": lambda view, cv, failing, out: list(s.exclude) if (s := _setting(view, cv)) else [],
    "order": lambda view, cv, failing, out: list(s.order) if (s := _setting(view, cv)) else [],
    "effective_order_ids": lambda view, cv, failing, out: _safe(lambda: [n.id for n in cv.order()], []),
    "preferred_ids": lambda view, cv, failing, out: [n.id for n in cv.cluster.networks
                                                     if cv.policy.classify(n) in set(cv.policy.preferred)],
    "majority_exclude": lambda view, cv, failing, out: _majority(cv, "exclude"),
    "majority_order": lambda view, cv, failing, out: _majority(cv, "order"),
    "policy": lambda view, cv, failing, out: {"allowed": list(cv.policy.allowed),
                                              "preferred": list(cv.policy.preferred),
                                              "hosts": dict(cv.policy.hosts)},
    "outcome": lambda view, cv, failing, out: out,
}
_HELPERS: dict[str, _Values] = {
    "setting_target": lambda view, cv, failing, out: _setting_target(cv, view),
    "set_exclude": lambda view, cv, failing, out: _set_param(cv, view, "MigrationExcludeNetworks"),
    "set_order": lambda view, cv, failing, out: _set_param(cv, view, "MigrationNetworkOrder"),
    "network_names": lambda view, cv, failing, out: _network_names(cv),
}
_ALL_NAMES = frozenset(_VALUES) | frozenset(_HELPERS)


def _context(view: View, cv: ClusterView, failing: list[View], out: Outcome, names: frozenset[str]) -> dict[str, Any]:
    """Template names -> read-only values, for ``names`` only: most results render one short message."""
    ctx: dict[str, Any] = {}
    for name in names:
        value = _VALUES.get(name)
        if value is not None:
            ctx[name] = readonly(value(view, cv, failing, out))
        else:
            ctx[name] = _HELPERS[name](view, cv, failing, out)
    return ctx


def _render(tmpl: jinja2.Template, ctx: dict[str, Any]) -> str:
    source, line, label = getattr(tmpl, "lmscan_where", ("rule template", 0, "template"))
    stopped = getattr(tmpl, "lmscan_stopped", None)
    if stopped:   # stopped once: not given another budget for every further target
        raise Unavailable(Status.ERROR, stopped)
    try:
        return templating.render(tmpl, ctx).strip()
    except Unavailable as exc:
        return f"(not available: {exc.reason})"
    except templating.TemplateLimitError as exc:
        # A template past its cost limits proves nothing about this target: an error, not a verdict.
        reason = f"{label} template ({source}:{line}) was stopped: {exc}"
        tmpl.lmscan_stopped = reason  # type: ignore[attr-defined]
        raise Unavailable(Status.ERROR, reason) from None
    except SecurityError as exc:
        raise InputError(source, f"{label}: template refused: {exc}", str(line) if line else None) from None
    except jinja2.TemplateError as exc:
        return f"(template error: {exc})"


# ----------------------------------------------------------------------------- finishing

def result_id(rule: str, cluster: str, target: Target) -> str:
    key = target.id or target.name
    return f"{rule}/{cluster}/{target.kind}/{key}"


def _finish(item: tuple[Rule, Cluster, _Draft], severity: Severity, policy: Policy, today: _dt.date) -> Result:
    rule, cluster, d = item
    status, message = d.status, d.message
    if status is Status.FAIL:
        for w in policy.waivers:
            if not w.matches(rule.id, cluster.name, d.target.name, d.target.id):
                continue
            who = ", ".join(x for x in (w.ticket, w.owner) if x)
            if w.expired(today):
                message = f"{message} (waiver at {policy.path}:{w.line} expired on {w.expires})"
                continue
            status = Status.WAIVED
            until = f", until {w.expires}" if w.expires else ""
            message = f"Waived ({who}{until}): {w.reason}. Finding: {message}" if who or until else \
                f"Waived: {w.reason}. Finding: {message}"
            break
    return Result(
        id=result_id(rule.id, cluster.name, d.target), rule=rule.id, title=rule.title, severity=severity,
        status=status, cluster=cluster.name, target=d.target, message=message,
        expected=d.expected, actual=d.actual, evidence=_jsonable(d.evidence), remediation=d.remediation,
    )


_PLAIN = (str, int, bool, float, type(None))


def _jsonable(value: Any) -> Any:
    cls = value.__class__
    if cls in _PLAIN:       # most evidence: the exact types the checks below keep as they are
        return value
    # Plain dicts and lists as below, without a call for each plain item in them.
    if cls is dict:
        return {(k if k.__class__ is str else str(k)): (v if v.__class__ in _PLAIN else _jsonable(v))
                for k, v in value.items()}
    if cls is list or cls is tuple:
        return [v if v.__class__ in _PLAIN else _jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, View):
        return value.display()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return show(value)

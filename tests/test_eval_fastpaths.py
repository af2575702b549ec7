"""Issue 11: what rule evaluation works out once (per rule, policy or cluster) gives what working
it out for every target gave; the template fast path renders what Jinja renders, errors included."""

from __future__ import annotations

import types
from pathlib import Path
from typing import Any

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from scanner import engine, templating
from scanner.conditions import OPERATORS, _predicate, compile_cond
from scanner.facts import ClusterView, NetworkView, Unavailable, VMView
from scanner.loader import TEMPLATE_NAMES
from scanner.model import Status
from scanner.pipeline import load_ruleset, read_clusters
from scanner.policy import load_policy

DEMO = Path(__file__).parents[1] / "scanner" / "demo"


@pytest.fixture(scope="module")
def demo() -> tuple[Any, list[Any]]:
    return load_policy(DEMO / "policy.yaml"), read_clusters([DEMO])


class _Refusing(NetworkView):
    """A network view whose ``state`` cannot be known."""

    def get(self, name: str) -> Any:
        if name == "state":
            raise Unavailable(Status.ERROR, "state could not be read")
        return super().get(name)


def _contexts(demo: tuple[Any, list[Any]]) -> list[dict[str, Any]]:
    policy, clusters = demo
    cv = ClusterView(clusters[0], policy)
    net = cv.network_views()[0]
    base = {"network": templating.readonly(net), "cluster": templating.readonly(cv), "none": None, "t": True,
            "f": False, "n": 3, "x": 2.5, "s": "Up", "items": templating.readonly(["a", "b"]),
            "empty": (), "m": templating.readonly({"name": "mapped", "k": [1, 2]}),
            "big": "x" * (templating.MAX_OUTPUT // 2 + 1)}
    refusing = dict(base, network=templating.readonly(_Refusing(cv, net.network)))
    return [base, refusing, dict(base, t=0, s="down", items=(), n=0)]


FAST = [
    "plain text only",
    "{{ network.name }} is {{ network.state }} on {{ cluster.name }}",
    "{{ none }}|{{ t }}|{{ n }}|{{ x }}|{{ items }}|{{ m }}|{{ network }}|{{ cluster.cluster }}",
    "{{ 'yes' if t else 'no' }}{{ ' and more' if s == 'Up' and n else '' }}",
    "{{ not t }} {{ t and s }} {{ f or 'fallback' }} {{ s != 'UP' }} {{ none == none }}",
    "{{ items | join(', ') }}|{{ items | length }}|{{ empty | count }}|{{ empty | join(', ') or 'none' }}",
    "{{ m.name }} {{ m.k }} {{ cluster.cluster.name }} {{ network.network.id }}",
    "{{ network.missing_fact }}",
    "{{ unknown_name }}",
    "{{ network.__class__ }}",
    "{{ network._view }}",
    "{{ s.upper }}",
    "{{ network.RECORDS | length }}",
    "{{ big }}{{ big }}",
    "{{ big }}{{ network.state }}",
    "{{ 'a' if network.missing_fact else 'b' }}",
    "{{ s in items }} {{ s not in items }} {{ 'a' in items }} {{ n < 2 }} {{ n >= x }} {{ x > n }} {{ n <= 3 }}",
    "{{ 'tail' if t and s not in items else '' }}",
    "{{ none < 2 }}",
]


def _outcome(tmpl: jinja2.Template, ctx: dict[str, Any]) -> tuple[str, str]:
    try:
        return "ok", engine._render(tmpl, ctx)
    except Exception as exc:   # noqa: BLE001 - the outcome compared is whatever happens
        return type(exc).__name__, str(exc)


@pytest.mark.parametrize("text", FAST)
def test_fast_path_renders_what_jinja_renders(text, demo):
    fast = templating.compile_template(text, templating.MESSAGES, set(TEMPLATE_NAMES) | {
        "none", "t", "f", "n", "x", "s", "items", "empty", "m", "big", "unknown_name"})
    slow = templating.compile_template(text, templating.MESSAGES, fast.lmscan_names)
    assert fast.lmscan_fast is not None
    slow.lmscan_fast = None
    for ctx in _contexts(demo):
        if text == "{{ unknown_name }}":
            ctx = {k: v for k, v in ctx.items() if k != "unknown_name"}
        assert _outcome(fast, ctx) == _outcome(slow, ctx)


def test_fast_path_outcomes_are_the_interesting_ones(demo):
    """The comparison above covers text, errors, refusals and the output limit, not only text."""
    names = set(TEMPLATE_NAMES) | {"big"}
    ctx = _contexts(demo)[1]

    def outcome(text: str) -> tuple[str, str]:
        return _outcome(templating.compile_template(text, templating.MESSAGES, names), ctx)

    assert outcome("{{ network.name }}")[0] == "ok"
    assert outcome("{{ network.nope }}")[1].startswith("(template error:")
    assert outcome("{{ network.__class__ }}")[0] == "InputError"
    assert outcome("{{ network.state }}") == ("ok", "(not available: state could not be read)")
    kind, text = outcome("{{ big }}{{ big }}")
    assert kind == "Unavailable" and "was stopped: output longer than" in text


@pytest.mark.parametrize("text", [
    "{% for i in items %}{{ i }}{% endfor %}", "{% if t %}x{% endif %}", "{{ s ~ 'x' }}", "{{ s.upper() }}",
    "{{ items | sort | join(',') }}", "{{ 'a' if t }}", "{{ n + 1 }}", "{{ items[0] }}", "{{ 1 < n < 5 }}",
])
def test_what_the_fast_path_leaves_to_jinja(text):
    tmpl = templating.compile_template(text, templating.MESSAGES, {"items", "t", "s", "n"})
    assert tmpl.lmscan_fast is None


def test_remediation_templates_keep_jinja(demo):
    """Their ``finalize`` makes field text comment-safe: the fast path does not do that."""
    tmpl = templating.compile_template("# {{ network.name }}", templating.REMEDIATION, TEMPLATE_NAMES)
    assert tmpl.lmscan_fast is None


@pytest.mark.parametrize("attr", ["name", "state", "subnets", "network", "RECORDS", "nope", "_view", "__class__",
                                  "__init__", "cluster", "node"])
def test_sandbox_getattr_shortcut_answers_as_the_sandbox_does(attr, demo):
    policy, clusters = demo
    cv = ClusterView(clusters[0], policy)
    for obj in (templating.readonly(cv.network_views()[0]), templating.readonly(cv),
                templating.readonly(cv.cluster.networks[0])):
        env = templating.MESSAGES
        mine = env.getattr(obj, attr)
        theirs = ImmutableSandboxedEnvironment.getattr(env, obj, attr)
        assert type(mine) is type(theirs)
        if isinstance(theirs, jinja2.Undefined):
            assert mine._undefined_name == theirs._undefined_name
        elif isinstance(theirs, (templating.TemplateView, templating.Record)):
            assert str(mine) == str(theirs)
        else:
            assert mine == theirs


def test_every_template_name_has_a_value():
    assert engine._ALL_NAMES == TEMPLATE_NAMES


def test_templates_know_the_names_they_use():
    tmpl = templating.compile_template("{% for n in failing %}{{ n.name }}{% endfor %}{{ network_names(order) }}",
                                       templating.MESSAGES, TEMPLATE_NAMES)
    assert tmpl.lmscan_names == {"failing", "network_names", "order"}


def test_context_builds_the_names_asked_for_with_the_same_values(demo):
    policy, clusters = demo
    cv = ClusterView(clusters[0], policy)
    view = cv.network_views()[0]
    full = engine._context(view, cv, [view], engine.Outcome(False, "e", "a"), engine._ALL_NAMES)
    assert set(full) == TEMPLATE_NAMES
    for name in sorted(TEMPLATE_NAMES - {"set_exclude", "set_order", "network_names"}):
        one = engine._context(view, cv, [view], engine.Outcome(False, "e", "a"), frozenset({name}))
        assert list(one) == [name] and str(one[name]) == str(full[name])
    assert full["set_exclude"](["a"]) == engine._context(view, cv, [], engine.Outcome(True, "", ""),
                                                         frozenset({"set_exclude"}))["set_exclude"](["a"])


VALUES = [None, True, False, 0, 1, 2.0, "", "up", "Up", "UP ", "b", "ß", "SS", [], ["up"], ("Up",), {"a": 1}]


@pytest.mark.parametrize("op, literal", [
    ("eq", True), ("eq", False), ("ne", True), ("ne", False), ("eq", "Up"), ("ne", "up"), ("eq", "ss"),
    ("eq", 1), ("eq", None), ("in", ["Up", "b"]), ("not_in", ["UP", "ss"]), ("in", ["Up", 1, True]),
    ("in", []), ("not_in", ("b",)), ("lt", 2), ("contains", "up"), ("present", True), ("empty", False),
])
def test_predicates_bound_once_agree_with_the_operators(op, literal):
    pred = _predicate(op, literal)
    for actual in VALUES:
        assert pred(actual) == OPERATORS[op].fn(actual, literal), (op, literal, actual)


def test_policy_values_are_resolved_per_policy(tmp_path, demo):
    """A compiled condition evaluated under two policies answers for each (rules are shared)."""
    policy, clusters = demo
    other = tmp_path / "p.yaml"
    other.write_text((DEMO / "policy.yaml").read_text().replace("allowed: [live_migration, cluster, storage]",
                                                                 "allowed: [iscsi]"))
    policy2 = load_policy(other)
    cond = compile_cond({"fact": "class", "in": {"policy": "live_migration.allowed"}}, "network")
    views = ClusterView(clusters[0], policy).network_views()
    views2 = ClusterView(clusters[0], policy2).network_views()
    classes = [v.get("class") for v in views]
    assert [cond.test(v) for v in views] == [c in ("live_migration", "cluster", "storage") for c in classes]
    assert [cond.test(v) for v in views2] == [c == "iscsi" for c in classes]
    assert [cond.evaluate(v).expected for v in views][:1] == ["class: one of [live_migration, cluster, storage]"]
    assert [cond.evaluate(v).expected for v in views2][:1] == ["class: one of [iscsi]"]
    assert [cond.test(v) for v in views] == [c in ("live_migration", "cluster", "storage") for c in classes]


def test_views_share_facts_per_cluster_and_setting_but_stay_distinct(demo):
    policy, clusters = demo
    legacy = next(c for c in clusters if c.legacy and c.vms)
    cv = ClusterView(legacy, policy)
    a, b = cv.network_views()[0], cv.network_views()[0]
    assert a is not b and a._cache is b._cache
    assert templating.readonly(a) != templating.readonly(b)      # templates still tell views apart
    assert a.get("carries_lm") is b._cache["carries_lm"]
    first = next(vm for vm in legacy.vms if any(x.setting == vm.setting for x in legacy.vms if x is not vm))
    vm_cv = cv.for_vm(first)
    assert vm_cv is cv.for_vm(first) and vm_cv.vm is first
    assert vm_cv.network_views()[0]._cache is not a._cache        # a VM's setting, not the cluster's
    same = [vm for vm in legacy.vms if vm.setting == first.setting and vm is not first]
    other = [vm for vm in legacy.vms if vm.setting != first.setting]
    assert same and other
    assert cv.for_vm(same[0]).network_views()[0]._cache is vm_cv.network_views()[0]._cache
    assert cv.for_vm(other[0]).network_views()[0]._cache is not vm_cv.network_views()[0]._cache
    assert cv.for_vm(same[0]).order() is vm_cv.order()
    assert VMView(vm_cv, first)._cache is not VMView(cv, first)._cache
    assert VMView(vm_cv, first)._cache is not VMView(vm_cv, same[0])._cache
    fresh = ClusterView(legacy, policy).network_views()[0]
    assert fresh._cache is not a._cache


def test_evaluating_one_cluster_at_a_time_gives_the_same_results():
    """The parallel scan evaluates cluster by cluster; caches kept on rules must not leak between."""
    ruleset = load_ruleset(DEMO / "policy.yaml")
    clusters = read_clusters([DEMO])
    whole = engine.evaluate(ruleset.rules, clusters, ruleset.policy, today=__import__("datetime").date(2026, 1, 1))
    ruleset = load_ruleset(DEMO / "policy.yaml")
    parts = [r for c in clusters
             for r in engine.evaluate(ruleset.rules, [c], ruleset.policy, today=__import__("datetime").date(2026, 1, 1))]
    assert parts == whole
    assert isinstance(whole[0].evidence, dict) and not isinstance(whole[0].evidence, types.MappingProxyType)


def test_evaluation_leaves_nothing_for_the_cycle_collector():
    """A cluster's views are freed as soon as it is evaluated (a large fleet would otherwise keep the
    collector busy and its memory up); exceptions that stopped a fact take no frames along."""
    import datetime as dt
    import gc

    ruleset = load_ruleset(DEMO / "policy.yaml")
    clusters = read_clusters([DEMO])
    engine.evaluate(ruleset.rules, clusters, ruleset.policy, today=dt.date(2026, 1, 1))   # lazy imports
    was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        results = engine.evaluate(ruleset.rules, clusters, ruleset.policy, today=dt.date(2026, 1, 1))
        assert gc.collect() == 0
    finally:
        if was:
            gc.enable()
    assert {r.status for r in results} >= {Status.PASS, Status.FAIL, Status.SKIP, Status.ERROR}


def _fact_or_why(view: Any, name: str) -> Any:
    try:
        return ("value", str(view.get(name)))
    except Unavailable as exc:
        return ("unavailable", exc.status, exc.reason)


def test_facts_shared_between_nodes_and_settings_are_the_same_as_unshared(demo):
    """Every network fact a node's view or a VM's view takes from a shared cache is what a view of
    its own computes: only PER_NODE_FACTS depend on the node, and only the setting on the VM."""
    from scanner.facts import FACTS, NodeNetworkView, NodeView

    policy, clusters = demo
    for cluster in clusters:
        cv = ClusterView(cluster, policy)
        for node in cluster.nodes:
            if not node.collected:
                continue
            shared = NodeView(cv, node)
            try:
                seen = shared.get("networks")
            except Unavailable:
                continue
            assert seen and all(isinstance(v, NodeNetworkView) for v in seen)
            for warm in cv.network_views():       # the network's own facts first: the node views reuse them
                for name in FACTS["network"]:
                    _fact_or_why(warm, name)
            for view in seen:
                alone = NetworkView(ClusterView(cluster, policy), view.network, node)
                for name in FACTS["network"]:
                    assert _fact_or_why(view, name) == _fact_or_why(alone, name), (cluster.name, node.name, name)
        for vm in cluster.vms:
            for view in cv.for_vm(vm).network_views():
                alone = NetworkView(ClusterView(cluster, policy, vm), view.network)
                for name in FACTS["network"]:
                    assert _fact_or_why(view, name) == _fact_or_why(alone, name), (cluster.name, vm.name, name)

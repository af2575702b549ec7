"""The rule expression language: a table of operators and the quantifiers over collections.

A condition is compiled once, when its rule pack loads (unknown facts, operators, bad regexes
and bad subnets stop the load), and evaluated against a fact view. Each operator also says what
it expected and what it found, which becomes the result's evidence.

Forms (YAML):
    {fact: NAME, OP: VALUE}                        one fact compared with VALUE
    {all: [COND, ...]} / {any: [COND, ...]} / {not: COND}
    {each: COLLECTION, where: COND, holds: COND}   every item (of those matching where) satisfies holds
    {exists: COLLECTION, where: COND}              at least one item matches where
    {count: COLLECTION, where: COND, OP: N}        number of matching items compared with N
VALUE is a literal or {policy: live_migration.allowed}; a policy value the site did not set
makes the comparison "not checked" (it holds).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from scanner.facts import FACTS, View
from scanner.policy import POLICY_REFS


class ConditionError(ValueError):
    """A condition is malformed; ``path`` locates it inside the rule."""

    def __init__(self, path: Sequence[Any], message: str) -> None:
        super().__init__(message)
        self.path = tuple(path)


@dataclass
class Outcome:
    """What evaluating a condition found."""

    ok: bool
    expected: str
    actual: str
    evidence: dict[str, Any] = field(default_factory=dict)
    failing: list[View] = field(default_factory=list)


def show(value: Any) -> str:
    if value.__class__ is str:
        return value     # what str() below gives, first: most facts are text
    if value is None:
        return "not set"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v) for v in value) + "]" if value else "none"
    if isinstance(value, Mapping):
        return "; ".join(f"{k}: {show(v)}" for k, v in value.items())
    return str(value)


def _fold(x: Any) -> Any:
    return x.casefold() if isinstance(x, str) else x


def _eq(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b or (a is not None and b is not None and bool(a) == bool(b) and type(a) is type(b))
    return bool(_fold(a) == _fold(b))


def _in(a: Any, b: Any) -> bool:
    return any(_eq(a, x) for x in (b if isinstance(b, (list, tuple)) else [b]))


def _cmp(fn: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def op(a: Any, b: Any) -> bool:
        if a is None or isinstance(a, bool):
            return False
        try:
            return fn(a, b)
        except TypeError:
            return False
    return op


def _nets(values: Any) -> list[Any]:
    out = []
    for x in values if isinstance(values, (list, tuple)) else [values]:
        try:
            out.append(ipaddress.ip_network(str(x), strict=False))
        except ValueError:
            pass
    return out


def _within(a: Any, b: Any) -> bool:
    inner, outer = _nets(a), _nets(b)
    return bool(inner) and all(any(i.version == o.version and i.subnet_of(o) for o in outer) for i in inner)


def _same(a: Any, b: Any) -> bool:
    vals = list(a.values()) if isinstance(a, Mapping) else list(a or [])
    same = all(x == vals[0] for x in vals)
    return same if b else not same


@dataclass(frozen=True)
class Operator:
    fn: Callable[[Any, Any], bool]
    phrase: str
    value_type: str = "any"    # any | number | list | regex | subnets | bool


OPERATORS: dict[str, Operator] = {
    "eq": Operator(_eq, "{v}"),
    "ne": Operator(lambda a, b: not _eq(a, b), "not {v}"),
    "in": Operator(_in, "one of {v}", "list"),
    "not_in": Operator(lambda a, b: not _in(a, b), "none of {v}", "list"),
    "lt": Operator(_cmp(lambda a, b: a < b), "less than {v}", "number"),
    "le": Operator(_cmp(lambda a, b: a <= b), "at most {v}", "number"),
    "gt": Operator(_cmp(lambda a, b: a > b), "more than {v}", "number"),
    "ge": Operator(_cmp(lambda a, b: a >= b), "at least {v}", "number"),
    "matches": Operator(lambda a, b: a is not None and b.search(str(a)) is not None, "matching /{v}/", "regex"),
    "not_matches": Operator(lambda a, b: a is None or b.search(str(a)) is None, "not matching /{v}/", "regex"),
    "within": Operator(_within, "inside {v}", "subnets"),
    "contains": Operator(lambda a, b: isinstance(a, (list, tuple)) and _in(b, a), "containing {v}"),
    "empty": Operator(lambda a, b: (not a) == b, "{empty}", "bool"),
    "present": Operator(lambda a, b: (a is not None) == b, "{present}", "bool"),
    "same": Operator(_same, "{same}", "bool"),
}
CMP_OPS = ("eq", "ne", "lt", "le", "gt", "ge")


class Cond:
    def describe(self, policy: Any = None) -> str:
        """What the condition asks, in words; policy values resolved when ``policy`` is given."""
        raise NotImplementedError

    def evaluate(self, view: View) -> Outcome:
        """Verdict with what was expected and found (for a result's evidence)."""
        raise NotImplementedError

    def test(self, view: View) -> bool:
        """Verdict only: what selections and filters need, without building any text."""
        return self.evaluate(view).ok



@dataclass
class PolicyRef:
    path: str


def _predicate(op: str, value: Any) -> Callable[[Any], bool]:
    """``OPERATORS[op].fn`` with its value bound, specialised where a literal allows.

    The special cases are exactly :func:`_eq` and :func:`_in` for those values: a bool equals
    only itself, and a string (never a bool) equals a string case-insensitively and nothing
    else that is not a string.
    """
    fn = OPERATORS[op].fn
    if op in ("eq", "ne") and isinstance(value, bool):
        want = value
        if op == "eq":
            return lambda a: a is want
        return lambda a: a is not want
    if op in ("eq", "ne") and isinstance(value, str):
        folded = value.casefold()

        def eq(a: Any) -> bool:
            if isinstance(a, str):
                return a.casefold() == folded
            return _eq(a, value)
        return eq if op == "eq" else lambda a: not eq(a)
    if op in ("in", "not_in") and isinstance(value, (list, tuple)) and all(isinstance(x, str) for x in value):
        members = frozenset(x.casefold() for x in value)

        def isin(a: Any) -> bool:
            if isinstance(a, str):
                return a.casefold() in members
            return _in(a, value)
        return isin if op == "in" else lambda a: not isin(a)
    return lambda a: fn(a, value)


@dataclass
class Leaf(Cond):
    fact: str
    label: str
    op: str
    value: Any

    def __post_init__(self) -> None:
        # What evaluating needs that depends only on the rule (or on the rule and the policy):
        # worked out once, not for each of the fleet's targets.
        self._ref = self.value.path if isinstance(self.value, PolicyRef) else None
        self._fixed = None if self._ref is not None else self._bind(self.value)
        self._by_policy: tuple[Any, tuple[Callable[[Any], bool], str] | None] | None = None

    def _bind(self, value: Any) -> tuple[Callable[[Any], bool], str]:
        """The predicate and the expected text for a resolved ``value``."""
        return _predicate(self.op, value), f"{self.label}: {self._phrase(value)}"

    def _bound(self, view: View) -> tuple[Callable[[Any], bool], str] | None:
        """Predicate and expected text here; None when the policy value is not set (not checked)."""
        if self._ref is None:
            return self._fixed
        policy = view.ctx.policy
        hit = self._by_policy
        if hit is None or hit[0] is not policy:
            resolved = policy.lookup(self._ref)
            hit = self._by_policy = (policy, None if resolved is None else self._bind(resolved))
        return hit[1]

    def _value(self, view: View) -> tuple[Any, bool]:
        if isinstance(self.value, PolicyRef):
            resolved = view.ctx.policy.lookup(self.value.path)
            return resolved, resolved is not None
        return self.value, True

    def _phrase(self, value: Any) -> str:
        op = OPERATORS[self.op]
        if op.value_type == "regex":
            shown = value.pattern
        elif isinstance(self.value, PolicyRef) and value is None:
            shown = f"policy {self.value.path}"
        else:
            shown = show(value)
        return op.phrase.format(v=shown, empty="empty" if value else "not empty",
                                present="set" if value else "not set",
                                same="the same on every node" if value else "different")

    def describe(self, policy: Any = None) -> str:
        if isinstance(self.value, PolicyRef):
            value = policy.lookup(self.value.path) if policy is not None else None
            return f"{self.label}: {self._phrase(value)}"
        return f"{self.label}: {self._phrase(self.value)}"

    def test(self, view: View) -> bool:
        bound = self._bound(view)
        return bound is None or bound[0](view.get(self.fact))

    def evaluate(self, view: View) -> Outcome:
        actual = view.get(self.fact)
        if self.op == "same" and isinstance(actual, Mapping):
            value, _ = self._value(view)
            return self._compare_nodes(actual, value)
        bound = self._bound(view)
        evidence = {self.fact: _plain(actual)}
        if bound is None:
            return Outcome(True, f"{self.label}: not checked (policy {self.value.path} is not set)",
                           f"{self.label}: {show(actual)}", evidence)
        return Outcome(bound[0](actual), bound[1], f"{self.label}: {show(actual)}", evidence)


    def _compare_nodes(self, per_node: Mapping[str, Any], want_same: Any) -> Outcome:
        """``same`` over a per-node mapping: say which settings differ and on which nodes."""
        diffs = differences(per_node)
        ok = OPERATORS["same"].fn(per_node, want_same)
        if not diffs:
            actual = f"{self.label}: the same on all {len(per_node)} nodes"
        else:
            actual = "; ".join(("" if key == "value" else f"{key}: ") + " / ".join(_group_text(val, nodes, groups[0][0]) for val, nodes in groups)
                               for key, groups in diffs.items())
        evidence = {self.fact: {k: {show(val): nodes for val, nodes in g} for k, g in diffs.items()}
                    if diffs else "the same on every node"}
        return Outcome(ok, f"{self.label}: {self._phrase(want_same)}", actual, evidence)


def _group_text(value: Any, nodes: list[str], majority: Any) -> str:
    """``yes on HV03``; for lists, what a node has more or less than most nodes."""
    where = ", ".join(nodes)
    if isinstance(value, list) and value is majority:
        return f"{where} agree"
    if isinstance(value, list) and isinstance(majority, list):
        extra = [x for x in value if x not in majority]
        missing = [x for x in majority if x not in value]
        parts = [f"+{show(x)}" for x in extra] + [f"-{show(x)}" for x in missing]
        return f"{where}: {', '.join(parts) or 'same items, other order'}"
    return f"{show(value)} on {where}"


def differences(per_node: Mapping[str, Any]) -> dict[str, list[tuple[Any, list[str]]]]:
    """For node -> value (or node -> {setting: value}): each setting whose value differs, with
    the nodes that have each value (most common value first)."""
    flat: dict[str, dict[str, Any]] = {}
    for node, value in per_node.items():
        items = value.items() if isinstance(value, Mapping) else [("value", value)]
        for key, val in items:
            flat.setdefault(str(key), {})[node] = val
    out: dict[str, list[tuple[Any, list[str]]]] = {}
    for key, by_node in flat.items():
        groups: list[tuple[Any, list[str]]] = []
        for node in per_node:
            val = by_node.get(node)
            for seen, nodes in groups:
                if seen == val:
                    nodes.append(node)
                    break
            else:
                groups.append((val, [node]))
        if len(groups) > 1:
            out[key] = sorted(groups, key=lambda g: -len(g[1]))
    return out


_SCALARS = (str, int, bool, float, type(None))


def _plain(value: Any) -> Any:
    if value.__class__ in _SCALARS:      # as the last line would return it, without the ABC check
        return value
    if isinstance(value, View):
        return value.display()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    return value


@dataclass
class Combine(Cond):
    kind: str          # all | any
    parts: list[Cond]

    def describe(self, policy: Any = None) -> str:
        return f" {'and' if self.kind == 'all' else 'or'} ".join(p.describe(policy) for p in self.parts)

    def test(self, view: View) -> bool:
        if self.kind == "all":
            return all(p.test(view) for p in self.parts)
        return any(p.test(view) for p in self.parts)

    def evaluate(self, view: View) -> Outcome:
        outs = [p.evaluate(view) for p in self.parts]
        ok = all(o.ok for o in outs) if self.kind == "all" else any(o.ok for o in outs)
        evidence: dict[str, Any] = {}
        failing: list[View] = []
        for o in outs:
            evidence.update(o.evidence)
            failing.extend(o.failing)
        shown = [o for o in outs if not o.ok] if (not ok and self.kind == "all") else outs
        joiner = "; " if self.kind == "all" else " / "
        return Outcome(ok, f" {'and' if self.kind == 'all' else 'or'} ".join(o.expected for o in outs),
                       joiner.join(o.actual for o in shown), evidence, failing)


@dataclass
class Not(Cond):
    part: Cond

    def describe(self, policy: Any = None) -> str:
        return f"not ({self.part.describe(policy)})"

    def test(self, view: View) -> bool:
        return not self.part.test(view)

    def evaluate(self, view: View) -> Outcome:
        o = self.part.evaluate(view)
        return Outcome(not o.ok, f"not ({o.expected})", o.actual, o.evidence)


@dataclass
class Quant(Cond):
    kind: str               # each | exists | count
    collection: str
    label: str
    where: Cond | None
    holds: Cond | None
    op: str | None = None
    number: int | None = None

    def __post_init__(self) -> None:
        self._description: tuple[Any, str] | None = None

    def _expected(self, policy: Any) -> str:
        """``describe(policy)``, worked out once per policy: it is the same for every target."""
        hit = self._description
        if hit is None or hit[0] is not policy:
            hit = self._description = (policy, self.describe(policy))
        return hit[1]

    def _items(self, view: View) -> list[View]:
        items = view.get(self.collection)
        if self.where is None:
            return list(items)
        where = self.where
        return [i for i in items if where.test(i)]

    def _what(self, policy: Any = None) -> str:
        return f"{self.label} where {self.where.describe(policy)}" if self.where else self.label

    def describe(self, policy: Any = None) -> str:
        if self.kind == "each":
            return f"every {self._what(policy)}: {self.holds.describe(policy) if self.holds else ''}"
        if self.kind == "exists":
            return f"at least one {self._what(policy)}"
        return f"number of {self._what(policy)}: {OPERATORS[self.op or 'eq'].phrase.format(v=self.number)}"

    def test(self, view: View) -> bool:
        items = self._items(view)
        if self.kind == "exists":
            return bool(items)
        if self.kind == "count":
            return bool(OPERATORS[self.op or "eq"].fn(len(items), self.number))
        holds = self.holds
        assert holds is not None
        return all(holds.test(i) for i in items)

    def evaluate(self, view: View) -> Outcome:
        items = self._items(view)
        names = [i.display() for i in items]
        evidence: dict[str, Any] = {self.collection: names}
        policy = view.ctx.policy
        if self.kind == "exists":
            return Outcome(bool(items), self._expected(policy),
                           f"{len(items)} found" + (f": {', '.join(names)}" if items else ""), evidence)
        if self.kind == "count":
            assert self.op is not None
            ok = OPERATORS[self.op].fn(len(items), self.number)
            return Outcome(ok, self._expected(policy), f"{len(items)}" + (f" ({', '.join(names)})" if items else ""),
                           evidence)
        assert self.holds is not None
        holds = self.holds
        bad = [(item, holds.evaluate(item)) for item in items if not holds.test(item)]
        expected = self._expected(policy)
        if bad:
            evidence["failing"] = {i.display(): o.actual for i, o in bad}
            actual = "; ".join(f"{i.display()}: {o.actual}" for i, o in bad)
        else:
            actual = f"all {len(items)} hold" if items else f"no {self.label} to check"
        return Outcome(not bad, expected, actual, evidence, [i for i, _ in bad])


# ----------------------------------------------------------------------------- compiling

def compile_regex(pattern: str) -> Any:
    """A case-insensitive RE2 regex: linear in the text, so no pattern can hang a scan (ReDoS).

    RE2 refuses what needs backtracking (backreferences, lookaround); that is a ``ValueError``
    with RE2's reason, raised when the pack loads.
    """
    import re2

    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False      # RE2 would also print the error on stderr
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        why = exc.args[0] if exc.args else "invalid"
        why = why.decode("utf-8", "replace") if isinstance(why, bytes) else str(why)
        raise ValueError(why if len(why) <= 120 else why[:117] + "...") from None


_COMBINATORS = ("all", "any", "not", "each", "exists", "count", "fact")


def compile_cond(data: Any, scope: str, path: tuple[Any, ...] = ()) -> Cond:
    """Compile a condition for facts of ``scope``; raise :class:`ConditionError` on anything wrong."""
    if not isinstance(data, Mapping):
        raise ConditionError(path, f"a condition must be a mapping, found {type(data).__name__}")
    keys = set(data)
    if "all" in keys or "any" in keys:
        kind = "all" if "all" in keys else "any"
        _only(data, {kind}, path)
        parts = data[kind]
        if not isinstance(parts, list) or not parts:
            raise ConditionError(path + (kind,), f"'{kind}' takes a non-empty list of conditions")
        return Combine(kind, [compile_cond(p, scope, path + (kind, i)) for i, p in enumerate(parts)])
    if "not" in keys:
        _only(data, {"not"}, path)
        return Not(compile_cond(data["not"], scope, path + ("not",)))
    for kind in ("each", "exists", "count"):
        if kind in keys:
            return _compile_quant(data, kind, scope, path)
    if "fact" in keys:
        return _compile_leaf(data, scope, path)
    raise ConditionError(path, f"unknown condition {sorted(map(str, keys))}: a condition starts with one of "
                               f"{', '.join(_COMBINATORS)}")


def _only(data: Mapping[str, Any], allowed: set[str], path: tuple[Any, ...]) -> None:
    extra = sorted(set(map(str, data)) - allowed)
    if extra:
        raise ConditionError(path + (extra[0],), f"unexpected key '{extra[0]}' here (allowed: {', '.join(sorted(allowed))})")


def _fact(scope: str, name: Any, path: tuple[Any, ...]) -> Any:
    facts = FACTS[scope]
    if not isinstance(name, str) or name not in facts:
        raise ConditionError(path, f"unknown fact {name!r} for scope {scope} (known: {', '.join(sorted(facts))})")
    return facts[name]


def _compile_quant(data: Mapping[str, Any], kind: str, scope: str, path: tuple[Any, ...]) -> Cond:
    allowed = {kind, "where"} | ({"holds"} if kind == "each" else set()) | (set(CMP_OPS) if kind == "count" else set())
    _only(data, allowed, path)
    f = _fact(scope, data[kind], path + (kind,))
    if f.collection is None:
        raise ConditionError(path + (kind,), f"fact '{f.name}' is not a collection; "
                                             f"'{kind}' needs one of: "
                                             f"{', '.join(n for n, x in FACTS[scope].items() if x.collection)}")
    item_scope = f.collection
    where = compile_cond(data["where"], item_scope, path + ("where",)) if "where" in data else None
    holds = None
    op = number = None
    if kind == "each":
        if "holds" not in data:
            raise ConditionError(path, "'each' needs 'holds': the condition every item must satisfy")
        holds = compile_cond(data["holds"], item_scope, path + ("holds",))
    if kind == "count":
        ops = [k for k in data if k in CMP_OPS]
        if len(ops) != 1:
            raise ConditionError(path, f"'count' needs exactly one comparison ({', '.join(CMP_OPS)})")
        op = ops[0]
        number = data[op]
        if isinstance(number, bool) or not isinstance(number, int):
            raise ConditionError(path + (op,), f"'count' compares with a whole number, found {number!r}")
    return Quant(kind, f.name, f.label, where, holds, op, number)


def _compile_leaf(data: Mapping[str, Any], scope: str, path: tuple[Any, ...]) -> Cond:
    f = _fact(scope, data["fact"], path + ("fact",))
    ops = [k for k in data if k != "fact"]
    if len(ops) != 1:
        raise ConditionError(path, f"a fact condition needs exactly one operator; found {ops or 'none'} "
                                   f"(operators: {', '.join(OPERATORS)})")
    op = ops[0]
    if op not in OPERATORS:
        raise ConditionError(path + (op,), f"unknown operator '{op}' (operators: {', '.join(OPERATORS)})")
    raw = data[op]
    value = _compile_value(OPERATORS[op], raw, path + (op,))
    return Leaf(f.name, f.label, op, value)


def _compile_value(op: Operator, raw: Any, path: tuple[Any, ...]) -> Any:
    if isinstance(raw, Mapping):
        if set(raw) != {"policy"}:
            raise ConditionError(path, "a value is a literal or {policy: <name>}")
        ref = raw["policy"]
        if ref not in POLICY_REFS:
            raise ConditionError(path + ("policy",), f"unknown policy value {ref!r} (known: {', '.join(POLICY_REFS)})")
        return PolicyRef(ref)
    t = op.value_type
    if t == "regex":
        if not isinstance(raw, str):
            raise ConditionError(path, "a regex must be a string")
        try:
            return compile_regex(raw)
        except ValueError as exc:
            shown = raw if len(raw) <= 80 else raw[:77] + "..."
            raise ConditionError(path, f"bad regex {shown!r}: {exc} (regexes are RE2 syntax, matched in linear "
                                       "time: no backreferences or lookaround)") from None
    if t == "number" and (isinstance(raw, bool) or not isinstance(raw, (int, float))):
        raise ConditionError(path, f"expected a number, found {raw!r}")
    if t == "list" and not isinstance(raw, list):
        raise ConditionError(path, f"expected a list, found {raw!r}")
    if t == "bool" and not isinstance(raw, bool):
        raise ConditionError(path, f"expected true or false, found {raw!r}")
    if t == "subnets":
        items = raw if isinstance(raw, list) else [raw]
        for i, s in enumerate(items):
            try:
                ipaddress.ip_network(str(s), strict=True)
            except ValueError as exc:
                raise ConditionError(path + ((i,) if isinstance(raw, list) else ()), f"invalid subnet {s!r}: {exc}") from None
    return raw


#: Facts whose value is a network class (from the site policy).
CLASS_FACTS = frozenset({"class", "network_class", "first_network_class"})


def classes_named(cond: Cond | None) -> set[str]:
    """Class names a condition compares a class fact with (``{fact: class, eq: iscsi}`` names iscsi)."""
    out: set[str] = set()
    if isinstance(cond, Leaf):
        if cond.fact in CLASS_FACTS and cond.op in ("eq", "ne", "in", "not_in") and not isinstance(cond.value,
                                                                                                     PolicyRef):
            values = cond.value if isinstance(cond.value, (list, tuple)) else [cond.value]
            out.update(str(v).strip().casefold() for v in values if isinstance(v, str))
    elif isinstance(cond, Combine):
        for part in cond.parts:
            out |= classes_named(part)
    elif isinstance(cond, Not):
        out |= classes_named(cond.part)
    elif isinstance(cond, Quant):
        out |= classes_named(cond.where) | classes_named(cond.holds)
    return out

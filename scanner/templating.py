"""Message and remediation templates: sandboxed, read-only, bounded in cost, checked when loaded.

A rule pack is code written by someone else. Its templates run in Jinja's immutable sandbox and
see only read-only values (facts through :class:`TemplateView`, tuples, mapping proxies; never
the live policy or model objects). What a template may cost is bounded: loop iterations and calls
(:data:`MAX_STEPS`), time (:data:`MAX_SECONDS`), the size of any string or list it builds
(:data:`MAX_SIZE`) and of its output (:data:`MAX_OUTPUT`). What can be refused when the pack
loads is refused then (``{% include %}``, unknown filters and tests, recursive macros, method
calls other than a few harmless ones, constant expressions over the size limit); the rest stops
the render with :class:`TemplateLimitError`.

Remediation templates are PowerShell. Field text there goes through :mod:`scanner.pwsh`: every
``{{ value }}`` is made comment-safe unless it is code a helper built (:class:`PsCode`, e.g.
``| psq`` or ``set_exclude(...)``), and a value in a code position of the template must be one
of those (checked at load by :func:`powershell_positions`).
"""

from __future__ import annotations

import contextvars
import dataclasses
import operator
import time
import types
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import jinja2
from jinja2 import nodes
from jinja2.runtime import LoopContext, Macro
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from scanner.facts import FACTS, View
from scanner.pwsh import comment, quote

MAX_STEPS = 100_000          # loop iterations plus calls, per render
MAX_TOTAL_STEPS = 5_000_000  # the same, over all renders of one template in one scan
MAX_SECONDS = 2.0            # per render: a backstop; the step and size limits bind first
MAX_SIZE = 1 << 20           # characters (or items) of any string or list a template builds
MAX_OUTPUT = 256 * 1024      # characters of one rendered message or remediation
MAX_INT_ARG = 100_000        # an integer argument larger than this is refused (widths, counts)


class TemplateLimitError(jinja2.TemplateRuntimeError):
    """A template went past one of the cost limits."""


class PsCode(str):
    """PowerShell source built by a helper from quoted values: a remediation renders it as is."""

    __slots__ = ()


def psq(value: object) -> PsCode:
    """The ``psq`` filter: a PowerShell literal of ``value`` (see :func:`scanner.pwsh.quote`)."""
    return PsCode(quote(value))


# ----------------------------------------------------------------------------- budget

class _Budget:
    __slots__ = ("steps", "limit", "deadline", "why")

    def __init__(self, limit: int = MAX_STEPS, why: str = "") -> None:
        self.steps = 0
        self.limit = limit
        self.why = why or f"stopped after {limit} loop iterations and calls"
        self.deadline = time.monotonic() + MAX_SECONDS

    def step(self) -> None:
        self.steps += 1
        if self.steps > self.limit:
            raise TemplateLimitError(self.why)
        if not self.steps & 0xFF and time.monotonic() > self.deadline:
            raise TemplateLimitError(f"stopped after {MAX_SECONDS:g} s")


_BUDGET: contextvars.ContextVar[_Budget | None] = contextvars.ContextVar("lmscan_template_budget", default=None)


def _budget() -> _Budget:
    b = _BUDGET.get()
    if b is None:          # rendered outside render(): give it a budget of its own
        b = _Budget()
        _BUDGET.set(b)
    return b


def _counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every ``{% for %}`` iterates through this (the loader wraps each loop's iterable)."""
    budget = _budget()
    for item in iterable:
        budget.step()
        yield item


def _check_size(value: Any, what: str) -> Any:
    if isinstance(value, (str, list, tuple)) and len(value) > MAX_SIZE:
        raise TemplateLimitError(f"{what} would build {len(value)} items (limit {MAX_SIZE})")
    return value


def _size(value: Any) -> int:
    return len(value) if isinstance(value, (str, list, tuple)) else 0


def _check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse an operation before it runs when its result would be too big."""
    if operator == "*":
        for seq, n in ((left, right), (right, left)):
            if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * max(n, 0) > MAX_SIZE:
                raise TemplateLimitError(f"repetition would build {len(seq) * n} items (limit {MAX_SIZE})")
    elif operator == "**":
        if isinstance(left, int) and isinstance(right, int) and abs(left) > 1 and right > 0 \
                and left.bit_length() * right > 4096:
            raise TemplateLimitError(f"{left} ** {right} is too large a number")
    elif operator == "+":
        if _size(left) + _size(right) > MAX_SIZE:
            raise TemplateLimitError(f"concatenation would build {_size(left) + _size(right)} items (limit {MAX_SIZE})")
    elif operator == "%" and isinstance(left, str):
        raise TemplateLimitError("'%' string formatting is not available in templates; use '~' and filters")


@jinja2.pass_eval_context
def _join(eval_ctx: Any, value: Iterable[Any], d: str = "", attribute: Any = None) -> str:
    items = list(value)
    if len(items) * len(str(d)) > MAX_SIZE:
        raise TemplateLimitError(f"join would build more than {MAX_SIZE} characters")
    return str(_BUILTIN_FILTERS["join"](eval_ctx, items, d, attribute))


def _replace(s: Any, old: str, new: str, count: int | None = None) -> str:
    text = str(s)
    hits = text.count(str(old)) if count is None else min(count, text.count(str(old)))
    if len(text) + hits * len(str(new)) > MAX_SIZE:
        raise TemplateLimitError(f"replace would build more than {MAX_SIZE} characters")
    return text.replace(str(old), str(new), -1 if count is None else count)


_BUILTIN_FILTERS = jinja2.Environment().filters

#: Jinja's own filters a template may use: those whose cost is linear in their input.
SAFE_BUILTIN_FILTERS = ("abs", "attr", "capitalize", "count", "d", "default", "dictsort", "first", "float",
                        "groupby", "int", "items", "last", "length", "list", "lower", "map", "max", "min",
                        "reject", "rejectattr", "round", "select", "selectattr", "sort", "string", "sum",
                        "title", "trim", "truncate", "unique", "upper", "wordcount")

#: Methods of strings, lists and mappings a template may call; nothing that builds large values.
SAFE_METHODS = frozenset({
    "lower", "upper", "title", "capitalize", "casefold", "strip", "lstrip", "rstrip", "startswith", "endswith",
    "split", "rsplit", "splitlines", "count", "find", "rfind", "index", "rindex", "partition", "rpartition",
    "removeprefix", "removesuffix", "isdigit", "isalpha", "isalnum", "isspace", "islower", "isupper",
    "get", "keys", "values", "items",
})
_METHOD_OWNERS = (str, list, tuple, dict, types.MappingProxyType)


def _union(a: Iterable[Any], b: Iterable[Any]) -> tuple[Any, ...]:
    out = list(a)
    folded = {str(x).casefold() for x in out}
    for x in b:
        if str(x).casefold() not in folded:
            out.append(x)
            folded.add(str(x).casefold())
    return tuple(out)


def _minus(a: Iterable[Any], b: Iterable[Any]) -> tuple[Any, ...]:
    drop = {str(x).casefold() for x in b}
    return tuple(x for x in a if str(x).casefold() not in drop)


def _bounded_concat(parts: Iterable[str]) -> str:
    out: list[str] = []
    n = 0
    for p in parts:
        n += len(p)
        if n > MAX_OUTPUT:
            raise TemplateLimitError(f"output longer than {MAX_OUTPUT} characters")
        out.append(p)
    return "".join(out)


class _Env(ImmutableSandboxedEnvironment):
    """The immutable sandbox with every size-amplifying operation checked."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    concat = staticmethod(_bounded_concat)

    def getattr(self, obj: Any, attribute: str) -> Any:
        """The sandbox's ``getattr``, without its checks for the read-only wrappers: everything
        they expose is safe (a read-only value, never a method), as the checks would find."""
        if (obj.__class__ is TemplateView or obj.__class__ is Record) and attribute[:1] != "_":
            try:
                return getattr(obj, attribute)
            except AttributeError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)

    def call_binop(self, context: jinja2.runtime.Context, operator: str, left: Any, right: Any) -> Any:
        _budget().step()
        _check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def call(__self, __context: jinja2.runtime.Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        _budget().step()
        if isinstance(__obj, (types.BuiltinMethodType, types.MethodType)):
            owner = getattr(__obj, "__self__", None)
            if not (isinstance(owner, _METHOD_OWNERS) and __obj.__name__ in SAFE_METHODS):
                raise SecurityError(f"calling {__obj.__name__}() is not allowed in templates")
        elif not isinstance(__obj, (Macro, LoopContext)) and not _is_helper(__obj):
            raise SecurityError(f"{type(__obj).__name__} objects cannot be called in templates")
        for a in (*args, *kwargs.values()):
            if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_INT_ARG:
                raise TemplateLimitError(f"argument {a} is too large (limit {MAX_INT_ARG})")
        return _check_size(super().call(__context, __obj, *args, **kwargs), "a call")


def _is_helper(obj: Any) -> bool:
    return isinstance(obj, types.FunctionType) and str(getattr(obj, "__module__", "")).startswith("scanner.")


def _inert(value: Any) -> Any:
    """Remediation ``finalize``: code a helper built stays; numbers stay; any other text is comment-safe."""
    if isinstance(value, PsCode) or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return value
    return comment(value)


def _make_env(finalize: Callable[[Any], Any] | None) -> _Env:
    env = _Env(undefined=jinja2.StrictUndefined, autoescape=False, trim_blocks=True, lstrip_blocks=True,
               keep_trailing_newline=False, finalize=finalize)
    env.globals.clear()   # no range, lipsum, cycler, joiner, namespace, dict: templates see only their context
    env.filters = {k: v for k, v in env.filters.items() if k in SAFE_BUILTIN_FILTERS}
    env.filters.update(join=_join, replace=_replace, psq=psq, union=_union, minus=_minus,
                       idlist=lambda ids: ";".join(str(i) for i in ids), lmscan_counted=_counted)
    return env


MESSAGES = _make_env(None)
REMEDIATION = _make_env(_inert)
PUBLIC_FILTERS = tuple(sorted(k for k in MESSAGES.filters if k != "lmscan_counted"))


# ----------------------------------------------------------------------------- loading

class TemplateProblem(ValueError):
    """A template cannot be loaded; ``lineno`` is the line inside the template text."""

    def __init__(self, message: str, lineno: int = 1) -> None:
        super().__init__(message)
        self.lineno = lineno


def compile_template(text: str, env: _Env, known_names: frozenset[str] | set[str]) -> jinja2.Template:
    """Parse, check and compile one template; raise :class:`TemplateProblem` for anything refused."""
    import jinja2.meta

    try:
        ast = env.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"template error: {exc.message}", exc.lineno or 1) from None
    _check_ast(ast, env)
    try:
        names = frozenset(jinja2.meta.find_undeclared_variables(ast))
    except jinja2.TemplateSyntaxError as exc:
        raise TemplateProblem(f"template error: {exc.message}", exc.lineno or 1) from None
    unknown = sorted(names - set(known_names))
    if unknown:
        raise TemplateProblem(f"template uses unknown name '{unknown[0]}' (known: {', '.join(sorted(known_names))})")
    if env is REMEDIATION:
        powershell_positions(text, env)
    fast = fast_renderer(ast, env)
    for loop in ast.find_all(nodes.For):
        loop.iter = nodes.Filter(loop.iter, "lmscan_counted", [], [], None, None, lineno=loop.lineno)
    try:
        tmpl = env.from_string(ast)
    except jinja2.TemplateSyntaxError as exc:   # includes TemplateAssertionError (unknown filter, ...)
        raise TemplateProblem(f"template error: {exc.message}", exc.lineno or 1) from None
    tmpl.lmscan_names = names   # type: ignore[attr-defined]   # the engine builds only these values
    tmpl.lmscan_fast = fast     # type: ignore[attr-defined]
    return tmpl


def _check_ast(ast: nodes.Template, env: _Env) -> None:
    for node in ast.find_all((nodes.Include, nodes.Import, nodes.FromImport, nodes.Extends)):
        kind = {nodes.Include: "include", nodes.Import: "import", nodes.FromImport: "from ... import",
                nodes.Extends: "extends"}[type(node)]
        raise TemplateProblem(f"'{{% {kind} %}}' is not available in rule templates: a rule's template "
                              "stands alone", node.lineno)
    for f in ast.find_all(nodes.Filter):
        if f.name not in env.filters or f.name == "lmscan_counted":
            raise TemplateProblem(f"unknown filter '{f.name}' (filters: {', '.join(PUBLIC_FILTERS)})", f.lineno)
    for t in ast.find_all(nodes.Test):
        if t.name not in env.tests:
            raise TemplateProblem(f"unknown test '{t.name}' (tests: {', '.join(sorted(env.tests))})", t.lineno)
    for c in ast.find_all(nodes.Call):
        if isinstance(c.node, nodes.Getattr) and c.node.attr not in SAFE_METHODS:
            raise TemplateProblem(f"calling .{c.node.attr}() is not allowed in templates "
                                  f"(allowed methods: {', '.join(sorted(SAFE_METHODS))})", c.lineno)
        for arg in [*c.args, *(k.value for k in c.kwargs)]:
            _check_const_int(arg)
    for f in ast.find_all(nodes.Filter):
        for arg in [*f.args, *(k.value for k in f.kwargs)]:
            _check_const_int(arg)
    ops = {nodes.Mul: "*", nodes.Pow: "**", nodes.Add: "+", nodes.Mod: "%"}
    for b in ast.find_all(tuple(ops)):
        try:
            left, right = b.left.as_const(), b.right.as_const()
        except (nodes.Impossible, Exception):   # noqa: B014 - not constant: checked when it runs
            continue
        try:
            _check_binop(ops[type(b)], left, right)
        except TemplateLimitError as exc:
            raise TemplateProblem(str(exc), b.lineno) from None
    _check_macro_recursion(ast)


def _check_const_int(arg: nodes.Expr) -> None:
    if isinstance(arg, nodes.Const) and isinstance(arg.value, int) and not isinstance(arg.value, bool) \
            and abs(arg.value) > MAX_INT_ARG:
        raise TemplateProblem(f"argument {arg.value} is too large (limit {MAX_INT_ARG})", arg.lineno)


def _check_macro_recursion(ast: nodes.Template) -> None:
    """A macro that can call itself (directly or through others) is refused: its cost is unbounded."""
    macros = {m.name: m for m in ast.find_all(nodes.Macro)}
    calls = {name: {c.node.name for c in m.find_all(nodes.Call) if isinstance(c.node, nodes.Name)} & set(macros)
             for name, m in macros.items()}
    for start in macros:
        seen: set[str] = set()
        todo = list(calls[start])
        while todo:
            name = todo.pop()
            if name == start:
                raise TemplateProblem(f"macro '{start}' calls itself: recursive macros are not allowed",
                                      macros[start].lineno)
            if name not in seen:
                seen.add(name)
                todo.extend(calls.get(name, ()))


#: Helpers whose output is PowerShell code built from quoted values.
CODE_HELPERS = frozenset({"set_exclude", "set_order", "setting_target"})


def powershell_positions(text: str, env: jinja2.Environment) -> None:
    """Every ``{{ }}`` outside a PowerShell comment must be code: ``| psq``, a helper, or a policy value.

    Field text in a comment is made inert when it renders; outside a comment, unquoted text would
    be code, so it is refused here, when the pack loads. The scan follows PowerShell's own
    states (``#`` comment, ``<# #>`` block, single- and double-quoted strings) through the
    template's literal text.
    """
    state = "code"
    tokens = list(env.lex(text))
    i = 0
    while i < len(tokens):
        lineno, kind, value = tokens[i]
        if kind == "data":
            state = _ps_scan(value, state)
        elif kind == "variable_begin":
            j = i + 1
            expr: list[tuple[str, str]] = []
            while j < len(tokens) and tokens[j][1] != "variable_end":
                if tokens[j][1] != "whitespace":
                    expr.append((tokens[j][1], tokens[j][2]))
                j += 1
            shown = "{{ " + " ".join(v for _, v in expr) + " }}"
            if state in ("squote", "dquote"):
                raise TemplateProblem(f"{shown} is inside a PowerShell string; write {{{{ value | psq }}}} "
                                      "in place of the whole string", lineno)
            if state == "code" and not _is_code_expr(expr):
                raise TemplateProblem(f"{shown} would be PowerShell code: quote it ({{{{ value | psq }}}}) "
                                      "or put it in a # comment", lineno)
            i = j
        i += 1


def _is_code_expr(expr: list[tuple[str, str]]) -> bool:
    values = [v for _, v in expr]
    if len(values) >= 2 and values[-2:] == ["|", "psq"]:
        return True
    if values and values[0] in CODE_HELPERS:
        return True
    return values[:3] == ["policy", ".", "hosts"]


_SQ = frozenset("'\u2018\u2019\u201a\u201b")
_DQ = frozenset('"\u201c\u201d\u201e')


def _ps_scan(data: str, state: str) -> str:
    i = 0
    while i < len(data):
        ch = data[i]
        nxt = data[i + 1] if i + 1 < len(data) else ""
        if state == "code":
            if ch == "<" and nxt == "#":
                state, i = "block", i + 1
            elif ch == "#":
                state = "line"
            elif ch in _SQ:
                state = "squote"
            elif ch in _DQ:
                state = "dquote"
        elif state == "line":
            if ch in "\r\n":
                state = "code"
        elif state == "block":
            if ch == "#" and nxt == ">":
                state, i = "code", i + 1
        elif state == "squote":
            if ch in _SQ:
                if nxt in _SQ:
                    i += 1
                else:
                    state = "code"
        elif state == "dquote":
            if ch == "`":
                i += 1
            elif ch in _DQ:
                if nxt in _DQ:
                    i += 1
                else:
                    state = "code"
        i += 1
    return state


# ----------------------------------------------------------------------------- rendering

def render(template: jinja2.Template, context: Mapping[str, Any]) -> str:
    """Render with a fresh budget. Raises :class:`TemplateLimitError` or ``SecurityError`` when refused.

    Each render may take :data:`MAX_STEPS`; all renders of one template together
    :data:`MAX_TOTAL_STEPS`, so a pack cannot make every one of a fleet's results expensive.
    """
    fast: _Fast | None = getattr(template, "lmscan_fast", None)
    if fast is not None:
        try:
            return fast(context)
        except _Undefined:
            pass     # Jinja says what was undefined, in its own words
    used = getattr(template, "lmscan_steps", 0)
    left = MAX_TOTAL_STEPS - used
    budget = _Budget(MAX_STEPS) if left >= MAX_STEPS else \
        _Budget(max(left, 0), f"stopped after {MAX_TOTAL_STEPS} loop iterations and calls in all its renders")
    token = _BUDGET.set(budget)
    try:
        return template.render(context)
    except RecursionError:
        raise TemplateLimitError("nested too deeply") from None
    except MemoryError:
        raise TemplateLimitError("ran out of memory") from None
    finally:
        template.lmscan_steps = used + budget.steps  # type: ignore[attr-defined]
        _BUDGET.reset(token)


# ----------------------------------------------------------------------------- the fast path

_Fast = Callable[[Mapping[str, Any]], str]
_Expr = Callable[[Mapping[str, Any]], Any]


class _Undefined(Exception):
    """The fast path met something undefined: Jinja renders the template instead."""


#: Jinja's comparisons: its compiled code writes them as these Python operators.
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "lteq": operator.le, "gt": operator.gt,
    "gteq": operator.ge, "in": lambda a, b: a in b, "notin": lambda a, b: a not in b}

#: Filters the fast path calls as Jinja's compiled code does: (filter name, whether it takes the eval context).
_FAST_FILTERS = {"join": True, "length": False, "count": False}


def fast_renderer(ast: nodes.Template, env: _Env) -> _Fast | None:
    """A renderer for a template of text and simple ``{{ }}`` expressions, or None.

    Most results render such a message (``{{ node.name }} accepts migrations ...``), and Jinja's
    fixed cost per render (a context, a generator) is most of what they cost. The expressions
    allowed here (names, attributes, constants, ``if``/``else``, ``not``, ``and``, ``or``, one
    comparison, and the ``join`` and ``length`` filters) are evaluated as Jinja's compiled code does:
    the same sandboxed ``getattr``, the same filter functions, ``str`` of each value, left to
    right, and the output limit after each piece. None of them loops or calls, so the step and
    time limits cannot bind. Anything undefined goes back to Jinja, which raises its own error.
    """
    if env.finalize is not None:
        return None
    parts: list[str | _Expr] = []
    for stmt in ast.body:
        if not isinstance(stmt, nodes.Output):
            return None
        for child in stmt.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append(child.data)
                continue
            expr = _fast_expr(child, env)
            if expr is None:
                return None
            parts.append(expr)

    def render(context: Mapping[str, Any]) -> str:
        out: list[str] = []
        n = 0
        for part in parts:
            text = part if isinstance(part, str) else str(part(context))
            n += len(text)
            if n > MAX_OUTPUT:
                raise TemplateLimitError(f"output longer than {MAX_OUTPUT} characters")
            out.append(text)
        return "".join(out)
    return render


def _defined(value: Any) -> Any:
    if isinstance(value, jinja2.Undefined):
        raise _Undefined
    return value


def _fast_expr(node: nodes.Node, env: _Env) -> _Expr | None:
    """``node`` as a function of the context, for the expressions :func:`fast_renderer` allows."""
    if isinstance(node, nodes.Name) and node.ctx == "load":
        name = node.name

        def load(c: Mapping[str, Any]) -> Any:
            if name not in c:
                raise _Undefined
            return _defined(c[name])
        return load
    if isinstance(node, nodes.Const):
        const = node.value
        return lambda c: const
    if isinstance(node, nodes.Getattr) and node.ctx == "load":
        obj = _fast_expr(node.node, env)
        attr = node.attr
        if obj is None:
            return None
        return lambda c: _defined(env.getattr(obj(c), attr))
    if isinstance(node, nodes.CondExpr) and node.expr2 is not None:
        test, yes, no = (_fast_expr(node.test, env), _fast_expr(node.expr1, env), _fast_expr(node.expr2, env))
        if test is None or yes is None or no is None:
            return None
        return lambda c: yes(c) if test(c) else no(c)
    if isinstance(node, nodes.Not):
        operand = _fast_expr(node.node, env)
        return None if operand is None else lambda c: not operand(c)
    if isinstance(node, (nodes.And, nodes.Or)):
        left, right = _fast_expr(node.left, env), _fast_expr(node.right, env)
        if left is None or right is None:
            return None
        if isinstance(node, nodes.And):
            return lambda c: left(c) and right(c)
        return lambda c: left(c) or right(c)
    if isinstance(node, nodes.Compare) and len(node.ops) == 1 and node.ops[0].op in _COMPARE:
        lhs, rhs = _fast_expr(node.expr, env), _fast_expr(node.ops[0].expr, env)
        if lhs is None or rhs is None:
            return None
        compare = _COMPARE[node.ops[0].op]
        return lambda c: compare(lhs(c), rhs(c))
    if isinstance(node, nodes.Filter) and node.name in _FAST_FILTERS and node.node is not None \
            and not node.kwargs and node.dyn_args is None and node.dyn_kwargs is None \
            and all(isinstance(a, nodes.Const) for a in node.args):
        value = _fast_expr(node.node, env)
        if value is None:
            return None
        fn = env.filters[node.name]
        args = tuple(a.value for a in node.args if isinstance(a, nodes.Const))
        if _FAST_FILTERS[node.name]:
            eval_ctx = nodes.EvalContext(env)
            return lambda c: fn(eval_ctx, value(c), *args)
        return lambda c: fn(value(c), *args)
    return None


# ----------------------------------------------------------------------------- read-only values

class TemplateView:
    """What a template sees of a fact view: its facts (read-only) and nothing else.

    ``network.name``, ``cluster.first_network``; the model object underneath (``cluster.cluster``,
    ``network.network``, ...) as a read-only record. Never the policy, never a method.
    """

    __slots__ = ("_view",)

    #: non-fact attributes of views that templates may read, per view attribute name.
    RECORDS = frozenset({"cluster", "network", "node", "vm", "iface", "mn"})

    def __init__(self, view: Any) -> None:
        object.__setattr__(self, "_view", view)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        view = object.__getattribute__(self, "_view")
        if name in FACTS[view.scope]:
            return readonly(view.get(name))
        if name in self.RECORDS and name in _view_slots(view):
            return readonly(getattr(view, name))
        raise AttributeError(name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("read-only")

    def __str__(self) -> str:
        return str(object.__getattribute__(self, "_view").display())

    def __repr__(self) -> str:
        return f"<{object.__getattribute__(self, '_view').scope} {self}>"

    def __eq__(self, other: object) -> bool:
        mine = object.__getattribute__(self, "_view")
        theirs = object.__getattribute__(other, "_view") if isinstance(other, TemplateView) else other
        return mine is theirs

    def __hash__(self) -> int:
        return id(object.__getattribute__(self, "_view"))


def _view_slots(view: Any) -> Iterable[str]:
    return vars(view).keys() if hasattr(view, "__dict__") else ()


class Record:
    """A read-only record of a dataclass instance: its fields, converted by :func:`readonly`."""

    __slots__ = ("_obj",)

    def __init__(self, obj: Any) -> None:
        object.__setattr__(self, "_obj", obj)

    def __getattr__(self, name: str) -> Any:
        obj = object.__getattribute__(self, "_obj")
        if name.startswith("_") or name not in _field_names(type(obj)):
            raise AttributeError(name)
        return readonly(getattr(obj, name))

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("read-only")

    def __str__(self) -> str:
        obj = object.__getattribute__(self, "_obj")
        return str(getattr(obj, "name", None) or type(obj).__name__)


_FIELDS: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = frozenset(f.name for f in dataclasses.fields(cls))
    return names


_IMMUTABLE = (str, int, float, bool, type(None), bytes, frozenset)


def readonly(value: Any) -> Any:
    """A value a template may see: immutable scalars as they are, containers frozen, objects wrapped."""
    if isinstance(value, _IMMUTABLE):
        return value
    if isinstance(value, View):
        return TemplateView(value)
    if isinstance(value, (TemplateView, Record, types.MappingProxyType)):
        return value
    if isinstance(value, (list, tuple)):
        return tuple(readonly(v) for v in value)
    if isinstance(value, Mapping):
        return types.MappingProxyType({k: readonly(v) for k, v in value.items()})
    if isinstance(value, (set, frozenset)):
        return frozenset(readonly(v) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return Record(value)
    if callable(value):
        return str(value)
    return value if _hashable_scalar(value) else str(value)


def _hashable_scalar(value: Any) -> bool:
    # ipaddress networks, dates, enums: immutable values that print well.
    import datetime
    import enum
    import ipaddress
    return isinstance(value, (ipaddress._BaseNetwork, ipaddress._BaseAddress, datetime.date, datetime.time,
                              enum.Enum))

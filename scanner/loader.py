"""Rule packs: YAML -> immutable :class:`Rule` values, validated when loaded.

A broken rule never turns into a quiet pass: unknown keys, facts and operators, bad regexes,
template errors and duplicate ids stop the run with ``file:line: rule ID: problem``.
"""

from __future__ import annotations

import hashlib
import importlib.resources
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta

from scanner import templating
from scanner.conditions import Cond, ConditionError, compile_cond
from scanner.errors import InputError
from scanner.model import PackInfo, Severity
from scanner.fixkinds import FIXES
from scanner.policy import POLICY_REFS
from scanner.yamlsrc import YamlDoc, decode_yaml, fmt_path, load_yaml, schema_check

SCOPES = ("cluster", "node", "network", "interface", "vm")
BUILTIN_PACK = "builtin.yaml"
POLICY_RULES_PACK = "policy-rules.yaml"

RULE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["id", "title", "severity", "scope", "expect", "rationale", "remediation"],
    "properties": {
        "id": {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9_.-]{0,63}$"},
        "title": {"type": "string", "minLength": 1},
        "severity": {"enum": [s.value for s in Severity]},
        "scope": {"enum": list(SCOPES)},
        "per_vm": {"type": "boolean"},
        "requires_all_nodes": {"type": "boolean"},
        "select": {"type": "object"},
        "skip_when": {"type": "object"},
        "skip_message": {"type": "string"},
        "skip_if_unset": {"type": "array", "items": {"enum": list(POLICY_REFS)}},
        "expect": {"type": "object"},
        "message": {
            "type": "object", "additionalProperties": False,
            "properties": {"pass": {"type": "string"}, "fail": {"type": "string"}},
        },
        "rationale": {"type": "string", "minLength": 1},
        "remediation": {"type": "string", "minLength": 1},
        "fix": {"enum": list(FIXES)},
        "references": {"type": "array", "items": {"type": "string"}},
    },
}
PACK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["lmscan_rules", "rules"],
    "properties": {
        "lmscan_rules": {"const": 1},
        "pack": {
            "type": "object", "additionalProperties": False, "required": ["name"],
            "properties": {"name": {"type": "string", "minLength": 1}, "version": {"type": ["string", "number"]},
                           "description": {"type": "string"}},
        },
        "rules": {"type": "array", "items": {"type": "object"}},
    },
}

#: Names a message or remediation template may use.
TEMPLATE_NAMES = {"target", "cluster", "node", "network", "vm", "failing", "failing_ids", "exclude", "order",
                  "effective_order_ids", "preferred_ids", "set_exclude", "set_order", "setting_target",
                  "majority_exclude", "majority_order", "policy", "outcome", "network_names"}


#: The message environment (remediation templates use :data:`scanner.templating.REMEDIATION`).
TEMPLATES = templating.MESSAGES


@dataclass(frozen=True)
class Rule:
    """A loaded rule: data only, knows nothing about clusters."""

    id: str
    title: str
    severity: Severity
    scope: str
    per_vm: bool
    requires_all_nodes: bool
    select: Cond | None
    skip_when: Cond | None
    skip_message: str
    skip_if_unset: tuple[str, ...]
    expect: Cond
    message_pass: jinja2.Template | None
    message_fail: jinja2.Template | None
    rationale: str
    remediation: jinja2.Template        # the text, or with ``fix`` the guidance when no change can be computed
    remediation_text: str
    fix: str | None                      # a fix kind of scanner.plan.FIXES: the remediation as actions
    references: tuple[str, ...]
    message_names: frozenset[str]       # template names the messages use (contexts build only these)
    source: str
    line: int
    pack: str
    yaml_text: str


@dataclass(frozen=True)
class RulePack:
    name: str
    version: str
    sha256: str
    path: str
    rules: tuple[Rule, ...]

    def info(self) -> PackInfo:
        return PackInfo(name=self.name, version=self.version, sha256=self.sha256, path=self.path)


def _template(doc: YamlDoc, base: tuple[Any, ...], rel: tuple[Any, ...], text: str, prefix: str) -> jinja2.Template:
    """Compile one message or remediation template; any problem is ``file:line: rule X: key: problem``."""
    env = templating.REMEDIATION if rel == ("remediation",) else templating.MESSAGES
    key_line = doc.line(base + rel)
    try:
        tmpl = templating.compile_template(text, env, TEMPLATE_NAMES)
    except templating.TemplateProblem as exc:
        line = key_line + exc.lineno - 1 + (1 if _block_scalar(doc, key_line) else 0)
        raise InputError(doc.source, f"{prefix}{fmt_path(rel)}: {exc}", str(line)) from None
    tmpl.lmscan_where = (doc.source, key_line, f"{prefix}{fmt_path(rel)}")  # type: ignore[attr-defined]
    return tmpl


def _block_scalar(doc: YamlDoc, line: int) -> bool:
    """Whether the YAML value on ``line`` is a block scalar (``|`` or ``>``): its text starts a line later."""
    lines = doc.text.splitlines()
    if not 0 < line <= len(lines):
        return False
    return lines[line - 1].split("#", 1)[0].rstrip().endswith(("|", ">", "|-", ">-", "|+", ">+"))


def _rule_text(doc_text: str, start: int, end: int | None) -> str:
    lines = doc_text.splitlines()
    chunk = lines[start - 1:(end - 1) if end else None]
    while chunk and not chunk[-1].strip():
        chunk.pop()
    return "\n".join(chunk) + "\n"


def rules_from_list(doc: YamlDoc, items: Any, base: tuple[Any, ...], pack: str, text: str) -> list[Rule]:
    """Compile the rule list found at ``base`` inside ``doc`` (a pack, or a policy's ``rules:``)."""
    if items is None:
        return []
    if not isinstance(items, list):
        raise doc.error(base, "must be a list of rules")
    starts = [doc.line(base + (i,)) for i in range(len(items))]
    rules: list[Rule] = []
    for i, item in enumerate(items):
        path = base + (i,)
        rid = item.get("id") if isinstance(item, dict) else None
        prefix = f"rule {rid}: " if isinstance(rid, str) else ""
        if isinstance(item, dict) and isinstance(item.get("severity"), str):
            item["severity"] = item["severity"].casefold()   # `severity: High` reads as high
        sub = YamlDoc(doc.source, item, {p[len(path):]: ln for p, ln in doc.lines.items() if p[:len(path)] == path})
        schema_check(sub, RULE_SCHEMA, prefix)
        assert isinstance(item, dict)
        scope = item["scope"]
        try:
            select = compile_cond(item["select"], scope, ("select",)) if "select" in item else None
            skip_when = compile_cond(item["skip_when"], "cluster" if scope in ("network", "interface", "vm") else scope,
                                     ("skip_when",)) if "skip_when" in item else None
            expect = compile_cond(item["expect"], scope, ("expect",))
        except ConditionError as exc:
            raise InputError(doc.source, f"{prefix}{fmt_path(exc.path)}: {exc}", str(doc.line(path + exc.path))) from None
        if item.get("per_vm") and scope not in ("network", "cluster"):
            raise doc.error(path + ("per_vm",), "per_vm applies to network and cluster rules only", prefix)
        msgs = item.get("message", {})
        end = starts[i + 1] if i + 1 < len(starts) else None
        rules.append(Rule(
            id=item["id"], title=item["title"].strip(), severity=Severity(item["severity"]), scope=scope,
            per_vm=bool(item.get("per_vm", False)), requires_all_nodes=bool(item.get("requires_all_nodes", False)),
            select=select, skip_when=skip_when,
            skip_message=item.get("skip_message", "nothing to evaluate").strip(),
            skip_if_unset=tuple(item.get("skip_if_unset", ())),
            expect=expect,
            message_pass=_template(doc, path, ("message", "pass"), msgs["pass"], prefix) if "pass" in msgs else None,
            message_fail=_template(doc, path, ("message", "fail"), msgs["fail"], prefix) if "fail" in msgs else None,
            rationale=" ".join(item["rationale"].split()),
            remediation=_template(doc, path, ("remediation",), item["remediation"], prefix),
            remediation_text=item["remediation"],
            fix=item.get("fix"),
            message_names=frozenset().union(*(jinja2.meta.find_undeclared_variables(TEMPLATES.parse(t))
                                              for t in msgs.values())),
            references=tuple(item.get("references", ())),
            source=doc.source, line=starts[i], pack=pack,
            yaml_text=_rule_text(text, starts[i], end),
        ))
    return rules


def load_pack(path: Path, text: str | None = None, display: str | None = None) -> RulePack:
    """Load and validate one rule pack file."""
    if text is None:
        p = Path(path)
        if not p.is_file():
            raise InputError(p, "rule pack not found")
        raw = p.read_bytes()
    else:
        raw = text.encode("utf-8")
    text = decode_yaml(raw, str(path))
    doc = load_yaml(Path(display or str(path)), text)
    if not isinstance(doc.data, dict) or "lmscan_rules" not in doc.data:
        raise InputError(doc.source, "not an lmscan rule pack: the top level needs 'lmscan_rules: 1' and 'rules:'", "1")
    schema_check(doc, PACK_SCHEMA)
    meta = doc.data.get("pack") or {}
    name = str(meta.get("name") or Path(str(path)).stem)
    rules = rules_from_list(doc, doc.data["rules"], ("rules",), name, text)
    check_unique(rules)
    return RulePack(name=name, version=str(meta.get("version", "0")), sha256=hashlib.sha256(raw).hexdigest(),
                    path=doc.source, rules=tuple(rules))


def check_unique(rules: Sequence[Rule]) -> None:
    seen: dict[str, Rule] = {}
    for r in rules:
        key = r.id.casefold()
        if key in seen:
            first = seen[key]
            raise InputError(r.source, f"rule {r.id}: duplicate rule id (first defined at {first.source}:{first.line})",
                             str(r.line))
        seen[key] = r


def builtin_pack() -> RulePack:
    res = importlib.resources.files("scanner.rules").joinpath(BUILTIN_PACK)
    return load_pack(Path(BUILTIN_PACK), res.read_text(encoding="utf-8"), display=f"<built-in {BUILTIN_PACK}>")


def policy_rules_pack() -> RulePack:
    """Rules the site policy switches on (POL001 with ``required_classes``)."""
    res = importlib.resources.files("scanner.rules").joinpath(POLICY_RULES_PACK)
    return load_pack(Path(POLICY_RULES_PACK), res.read_text(encoding="utf-8"), display=f"<built-in {POLICY_RULES_PACK}>")


def load_rule_paths(paths: Sequence[Path]) -> list[RulePack]:
    """Extra packs from files or directories (``*.yaml``/``*.yml``, recursively)."""
    packs: list[RulePack] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            files = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.casefold() in (".yaml", ".yml"))
            if not files:
                raise InputError(p, "directory holds no *.yaml rule packs")
            packs.extend(load_pack(f) for f in files)
        else:
            packs.append(load_pack(p))
    return packs


def all_rules(packs: Sequence[RulePack], extra: Sequence[Rule] = ()) -> list[Rule]:
    rules = [r for pk in packs for r in pk.rules] + list(extra)
    check_unique(rules)
    return rules

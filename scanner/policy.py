"""Site policy (contracts §3): which networks are which, and what is expected of them."""

from __future__ import annotations

import datetime as _dt
import fnmatch
import hashlib
import importlib.resources
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from scanner.errors import InputError
from scanner.normalize import IPNetwork, Network
from scanner.yamlsrc import YamlDoc, decode_yaml, load_yaml, read_regular_file, schema_check

UNCLASSIFIED = "unclassified"
DEFAULT_POLICY_NAME = "default-policy.yaml"

_str_list = {"type": "array", "items": {"type": "string", "minLength": 1}}
SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["lmscan_policy"],
    "properties": {
        "lmscan_policy": {"const": 1},
        "description": {"type": "string"},
        "networks": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["class"],
                "properties": {
                    "class": {"type": "string", "minLength": 1},
                    "subnets": _str_list,
                    "names": _str_list,
                    "ids": _str_list,
                    "description": {"type": "string"},
                },
            },
        },
        "live_migration": {
            "type": "object",
            "additionalProperties": False,
            "properties": {"allowed": _str_list, "preferred": _str_list},
        },
        "hosts": {
            "type": ["object", "null"],
            "additionalProperties": False,
            "properties": {
                "authentication": {"enum": ["CredSSP", "Kerberos"]},
                "performance_option": {
                    "oneOf": [{"enum": ["TCPIP", "Compression", "SMB"]},
                              {"type": "array", "minItems": 1,
                               "items": {"enum": ["TCPIP", "Compression", "SMB"]}}]},
                "max_migrations": {"type": "integer", "minimum": 1},
            },
        },
        "overrides": {
            "type": ["object", "null"],
            "additionalProperties": {
                "type": "object",
                "additionalProperties": False,
                "properties": {
                    "enabled": {"type": "boolean"},
                    "severity": {"enum": ["info", "low", "medium", "high", "critical"]},
                },
            },
        },
        "waivers": {
            "type": "array",
            "items": {
                "type": "object",
                "additionalProperties": False,
                "required": ["rule", "reason"],
                "properties": {
                    "rule": {"type": "string", "minLength": 1},
                    "cluster": {"type": "string", "minLength": 1},
                    "target": {"type": "string", "minLength": 1},
                    "reason": {"type": "string", "minLength": 1},
                    "ticket": {"type": "string"},
                    "owner": {"type": "string"},
                    "expires": {"type": "string"},
                },
            },
        },
        "rules": {"type": ["array", "null"]},
        "required_classes": _str_list,
    },
}


@dataclass(frozen=True, slots=True)
class ClassEntry:
    """One entry of ``networks:``; the first entry a network matches gives its class."""

    cls: str
    subnets: tuple[IPNetwork, ...]
    names: tuple[str, ...]
    ids: tuple[str, ...]

    def matches(self, network: Network) -> bool:
        if network.id and network.id in self.ids:
            return True
        name = network.name.casefold()
        if any(fnmatch.fnmatchcase(name, g) for g in self.names):
            return True
        return any(subnet_within(s, self.subnets) for s in network.subnets)


@dataclass(frozen=True, slots=True)
class Waiver:
    """An accepted exception: a failing result it matches is reported as ``waived``."""

    rule: str
    cluster: str
    target: str
    reason: str
    ticket: str
    owner: str
    expires: _dt.date | None
    line: int

    def matches(self, rule: str, cluster: str, target_name: str, target_id: str | None) -> bool:
        if rule.casefold() != self.rule.casefold():
            return False
        if not fnmatch.fnmatchcase(cluster.casefold(), self.cluster):
            return False
        names = [target_name.casefold()] + ([target_id.casefold()] if target_id else [])
        return any(fnmatch.fnmatchcase(n, self.target) for n in names)

    def expired(self, today: _dt.date) -> bool:
        return self.expires is not None and self.expires < today


@dataclass(frozen=True)
class Policy:
    """A validated site policy."""

    path: str | None
    sha256: str
    default: bool
    entries: tuple[ClassEntry, ...]
    allowed: tuple[str, ...]
    preferred: tuple[str, ...]
    hosts: Mapping[str, Any]
    overrides: Mapping[str, Mapping[str, Any]]
    waivers: tuple[Waiver, ...]
    doc: YamlDoc
    required: tuple[str, ...] = ()       # required_classes: every cluster must have a network of each
    _cache: dict[int, tuple[Network, str]] = field(default_factory=dict, compare=False, repr=False)
    _refs: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def classify(self, network: Network) -> str:
        # Keyed by identity (the network is kept alive in the entry): a cluster's networks are
        # shared objects, and hashing their subnets would cost more than the lookup saves.
        hit = self._cache.get(id(network))
        if hit is None or hit[0] is not network:
            hit = (network, next((e.cls for e in self.entries if e.matches(network)), UNCLASSIFIED))
            self._cache[id(network)] = hit
        return hit[1]

    def classify_subnet(self, subnet: IPNetwork | None) -> str:
        """Classify a host migration network by its subnet (contracts §3)."""
        if subnet is None:
            return UNCLASSIFIED
        return next((e.cls for e in self.entries if subnet_within(subnet, e.subnets)), UNCLASSIFIED)

    def lookup(self, dotted: str) -> Any:
        """Value of ``{policy: a.b}`` references in rules; ``None`` when the policy does not set it.

        Resolved once per reference (rules ask hundreds of thousands of times on a large fleet);
        lists and mappings are handed out as copies, so no caller can change the policy.
        """
        if dotted not in self._refs:
            node: Any = {"live_migration": {"allowed": list(self.allowed), "preferred": list(self.preferred)},
                         "hosts": dict(self.hosts)}
            for part in dotted.split("."):
                if not isinstance(node, Mapping) or part not in node:
                    node = None
                    break
                node = node[part]
            self._refs[dotted] = node
        value = self._refs[dotted]
        return list(value) if isinstance(value, list) else dict(value) if isinstance(value, dict) else value


POLICY_REFS = ("live_migration.allowed", "live_migration.preferred", "hosts.authentication",
               "hosts.performance_option", "hosts.max_migrations")


def subnet_within(inner: IPNetwork, outers: tuple[IPNetwork, ...]) -> bool:
    for outer in outers:
        if inner.version == outer.version and inner.subnet_of(outer):  # type: ignore[arg-type]
            return True
    return False


def _check_glob(doc: YamlDoc, path: tuple[Any, ...], pattern: str) -> str:
    depth = 0
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "[":
            close = pattern.find("]", i + 2 if i + 1 < len(pattern) and pattern[i + 1] in "!]" else i + 1)
            if close < 0:
                raise doc.error(path, f"bad glob {pattern!r}: '[' is never closed (use [[] for a literal '[')")
            i = close
        i += 1
    if depth:
        raise doc.error(path, f"bad glob {pattern!r}")
    return pattern.casefold()


def parse_subnet(doc: YamlDoc, path: tuple[Any, ...], text: str) -> IPNetwork:
    try:
        return ipaddress.ip_network(text.strip(), strict=True)
    except ValueError as exc:
        try:
            loose = ipaddress.ip_network(text.strip(), strict=False)
        except ValueError:
            raise doc.error(path, f"invalid subnet {text!r}: {exc}; write it as address/prefix, "
                                  "e.g. 10.10.10.0/24") from None
        raise doc.error(path, f"invalid subnet {text!r}: host bits set; did you mean {loose}?") from None


def _parse_date(doc: YamlDoc, path: tuple[Any, ...], value: Any) -> _dt.date | None:
    if value is None:
        return None
    if isinstance(value, _dt.date):
        return value
    try:
        return _dt.date.fromisoformat(str(value))
    except ValueError:
        raise doc.error(path, f"invalid date {value!r}; write it as YYYY-MM-DD") from None


def policy_from_doc(doc: YamlDoc, default: bool = False, raw: bytes | None = None) -> Policy:
    """Validate a loaded policy document and build the :class:`Policy`."""
    data = doc.data
    if not isinstance(data, dict) or "lmscan_policy" not in data:
        raise InputError(doc.source, "not an lmscan policy: the top level needs 'lmscan_policy: 1'", "1")
    if data["lmscan_policy"] != 1 or isinstance(data["lmscan_policy"], bool):
        raise doc.error(("lmscan_policy",), f"unsupported version {data['lmscan_policy']!r}; this lmscan reads "
                                            "version 1")
    # Dates written bare in YAML load as date objects; the schema wants text.
    waivers = data.get("waivers")
    for w in waivers if isinstance(waivers, list) else ():   # any other shape: the schema says what is wrong
        if isinstance(w, dict) and isinstance(w.get("expires"), _dt.date):
            w["expires"] = w["expires"].isoformat()
    overrides = data.get("overrides")
    for o in overrides.values() if isinstance(overrides, dict) else ():
        if isinstance(o, dict) and isinstance(o.get("severity"), str):
            o["severity"] = o["severity"].casefold()   # `severity: High` reads as high
    schema_check(doc, SCHEMA)
    entries = []
    for i, e in enumerate(data.get("networks") or []):
        base = ("networks", i)
        subnets = tuple(parse_subnet(doc, base + ("subnets", j), s) for j, s in enumerate(e.get("subnets") or []))
        names = tuple(_check_glob(doc, base + ("names", j), g) for j, g in enumerate(e.get("names") or []))
        ids = tuple(s.strip().strip("{}").strip().casefold() for s in e.get("ids") or [])
        for j, nid in enumerate(ids):
            if not re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", nid):
                raise doc.error(base + ("ids", j), f"{nid!r} is not a cluster network Id (a GUID)")
        if not (subnets or names or ids):
            raise doc.error(base, "entry matches nothing: give subnets, names or ids")
        entries.append(ClassEntry(cls=e["class"].strip().casefold(), subnets=subnets, names=names, ids=ids))
    lm = data.get("live_migration") or {}
    hosts = dict(data.get("hosts") or {})
    if isinstance(hosts.get("performance_option"), str):
        hosts["performance_option"] = [hosts["performance_option"]]
    waivers = []
    for i, w in enumerate(data.get("waivers") or []):
        waivers.append(Waiver(
            rule=w["rule"].strip(), cluster=_check_glob(doc, ("waivers", i, "cluster"), w.get("cluster", "*")),
            target=_check_glob(doc, ("waivers", i, "target"), w.get("target", "*")),
            reason=w["reason"].strip(), ticket=w.get("ticket", ""), owner=w.get("owner", ""),
            expires=_parse_date(doc, ("waivers", i, "expires"), w.get("expires")),
            line=doc.line(("waivers", i)),
        ))
    if raw is None:
        raw = Path(doc.source).read_bytes() if not default else b""
    return Policy(
        path=None if default else doc.source,
        sha256=hashlib.sha256(raw).hexdigest(),
        default=default,
        entries=tuple(entries),
        allowed=tuple(c.strip().casefold() for c in lm.get("allowed", ["live_migration", "cluster", "storage"])),
        preferred=tuple(c.strip().casefold() for c in lm.get("preferred", ["live_migration"])),
        hosts=hosts,
        overrides={str(k): dict(v or {}) for k, v in (data.get("overrides") or {}).items()},
        waivers=tuple(waivers),
        doc=doc,
        required=tuple(dict.fromkeys(c.strip().casefold() for c in data.get("required_classes") or [])),
    )


def load_policy(path: Path | None) -> Policy:
    """Load a site policy file, or the built-in default when ``path`` is None."""
    if path is None:
        res = importlib.resources.files("scanner.rules").joinpath(DEFAULT_POLICY_NAME)
        raw = res.read_bytes()
        doc = load_yaml(Path(f"<built-in {DEFAULT_POLICY_NAME}>"), raw.decode("utf-8"))
        return policy_from_doc(doc, default=True, raw=raw)
    p = Path(path)
    if not p.exists():
        raise InputError(p, "policy file not found")
    raw = read_regular_file(p)
    doc = load_yaml(p, decode_yaml(raw, str(p)))
    return policy_from_doc(doc, raw=raw)


def check_classes(policy: Policy, named_by_rules: set[str]) -> None:
    """A class name only matters where something uses it: catch the typo that turns a rule into a skip.

    Every ``networks`` class must be named by a loaded rule, a ``live_migration`` list or
    ``required_classes``; every class in those lists must be defined by a ``networks`` entry.
    """
    if policy.default:
        return
    import difflib

    doc = policy.doc
    data = doc.data if isinstance(doc.data, dict) else {}
    lm = data.get("live_migration") or {}
    used = named_by_rules | set(policy.allowed) | set(policy.preferred) | set(policy.required)
    defined = {e.cls for e in policy.entries}
    for i, entry in enumerate(data.get("networks") or []):
        cls = entry["class"].strip().casefold()
        if cls not in used:
            close = difflib.get_close_matches(cls, sorted(used), n=1, cutoff=0.5) or \
                [u for u in sorted(used) if u in cls or cls in u][:1]
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise doc.error(("networks", i, "class"), f"class '{cls}' is used by no rule, live_migration list or "
                            f"required_classes, so its networks are not checked as intended; {hint}"
                            f"(classes in use: {', '.join(sorted(used))})")
    for key in ("allowed", "preferred"):
        for j, c in enumerate(lm.get(key) or []):
            if c.strip().casefold() not in defined:
                raise doc.error(("live_migration", key, j), _undefined(c, defined))
    for j, c in enumerate(data.get("required_classes") or []):
        if c.strip().casefold() not in defined:
            raise doc.error(("required_classes", j), _undefined(c, defined))


def _undefined(cls: str, defined: set[str]) -> str:
    import difflib
    close = difflib.get_close_matches(cls.strip().casefold(), sorted(defined), n=1, cutoff=0.5)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return (f"class '{cls.strip()}' is not defined by any networks entry (defined: "
            f"{', '.join(sorted(defined)) or 'none'}){hint}")

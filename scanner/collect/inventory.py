"""The inventory: which clusters and nodes to collect, and how to reach each one.

Validated like every other input (schema plus semantic checks, ``file:line: place: problem``)
before anything connects. Secrets never sit in the file: a password comes from an environment
variable, an owner-only file, the system keyring or a prompt. Risky but allowed choices (Basic
over plain HTTP, TLS not verified) come back as warnings for the CLI to print.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import os
import re
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jsonschema

from scanner.collect.fleet import NodeJob
from scanner import secrets
from scanner.collect.transport import DEFAULT_MAX_OUTPUT, Endpoint
from scanner.errors import InputError
from scanner.yamlsrc import PathT, YamlDoc, fmt_path, load_yaml

INVENTORY_VERSION = 1
TRANSPORTS = ("ntlm", "kerberos", "credssp", "basic", "certificate")
DEFAULT_PORTS = {"https": 5986, "http": 5985}
DEFAULT_TIMEOUT = 120.0
MB = 1024 * 1024
NEEDS_PASSWORD = frozenset({"ntlm", "credssp", "basic"})
PASSWORD_SOURCES = ("password_env", "password_file", "password_keyring", "password_prompt")

_HOST: dict[str, Any] = {
    "type": "string", "pattern": r"^[^\s/\\@?#]+$",
    "x-message": "must be a host name or address, without spaces, slashes or '@'",
}
_PATH = {"type": "string", "minLength": 1}
_DOMAIN = {"type": "string", "pattern": r"^[A-Za-z0-9_.-]+$", "x-message": "must be a DNS domain like contoso.com"}
_DISCOVERY_ALLOW: dict[str, Any] = {
    "type": "object",
    "properties": {"domains": {"type": "array", "items": _DOMAIN}, "ip_addresses": {"type": "boolean"}},
    "additionalProperties": False,
}
# One host-name label: letters, digits, '_' (NetBIOS names have it) and inner '-', at most 63.
_LABEL = re.compile(r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?")


def is_address(host: str) -> bool:
    """True for an IP literal in any form a resolver takes (``::1``, ``[::1]``, ``127.1``,
    ``2130706433``, ``0x7f.1``) and for ``localhost``: names that reach a machine without DNS."""
    h = host.strip().strip("[]").rstrip(".").casefold()
    if h == "localhost" or h.endswith(".localhost"):
        return True
    try:
        ipaddress.ip_address(h)
        return True
    except ValueError:
        pass
    try:
        socket.inet_aton(h)
    except (OSError, ValueError):
        return False
    return True


def host_problem(name: str, *, allow_addresses: bool = True) -> str | None:
    """What is wrong with ``name`` as a node's host name, or None.

    Inventory names and the names a cluster reports through discovery pass the same check:
    DNS labels of letters, digits, ``-`` and ``_``, so no port, URL, user part, space or control
    or format character can ride along; an IP address or ``localhost`` only where allowed.
    """
    if is_address(name):
        return None if allow_addresses else "is an IP address or localhost"
    host = name[:-1] if name.endswith(".") else name
    if not host or len(host) > 253:
        return "is not a host name (1 to 253 characters)"
    if not all(_LABEL.fullmatch(label) for label in host.split(".")):
        return ("is not a host name: use letters, digits, '-' and '_' in dot-separated labels of at most "
                "63 characters (no port, URL, '@', spaces or other characters)")
    return None
_SETTINGS: dict[str, Any] = {
    "transport": {"enum": list(TRANSPORTS)},
    "scheme": {"enum": list(DEFAULT_PORTS)},
    "port": {"type": "integer", "minimum": 1, "maximum": 65535},
    "username": {"type": "string", "minLength": 1},
    "password_env": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$",
                     "x-message": "must be the name of an environment variable"},
    "password_file": _PATH,
    "password_keyring": {
        "type": "object",
        "properties": {"service": {"type": "string", "minLength": 1}, "username": {"type": "string", "minLength": 1}},
        "required": ["service"], "additionalProperties": False,
    },
    "password_prompt": {"type": "boolean"},
    "allow_unencrypted": {"type": "boolean"},
    "verify_tls": {"type": "boolean"},
    "ca_bundle": _PATH,
    "cert_pem": _PATH,
    "cert_key_pem": _PATH,
    "principal": {"type": "string", "pattern": r"^[^\s@]+(@[^\s@]+)?$",
                  "x-message": "must be a Kerberos principal like svc-lmscan@CONTOSO.COM"},
    "keytab": _PATH,
    "service": {"type": "string", "pattern": r"^[A-Za-z][A-Za-z0-9_-]*$",
                "x-message": "must be a service class like HTTP or WSMAN"},
    "spn": {"type": "string", "pattern": r"^[^\s/@]+/[^\s/@]+(@[^\s@]+)?$",
            "x-message": "must be a service principal name like HTTP/hv01.contoso.com"},
    "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": 86400,
                "x-message": "must be a number of seconds above 0 (at most 86400)"},
    "max_output_mb": {"type": "number", "exclusiveMinimum": 0, "maximum": 4096,
                      "x-message": "must be a number of megabytes above 0 (at most 4096)"},
}
_NODE_ENTRY: dict[str, Any] = {
    "if": {"type": "string"},
    "then": _HOST,
    "else": {
        "type": "object",
        "properties": {
            "name": _HOST,
            "endpoint": {"type": "string", "pattern": r"^[Hh][Tt][Tt][Pp][Ss]?://",
                         "x-message": "must be a URL like https://host:5986/wsman"},
            **_SETTINGS,
        },
        "required": ["name"], "additionalProperties": False,
        "x-message": "must be a host name or a mapping with 'name'",
    },
}
SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "lmscan_inventory": {"const": INVENTORY_VERSION},
        "defaults": {"type": ["object", "null"], "properties": _SETTINGS, "additionalProperties": False},
        "clusters": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object",
                "properties": {
                    "name": {"type": "string", "pattern": r"\S", "x-message": "must be a cluster name"},
                    "nodes": {"type": "array", "minItems": 1, "items": _NODE_ENTRY},
                    "discover_from": _NODE_ENTRY,
                    "discovery_allow": _DISCOVERY_ALLOW,
                    **_SETTINGS,
                },
                "required": ["name"], "additionalProperties": False,
            },
        },
    },
    "required": ["lmscan_inventory", "clusters"],
    "additionalProperties": False,
}


def wsman_url(scheme: str, host: str, port: int | None = None) -> str:
    """The default WS-Man URL of ``host``: ``https://host:5986/wsman`` or ``http://host:5985/wsman``."""
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6 literal
    return f"{scheme}://{host}:{port or DEFAULT_PORTS[scheme]}/wsman"


@dataclass(frozen=True)
class Discovery:
    """A cluster whose members are found by running ``Get-ClusterNode`` on one endpoint."""

    cluster: str
    endpoint: Endpoint
    member_scheme: str
    member_port: int
    member_template: Endpoint = field(repr=False)
    #: DNS domains (and their subdomains) members may be in besides the seed's own.
    domains: tuple[str, ...] = ()
    #: Whether members reported as IP addresses (or localhost) may be contacted.
    allow_addresses: bool = False

    def member(self, name: str) -> Endpoint:
        """How to reach a discovered member: the cluster's settings with the member's name."""
        return replace(self.member_template, node=name, url=wsman_url(self.member_scheme, name, self.member_port))


@dataclass(frozen=True)
class ClusterPlan:
    """One inventory cluster: its explicit nodes, or how to discover them."""

    name: str
    nodes: tuple[Endpoint, ...]
    discovery: Discovery | None


@dataclass(frozen=True)
class Inventory:
    """A validated inventory with every password resolved."""

    source: str
    clusters: tuple[ClusterPlan, ...]
    warnings: tuple[str, ...] = ()
    #: Nodes (and discovery endpoints) that authenticate with NTLM, named in a notice.
    ntlm_nodes: tuple[str, ...] = ()

    def ntlm_notice(self) -> str | None:
        """One line saying NTLM is deprecated, when any node uses it."""
        nodes = self.ntlm_nodes
        if not nodes:
            return None
        shown = ", ".join(nodes[:3]) + (f" and {len(nodes) - 3} more" if len(nodes) > 3 else "")
        return (f"NTLM is deprecated by Microsoft and blocked in hardened domains; {len(nodes)} node(s) use it "
                f"({shown}): use Kerberos (principal: and keytab:, or kinit; see the README's Kerberos section)")

    def jobs(self) -> list[NodeJob]:
        """One job per explicitly listed node, in inventory order."""
        return [NodeJob(c.name, ep) for c in self.clusters for ep in c.nodes]

    def discoveries(self) -> list[Discovery]:
        """The clusters given by ``discover_from``, in inventory order."""
        return [c.discovery for c in self.clusters if c.discovery is not None]


def load_inventory(path: Path, *, environ: Mapping[str, str] = os.environ,
                   prompt: Callable[[str], str] | None = None) -> Inventory:
    """Read, validate and resolve an inventory file; raise :class:`InputError` on any problem.

    ``prompt`` asks for a password (``password_prompt: true``); the CLI passes one only when
    standard input is a terminal.
    """
    doc = load_yaml(Path(path))
    return _Builder(Path(path), doc, environ, prompt).build(doc.data)


# --- validation and resolution ----------------------------------------------------------------

_TYPE_WORDS = {"object": "a mapping", "array": "a list", "string": "a string", "integer": "a whole number",
               "number": "a number", "boolean": "true or false", "null": "nothing"}


def _type_word(value: Any) -> str:
    if isinstance(value, bool):
        return "true or false"
    for word, kind in (("a mapping", dict), ("a list", list), ("a string", str), ("a number", (int, float))):
        if isinstance(value, kind):
            return word
    return "nothing" if value is None else type(value).__name__


def _schema_problem(err: jsonschema.ValidationError) -> tuple[PathT, str]:
    """Where a schema error is and what it means, said for a person editing YAML."""
    path: PathT = tuple(err.absolute_path)
    kind, expected, value = err.validator, err.validator_value, err.instance
    if kind == "additionalProperties" and isinstance(value, dict):
        allowed = sorted(err.schema.get("properties", {}))
        key = min(str(k) for k in value if k not in allowed)
        if key == "password":
            return path + (key,), ("a clear-text password is not allowed in the inventory; use password_env, "
                                   "password_file, password_keyring or password_prompt")
        close = difflib.get_close_matches(key, allowed, n=1)
        hint = f"did you mean '{close[0]}'?" if close else "allowed: " + ", ".join(allowed)
        return path + (key,), f"unknown key '{key}'; {hint}"
    if kind == "required" and isinstance(value, dict):
        missing = [k for k in expected if k not in value]
        return path, f"missing required key '{missing[0]}'"
    if kind == "const" and path == ("lmscan_inventory",):
        return path, f"unsupported lmscan_inventory version {value!r}; this lmscan reads version {INVENTORY_VERSION}"
    if kind == "enum":
        return path, f"{value!r} is not allowed; use one of: {', '.join(map(str, expected))}"
    if "x-message" in err.schema and kind in ("pattern", "type", "minimum", "maximum", "exclusiveMinimum"):
        return path, f"{value!r} {err.schema['x-message']}"
    if kind == "type":
        words = [_TYPE_WORDS.get(t, t) for t in ([expected] if isinstance(expected, str) else expected)]
        return path, f"expected {' or '.join(words)}, found {_type_word(value)}"
    if kind == "minItems":
        return path, "must not be an empty list"
    if kind == "minLength":
        return path, "must not be empty"
    if kind in ("minimum", "maximum", "exclusiveMinimum"):
        return path, f"{value!r} is out of range ({err.message})"
    return path, err.message


class _Builder:
    """Turns validated inventory data into endpoints, resolving each password source once."""

    def __init__(self, path: Path, doc: YamlDoc, environ: Mapping[str, str],
                 prompt: Callable[[str], str] | None) -> None:
        self.path = path
        self.source = doc.source
        self.doc = doc
        self.environ = environ
        self.prompt = prompt
        self.secrets: dict[tuple[str, ...], str] = {}
        self.risks: dict[tuple[str, PathT], list[str]] = {}
        self.ntlm_nodes: list[str] = []
        self._ticket: bool | None = None

    def error(self, path: PathT, problem: str) -> InputError:
        return self.doc.error(list(path), problem)

    def build(self, data: Any) -> Inventory:
        self.validate(data)
        defaults = data.get("defaults") or {}
        plans: list[ClusterPlan] = []
        seen_clusters: dict[str, int] = {}
        seen_nodes: dict[str, PathT] = {}
        for ci, cluster in enumerate(data["clusters"]):
            cpath: PathT = ("clusters", ci)
            name = cluster["name"].strip()
            if name.casefold() in seen_clusters:
                raise self.error(cpath + ("name",), f"cluster '{name}' is listed twice "
                                 f"(also clusters[{seen_clusters[name.casefold()]}]); cluster names must be unique")
            seen_clusters[name.casefold()] = ci
            has_nodes, has_discovery = "nodes" in cluster, "discover_from" in cluster
            if has_nodes and has_discovery:
                raise self.error(cpath + ("discover_from",), f"cluster '{name}' has both 'nodes' and "
                                 "'discover_from'; give one of them")
            if not has_nodes and not has_discovery:
                raise self.error(cpath, f"cluster '{name}' needs either 'nodes' (a list of hosts) or "
                                 "'discover_from' (one member to ask for the others)")
            levels = [(defaults, ("defaults",)), (cluster, cpath)]
            if has_nodes and "discovery_allow" in cluster:
                raise self.error(cpath + ("discovery_allow",), f"cluster '{name}': discovery_allow only applies "
                                 "with discover_from")
            if has_nodes:
                nodes = []
                for ni, entry in enumerate(cluster["nodes"]):
                    npath = cpath + ("nodes", ni)
                    endpoint = self.node_endpoint(entry, levels, npath, name)
                    key = endpoint.node.casefold()
                    if key in seen_nodes:
                        raise self.error(npath, f"node '{endpoint.node}' is listed twice "
                                         f"(also {fmt_path(seen_nodes[key])}, line {self.doc.line(seen_nodes[key])})")
                    seen_nodes[key] = npath
                    nodes.append(endpoint)
                plans.append(ClusterPlan(name, tuple(nodes), None))
            else:
                dpath = cpath + ("discover_from",)
                endpoint = self.node_endpoint(cluster["discover_from"], levels, dpath, name)
                settings = self.merge(levels)
                scheme = self.value(settings, "scheme", "https")
                port = self.value(settings, "port", DEFAULT_PORTS[scheme])
                template = self.endpoint(f"members of {name}", wsman_url(scheme, "member", port), settings, cpath)
                allow = cluster.get("discovery_allow") or {}
                domains = []
                for di, domain in enumerate(allow.get("domains", [])):
                    domain = domain.strip(".").casefold()
                    if host_problem(domain, allow_addresses=False):
                        raise self.error(cpath + ("discovery_allow", "domains", di),
                                         f"{domain!r} is not a DNS domain (like contoso.com)")
                    domains.append(domain)
                plans.append(ClusterPlan(name, (), Discovery(name, endpoint, scheme, port, template, tuple(domains),
                                                             bool(allow.get("ip_addresses", False)))))
        return Inventory(self.source, tuple(plans), tuple(self.warnings()), tuple(self.ntlm_nodes))

    def validate(self, data: Any) -> None:
        if not isinstance(data, dict):
            raise InputError(self.source, f"expected a mapping starting with 'lmscan_inventory: 1', "
                             f"found {_type_word(data)}")
        if "lmscan_inventory" not in data:
            raise InputError(self.source, "not an lmscan inventory: the key 'lmscan_inventory: 1' is missing")
        validator = jsonschema.Draft202012Validator(SCHEMA)
        problems = [_schema_problem(e) for e in validator.iter_errors(data)]
        if problems:
            path, message = min(problems, key=lambda p: (self.doc.line(p[0]), len(p[0])))
            raise self.error(path, message)

    @staticmethod
    def merge(levels: list[tuple[Mapping[str, Any], PathT]]) -> dict[str, tuple[Any, PathT]]:
        """Settings from outer to inner level; a level naming a password source replaces all."""
        out: dict[str, tuple[Any, PathT]] = {}
        for raw, base in levels:
            if any(k in raw for k in PASSWORD_SOURCES):
                for k in PASSWORD_SOURCES:
                    out.pop(k, None)
            for key in _SETTINGS:
                if key in raw:
                    out[key] = (raw[key], base + (key,))
        return out

    @staticmethod
    def value(settings: Mapping[str, tuple[Any, PathT]], key: str, default: Any) -> Any:
        return settings[key][0] if key in settings else default

    def node_endpoint(self, entry: Any, levels: list[tuple[Mapping[str, Any], PathT]], npath: PathT,
                      cluster: str) -> Endpoint:
        raw: Mapping[str, Any] = {"name": entry} if isinstance(entry, str) else entry
        name = raw["name"].strip()
        problem = host_problem(name)
        if problem:
            raise self.error(npath if isinstance(entry, str) else npath + ("name",), f"{name!r} {problem}")
        settings = self.merge([*levels, (raw, npath)])
        if "endpoint" in raw:
            for key in ("scheme", "port"):
                if key in raw:
                    raise self.error(npath + (key,), f"give either 'endpoint' or '{key}' for a node, not both")
            url = raw["endpoint"].strip()
            parts = urlsplit(url)
            try:
                _ = parts.port
            except ValueError:
                raise self.error(npath + ("endpoint",), f"{url!r} has a bad port number") from None
            if parts.scheme.lower() not in DEFAULT_PORTS or not parts.hostname:
                raise self.error(npath + ("endpoint",), f"{url!r} must be an http:// or https:// URL with a host")
        else:
            scheme = self.value(settings, "scheme", "https")
            url = wsman_url(scheme, name, self.value(settings, "port", None))
        return self.endpoint(name, url, settings, npath)

    def endpoint(self, name: str, url: str, settings: dict[str, tuple[Any, PathT]], npath: PathT) -> Endpoint:
        """Check one node's effective settings and build its :class:`Endpoint`."""
        scheme = urlsplit(url).scheme.lower()
        transport = self.value(settings, "transport", None) or self.default_transport(settings)
        tpath = settings.get("transport", (None, npath))[1]
        allow_unencrypted = self.value(settings, "allow_unencrypted", False)
        verify_tls = self.value(settings, "verify_tls", True)
        if transport == "basic" and scheme == "http":
            if not allow_unencrypted:
                raise self.error(tpath, f"{name}: Basic authentication over plain HTTP would send the password "
                                 "in clear text; use https, or set 'allow_unencrypted: true' for this node if "
                                 "that is acceptable (a test lab)")
            self.risk("unencrypted", settings["allow_unencrypted"][1], name)
        if transport == "certificate":
            if scheme != "https":
                raise self.error(tpath, f"{name}: certificate authentication needs https")
            for key in ("cert_pem", "cert_key_pem"):
                if key not in settings:
                    raise self.error(tpath, f"{name}: certificate authentication needs '{key}' "
                                     "(the client certificate and its key, PEM files)")
        if scheme == "https" and not verify_tls:
            self.risk("unverified", settings["verify_tls"][1], name)
        username = self.value(settings, "username", None)
        password = None
        if transport in NEEDS_PASSWORD:
            if username is None:
                hint = "" if "transport" in settings else (" (no 'transport' is given, no principal and no Kerberos "
                                                           "ticket, so NTLM is used; for Kerberos set 'principal' "
                                                           "and 'keytab', or run kinit first)")
                raise self.error(npath, f"{name}: {transport} authentication needs a 'username'{hint}")
            password = self.password(settings, username, npath, name)
        if transport == "ntlm":
            self.ntlm_nodes.append(name)
        principal, keytab = self.value(settings, "principal", None), None
        if transport == "kerberos" and "keytab" in settings:
            if principal is None:
                raise self.error(settings["keytab"][1], f"{name}: a keytab needs 'principal' (the account it was "
                                 "made for, like svc-lmscan@CONTOSO.COM)")
            keytab = self.keytab(settings["keytab"][0], settings["keytab"][1])
        return Endpoint(
            node=name, url=url, transport=transport, username=username, password=password,
            verify_tls=verify_tls, ca_bundle=self.file(settings, "ca_bundle"),
            cert_pem=self.file(settings, "cert_pem"), cert_key_pem=self.file(settings, "cert_key_pem"),
            timeout=float(self.value(settings, "timeout", DEFAULT_TIMEOUT)), allow_unencrypted=allow_unencrypted,
            principal=principal if transport == "kerberos" else None, keytab=keytab,
            service=self.value(settings, "service", "HTTP"), spn=self.value(settings, "spn", None),
            max_output=self.max_output(settings),
        )

    def default_transport(self, settings: Mapping[str, tuple[Any, PathT]]) -> str:
        """Kerberos when a principal is given or the environment has a ticket; NTLM otherwise."""
        if "principal" in settings:
            return "kerberos"
        if self._ticket is None:
            from scanner.collect import kerberos

            self._ticket = kerberos.ticket_cache_available()
        return "kerberos" if self._ticket else "ntlm"

    def keytab(self, value: str, where: PathT) -> str:
        """A keytab path, checked like a password file: it holds the account's keys."""
        p = self.resolve_path(value)
        try:
            secrets.owner_only(p, "keytab")
        except secrets.SecretError as exc:
            raise self.error(where, str(exc)) from None
        return str(p)

    def max_output(self, settings: dict[str, tuple[Any, PathT]]) -> int:
        """``max_output_mb`` in bytes (the schema lets NaN through: it compares false to every bound)."""
        if "max_output_mb" not in settings:
            return DEFAULT_MAX_OUTPUT
        value, where = settings["max_output_mb"]
        if not math.isfinite(value):
            raise self.error(where, f"{value!r} must be a number of megabytes above 0 (at most 4096)")
        return max(1, int(value * MB))

    def resolve_path(self, value: str) -> Path:
        p = Path(value).expanduser()
        return p if p.is_absolute() else self.path.parent / p

    def file(self, settings: dict[str, tuple[Any, PathT]], key: str) -> str | None:
        if key not in settings:
            return None
        value, where = settings[key]
        p = self.resolve_path(value)
        if not p.is_file():
            raise self.error(where, f"file not found: {p}")
        return str(p)

    def password(self, settings: dict[str, tuple[Any, PathT]], username: str, npath: PathT,
                 name: str) -> str:
        sources = [k for k in PASSWORD_SOURCES if k in settings and settings[k][0] is not False]
        if not sources:
            raise self.error(npath, f"{name}: no password source for {username}; set password_env, "
                             "password_file, password_keyring or password_prompt (in defaults, the cluster "
                             "or the node)")
        if len(sources) > 1:
            raise self.error(settings[sources[1]][1], f"give one password source, not {' and '.join(sources)}")
        kind = sources[0]
        value, where = settings[kind]
        if kind == "password_env":
            return self.cached(("env", value), lambda: self.from_env(value, where))
        if kind == "password_file":
            p = self.resolve_path(value)
            return self.cached(("file", str(p)), lambda: self.from_file(p, where))
        if kind == "password_keyring":
            service, user = value["service"], value.get("username", username)
            return self.cached(("keyring", service, user), lambda: self.from_keyring(service, user, where))
        return self.cached(("prompt", username), lambda: self.from_prompt(username, where))

    def cached(self, key: tuple[str, ...], read: Callable[[], str]) -> str:
        if key not in self.secrets:
            self.secrets[key] = read()
        return self.secrets[key]

    def from_env(self, variable: str, where: PathT) -> str:
        return self.secret(where, secrets.from_env, variable, self.environ)

    def from_file(self, p: Path, where: PathT) -> str:
        return self.secret(where, secrets.from_file, p)

    def from_keyring(self, service: str, user: str, where: PathT) -> str:
        return self.secret(where, secrets.from_keyring, service, user)

    def secret(self, where: PathT, read: Callable[..., str], *args: Any) -> str:
        try:
            return read(*args)
        except secrets.SecretError as exc:
            raise self.error(where, str(exc)) from None

    def from_prompt(self, username: str, where: PathT) -> str:
        if self.prompt is None:
            raise self.error(where, "password_prompt needs a terminal to ask on; standard input is not one "
                             "(use password_env or password_file for unattended runs)")
        secret = self.prompt(f"Password for {username}: ")
        if not secret:
            raise self.error(where, f"no password was entered for {username}")
        return secret

    def risk(self, kind: str, origin: PathT, node: str) -> None:
        self.risks.setdefault((kind, origin), []).append(node)

    def warnings(self) -> list[str]:
        out = []
        for (kind, origin), nodes in self.risks.items():
            shown = ", ".join(nodes[:5]) + (f" and {len(nodes) - 5} more" if len(nodes) > 5 else "")
            if kind == "unencrypted":
                what = "Basic authentication over plain HTTP: the password and all data cross the network unencrypted"
            else:
                what = "TLS certificates are not verified: a man in the middle could read the password"
            out.append(f"{self.source}:{self.doc.line(origin)}: {fmt_path(origin)}: {what} ({shown})")
        return out

"""The config file (contracts §7): one YAML file for a nightly job, turned into one Settings value.

Validated like every other input: JSON Schema plus a few checks of meaning, each problem as
``file:line: key: problem``; unknown keys are invalid. Paths are relative to the config file.
Secrets appear only by reference (an environment variable, an owner-only file, the keyring):
a key that looks like a clear-text password, or a history URL with a password in it, is
refused. The CLI merges its own options over this value; nothing below the CLI reads the file.
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from scanner.errors import InputError
from scanner.yamlsrc import YamlDoc, load_yaml, schema_check

CONFIG_VERSION = 1
OUTPUT_FORMATS = ("html", "junit", "json", "sarif", "markdown")
PLACEHOLDERS = ("date", "scan_id")
MAIL_ATTACH = ("html", "junit", "json", "sarif", "remediation")
_SEVERITIES = ["info", "low", "medium", "high", "critical"]
_ENV_NAME = {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}
_PATH = {"type": "string", "minLength": 1}
_PATHS = {"anyOf": [_PATH, {"type": "array", "items": _PATH, "minItems": 1}]}
_ADDRESS = {"type": "string", "pattern": r"^[^@\s,;<>]+@[^@\s,;<>]+$"}
_ADDRESSES = {"anyOf": [_ADDRESS, {"type": "array", "items": _ADDRESS}]}

MAIL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["to", "from", "smtp_host"],
    "properties": {
        "to": _ADDRESSES,
        "cc": _ADDRESSES,
        "from": _ADDRESS,
        "smtp_host": {"type": "string", "minLength": 1, "pattern": r"^[^\s/@]+$"},
        "smtp_port": {"type": "integer", "minimum": 1, "maximum": 65535},
        "security": {"enum": ["starttls", "tls", "none"]},
        "ca_bundle": _PATH,
        "username": {"type": "string", "minLength": 1},
        "password_env": _ENV_NAME,
        "password_file": _PATH,
        "password_keyring": {"type": "object", "additionalProperties": False, "required": ["service"],
                             "properties": {"service": {"type": "string", "minLength": 1},
                                            "username": {"type": "string", "minLength": 1}}},
        "reply_to": _ADDRESS,
        "max_attachment_mb": {"type": "number", "minimum": 0},
        "when": {"enum": ["always", "fail", "changed"]},
        "attach": {"type": "array", "items": {"enum": list(MAIL_ATTACH)}, "uniqueItems": True},
    },
}

SCHEMA: dict[str, Any] = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "lmscan_config": {"const": CONFIG_VERSION},
        "snapshots": _PATHS,
        "inventory": _PATH,
        "policy": _PATH,
        "rules": _PATHS,
        "fail_on": {"enum": _SEVERITIES},
        "fail_on_new": {"type": "boolean"},
        "workers": {"type": "integer", "minimum": 1, "maximum": 1024},
        "outputs": {"type": "object", "additionalProperties": False,
                    "properties": {"dir": _PATH, **{f: _PATH for f in OUTPUT_FORMATS}}},
        "history": {"anyOf": [_PATH, {"const": False}]},
        "history_password_env": _ENV_NAME,
        "mail": MAIL_SCHEMA,
    },
}

# Keys that would hold a secret in clear text: refused with the reference keys to use instead.
_SECRET_KEY = re.compile(r"pass(word|wd)?$|secret|token|api_?key|credential", re.IGNORECASE)
_REFERENCE_KEYS = {"password_env", "password_file", "password_keyring", "history_password_env"}


@dataclass(frozen=True)
class Settings:
    """Everything a config file can set; None means "not set, use the command line or default"."""

    source: str | None = None
    snapshots: tuple[Path, ...] = ()
    inventory: Path | None = None
    policy: Path | None = None
    rules: tuple[Path, ...] = ()
    fail_on: str | None = None
    fail_on_new: bool | None = None
    workers: int | None = None
    outputs: Mapping[str, str] = field(default_factory=dict)   # dir and per format; may hold {date}/{scan_id}
    history: str | None = None          # a SQLite path or a postgresql:// URL
    history_off: bool = False           # ``history: false``
    history_password_env: str | None = None
    mail: Mapping[str, Any] | None = None   # validated shape, paths resolved; the mail module reads it


def load_config(path: Path) -> Settings:
    """Read, validate and resolve one config file; any problem is an InputError with file:line."""
    doc = load_yaml(path)
    if doc.data is None:
        doc.data = {}
    if not isinstance(doc.data, dict):
        raise InputError(doc.source, "a config file is a mapping of keys (see 'lmscan config example')", "1")
    _refuse_secrets(doc, doc.data, ())
    _unknown_keys(doc, doc.data, SCHEMA, ())
    if isinstance(doc.data.get("fail_on"), str):
        doc.data["fail_on"] = doc.data["fail_on"].casefold()   # `fail_on: High` reads as high
    schema_check(doc, SCHEMA)
    return _settings(doc, Path(path))


def _refuse_secrets(doc: YamlDoc, data: Any, where: tuple[Any, ...]) -> None:
    if isinstance(data, dict):
        for key, value in data.items():
            if isinstance(key, str) and key not in _REFERENCE_KEYS and _SECRET_KEY.search(key):
                raise doc.error(where + (key,), "secrets are not allowed in clear text in the config file; "
                                "use password_env, password_file (owner-only) or password_keyring")
            _refuse_secrets(doc, value, where + (key,))


def _unknown_keys(doc: YamlDoc, data: Any, schema: Mapping[str, Any], where: tuple[Any, ...]) -> None:
    """Name the unknown key itself, on its own line, with the nearest known one."""
    import difflib
    if not isinstance(data, dict) or "properties" not in schema:
        return
    known = schema["properties"]
    for key, value in data.items():
        if key not in known:
            close = difflib.get_close_matches(str(key), list(known), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"allowed: {', '.join(sorted(known))}"
            raise doc.error(where + (key,), f"unknown key '{key}' ({hint})")
        _unknown_keys(doc, value, known[key], where + (key,))


def _check_template(doc: YamlDoc, where: tuple[Any, ...], text: str) -> None:
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(text) if f is not None]
    except ValueError as exc:
        raise doc.error(where, f"bad placeholder in {text!r}: {exc} (write a literal brace as '{{{{' or '}}}}')") \
            from None
    for name in fields:
        if name not in PLACEHOLDERS:
            raise doc.error(where, f"unknown placeholder {{{name}}} (known: {{date}}, {{scan_id}})")


def _settings(doc: YamlDoc, path: Path) -> Settings:
    data: dict[str, Any] = doc.data
    base = path.resolve().parent

    def p(value: str) -> Path:
        q = Path(value).expanduser()
        return q if q.is_absolute() else base / q

    def plist(value: Any) -> tuple[Path, ...]:
        return tuple(p(v) for v in ([value] if isinstance(value, str) else value))

    if "snapshots" in data and "inventory" in data:
        raise doc.error(("inventory",), "give either snapshots or inventory, not both")
    outputs: dict[str, str] = {}
    for key, value in (data.get("outputs") or {}).items():
        _check_template(doc, ("outputs", key), value)
        outputs[key] = value if key != "dir" else str(p(value))
    if "dir" not in outputs:   # file names without a dir are relative to the config file too
        outputs = {k: (v if Path(v).expanduser().is_absolute() else str(base / v)) for k, v in outputs.items()}
    history = data.get("history")
    history_off = history is False
    if isinstance(history, str):
        if "://" in history:
            parts = urlsplit(history)
            if parts.scheme not in ("postgresql", "postgres"):
                raise doc.error(("history",), f"unknown store {parts.scheme}://; give a file path (SQLite) "
                                "or a postgresql:// URL")
            try:
                has_password = parts.password is not None or "password=" in parts.query
            except ValueError:
                raise doc.error(("history",), "not a valid URL") from None
            if has_password:
                raise doc.error(("history",), "the URL holds a password; remove it and name an environment "
                                "variable with history_password_env")
        else:
            history = str(p(history))
    elif "history_password_env" in data:
        pass
    if "history_password_env" in data and not (isinstance(history, str) and "://" in history):
        raise doc.error(("history_password_env",), "only for a postgresql:// history")
    mail = _mail(doc, data["mail"], p) if "mail" in data else None
    return Settings(
        source=doc.source,
        snapshots=plist(data["snapshots"]) if "snapshots" in data else (),
        inventory=p(data["inventory"]) if "inventory" in data else None,
        policy=p(data["policy"]) if "policy" in data else None,
        rules=plist(data["rules"]) if "rules" in data else (),
        fail_on=data.get("fail_on"),
        fail_on_new=data.get("fail_on_new"),
        workers=data.get("workers"),
        outputs=outputs,
        history=history if isinstance(history, str) else None,
        history_off=history_off,
        history_password_env=data.get("history_password_env"),
        mail=mail,
    )


def _mail(doc: YamlDoc, mail: dict[str, Any], p: Any) -> dict[str, Any]:
    sources = [k for k in ("password_env", "password_file", "password_keyring") if k in mail]
    if len(sources) > 1:
        raise doc.error(("mail", sources[1]), f"give one password source, not {' and '.join(sources)}")
    if sources and "username" not in mail:
        raise doc.error(("mail", sources[0]), "a password needs a username")
    if mail.get("security") == "none" and sources:
        raise doc.error(("mail", "security"), "security: none would send the SMTP password in clear text; "
                        "use starttls or tls")
    out = dict(mail)
    for key in ("to", "cc"):
        if isinstance(out.get(key), str):
            out[key] = [out[key]]
    if not out.get("to"):
        raise doc.error(("mail", "to"), "name at least one recipient")
    for key in ("ca_bundle", "password_file"):
        if key in out:
            out[key] = str(p(out[key]))
    return out


def expand(template: str, date: str, scan_id: str) -> str:
    """Fill ``{date}`` and ``{scan_id}`` into an output path (already checked at load time)."""
    return template.format(date=date, scan_id=scan_id)


EXAMPLE = """\
# lmscan config file (contracts §7). Every key is optional; an option given on the command line
# wins over its key here. Relative paths are relative to this file. Check it with:
#   lmscan config check lmscan.yaml
lmscan_config: 1

# Where the facts come from: snapshot files or directories, or a live inventory (one of the two).
inventory: inventory.yaml
# snapshots: [/srv/lmscan/snapshots]

policy: site-policy.yaml          # the site policy (which networks are which)
rules: [rules.d]                  # extra rule packs, files or directories

fail_on: high                     # lowest severity whose failures make the exit code 1
fail_on_new: false                # true: only new or reopened failures count for exit 1
workers: 64                       # nodes collected at once

outputs:                          # {date} (YYYY-MM-DD) and {scan_id} are filled in per run
  dir: reports/{date}
  html: report.html
  junit: junit.xml
  json: results.json

# The history of every run: a SQLite file (default ~/.local/share/lmscan/history.db), a
# postgresql://user@host/db URL shared by several scanner hosts, or false for none.
history: history.db
# history: postgresql://lmscan@pg.contoso.com/lmscan
# history_password_env: LMSCAN_PG_PASSWORD   # the variable that holds the database password

# E-mail the report after each run. Passwords only by reference: password_env, password_file
# (readable by its owner only) or password_keyring.
mail:
  to: [cab@contoso.com]
  cc: []
  from: lmscan@contoso.com
  smtp_host: smtp.contoso.com
  smtp_port: 587
  security: starttls              # starttls | tls | none
  # ca_bundle: /etc/pki/corp-ca.pem
  username: svc-lmscan
  password_env: LMSCAN_SMTP_PASSWORD
  when: always                    # always | fail | changed
  attach: [html, json]            # any of html, junit, json, sarif, remediation
"""

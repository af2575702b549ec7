"""Coercion of values as real PowerShell prints them (contracts §1).

PowerShell may print an enum as its number or its name, a boolean as ``true`` or ``"True"``, a
list as ``[]``, ``null``, a bare scalar or not at all, and 5.1 dates as ``"\\/Date(ms)\\/"``.
Every reader goes through these functions so that the rest of the code sees one shape.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Mapping
from typing import Any

NODE_STATE = {-1: "Unknown", 0: "Up", 1: "Down", 2: "Paused", 3: "Joining"}
NETWORK_ROLE = {0: "None", 1: "Cluster", 2: "Client", 3: "ClusterAndClient"}
NETWORK_STATE = {-1: "Unknown", 0: "Unavailable", 1: "Down", 2: "Partitioned", 3: "Up"}
INTERFACE_STATE = {-1: "Unknown", 0: "Unavailable", 1: "Failed", 2: "Unreachable", 3: "Up"}
MIGRATION_AUTH = {0: "CredSSP", 1: "Kerberos"}
MIGRATION_PERF = {0: "TCPIP", 1: "Compression", 2: "SMB"}

_DATE_RE = re.compile(r"^\\?/Date\((-?\d+)([+-]\d{4})?\)\\?/$")


def prop(obj: Mapping[str, Any], key: str) -> Any:
    """A PowerShell property by name, case-insensitively (exact case is the fast path)."""
    try:
        return obj[key]
    except KeyError:
        pass
    folded = key.casefold()
    for k, value in obj.items():
        if isinstance(k, str) and k.casefold() == folded:
            return value
    return None


def is_empty(value: Any) -> bool:
    """``None`` and blank strings both mean empty."""
    return value is None or (value.__class__ is str and not value.strip())


def text(value: Any) -> str:
    """A scalar as display text; empty for null."""
    if value.__class__ is str:     # the common case, first
        return str(value).strip()
    if is_empty(value):
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (list, tuple)):
        return ", ".join(text(v) for v in value if not is_empty(v))
    if isinstance(value, Mapping):
        for key in ("Name", "Id", "Value"):
            found = prop(value, key)
            if found is not None:
                return text(found)
        return ""
    return str(value).strip()


def as_list(value: Any) -> list[Any]:
    """A PowerShell list in any of its printed shapes, as a Python list without empty items."""
    if value.__class__ is list:
        return [v for v in value if v is not None and not (v.__class__ is str and not v.strip())]
    if is_empty(value):
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if not is_empty(v)]
    return [value]


def as_objects(value: Any) -> list[Mapping[str, Any]]:
    """A section that is a list of objects, or one object printed bare."""
    # dict first: the ABC check is slow, and this runs for every row of every node's sections.
    return [v for v in as_list(value) if v.__class__ is dict or isinstance(v, Mapping)]


def as_object(value: Any) -> Mapping[str, Any] | None:
    """A section that is one object, possibly wrapped in a one-element array."""
    objs = as_objects(value)
    return objs[0] if objs else None


def as_bool(value: Any) -> bool | None:
    """``true``, ``"True"``, ``1``, ``"1"`` → True; null → None; anything unreadable → None."""
    if is_empty(value):
        return None
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value != 0
    if isinstance(value, str):
        v = value.strip().casefold()
        if v in ("true", "1", "yes", "$true", "on", "enabled"):
            return True
        if v in ("false", "0", "no", "$false", "off", "disabled"):
            return False
    return None


def as_int(value: Any) -> int | None:
    if value.__class__ is int:
        return int(value)
    if is_empty(value) or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if value.is_integer() else None
    if isinstance(value, str):
        try:
            return int(value.strip(), 10)
        except ValueError:
            try:
                f = float(value.strip())
            except ValueError:
                return None
            return int(f) if f.is_integer() else None
    return None


def as_enum(value: Any, names: Mapping[int, str]) -> str | None:
    """An enum printed as its number or its name, as its canonical name.

    Unknown numbers are kept visibly (``"7"``) rather than guessed.
    """
    if is_empty(value):
        return None
    if value.__class__ is str and not value.strip().lstrip("-").isdigit():
        number = None                     # a name: skip the (exception-raising) number parse
    else:
        number = as_int(value)
    if number is not None:
        return names.get(number, str(number))
    if isinstance(value, str):
        v = value.strip()
        for name in names.values():
            if name.casefold() == v.casefold():
                return name
        return v
    return text(value) or None


def as_date(value: Any) -> str | None:
    """ISO-8601 UTC text for ISO strings and PowerShell 5.1 ``/Date(ms)/`` values."""
    if is_empty(value):
        return None
    if isinstance(value, str):
        m = _DATE_RE.match(value.strip())
        if m:
            try:
                moment = _dt.datetime.fromtimestamp(int(m.group(1)) / 1000, tz=_dt.timezone.utc)
            except (OverflowError, OSError, ValueError):
                return value.strip()
            return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
        return value.strip()
    if isinstance(value, Mapping) and prop(value, "DateTime") is not None:
        return text(prop(value, "DateTime"))
    return text(value) or None


def id_list(value: Any) -> tuple[str, ...]:
    """Parse a ``;``-joined cluster network Id list: trim, drop empties and braces, lower-case.

    Also accepts a list (some tools print the parameter value as an array).
    """
    items: list[str] = []
    for part in as_list(value):
        for raw in str(part).split(";"):
            item = raw.strip().strip("{}").strip().casefold()
            if item and item not in items:
                items.append(item)
    return tuple(items)


def norm_id(value: Any) -> str:
    """A cluster network Id for comparison: no braces, no blanks, lower case."""
    return text(value).strip("{}").strip().casefold()

"""Results JSON (contracts §5): the one machine-readable form every other report mirrors.

Named ``jsonfmt`` so that nothing in this package can shadow the standard ``json`` module.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from scanner.model import ScanReport


def _fallback(value: Any) -> Any:
    """Make evidence the engine built from sets, enums or addresses serialisable, stably."""
    if isinstance(value, AbstractSet):
        return sorted(value, key=str)
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "value") and isinstance(value.value, (str, int)):
        return value.value
    return str(value)


# The last report rendered and its bytes: the HTML footer and the mail carry the JSON's SHA-256,
# so one scan asks for the same (large) document up to three times. (A strong reference: the
# report is frozen with slots, so it cannot be weakly referenced; it is the live scan anyway.)
_last: tuple[ScanReport, bytes] | None = None


def render_json(report: ScanReport) -> bytes:
    """``report.to_dict()`` as UTF-8 JSON with a trailing newline, one line per result.

    Key order is the order of ``to_dict()`` (the contract's order), so the same report
    always gives the same bytes and runs can be diffed.
    """
    global _last
    if _last is not None and _last[0] is report:
        return _last[1]
    data = _render(report)
    _last = (report, data)
    return data


def _render(report: ScanReport) -> bytes:
    parts = []
    for key, value in report.to_dict().items():
        if key == "results" and value:
            # One compact line per result: the C encoder instead of the pure-Python indenting one
            # (ten times faster on a fleet), and still one result per line for diff and grep.
            lines = ",\n".join("    " + json.dumps(r, ensure_ascii=False, default=_fallback) for r in value)
            parts.append(f'  "results": [\n{lines}\n  ]')
        else:
            body = json.dumps(value, indent=2, ensure_ascii=False, default=_fallback).replace("\n", "\n  ")
            parts.append(f"  {json.dumps(key)}: {body}")
    text = "{\n" + ",\n".join(parts) + "\n}"
    # A lone surrogate (from a badly decoded name) cannot be encoded: replace, never crash.
    return (text + "\n").encode("utf-8", errors="replace")

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


def render_json(report: ScanReport) -> bytes:
    """``report.to_dict()`` as indented UTF-8 JSON with a trailing newline.

    Key order is the order of ``to_dict()`` (the contract's order), so the same report
    always gives the same bytes and runs can be diffed.
    """
    text = json.dumps(report.to_dict(), indent=2, ensure_ascii=False, default=_fallback)
    # A lone surrogate (from a badly decoded name) cannot be encoded: replace, never crash.
    return (text + "\n").encode("utf-8", errors="replace")

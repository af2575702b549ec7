"""The built-in rules' metadata, read without loading the rule language: ``rules list`` and ``show`` start at once.

Loading ``rules/builtin.yaml`` properly (YAML with line numbers, JSON Schema, 50-odd Jinja
templates compiled and checked) costs most of a second, all of it for ``lmscan rules list``.
``rules/builtin.cache.json`` holds what those commands print, made by the full loader
(``python -m scanner.rulecache``) and stamped with the SHA-256 of the YAML it came from. It is
used only while that stamp matches the shipped YAML; otherwise the caller loads the pack the slow,
checked way. A test keeps the shipped file in step with the YAML.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

CACHE = "builtin.cache.json"
PACK = "builtin.yaml"
FORMAT = 1


@dataclass(frozen=True)
class RuleDoc:
    """What ``rules list`` and ``rules show`` print about one rule (the fields a loaded Rule has too)."""

    id: str
    title: str
    severity: str
    scope: str
    per_vm: bool
    rationale: str
    remediation_text: str
    references: tuple[str, ...]
    source: str
    line: int
    pack: str
    yaml_text: str
    fix: str | None = None


def _pack_bytes() -> bytes:
    return importlib.resources.files("scanner.rules").joinpath(PACK).read_bytes()


def cached_builtin_docs() -> list[RuleDoc] | None:
    """The built-in rules from the cache, or None when the cache is missing or not made from this YAML."""
    try:
        raw = importlib.resources.files("scanner.rules").joinpath(CACHE).read_bytes()
        doc = json.loads(raw)
        if doc.get("format") != FORMAT or doc.get("sha256") != hashlib.sha256(_pack_bytes()).hexdigest():
            return None
        return [RuleDoc(**{**r, "references": tuple(r["references"])}) for r in doc["rules"]]
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def build_cache() -> dict[str, Any]:
    """The cache document, from the full, checked load of the built-in pack."""
    from scanner.loader import builtin_pack

    names = [f.name for f in fields(RuleDoc)]
    rules = []
    for r in builtin_pack().rules:
        row = {n: getattr(r, n) for n in names}
        row["severity"] = r.severity.value
        row["references"] = list(r.references)
        rules.append(row)
    return {"format": FORMAT, "sha256": hashlib.sha256(_pack_bytes()).hexdigest(), "rules": rules}


def render_cache() -> str:
    return json.dumps(build_cache(), indent=1, ensure_ascii=False) + "\n"


def main() -> int:
    """Rewrite rules/builtin.cache.json beside rules/builtin.yaml in the source tree."""
    target = Path(__file__).resolve().parent.parent / "rules" / CACHE
    target.write_text(render_cache(), encoding="utf-8")
    print(f"wrote {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

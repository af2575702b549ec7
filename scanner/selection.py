"""``--only`` / ``--skip``: which rules a scan runs, by id or glob, checked against the rules loaded.

A typo must not silently run nothing (or everything): an id that names no rule, or a glob that
matches none, is bad input with a did-you-mean, exit 2.
"""

from __future__ import annotations

import difflib
import fnmatch
from collections.abc import Sequence
from typing import Protocol, TypeVar

from scanner.errors import InputError


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


R = TypeVar("R", bound=_HasId)


def parse_ids(values: Sequence[str] | None) -> list[str]:
    """``["LM001,LM002", "HOST*"]`` (repeated or comma-separated) as a flat list of patterns."""
    return [p.strip() for v in values or () for p in v.split(",") if p.strip()]


def _matcher(option: str, patterns: list[str], ids: list[str]) -> set[str]:
    """The casefolded ids ``patterns`` name; an unknown id or an empty glob is an InputError."""
    folded = {i.casefold(): i for i in ids}
    chosen: set[str] = set()
    for p in patterns:
        key = p.casefold()
        if any(c in p for c in "*?["):
            hits = {i for i in folded if fnmatch.fnmatchcase(i, key)}
            if not hits:
                raise InputError(option, f"{p!r} matches no rule id; 'lmscan rules list' shows the ids")
            chosen |= hits
        elif key in folded:
            chosen.add(key)
        else:
            close = difflib.get_close_matches(key, list(folded), n=3, cutoff=0.6)
            hint = f"; did you mean {' or '.join(folded[c] for c in close)}?" if close else ""
            raise InputError(option, f"unknown rule id {p!r}{hint} ('lmscan rules list' shows the ids)")
    return chosen


def select_rules(rules: Sequence[R], only: Sequence[str] | None, skip: Sequence[str] | None) -> list[R]:
    """The rules to run: those ``only`` names (all when empty), less those ``skip`` names."""
    ids = [r.id for r in rules]
    want, drop = parse_ids(only), parse_ids(skip)
    keep = _matcher("--only", want, ids) if want else {i.casefold() for i in ids}
    keep -= _matcher("--skip", drop, ids) if drop else set()
    chosen = [r for r in rules if r.id.casefold() in keep]
    if not chosen:
        raise InputError("arguments", "--only/--skip leave no rule to run")
    return chosen

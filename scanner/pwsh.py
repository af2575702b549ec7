"""The one place that turns values into PowerShell source text.

Nothing from a user or a cluster reaches PowerShell any other way: ``ps_quote`` makes a
single-quoted literal, doubling every character PowerShell treats as a single quote.
"""

from __future__ import annotations

# PowerShell's single-quote characters: ' and the typographic quotes U+2018 to U+201B.
_SINGLE_QUOTES = ("'", "\u2018", "\u2019", "\u201a", "\u201b")


def ps_quote(value: object) -> str:
    """``O'Brien`` -> ``'O''Brien'``: a literal PowerShell reads back as exactly ``value``."""
    text = str(value)
    out = []
    for ch in text:
        out.append(ch + ch if ch in _SINGLE_QUOTES else ch)
    return "'" + "".join(out) + "'"

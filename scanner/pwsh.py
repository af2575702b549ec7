"""The one place that turns text into PowerShell source: every field value reaches PowerShell here.

Two functions, one per place text can land in a script:

- :func:`quote` -- a value (an argument, a right-hand side): a single-quoted literal that PowerShell
  reads back as exactly the value. Every character PowerShell treats as a single quote is doubled;
  a value with line breaks or other control characters becomes one parenthesised expression,
  ``('a' + [char]10 + 'b')``, so a statement never spans lines.
- :func:`comment` -- text inside a ``#`` comment (or a ``<# #>`` block): one line, no line
  break of any kind, no control character, no ``<#`` or ``#>``, so it cannot end the comment.

Both are total (any ``str()``-able value) and work from Windows PowerShell 2.0 to PowerShell 7.
"""

from __future__ import annotations

import re
import unicodedata

__all__ = ["comment", "quote"]

# PowerShell's single-quote characters: ' and the typographic quotes U+2018 to U+201B.
SINGLE_QUOTES = frozenset("'\u2018\u2019\u201a\u201b")

# Control (Cc, which includes CR, LF and NEL), line and paragraph separators (Zl, Zp), format
# characters such as bidi overrides (Cf) and lone surrogates (Cs): never written as themselves.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_COMMENT_TAGS = re.compile(r"(?<=<)(?=#)|(?<=#)(?=>)")   # between the two characters of <# and #>


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def quote(value: object) -> str:
    """``O'Brien`` -> ``'O''Brien'``: one expression PowerShell reads back as exactly ``value``."""
    text = str(value)
    parts: list[str] = []
    run: list[str] = []
    for ch in text:
        if ch in SINGLE_QUOTES:
            run.append(ch + ch)
        elif _unsafe(ch):
            if run or not parts:
                parts.append("'" + "".join(run) + "'")
                run = []
            parts.append(f"[char]{ord(ch)}" if ord(ch) < 0x10000 else _astral(ch))
        else:
            run.append(ch)
    if not parts:
        return "'" + "".join(run) + "'"
    if run:
        parts.append("'" + "".join(run) + "'")
    return "(" + " + ".join(parts) + ")"


def _astral(ch: str) -> str:
    # Outside the BMP a [char] cannot hold it; PowerShell strings are UTF-16, so write the pair.
    cp = ord(ch) - 0x10000
    return f"[char]{0xD800 + (cp >> 10)} + [char]{0xDC00 + (cp & 0x3FF)}"


def comment(value: object) -> str:
    """Text that stays inert inside a PowerShell comment: a line break shows as ``\\n``, ``#>`` as ``# >``."""
    text = "".join(_visible(ch) if _unsafe(ch) else ch for ch in str(value))
    return _COMMENT_TAGS.sub(" ", text)


def _visible(ch: str) -> str:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    return named.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def ps_quote(value: object) -> str:
    """Former name of :func:`quote` (kept for callers written against it)."""
    return quote(value)

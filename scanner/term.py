"""The one function that makes text safe to print on a terminal.

Names, error texts and rule-pack text come from the field or from a pack's author. Printed raw,
``\\x1b]0;pwned\\x07`` retitles the window, ``\\x1b[2J`` clears the screen, a carriage return
overwrites what was printed before, and a bidi override (U+202E) makes ``exe.txt`` read as
``txt.exe``. :func:`clean` turns every such character into a visible escape (``\\x1b``,
``\\u202e``), which is inert on every terminal and shows that something was there; escape
*sequences* become inert with their ESC (or 8-bit CSI/OSC) character. Everything lmscan writes to
stdout or stderr that is not its own fixed text goes through it: progress lines, ``collect``
output, error and warning lines, the console summary, ``rules list`` and ``rules show``.

Renderers for files (HTML, XML, JSON) have their own escaping; this is for terminals only.
"""

from __future__ import annotations

import re

# What a terminal interprets or what hides or reorders text, by Unicode category:
# Cc  C0 controls (but tab, and newline where lines are allowed), DEL, C1 controls (8-bit CSI,
#     OSC, DCS, NEL ...);
# Cf  format characters: bidi embeddings, overrides, isolates and marks (U+061C, U+200E/F,
#     U+202A-202E, U+2066-2069), zero-width characters (U+200B-200D, U+2060-2064, U+FEFF),
#     the soft hyphen, interlinear annotations, tag characters (U+E0001, U+E0020-E007F) and
#     the rest of the category;
# Zl/Zp  U+2028/U+2029, which some terminals and tools treat as line breaks;
# Cs  lone surrogates (they cannot be encoded and would crash the write);
# and the invisible fillers often used to fake an empty or different name (U+034F, U+115F,
# U+1160, U+3164, U+FFA0). tests/test_term.py checks this against unicodedata for every code point.
_UNSAFE = (
    "\x00-\x08\x0b-\x1f\x7f-\x9f"
    "\u00ad\u034f\u0600-\u0605\u061c\u06dd\u070f\u0890\u0891\u08e2\u115f\u1160\u180e"
    "\u200b-\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f\u3164\ufeff\uffa0\ufff9-\ufffb"
    "\ud800-\udfff"
    "\U000110bd\U000110cd\U00013430-\U0001343f\U0001bca0-\U0001bca3\U0001d173-\U0001d17a"
    "\U000e0001\U000e0020-\U000e007f"
)
_SINGLE = re.compile(f"[\n{_UNSAFE}]")
_MULTI = re.compile(f"[{_UNSAFE}]")


_SHORT = {"\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    if ch in _SHORT:
        return _SHORT[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def clean(text: object, *, multiline: bool = False) -> str:
    """``text`` as a string that cannot steer a terminal, for printing.

    Control and format characters become visible escapes (``\\x1b``, ``\\u202e``, ``\\r``); tabs stay.
    A line break is escaped too (``\\n``), so one printed line stays one line, unless
    ``multiline`` is true: then ``\\r\\n`` becomes ``\\n`` and line breaks stay.
    """
    s = "" if text is None else str(text)
    if multiline:
        if "\r" in s:
            s = s.replace("\r\n", "\n")
        return _MULTI.sub(_escape, s)
    return _SINGLE.sub(_escape, s)

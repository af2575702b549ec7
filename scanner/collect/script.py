"""The collector script as shipped, with the version and run method filled in.

The collector takes no parameters: the only values Python sets are the collector version and how
it was run, both placed on marked lines through :func:`scanner.pwsh.ps_quote`, never with
f-strings (design.md habit 7).
"""

from __future__ import annotations

from importlib import resources

from scanner import __version__
from scanner.pwsh import ps_quote

SCRIPT_NAME = "collect.ps1"
METHODS = ("script", "winrm")

# Lines of collect.ps1 that Python rewrites; each must occur exactly once.
_VERSION_LINE = "$CollectorVersion = 'dev'"
_METHOD_LINE = "$CollectorMethod = 'script'"


def _set_line(text: str, marker: str, replacement: str) -> str:
    lines = text.split("\n")
    hits = [i for i, line in enumerate(lines) if line.rstrip("\r") == marker]
    if len(hits) != 1:
        raise RuntimeError(f"{SCRIPT_NAME}: expected the line {marker!r} exactly once, found {len(hits)}")
    lines[hits[0]] = replacement
    return "\n".join(lines)


def collector_script(method: str = "script") -> str:
    """The collector as shipped, with this lmscan's version and ``method`` ("script" or "winrm").

    ``lmscan collector-script`` prints it with the default method, for running by hand;
    collection over WinRM sends it with ``method="winrm"``.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, not {method!r}")
    text = resources.files("scanner.collect").joinpath(SCRIPT_NAME).read_text(encoding="utf-8")
    text = _set_line(text, _VERSION_LINE, "$CollectorVersion = " + ps_quote(__version__))
    return _set_line(text, _METHOD_LINE, "$CollectorMethod = " + ps_quote(method))

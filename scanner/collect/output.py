"""Turn what one collector run printed into a snapshot, or into a one-line node error.

Everything that can go wrong between "the command ran" and "we hold a valid snapshot" ends
here as ``NodeError(node, "output", reason)``: a PowerShell error stream (CLIXML) with a
non-zero exit, no output, output that is not JSON or stops mid-document, a JSON document that
is not a snapshot, or a snapshot from another machine than the one asked.
"""

from __future__ import annotations

import html
import ipaddress
import json
import re
from collections.abc import Callable

from scanner.collect.transport import NodeError, RunOutput
from scanner.errors import InputError
from scanner.snapshot import Snapshot, decode_text, snapshot_from_document

MAX_REASON = 300
NETBIOS_MAX = 15

_CLIXML_ERROR = re.compile(r"<S\s+S=\"error\"\s*>(.*?)</S>", re.IGNORECASE | re.DOTALL)
_CLIXML_ESCAPE = re.compile(r"_x([0-9A-Fa-f]{4})_")
# Lines of a PowerShell error record that locate it rather than say what went wrong.
_ERROR_NOISE = re.compile(r"^(At line:\d+|At .+:\d+ char:\d+|\+ |\+$|~+$|CategoryInfo|FullyQualifiedErrorId)")
_SNAPSHOT_START = re.compile(r'^\{\s*"lmscan_snapshot"', re.MULTILINE)


def one_line(text: str, limit: int = MAX_REASON) -> str:
    """Collapse whitespace to single spaces and cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def clixml_errors(stderr: str) -> str:
    """The human message of the error records in a ``#< CLIXML`` stream ('' when there are none).

    PowerShell wraps each error at the console width into several ``<S S="Error">`` pieces
    with ``_x000D__x000A_`` for line breaks; progress records (``<Obj S="progress">``) carry no
    message and are ignored. Position lines ("At line:1 char:1", "+ ~~~") are dropped.
    """
    pieces = [_CLIXML_ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), html.unescape(raw))
              for raw in _CLIXML_ERROR.findall(stderr)]
    lines = [line.strip() for line in "".join(pieces).splitlines()]
    kept = [line for line in lines if line and not _ERROR_NOISE.match(line)]
    return " ".join(kept)


def _same(text: str) -> str:
    return text


def stderr_message(stderr: bytes, scrub: Callable[[str], str] = _same) -> str:
    """A one-line message from a command's stderr, plain text or CLIXML ('' when empty).

    ``scrub`` (the endpoint's redaction) runs on the whole message before it is cut short.
    """
    text = stderr.decode("utf-8", errors="replace")
    if "#< CLIXML" in text or "<Objs" in text:
        return one_line(scrub(clixml_errors(text)))
    return one_line(scrub(text))


def _looks_truncated(text: str, err: json.JSONDecodeError) -> bool:
    """True when ``text`` is the start of a JSON document that simply stops."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
            if depth < 0:
                return False
    if not (in_string or depth > 0):
        return False
    if err.msg.startswith("Unterminated string"):
        return True
    # The parser must have failed on the last, unfinished token, not somewhere in the middle.
    rest = text[err.pos:].strip()
    return not any(c in rest for c in ' \t\r\n,:[]{}"')


def _name_matches(expected: str, reported: str) -> bool:
    """Same machine when the names differ only by case or a domain suffix on one side.

    The collector reports ``COMPUTERNAME``, the NetBIOS name, which Windows cuts to 15
    characters: a longer host name matches when it starts with it.
    """
    a, b = expected.strip().casefold().rstrip("."), reported.strip().casefold().rstrip(".")
    if a == b:
        return True
    if "." in a and "." in b:
        return False
    short_a, short_b = a.split(".", 1)[0], b.split(".", 1)[0]
    if short_a == short_b:
        return True
    return len(short_b) == NETBIOS_MAX and short_a.startswith(short_b)


def is_ip_address(host: str) -> bool:
    """True for an IPv4 or IPv6 literal (brackets allowed), False for a host name."""
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True


def parse_output(job_node: str, run: RunOutput, scrub: Callable[[str], str] = _same) -> Snapshot:
    """The snapshot one collector run printed for ``job_node``, or :class:`NodeError` ("output").

    Text of the node's output that goes into an error passes ``scrub`` before it is cut short.
    """

    def fail(reason: str) -> NodeError:
        return NodeError(job_node, "output", reason)

    if run.exit_code != 0:
        message = stderr_message(run.stderr, scrub) or one_line(scrub(run.stdout.decode("utf-8", errors="replace")))
        raise fail(f"collector failed (exit code {run.exit_code})" + (f": {message}" if message else ""))
    if not run.stdout.strip(b" \t\r\n\x00"):
        message = stderr_message(run.stderr, scrub)
        raise fail("collector printed nothing" + (f"; its error output: {message}" if message else ""))
    try:
        text = decode_text(run.stdout)
    except UnicodeDecodeError as exc:
        raise fail(f"collector output is not UTF-8 text (byte {exc.start})") from None
    # Anything a host or profile printed before the document (a warning, a banner) is skipped.
    start = _SNAPSHOT_START.search(text)
    if start is not None:
        text = text[start.start():]
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        if _looks_truncated(text, exc):
            raise fail(f"collector output is truncated: the JSON stops after {len(run.stdout)} bytes") from None
        raise fail(f"collector output is not JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
                   f"{one_line(scrub(text), 80)!r}") from None
    except RecursionError:
        raise fail("collector output is JSON nested too deeply") from None
    try:
        snapshot = snapshot_from_document(document, f"{job_node} (collector output)")
    except InputError as exc:
        place = f" (at {exc.where})" if exc.where else ""
        raise fail(f"collector output is not an lmscan snapshot: {scrub(exc.problem)}{place}") from None
    unnamed = is_ip_address(job_node) or job_node.casefold() == "localhost"
    if not unnamed and not _name_matches(job_node, snapshot.node):
        raise fail(f"the node answered as {snapshot.node!r}, not {job_node!r}; "
                   "check the inventory's name or endpoint for this node")
    return snapshot

"""Results JSON (contracts §5): the one machine-readable form every other report mirrors.

Named ``jsonfmt`` so that nothing in this package can shadow the standard ``json`` module.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from scanner.model import Result, ScanReport


def _fallback(value: Any) -> Any:
    """Make evidence the engine built from sets, enums or addresses serialisable, stably."""
    if isinstance(value, AbstractSet):
        return sorted(value, key=str)
    if isinstance(value, Mapping):
        return dict(value)
    if hasattr(value, "value") and isinstance(value.value, (str, int)):
        return value.value
    return str(value)


# ``json.dumps(value, ensure_ascii=False, default=_fallback)`` as its pieces, built once instead
# of once per result: the string function that encoder applies to every str (so a field encoded
# alone is the same text as inside a dict), and the encoder for whole values.
_string = json.encoder.encode_basestring
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=_fallback)


def _value_encoder() -> Callable[[Any], str]:
    """``_ENCODER.encode`` for the dicts and lists of one document.

    ``JSONEncoder.encode`` builds the C encoder anew for every value; this builds it once with
    the same arguments (``JSONEncoder.iterencode``'s one-shot path), which is most of the cost
    of encoding a result's small evidence dict. One per document: after an error its record of
    containers being encoded (for the circular-reference check) may be stale.
    """
    make = getattr(json.encoder, "c_make_encoder", None)   # not in typeshed; None without the C accelerator
    if make is None:
        return _ENCODER.encode
    enc = _ENCODER
    encoder = make({}, enc.default, _string, None, enc.key_separator, enc.item_separator,
                   enc.sort_keys, enc.skipkeys, enc.allow_nan)

    def encode(value: Any) -> str:
        if isinstance(value, (dict, list)):
            return "".join(encoder(value, 0))
        return enc.encode(value)

    return encode


# The last report rendered, its bytes and their SHA-256 (once asked): the HTML report (twice) and
# the mail carry the JSON's SHA-256, so one scan asks for the same (large) document and its hash
# several times. (A strong reference: the report is frozen with slots, so it cannot be weakly
# referenced; it is the live scan anyway.)
_last: tuple[ScanReport, bytes, list[str]] | None = None


def render_json(report: ScanReport) -> bytes:
    """``report.to_dict()`` as UTF-8 JSON with a trailing newline, one line per result.

    Key order is the order of ``to_dict()`` (the contract's order), so the same report
    always gives the same bytes and runs can be diffed.
    """
    global _last
    if _last is not None and _last[0] is report:
        return _last[1]
    data = _render(report)
    _last = (report, data, [])
    return data


def render_json_sha256(report: ScanReport) -> str:
    """The SHA-256 of :func:`render_json`'s document, hashed once per document."""
    data = render_json(report)
    last = _last
    if last is None or last[1] is not data:     # another document was rendered meanwhile
        return hashlib.sha256(data).hexdigest()
    if not last[2]:
        last[2].append(hashlib.sha256(data).hexdigest())
    return last[2][0]


#: Results encoded to UTF-8 at a time: the document is built from bytes of this many results, so
#: that it is held about twice (pieces and the whole), not four times as text, lines and bytes.
RESULTS_PER_PIECE = 2000


def _render(report: ScanReport) -> bytes:
    out: list[bytes] = []

    def put(text: str) -> None:
        # A lone surrogate (from a badly decoded name) cannot be encoded: replace, never crash.
        out.append(text.encode("utf-8", errors="replace"))

    for key, value in report.to_dict(results=False).items():
        put(",\n  " if out else "{\n  ")
        results = report.results
        if key == "results" and results:
            # One compact line per result (diff and grep find one result per line).
            encode = _value_encoder()
            put('"results": [\n    ')
            for start in range(0, len(results), RESULTS_PER_PIECE):
                lines = [result_line(r, encode) for r in results[start:start + RESULTS_PER_PIECE]]
                put((",\n    " if start else "") + ",\n    ".join(lines))
            put("\n  ]")
        else:
            body = json.dumps(value, indent=2, ensure_ascii=False, default=_fallback).replace("\n", "\n  ")
            put(f"{json.dumps(key)}: {body}")
    put("\n}\n")
    return b"".join(out)


def result_line(r: Result, encode: Callable[[Any], str] = _ENCODER.encode) -> str:
    """``json.dumps(r.to_dict(), ensure_ascii=False, default=_fallback)``, without the dict.

    A fleet has a hundred thousand results, and building each one's dict cost as much as
    encoding it. The usual result (text fields, a plain dict of evidence, no actions) is
    written here field by field, in the key order of :meth:`Result.to_dict`, with the
    encoder's own string function; anything else goes through ``to_dict`` as before.
    The tests compare both ways on hostile and unusual results.
    """
    evidence = r.evidence
    if r.actions or type(evidence) is not dict:
        return encode(r.to_dict())
    t = r.target
    try:
        head = (f'{{"id": {_string(r.id)}, "rule": {_string(r.rule)}, "title": {_string(r.title)}, '
                f'"severity": {_string(r.severity._value_)}, "status": {_string(r.status._value_)}, '
                f'"cluster": {_string(r.cluster)}, "target": {{"kind": {_string(t.kind)}, '
                f'"name": {_string(t.name)}, "id": {"null" if t.id is None else _string(t.id)}, '
                f'"node": {"null" if t.node is None else _string(t.node)}}}, '
                f'"message": {_string(r.message)}, "expected": {_string(r.expected)}, '
                f'"actual": {_string(r.actual)}, "evidence": ')
        tail = (f', "remediation": {_string(r.remediation)}'
                + ("}" if r.change is None else f', "change": {_string(r.change._value_)}}}'))
    except (TypeError, AttributeError):   # a field that is not text: the general encoder decides
        return encode(r.to_dict())
    return head + encode(evidence) + tail

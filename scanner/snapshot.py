"""Read and write per-node snapshot documents (contracts §1), tolerant of what PowerShell prints.

A snapshot is kept close to what the node sent: section names compare case-insensitively, section
values stay plain JSON (property names inside are read case-insensitively by
:func:`scanner.values.prop`). Interpretation (enums, id lists, subnets) happens in
:mod:`scanner.normalize`.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from scanner.errors import InputError
from scanner.fsutil import atomic_write

SNAPSHOT_VERSION = 1


class CIDict(Mapping[str, Any]):
    """A read-only mapping whose keys compare case-insensitively (PowerShell property names)."""

    __slots__ = ("_data",)

    def __init__(self, data: Mapping[str, Any]) -> None:
        folded: dict[str, tuple[str, Any]] = {}
        for k, v in data.items():
            if k.__class__ is not str:
                k = str(k)
            folded.setdefault(k.casefold(), (k, v))
        self._data = folded

    def __getitem__(self, key: str) -> Any:
        return self._data[key.casefold()][1]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.casefold() in self._data

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._data.values())

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str, default: Any = None) -> Any:
        hit = self._data.get(key.casefold())
        return default if hit is None else hit[1]

    def __repr__(self) -> str:
        return f"CIDict({dict(self.items())!r})"




@dataclass(frozen=True, slots=True)
class Snapshot:
    """One node's collected facts."""

    node: str
    collected_at: str | None
    collector: Mapping[str, Any]
    sections: CIDict
    errors: CIDict
    source: str
    document: Mapping[str, Any]
    absent: CIDict = field(default_factory=lambda: CIDict({}))
    dns_host_name: str | None = None
    #: Decoded by orjson: every value is plain JSON with finite floats and 64-bit integers, so
    #: ``orjson.dumps`` of a section is an exact key for it (see :func:`scanner.normalize.section_key`).
    plain_json: bool = False

    def section(self, name: str) -> Any:
        return self.sections.get(name)

    def has(self, name: str) -> bool:
        return name in self.sections and self.sections.get(name) is not None

    def failed(self, name: str) -> bool:
        return name in self.errors and name not in self.sections

    def is_absent(self, name: str) -> bool:
        """The collector found evidence that the feature behind ``name`` is not installed."""
        return name in self.absent and not self.has(name) and name not in self.errors

    def cluster_name(self) -> str | None:
        c = self.sections.get("Cluster")
        if isinstance(c, list):
            c = c[0] if c else None
        if isinstance(c, Mapping):
            from scanner.values import prop
            name = prop(c, "Name")
            if isinstance(name, str) and name.strip():
                return name.strip()
        return None


def decode_text(raw: bytes) -> str:
    """Decode UTF-8 (with or without BOM) or UTF-16 with a BOM, as Windows tools write them."""
    if raw.startswith(codecs.BOM_UTF8):
        return raw[len(codecs.BOM_UTF8):].decode("utf-8")
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return raw.decode("utf-16")
    if len(raw) >= 2 and raw[0] != 0 and raw[1] == 0:
        # UTF-16LE without a BOM: what some redirections produce.
        return raw.decode("utf-16-le")
    return raw.decode("utf-8")


def parse_snapshot(raw: bytes, source: str) -> Snapshot:
    """Parse one snapshot document, or raise :class:`InputError` naming the problem."""
    if not raw.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and \
            not (len(raw) >= 2 and raw[0] != 0 and raw[1] == 0):
        # Plain UTF-8, the common case: orjson validates the UTF-8 itself, so the text need not be
        # decoded first. Anything it refuses takes the path below for the exact error.
        try:
            doc = orjson.loads(raw)
        except (ValueError, RecursionError):
            pass
        else:
            return snapshot_from_document(doc, source, plain_json=True)
    try:
        text = decode_text(raw)
    except UnicodeDecodeError as exc:
        raise InputError(source, f"not UTF-8 or UTF-16 text (byte {exc.start}); "
                         "save the snapshot as UTF-8") from None
    if not text.strip():
        raise InputError(source, "empty file; expected a snapshot JSON document")
    try:
        doc, plain = _decode_json(text)
    except json.JSONDecodeError as exc:
        if exc.pos >= len(text.rstrip()):
            raise InputError(source, "truncated JSON: the document ends before it is complete "
                                     "(was the collection cut off?)", f"line {exc.lineno}") from None
        raise InputError(source, f"not JSON: {exc.msg}", f"line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise InputError(source, "JSON nested too deeply") from None
    except ValueError as exc:     # an integer of more than 4,300 digits (Python's int conversion limit)
        raise InputError(source, f"not a usable JSON document: {str(exc).split(';')[0]}") from None
    return snapshot_from_document(doc, source, plain_json=plain)


def _decode_json(text: str) -> tuple[Any, bool]:
    """orjson where it can (2-3x faster on large fleets), the standard library for its exact error texts.

    orjson refuses some documents the standard library reads (NaN, lone surrogates); those and
    every malformed document go through :func:`json.loads`, so what a user is told does not
    change. The flag says which decoded it (see :attr:`Snapshot.plain_json`).
    """
    try:
        return orjson.loads(text), True
    except orjson.JSONDecodeError:
        return json.loads(text), False


def snapshot_from_document(doc: Any, source: str, plain_json: bool = False) -> Snapshot:
    """Validate the top level of a decoded snapshot document (``plain_json``: decoded by orjson)."""
    if not isinstance(doc, dict):
        raise InputError(source, f"expected a JSON object with 'lmscan_snapshot', found {type(doc).__name__}")
    top = CIDict(doc)
    if "lmscan_snapshot" not in top:
        raise InputError(source, "missing key 'lmscan_snapshot'; this is not an lmscan snapshot")
    version = top["lmscan_snapshot"]
    if isinstance(version, bool) or version not in (SNAPSHOT_VERSION, str(SNAPSHOT_VERSION)):
        raise InputError(source, f"unsupported lmscan_snapshot version {version!r}; this lmscan reads version 1",
                         "lmscan_snapshot")
    node = top.get("node")
    if not isinstance(node, str) or not node.strip():
        raise InputError(source, "missing or empty 'node' (the node's name)", "node")
    sections = top.get("sections")
    if not isinstance(sections, dict):
        raise InputError(source, "'sections' must be a JSON object of section name to value", "sections")
    errors = top.get("errors")
    if errors is None:
        errors = {}
    if not isinstance(errors, dict):
        raise InputError(source, "'errors' must be a JSON object of section name to message", "errors")
    absent = top.get("absent")
    if absent is None:
        absent = {}
    if not isinstance(absent, dict):
        raise InputError(source, "'absent' must be a JSON object of section name to reason", "absent")
    dns = top.get("dns_host_name")
    collector = top.get("collector")
    collected_at = top.get("collected_at")
    return Snapshot(
        node=node.strip(),
        collected_at=str(collected_at) if collected_at not in (None, "") else None,
        collector=CIDict(collector) if isinstance(collector, dict) else CIDict({}),
        sections=CIDict(sections),
        errors=CIDict({k: "" if v is None else str(v) for k, v in errors.items()}),
        source=source,
        document=doc,
        absent=CIDict({k: "" if v is None else str(v) for k, v in absent.items()}),
        dns_host_name=dns.strip() if isinstance(dns, str) and dns.strip() else None,
        plain_json=plain_json,
    )


def read_snapshot_file(path: Path) -> Snapshot:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    return parse_snapshot(raw, str(path))


def snapshot_files(paths: list[Path] | tuple[Path, ...] | Any) -> list[Path]:
    """The files a list of files and directories (``*.json``, recursively) names."""
    found: list[Path] = []
    for p in paths:
        if p.is_dir():
            files = sorted(q for q in p.rglob("*") if q.is_file() and q.suffix.casefold() == ".json")
            if not files:
                raise InputError(p, "directory holds no *.json snapshot files")
            found.extend(files)
        elif p.is_file():
            found.append(p)
        else:
            raise InputError(p, "no such file or directory")
    return found


def read_snapshots(paths: list[Path]) -> list[Snapshot]:
    """Read files and directories (``*.json`` recursively). Any bad file stops the scan."""
    return [read_snapshot_file(f) for f in snapshot_files(paths)]


def write_snapshot(path: Path, document: Mapping[str, Any]) -> None:
    """Write a snapshot document as UTF-8 JSON, atomically."""
    atomic_write(path, (json.dumps(document, indent=1, ensure_ascii=False) + "\n").encode("utf-8"))

"""YAML loading that remembers where every value came from, for ``file:line: key: problem`` errors."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from scanner.errors import InputError

PathT = tuple[Any, ...]


def fmt_path(path: Sequence[Any]) -> str:
    """``("networks", 2, "subnets", 0)`` -> ``networks[2].subnets[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


@dataclass
class YamlDoc:
    """A loaded YAML document with the line of every value."""

    source: str
    data: Any
    lines: dict[PathT, int]
    text: str = ""

    def line(self, path: Sequence[Any]) -> int:
        """The line of the value at ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while p:
            if p in self.lines:
                return self.lines[p]
            p = p[:-1]
        return self.lines.get((), 1)

    def error(self, path: Sequence[Any], problem: str, prefix: str = "") -> InputError:
        where = f"{self.line(path)}"
        key = fmt_path(path)
        return InputError(self.source, f"{prefix}{key}: {problem}" if path else f"{prefix}{problem}", where)


class _Loader(yaml.SafeLoader):
    pass


#: Values after aliases are expanded, and levels of nesting, that one document may have: far
#: beyond any real policy, pack or inventory, and far below what would exhaust time or memory.
MAX_VALUES = 100_000
MAX_DEPTH = 64

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {f"{_TAG}{t}": t for t in ("str", "int", "float", "bool", "null", "timestamp")}
_KIND = {"int": "whole number", "float": "number", "bool": "boolean", "timestamp": "date", "null": "null",
         "str": "string"}


class _State:
    __slots__ = ("values", "open")

    def __init__(self) -> None:
        self.values = 0
        self.open: set[int] = set()


def _convert(loader: _Loader, node: yaml.Node, path: PathT, lines: dict[PathT, int], source: str,
             state: _State) -> Any:
    line = node.start_mark.line + 1
    lines.setdefault(path, line)
    state.values += 1
    if state.values > MAX_VALUES:
        raise InputError(source, f"more than {MAX_VALUES} values once aliases are expanded (an alias bomb?); "
                                 "write the values out or use fewer aliases", str(line))
    if len(path) > MAX_DEPTH:
        raise InputError(source, f"{fmt_path(path[:3])}...: nested more than {MAX_DEPTH} levels deep", str(line))
    if id(node) in state.open:
        raise InputError(source, f"{fmt_path(path)}: an alias refers to a value that contains it", str(line))
    if isinstance(node, yaml.MappingNode):
        if node.tag != f"{_TAG}map":
            raise _tag_error(node, path, source)
        state.open.add(id(node))
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise InputError(source, f"{fmt_path(path)}: mapping keys must be plain values",
                                 str(knode.start_mark.line + 1))
            key = _scalar(loader, knode, path, source)
            if key in out:
                raise InputError(source, f"{fmt_path(path + (key,))}: duplicate key '{key}'",
                                 str(knode.start_mark.line + 1))
            out[key] = _convert(loader, vnode, path + (key,), lines, source, state)
        state.open.discard(id(node))
        return out
    if isinstance(node, yaml.SequenceNode):
        if node.tag != f"{_TAG}seq":
            raise _tag_error(node, path, source)
        state.open.add(id(node))
        items = [_convert(loader, item, path + (i,), lines, source, state) for i, item in enumerate(node.value)]
        state.open.discard(id(node))
        return items
    return _scalar(loader, node, path, source)


def _tag_error(node: yaml.Node, path: PathT, source: str) -> InputError:
    tag = node.tag.replace(_TAG, "!!")
    return InputError(source, f"{fmt_path(path)}: the YAML tag {tag} is not supported here; write a plain value",
                      str(node.start_mark.line + 1))


def _scalar(loader: _Loader, node: yaml.Node, path: PathT, source: str) -> Any:
    """A plain value; a tag or text that does not make one (``2027-13-01``, ``!!int abc``) is bad input."""
    kind = _SCALAR_TAGS.get(node.tag)
    line = str(node.start_mark.line + 1)
    if kind is None:
        raise _tag_error(node, path, source)
    try:
        value = loader.construct_object(node, deep=True)
    except (ValueError, TypeError, OverflowError, yaml.YAMLError) as exc:
        why = str(exc).split(";")[0].splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(source, f"{fmt_path(path)}: {str(node.value)[:60]!r} is not a valid {_KIND[kind]} ({why})"
                                 + ("; quote it to keep it as text" if kind != "str" else ""), line) from None
    if isinstance(value, float) and not math.isfinite(value):
        raise InputError(source, f"{fmt_path(path)}: {node.value!r} is not a finite number", line)
    return value


def read_regular_file(path: Path) -> bytes:
    """The bytes of a regular file; a FIFO, device or directory is refused before it is opened (no blocking)."""
    import stat
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise InputError(path, "not a regular file (a directory, pipe or device?)")
        return path.read_bytes()
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None


def decode_yaml(raw: bytes, source: str) -> str:
    """UTF-8 (with or without BOM) or UTF-16 (with a BOM, or little-endian without one, as Windows writes)."""
    from scanner.snapshot import decode_text
    try:
        return decode_text(raw)
    except UnicodeDecodeError as exc:
        raise InputError(source, f"not UTF-8 or UTF-16 text (byte {exc.start}); save the file as UTF-8") from None


def load_yaml(path: Path, text: str | None = None) -> YamlDoc:
    """Load one YAML document; every problem becomes an :class:`InputError` with the line."""
    source = str(path)
    if text is None:
        text = decode_yaml(read_regular_file(Path(path)), source)
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        lines: dict[PathT, int] = {}
        data = _convert(loader, node, (), lines, source, _State()) if node is not None else None
    except yaml.reader.ReaderError as exc:
        where = text.count("\n", 0, max(exc.position, 0)) + 1
        hint = " (UTF-16 without a byte-order mark? save it as UTF-8)" if exc.character == 0 else ""
        raise InputError(source, f"invalid YAML: character U+{exc.character:04X} is not allowed{hint}"
                         if isinstance(exc.character, int) else f"invalid YAML: {exc.reason}", str(where)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = str(mark.line + 1) if mark else None
        problem = " ".join((exc.problem or exc.context or "invalid YAML").split())
        raise InputError(source, f"invalid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise InputError(source, f"invalid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise InputError(source, "invalid YAML: nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    return YamlDoc(source=source, data=data, lines=lines, text=text)


def schema_check(doc: YamlDoc, schema: Mapping[str, Any], prefix: str = "") -> None:
    """Validate against a JSON Schema; the first error (by position in the file) is raised."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(doc.data))
    if not errors:
        return
    best = min(errors, key=lambda e: (doc.line(list(e.absolute_path)), -len(e.absolute_path)))
    # Prefer the most specific error at that place (jsonschema's best_match picks the sub-error).
    best = jsonschema.exceptions.best_match([best]) or best
    raise doc.error(list(best.absolute_path), _schema_message(best), prefix)


def _schema_message(err: Any) -> str:
    if err.validator == "additionalProperties":
        extra = sorted(set(err.instance) - set(err.schema.get("properties", {})))
        allowed = ", ".join(sorted(err.schema.get("properties", {})))
        return f"unknown key '{extra[0]}' (allowed: {allowed})" if extra else str(err.message)
    if err.validator == "required":
        return str(err.message).replace("is a required property", "is required")
    if err.validator == "enum":
        return f"{err.instance!r} is not one of: {', '.join(map(str, err.validator_value))}"
    if err.validator == "type":
        return f"expected {err.validator_value}, found {type(err.instance).__name__} {err.instance!r}"
    return str(err.message)

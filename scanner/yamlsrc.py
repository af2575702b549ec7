"""YAML loading that remembers where every value came from, for ``file:line: key: problem`` errors."""

from __future__ import annotations

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


def _convert(loader: _Loader, node: yaml.Node, path: PathT, lines: dict[PathT, int], source: str) -> Any:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            key = loader.construct_object(knode, deep=True)
            if not isinstance(key, (str, int, float, bool)) and key is not None:
                raise InputError(source, f"{fmt_path(path)}: mapping keys must be plain values",
                                 str(knode.start_mark.line + 1))
            if key in out:
                raise InputError(source, f"{fmt_path(path + (key,))}: duplicate key '{key}'",
                                 str(knode.start_mark.line + 1))
            out[key] = _convert(loader, vnode, path + (key,), lines, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_convert(loader, item, path + (i,), lines, source) for i, item in enumerate(node.value)]
    return loader.construct_object(node, deep=True)


def load_yaml(path: Path, text: str | None = None) -> YamlDoc:
    """Load one YAML document; syntax errors become an :class:`InputError` with the line."""
    source = str(path)
    if text is None:
        try:
            raw = Path(path).read_bytes()
        except OSError as exc:
            raise InputError(source, f"cannot read: {exc.strerror}") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise InputError(source, "not UTF-8 text") from None
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        lines: dict[PathT, int] = {}
        data = _convert(loader, node, (), lines, source) if node is not None else None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = str(mark.line + 1) if mark else None
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise InputError(source, f"invalid YAML: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise InputError(source, f"invalid YAML: {exc}") from None
    finally:
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

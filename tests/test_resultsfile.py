"""A results JSON reads back into the report it was written from (for `lmscan mail --from-results`)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest

from scanner.errors import InputError
from scanner.render import FORMATS
from scanner.resultsfile import load_results

from render.conftest import build_sample  # tests/ is on sys.path (rootless test modules)


def test_round_trip_renders_the_same_reports(tmp_path: Path) -> None:
    report = build_sample(hostile=True)
    path = tmp_path / "results.json"
    path.write_bytes(FORMATS["json"](report))
    again = load_results(path)
    assert again.results_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    for fmt in ("json", "junit", "html"):   # (the HTML footer's hash is the file's, the same document's)
        assert FORMATS[fmt](again) == FORMATS[fmt](report), fmt


@pytest.mark.parametrize("content, problem", [
    (b"not json", "not a results JSON file"),
    (b'{"lmscan_snapshot": 1}', "lmscan_results: must be 1"),
    (b'{"lmscan_results": 1, "scan": {"id": "x"}, "results": [{"id": 1, "target": {}}]}',
     "results[0].id: expected text"),
    (b'{"lmscan_results": 1, "scan": {"id": "x"}, "results": [{"id": "a", "rule": "LM001", "severity": "huge", '
     b'"target": {"kind": "node", "name": "n"}}]}', "results[0].severity: 'huge' is not one of"),
])
def test_bad_results_files_are_one_clear_line(tmp_path: Path, content: bytes, problem: str) -> None:
    path = tmp_path / "r.json"
    path.write_bytes(content)
    with pytest.raises(InputError, match=re.escape(problem)) as info:
        load_results(path)
    assert str(info.value).startswith(str(path)) and "\n" not in str(info.value)


def test_unknown_later_fields_are_ignored(tmp_path: Path) -> None:
    data = json.loads(FORMATS["json"](build_sample()))
    data["future"] = {"x": 1}
    data["results"][0]["future_field"] = 2
    path = tmp_path / "r.json"
    path.write_text(json.dumps(data))
    assert len(load_results(path).results) == len(data["results"])

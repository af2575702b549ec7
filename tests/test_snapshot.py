"""Snapshot reading: encodings, required keys, and never a crash on arbitrary input."""

from __future__ import annotations

import codecs
import functools
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.errors import InputError
from scanner.snapshot import parse_snapshot, read_snapshots

DOC = {"lmscan_snapshot": 1, "node": "HV01", "sections": {"Cluster": {"Name": "Zürich-CLU"}}}
BAD = Path(__file__).parent / "data" / "bad"


@pytest.mark.parametrize("encode", [
    lambda t: t.encode("utf-8"),
    lambda t: codecs.BOM_UTF8 + t.encode("utf-8"),
    lambda t: codecs.BOM_UTF16_LE + t.encode("utf-16-le"),   # what '> node.json' writes in PowerShell 5.1
    lambda t: codecs.BOM_UTF16_BE + t.encode("utf-16-be"),
])
def test_encodings(encode):
    snap = parse_snapshot(encode(json.dumps(DOC, ensure_ascii=False)), "x.json")
    assert snap.node == "HV01"
    assert snap.cluster_name() == "Zürich-CLU"


def test_keys_are_case_insensitive():
    snap = parse_snapshot(b'{"LMSCAN_SNAPSHOT": "1", "Node": "hv02", "SECTIONS": {"cluster": [{"NAME": "c1"}]}}', "x")
    assert snap.node == "hv02"
    assert snap.cluster_name() == "c1"
    assert snap.has("Cluster") and snap.section("CLUSTER")[0]["NAME"] == "c1"


def test_failed_and_missing_sections():
    snap = parse_snapshot(json.dumps({**DOC, "errors": {"VMHost": "Access denied"}}).encode(), "x")
    assert snap.failed("VMHost") and not snap.has("VMHost")
    assert not snap.failed("NetIntent") and not snap.has("NetIntent")


@pytest.mark.parametrize("name, fragment", [
    ("snapshot-not-json.json", "not JSON"),
    ("snapshot-truncated.json", "truncated JSON"),
    ("snapshot-wrong-version.json", "unsupported lmscan_snapshot version 2"),
    ("snapshot-no-node.json", "'node'"),
    ("snapshot-not-object.json", "JSON object"),
])
def test_bad_files_name_file_and_problem(name, fragment):
    with pytest.raises(InputError) as err:
        read_snapshots([BAD / name])
    assert str(err.value).startswith(str(BAD / name))
    assert fragment in str(err.value)


def test_bad_file_among_good_ones_stops_the_scan(tmp_path):
    (tmp_path / "a.json").write_text(json.dumps(DOC))
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.JSON").write_text("{")
    with pytest.raises(InputError, match="b.JSON"):
        read_snapshots([tmp_path])


def test_empty_directory(tmp_path):
    with pytest.raises(InputError, match="no \\*.json"):
        read_snapshots([tmp_path])


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=30,
)
section_names = st.sampled_from(["Cluster", "ClusterNode", "ClusterNetwork", "ClusterNetworkInterface",
                                 "VirtualMachineResourceType", "VirtualMachineResource", "VMHost",
                                 "VMMigrationNetwork", "NetIntent", "NetIntentGlobalOverrides", "OperatingSystem"])


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_arbitrary_bytes_give_a_snapshot_or_an_input_error(raw):
    try:
        parse_snapshot(raw, "fuzz.json")
    except InputError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(section_names, json_values, max_size=6),
       st.dictionaries(section_names, json_values, max_size=3))
def test_arbitrary_sections_never_crash_the_scan(sections, errors):
    """Whatever the sections hold, the whole pipeline yields results, never an exception."""
    from scanner.normalize import group_clusters
    from scanner.pipeline import scan_clusters

    doc = {"lmscan_snapshot": 1, "node": "HV01", "sections": sections, "errors": errors}
    try:
        snap = parse_snapshot(json.dumps(doc).encode(), "fuzz.json")
    except InputError:
        return
    report = scan_clusters(_ruleset(), group_clusters([snap]))
    assert report.results


@functools.lru_cache(maxsize=1)
def _ruleset():  # loading is pure: one per session is enough
    from scanner.pipeline import load_ruleset
    return load_ruleset(None)


def test_absent_map_is_read_and_must_be_an_object():
    import json as _json

    from scanner.errors import InputError
    from scanner.snapshot import parse_snapshot as _parse
    doc = {"lmscan_snapshot": 1, "node": "HV01", "sections": {}, "absent": {"vmhost": "no vmms service"}}
    snap = _parse(_json.dumps(doc).encode(), "a.json")
    assert snap.is_absent("VMHost") and snap.absent["VMHost"] == "no vmms service"
    doc["absent"] = ["VMHost"]
    with pytest.raises(InputError, match="'absent' must be a JSON object"):
        _parse(_json.dumps(doc).encode(), "a.json")


def _outcome(raw: bytes) -> str:
    try:
        return repr(parse_snapshot(raw, "x.json"))
    except InputError as exc:
        return f"InputError {exc}"


documents = st.builds(
    lambda sections, ascii_only, cut: json.dumps({"lmscan_snapshot": 1, "node": "HV01", "sections": sections},
                                                 ensure_ascii=ascii_only).encode()[:cut],
    st.dictionaries(section_names, json_values, max_size=4), st.booleans(), st.integers(min_value=1) | st.none())
BOMS = (codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@settings(max_examples=300, deadline=None)
@given(documents | st.binary(max_size=200) | st.text(max_size=60).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_plain_utf8_is_read_undecoded_exactly_as_its_decoded_text(raw):
    """UTF-8 without a BOM goes to orjson as bytes; with a BOM, the same bytes are decoded to text first."""
    if raw.startswith(BOMS) or (len(raw) >= 2 and raw[0] != 0 and raw[1] == 0):
        return            # these take the decoding path either way
    assert _outcome(raw) == _outcome(codecs.BOM_UTF8 + raw)


def test_plain_json_says_whether_orjson_read_the_document():
    """Only what orjson decoded may be keyed by orjson.dumps (it writes NaN as null)."""
    assert parse_snapshot(json.dumps(DOC).encode(), "x").plain_json
    assert parse_snapshot(codecs.BOM_UTF16_LE + json.dumps(DOC).encode("utf-16-le"), "x").plain_json
    for odd in ('{"Metric": NaN}', '{"Name": "\\ud800"}'):
        raw = json.dumps(DOC).replace('{"Name"', f'{{"X": {odd}, "Name"').encode()
        snap = parse_snapshot(raw, "x")
        assert snap.cluster_name() == "Zürich-CLU" and not snap.plain_json

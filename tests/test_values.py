"""PowerShell's printed shapes -> one Python shape."""

from __future__ import annotations

import pytest

from scanner import values as v


@pytest.mark.parametrize("raw, expected", [
    (None, ()), ("", ()), ("  ", ()), (";;", ()),
    ("D3E9604B-7930-4FE4-946D-FD9148E5D561", ("d3e9604b-7930-4fe4-946d-fd9148e5d561",)),
    (" {a} ; b ;", ("a", "b")),
    (["a;b", "c"], ("a", "b", "c")),
    ("a;A", ("a",)),
])
def test_id_list(raw, expected):
    assert v.id_list(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    (3, "ClusterAndClient"), ("3", "ClusterAndClient"), ("clusterandclient", "ClusterAndClient"),
    (0, "None"), ("None", "None"), (7, "7"), (None, None), ("", None), (1.0, "Cluster"),
])
def test_enum_number_or_name(raw, expected):
    assert v.as_enum(raw, v.NETWORK_ROLE) == expected


@pytest.mark.parametrize("raw, expected", [
    (True, True), ("True", True), ("true", True), (1, True), ("1", True),
    (False, False), ("False", False), (0, False), (None, None), ("", None), ("maybe", None),
])
def test_bool(raw, expected):
    assert v.as_bool(raw) is expected


def test_lists_in_every_printed_shape():
    assert v.as_list(None) == []
    assert v.as_list("") == []
    assert v.as_list("10.0.0.0") == ["10.0.0.0"]
    assert v.as_list(24) == [24]
    assert v.as_list(["a", None, "", "b"]) == ["a", "b"]
    assert v.as_objects({"Name": "x"}) == [{"Name": "x"}]


def test_windows_powershell_dates():
    assert v.as_date("/Date(1700000000000)/") == "2023-11-14T22:13:20Z"
    assert v.as_date("\\/Date(1700000000000)\\/") == "2023-11-14T22:13:20Z"
    assert v.as_date("2026-11-26T02:00:03Z") == "2026-11-26T02:00:03Z"
    assert v.as_date(None) is None

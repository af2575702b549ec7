"""The whole collection path: inventory -> discovery -> collector on every node -> outcomes and files.

First with a plain function as the transport, then end to end with the real pywinrm against the
loopback WS-Man fake (Basic over HTTP, allow_unencrypted), including ``lmscan collect`` and
``lmscan scan --inventory``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from scanner.collect import collect_inventory, safe_file_name, save_snapshots
from scanner.collect.discover import DISCOVERY_SCRIPT
from scanner.collect.fleet import NodeOutcome
from scanner.collect.inventory import load_inventory
from scanner.collect.output import parse_output
from scanner.collect.transport import Endpoint, NodeError, RunOutput
from scanner.snapshot import read_snapshots

from .conftest import SECRET
from .fakewsman import CommandRequest, FakeWSMan, Reply, clixml_error

DATA = Path(__file__).resolve().parent.parent / "data" / "output"


def recorded(name: str, node: str | None = None, cluster: str | None = None) -> str:
    """A recorded collector answer, optionally renamed to another node / cluster."""
    doc = json.loads((DATA / name).read_text())
    if node:
        doc["node"] = node
    if cluster:
        doc["sections"]["Cluster"]["Name"] = cluster
        doc["sections"]["ClusterNode"] = [{"Name": doc["node"], "Id": "1", "State": 0}]
    return json.dumps(doc, ensure_ascii=True, separators=(",", ":"))


def ok(text: str) -> RunOutput:
    return RunOutput(text.encode(), b"", 0, 5, 0.01)


INVENTORY = """\
lmscan_inventory: 1
defaults: {{username: u, password_env: PW, transport: basic, scheme: http, allow_unencrypted: true, timeout: 10}}
clusters:
  - name: HVCLU01
    nodes: [{hv01}, {hv02}]
  - name: HVCLU02
    port: {port}
    discover_from: {seed}
    discovery_allow: {{ip_addresses: true}}   # the fake seed names its member 127.0.0.1
  - name: LAB
    nodes:
      - {lab1}
"""


def write_inventory(tmp_path: Path, **names: object) -> Path:
    values = {"hv01": "HV01", "hv02": "HV02", "seed": "seed", "port": 5985,
              "lab1": "{name: LAB1, password_env: PW_LAB}"} | names
    path = tmp_path / "inventory.yaml"
    path.write_text(INVENTORY.format(**values))
    return path


# --- with a plain function as the transport ----------------------------------------------------

def fake_run(answers: dict[str, Callable[[], RunOutput]]) -> Callable[[Endpoint, str], RunOutput]:
    def run(endpoint: Endpoint, script: str) -> RunOutput:
        if script == DISCOVERY_SCRIPT:
            return answers["discover:" + endpoint.node]()
        assert "$CollectorMethod = 'winrm'" in script
        return answers[endpoint.node]()
    return run


def raise_(err: Exception) -> Callable[[], RunOutput]:
    def f() -> RunOutput:
        raise err
    return f


def test_outcomes_in_inventory_order_with_discovery_and_failures(tmp_path: Path) -> None:
    inv = load_inventory(write_inventory(tmp_path), environ={"PW": "Pw-unit-1", "PW_LAB": "Pw-unit-2"})
    run = fake_run({
        "HV01": lambda: ok(recorded("hv01-2019.json")),
        "HV02": lambda: RunOutput(b"", clixml_error("Get-Cluster : Access is denied"), 1, 5, 0.01),
        "discover:seed": lambda: ok("node:HV21\r\nnode:HV22\r\n"),
        "HV21": lambda: ok(recorded("hv01-2019.json", "HV21", "HVCLU02")),
        "HV22": lambda: ok(recorded("hv01-2019.json", "HV22", "HVCLU02")[:500]),
        "LAB1": raise_(NodeError("LAB1", "auth", "authentication failed (basic)", 0.2)),
    })
    outcomes = collect_inventory(inv, run=run, workers=4, save_dir=tmp_path / "out")
    assert [(o.cluster, o.node, o.error) for o in outcomes] == [
        ("HVCLU01", "HV01", None),
        ("HVCLU01", "HV02", "HV02: collector failed (exit code 1): Get-Cluster : Access is denied"),
        ("HVCLU02", "HV21", None),
        ("HVCLU02", "HV22", "HV22: collector output is truncated: the JSON stops after 500 bytes"),
        ("LAB", "LAB1", "LAB1: authentication failed (basic) after 0.2 s"),
    ]
    saved = sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.json"))
    assert saved == ["HVCLU01/HV01.json", "HVCLU02/HV21.json"]
    assert [s.node for s in read_snapshots([tmp_path / "out"])] == ["HV01", "HV21"]


def test_a_failed_discovery_is_one_outcome_in_its_cluster_place(tmp_path: Path) -> None:
    inv = load_inventory(write_inventory(tmp_path), environ={"PW": "Pw-unit-1", "PW_LAB": "Pw-unit-2"})
    run = fake_run({
        "HV01": lambda: ok(recorded("hv01-2019.json")),
        "HV02": lambda: ok(recorded("hv02-2019.json")),
        "discover:seed": raise_(NodeError("seed", "connect", "connection refused (http://seed:5985/wsman)")),
        "LAB1": lambda: ok(recorded("lab1-2019.json")),
    })
    outcomes = collect_inventory(inv, run=run)
    assert [(o.cluster, o.node, o.snapshot is not None) for o in outcomes] == [
        ("HVCLU01", "HV01", True), ("HVCLU01", "HV02", True), ("HVCLU02", "seed", False), ("LAB", "LAB1", True)]
    assert outcomes[2].error == "could not discover nodes from seed: connection refused (http://seed:5985/wsman)"
    assert outcomes[2].kind == "connect"


def test_nothing_to_collect_but_a_failed_discovery(tmp_path: Path) -> None:
    path = tmp_path / "inv.yaml"
    path.write_text("lmscan_inventory: 1\nclusters:\n  - {name: K, transport: kerberos, discover_from: seed}\n")
    outcomes = collect_inventory(load_inventory(path, environ={}), run=fake_run({"discover:seed": lambda: ok("")}))
    assert [o.error for o in outcomes] == ["could not discover nodes from seed: Get-ClusterNode listed no nodes"]


@pytest.mark.parametrize(("name", "safe"), [
    ("HV01", "HV01"), ("hv01.contoso.com", "hv01.contoso.com"), ("../../etc/passwd", "etc_passwd"),
    ("LM Zürich", "LM_Z_rich"), ("CON", "_CON"), ("nul.txt", "_nul.txt"), ("...", "_"), ("a\\b:c", "a_b_c"),
])
def test_safe_file_name(name: str, safe: str) -> None:
    assert safe_file_name(name) == safe


def test_saved_files_never_overwrite_each_other(tmp_path: Path) -> None:
    snap = parse_output("HV01", ok(recorded("hv01-2019.json")))
    outcomes = [NodeOutcome("C/1", "HV01", snap, None, 0.1, 5), NodeOutcome("C:1", "hv01", snap, None, 0.1, 5),
                NodeOutcome("C/1", "HV02", None, "HV02: down", 0.1, 0)]
    written = save_snapshots(outcomes, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == ["C_1/HV01.json", "C_1/hv01-2.json"]
    assert json.loads(written[0].read_text()) == snap.document


# --- end to end: real pywinrm, loopback WS-Man, Basic over HTTP --------------------------------

@pytest.fixture
def fleet(wsman: Callable[..., FakeWSMan]) -> FakeWSMan:
    """One fake endpoint answering as several nodes (by URL path) and as a cluster to discover."""
    answers = {
        "/hv01": recorded("hv01-2019.json"),
        "/hv02": recorded("hv02-2019.json"),
        "/lab1": recorded("lab1-2019.json"),
        "/wsman": recorded("hv01-2019.json", "HV21", "HVCLU02"),  # the discovered member (127.0.0.1)
    }

    def handler(req: CommandRequest) -> Reply:
        if "Get-ClusterNode" in req.script and "node:" in req.script:
            return Reply(stdout="node:127.0.0.1\r\n")
        assert "$CollectorMethod = 'winrm'" in req.script and req.codepage == 65001
        return Reply(stdout=answers[req.path] + "\r\n")

    return wsman(handler, username="u", password=SECRET)


def fleet_inventory(tmp_path: Path, srv: FakeWSMan) -> Path:
    def node(name: str) -> str:
        return f'{{name: {name}, endpoint: "{srv.url_for(name.lower())}"}}'
    return write_inventory(tmp_path, hv01=node("HV01"), hv02=node("HV02"), port=srv.port,
                           seed=f'{{name: seed, endpoint: "{srv.url_for("seed")}"}}',
                           lab1=f'{{name: LAB1, endpoint: "{srv.url_for("lab1")}", password_env: PW_LAB}}')


def test_end_to_end_over_winrm(tmp_path: Path, fleet: FakeWSMan) -> None:
    inv = load_inventory(fleet_inventory(tmp_path, fleet), environ={"PW": SECRET, "PW_LAB": "wrong"})
    assert any("Basic authentication over plain HTTP" in w for w in inv.warnings)
    outcomes = collect_inventory(inv, workers=4, save_dir=tmp_path / "snapshots")
    by_node = {o.node: o for o in outcomes}
    assert [(o.cluster, o.node) for o in outcomes] == [
        ("HVCLU01", "HV01"), ("HVCLU01", "HV02"), ("HVCLU02", "127.0.0.1"), ("LAB", "LAB1")]
    for name in ("HV01", "HV02", "127.0.0.1"):
        assert by_node[name].error is None and by_node[name].snapshot is not None
        assert 4 <= by_node[name].requests <= 7  # Create, Command, Receive, Delete (+ NTLM legs)
    assert by_node["127.0.0.1"].snapshot.node == "HV21"  # type: ignore[union-attr]
    lab = by_node["LAB1"]
    assert lab.snapshot is None and lab.kind == "auth"
    assert lab.error is not None and lab.error.startswith("LAB1: authentication failed")
    assert SECRET not in repr(outcomes) and "wrong" not in (lab.error or "")
    names = [n["Name"] for n in by_node["HV01"].snapshot.section("ClusterNetwork")]  # type: ignore[union-attr]
    assert "LM Zürich 東京" in names
    saved = sorted(p.relative_to(tmp_path / "snapshots").as_posix() for p in (tmp_path / "snapshots").rglob("*"))
    assert saved == ["HVCLU01", "HVCLU01/HV01.json", "HVCLU01/HV02.json", "HVCLU02", "HVCLU02/127.0.0.1.json"]


def test_cli_collect_and_scan_with_an_inventory(tmp_path: Path, fleet: FakeWSMan,
                                                monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    from scanner.cli import main

    monkeypatch.setenv("PW", SECRET)
    monkeypatch.setenv("PW_LAB", "wrong")
    inventory = fleet_inventory(tmp_path, fleet)
    assert main(["collect", "--inventory", str(inventory), "--out", str(tmp_path / "out")]) == 3
    captured = capsys.readouterr()
    assert "collected 3 of 4 nodes" in captured.out and "LAB/LAB1: LAB1: authentication failed" in captured.out
    assert "Basic authentication over plain HTTP" in captured.err
    assert len(read_snapshots([tmp_path / "out"])) == 3

    report = tmp_path / "report.json"
    code = main(["scan", "--inventory", str(inventory), "--json", str(report), "--quiet"])
    results = json.loads(report.read_text())
    assert code in (1, 3)
    nodes = {(c["name"], n["name"]): n for c in results["clusters"] for n in c["nodes"]}
    assert sorted(nodes) == [("HVCLU01", "HV01"), ("HVCLU01", "HV02"), ("HVCLU02", "HV21"), ("LAB", "LAB1")]
    assert [nodes[k]["collected"] for k in sorted(nodes)] == [True, True, True, False]
    assert "authentication failed" in nodes[("LAB", "LAB1")]["error"]
    assert SECRET not in report.read_text() and SECRET not in capsys.readouterr().err


def test_ctrl_c_during_discovery_collects_nothing_and_says_interrupted(tmp_path: Path) -> None:
    import _thread
    import threading

    inv = load_inventory(write_inventory(tmp_path), environ={"PW": "Pw-unit-1", "PW_LAB": "Pw-unit-2"})
    release = threading.Event()
    collected: list[str] = []

    def run(endpoint: Endpoint, script: str) -> RunOutput:
        if script == DISCOVERY_SCRIPT:
            _thread.interrupt_main()
            release.wait(5)
            return ok("node:HV21\r\n")
        collected.append(endpoint.node)
        return ok(recorded("hv01-2019.json", endpoint.node))

    try:
        outcomes = collect_inventory(inv, run=run, save_dir=tmp_path / "out")
    finally:
        release.set()
    assert collected == []
    assert [(o.node, o.kind) for o in outcomes] == [
        ("HV01", "interrupted"), ("HV02", "interrupted"), ("seed", "interrupted"), ("LAB1", "interrupted")]
    assert all(o.error and o.error.endswith("interrupted") for o in outcomes)

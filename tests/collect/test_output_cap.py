"""A node that answers too much becomes an error, and the scanner's memory stays bounded (issue 7 item 12)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from scanner.collect.inventory import load_inventory
from scanner.collect.transport import DEFAULT_MAX_OUTPUT, Endpoint, NodeError, run_powershell

from .conftest import SECRET, snapshot_json
from .fakewsman import CommandRequest, FakeWSMan, RawHTTP, Reply

MB = 1024 * 1024
#: Runs lmscan and reports its peak memory (VmHWM: unlike ru_maxrss it does not carry over the
#: memory of the test process that forked it) as stderr's last line.
MEASURED = ("import sys\nfrom scanner.cli import main\ncode = main(sys.argv[1:])\n"
            "hwm = [ln for ln in open('/proc/self/status') if ln.startswith('VmHWM:')][0].split()[1]\n"
            "sys.stderr.write(f'maxrss_kb={hwm}\\n')\nsys.exit(code)\n")


def endpoint(srv: FakeWSMan, max_output: int) -> Endpoint:
    return Endpoint("HV01", srv.url, "basic", "u", SECRET, timeout=30, allow_unencrypted=True,
                    max_output=max_output)


@pytest.mark.parametrize("chunk_size", [64 * 1024, 64 * MB])   # many Receives, or one huge answer
def test_output_past_the_limit_is_an_output_error_and_the_shell_is_closed(
        wsman: Callable[..., FakeWSMan], chunk_size: int) -> None:
    srv = wsman(Reply(stdout=b"x" * (3 * MB)), chunk_size=chunk_size)
    with pytest.raises(NodeError) as info:
        run_powershell(endpoint(srv, 1 * MB), "Get-Cluster")
    assert info.value.kind == "output"
    assert "exceeds the limit of 1 MB (max_output_mb in the inventory)" in str(info.value)
    assert srv.open_shells() == 0
    out = run_powershell(endpoint(srv, 4 * MB), "Get-Cluster")   # under the limit: all of it
    assert len(out.stdout) == 3 * MB


def test_a_chunked_answer_without_a_length_is_cut_while_it_arrives(wsman: Callable[..., FakeWSMan]) -> None:
    srv = wsman(Reply(stdout="{}"))
    srv.inject("Receive", RawHTTP(200, b"<s:Envelope>" + b"A" * (16 * MB), chunked=True), times=1)
    with pytest.raises(NodeError) as info:
        run_powershell(endpoint(srv, 1 * MB), "Get-Cluster")
    assert info.value.kind == "output" and "exceeds the limit of 1 MB" in str(info.value)


def test_max_output_mb_in_the_inventory(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("lmscan_inventory: 1\ndefaults: {username: u, password_env: PW, max_output_mb: 2.5}\n"
                   "clusters:\n  - {name: C, nodes: [a, {name: b, max_output_mb: 64}]}\n  - {name: D, nodes: [c]}\n")
    a, b = load_inventory(inv, environ={"PW": "x"}).clusters[0].nodes
    assert (a.max_output, b.max_output) == (int(2.5 * MB), 64 * MB)
    inv.write_text(inv.read_text().replace("2.5", ".nan"))
    with pytest.raises(Exception, match="max_output_mb"):
        load_inventory(inv, environ={"PW": "x"})
    assert DEFAULT_MAX_OUTPUT == 16 * MB


def test_issue7_item12_a_huge_answer_makes_the_node_an_error_in_bounded_memory(
        tmp_path: Path, wsman: Callable[..., FakeWSMan]) -> None:
    big = b'{"lmscan_snapshot": 1, "pad": "' + b"A" * (48 * MB) + b'"}'
    good = snapshot_json("HV02")

    def handler(req: CommandRequest) -> Reply:
        return Reply(stdout=big if req.path == "/hv01" else good)

    srv = wsman(handler, chunk_size=64 * MB)   # all 48 MB (64 MB in base64) in one HTTP answer
    inv = tmp_path / "inv.yaml"
    inv.write_text(f"""\
lmscan_inventory: 1
defaults: {{username: u, password_env: PW, transport: basic, allow_unencrypted: true, timeout: 60, max_output_mb: 4}}
clusters:
  - name: HVCLU01
    nodes: [{{name: HV01, endpoint: "{srv.url_for('hv01')}"}}, {{name: HV02, endpoint: "{srv.url_for('hv02')}"}}]
""")
    env = dict(os.environ, PW=SECRET)
    env.pop("LMSCAN_POLICY", None)
    p = subprocess.run([sys.executable, "-c", MEASURED, "scan", "--inventory", str(inv), "--json",
                        str(tmp_path / "r.json"), "-q"], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 3, p.stderr
    maxrss_mb = int(p.stderr.strip().splitlines()[-1].split("=")[1]) / 1024
    print(f"peak RSS of the scan with a 48 MB answer and a 4 MB limit: {maxrss_mb:.0f} MB")
    assert maxrss_mb < 100, p.stderr      # reading the answer whole took the scanner past 300 MB
    nodes = {n["name"]: n for c in json.loads((tmp_path / "r.json").read_text())["clusters"] for n in c["nodes"]}
    assert nodes["HV02"]["collected"] and not nodes["HV01"]["collected"]
    assert "exceeds the limit of 4 MB" in nodes["HV01"]["error"]
    assert srv.open_shells() == 0

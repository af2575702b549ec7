"""Discovery: one fixed script on discover_from, member names parsed, failures become one outcome."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from scanner.collect.discover import (
    DISCOVERY_SCRIPT,
    discover_all,
    discover_cluster,
    member_host,
    parse_member_names,
)
from scanner.collect.inventory import Discovery, load_inventory
from scanner.collect.transport import Endpoint, NodeError, RunOutput

DATA = Path(__file__).resolve().parent.parent / "data"


def out(stdout: bytes = b"", stderr: bytes = b"", exit_code: int = 0) -> RunOutput:
    return RunOutput(stdout=stdout, stderr=stderr, exit_code=exit_code, requests=5, elapsed=0.01)


def discovery(seed: str = "hv11.contoso.com", cluster: str = "HVCLU02") -> Discovery:
    template = Endpoint(node="", url="", transport="ntlm", username="u", password="p", timeout=30.0)
    return Discovery(cluster, Endpoint(node=seed, url=f"https://{seed}:5986/wsman", username="u", password="p"),
                     "https", 5986, template)


def test_names_are_read_from_prefixed_lines_only() -> None:
    stdout = b"\xef\xbb\xbfWARNING: something\r\nnode:HV11\r\nnode: HV12 \r\n\r\nnode:hv12\r\nnode:\r\nHV99\r\n"
    assert parse_member_names(out(stdout)) == ["HV11", "HV12"]


def test_no_members_is_an_error() -> None:
    with pytest.raises(ValueError, match="Get-ClusterNode listed no nodes"):
        parse_member_names(out(b"\r\n"))


def test_failed_script_gives_its_error_message() -> None:
    clixml = (DATA / "output" / "clixml-access-denied.txt").read_bytes()
    with pytest.raises(ValueError, match=r"^Get-ClusterNode failed \(exit code 1\): Get-Cluster : You do not have"):
        parse_member_names(out(b"", clixml, 1))


@pytest.mark.parametrize(("name", "seed", "host"), [
    ("HV12", "hv11.contoso.com", "HV12.contoso.com"),
    ("HV12", "hv11.eu.contoso.com", "HV12.eu.contoso.com"),
    ("HV12", "hv11", "HV12"),
    ("HV12", "10.0.0.11", "HV12"),
    ("HV12", "fe80::11", "HV12"),
    ("HV12.corp.local", "hv11.contoso.com", "HV12.corp.local"),
])
def test_member_host_takes_the_domain_of_discover_from(name: str, seed: str, host: str) -> None:
    assert member_host(name, seed) == host


def test_discovered_members_become_jobs_with_the_cluster_settings() -> None:
    seen: list[tuple[str, str]] = []

    def run(ep: Endpoint, script: str) -> RunOutput:
        seen.append((ep.node, script))
        return out(b"node:HV11\r\nnode:HV12\r\n")

    result = discover_cluster(discovery(), run)
    assert seen == [("hv11.contoso.com", DISCOVERY_SCRIPT)]
    assert result.failure is None
    assert [(j.cluster, j.endpoint.node, j.endpoint.url, j.endpoint.timeout) for j in result.jobs] == [
        ("HVCLU02", "HV11.contoso.com", "https://HV11.contoso.com:5986/wsman", 30.0),
        ("HVCLU02", "HV12.contoso.com", "https://HV12.contoso.com:5986/wsman", 30.0),
    ]


def test_transport_failure_is_one_error_outcome_for_the_cluster() -> None:
    def run(ep: Endpoint, script: str) -> RunOutput:
        raise NodeError(ep.node, "auth", "authentication failed (ntlm)", elapsed=0.4)

    result = discover_cluster(discovery(), run)
    assert result.jobs == ()
    assert result.failure is not None
    assert (result.failure.cluster, result.failure.node, result.failure.snapshot) == (
        "HVCLU02", "hv11.contoso.com", None)
    assert result.failure.error == ("could not discover nodes from hv11.contoso.com: authentication failed (ntlm) "
                                    "after 0.4 s")
    assert result.failure.elapsed == 0.4


def test_empty_answer_and_unexpected_exceptions_are_outcomes_too() -> None:
    result = discover_cluster(discovery(), lambda ep, s: out(b""))
    assert result.failure is not None and result.failure.error == (
        "could not discover nodes from hv11.contoso.com: Get-ClusterNode listed no nodes")
    assert result.failure.requests == 5

    def broken(ep: Endpoint, script: str) -> RunOutput:
        raise OSError("disk full")

    result = discover_cluster(discovery(), broken)
    assert result.failure is not None and result.failure.error.endswith(": OSError: disk full")


def test_discover_all_runs_in_parallel_and_keeps_order() -> None:
    barrier = threading.Barrier(3, timeout=5)

    def run(ep: Endpoint, script: str) -> RunOutput:
        barrier.wait()  # only passes if all three run at once
        return out(f"node:{ep.node.split('.')[0]}-member\r\n".encode())

    items = [discovery(f"seed{i}.contoso.com", f"C{i}") for i in range(3)]
    start = time.monotonic()
    results = discover_all(items, run, workers=8)
    assert time.monotonic() - start < 5
    assert [(r.cluster, r.jobs[0].endpoint.node) for r in results] == [
        ("C0", "seed0-member.contoso.com"), ("C1", "seed1-member.contoso.com"), ("C2", "seed2-member.contoso.com")]
    assert discover_all([], run) == []


def test_discovery_from_a_loaded_inventory(tmp_path: Path) -> None:
    inv_path = tmp_path / "inv.yaml"
    inv_path.write_text("""\
lmscan_inventory: 1
defaults: {username: u, password_env: PW, scheme: http, port: 15985}
clusters:
  - name: HVCLU02
    discover_from: hv11.contoso.com
""")
    [d] = load_inventory(inv_path, environ={"PW": "x"}).discoveries()
    result = discover_cluster(d, lambda ep, s: out(b"node:HV11\r\nnode:HV12\r\n"))
    assert [j.endpoint.url for j in result.jobs] == ["http://HV11.contoso.com:15985/wsman",
                                                    "http://HV12.contoso.com:15985/wsman"]


def test_ctrl_c_during_discovery_returns_interrupted_outcomes_quickly() -> None:
    import _thread

    release = threading.Event()

    def run(ep: Endpoint, script: str) -> RunOutput:
        if ep.node == "fast.contoso.com":
            return out(b"node:F1\r\n")
        _thread.interrupt_main()  # what Ctrl-C does to the thread waiting on the pool
        release.wait(5)
        return out(b"node:S1\r\n")

    items = [discovery("fast.contoso.com", "FAST"), discovery("slow.contoso.com", "SLOW")]
    start = time.monotonic()
    try:
        results = discover_all(items, run, workers=1, grace=0.2)
    finally:
        release.set()
    assert time.monotonic() - start < 3
    assert results[0].failure is None and [j.endpoint.node for j in results[0].jobs] == ["F1.contoso.com"]
    failure = results[1].failure
    assert failure is not None and failure.kind == "interrupted"
    assert failure.error == "could not discover nodes from slow.contoso.com: interrupted"

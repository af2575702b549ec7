"""The seed's answer cannot steer credentials: discovered names are checked first (issue 7 item 5)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from scanner.collect.discover import discover_cluster, member_problem
from scanner.collect.inventory import Discovery, host_problem, is_address, load_inventory
from scanner.collect.transport import Endpoint, RunOutput
from scanner.errors import InputError

from .conftest import SECRET
from .fakewsman import CommandRequest, FakeWSMan, Reply

#: Names a hostile or broken seed may report, none of which may be contacted by default.
HOSTILE = [
    "127.0.0.1", "localhost", "LOCALHOST.", "api.localhost", "127.1", "2130706433", "0x7f.1", "::1", "[::1]",
    "0:0:0:0:0:0:0:1", "::ffff:127.0.0.1", "fe80::1%eth0", "10.0.0.5", "169.254.169.254",
    "evil.example.org", "hv12.contoso.com.evil.org", "contoso.com.evil.org", "hv12.contoso.co",
    "hv12:5985", "hv12:8080/wsman", "http://hv12/wsman", "https://evil.example.org", "hv12/wsman", "u@hv12",
    "hv12?x", "hv12#x", "hv 12", "hv\t12", "hv\u202e21", "hv\u200b12", "hv\x1b[2J", "hv12\\evil", "-hv12",
    "hv12-", "a" * 64, "a." * 127 + "a", ".hv12", "hv..12", "hv12%2eevil.org", "hv12\u3002evil\u3002org",
    "hv1２", "*", "hv12,hv13", "hv12;calc",
]


def seed(name: str = "hv11.contoso.com", domains: tuple[str, ...] = (), addresses: bool = False) -> Discovery:
    template = Endpoint(node="", url="", transport="ntlm", username="u", password="p", timeout=30.0)
    return Discovery("HVCLU02", Endpoint(node=name, url=f"https://{name}:5986/wsman", username="u", password="p"),
                     "https", 5986, template, domains, addresses)


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_member_names_are_refused(name: str) -> None:
    assert member_problem(name, seed()) is not None


@pytest.mark.parametrize(("name", "discovery"), [
    ("HV12", seed()), ("hv12.contoso.com", seed()), ("HV12.EU.Contoso.Com.", seed()), ("hv_12", seed()),
    ("hv12.corp.local", seed(domains=("corp.local",))), ("hv12.x.corp.local", seed(domains=("corp.local",))),
    ("10.0.0.12", seed(addresses=True)), ("HV12", seed("10.0.0.11")), ("HV12", seed("hv11")),
])
def test_member_names_inside_the_seed_domain_or_the_allowed_ones_pass(name: str, discovery: Discovery) -> None:
    assert member_problem(name, discovery) is None


def test_address_forms_a_resolver_accepts_count_as_addresses() -> None:
    for name in ("127.1", "2130706433", "0x7f.0.0.1", "[::1]", "localhost", "::ffff:10.0.0.1"):
        assert is_address(name), name
    for name in ("hv12", "hv12.contoso.com", "1hv"):
        assert not is_address(name), name
    assert host_problem("127.0.0.1") is None and host_problem("127.0.0.1", allow_addresses=False)


def test_refused_members_become_error_outcomes_and_get_no_job() -> None:
    answer = "".join(f"node:{n}\r\n" for n in ["HV12", "127.0.0.1", "evil.example.org"]).encode()
    result = discover_cluster(seed(), lambda ep, s: RunOutput(answer, b"", 0, 5, 0.01))
    assert [j.endpoint.node for j in result.jobs] == ["HV12.contoso.com"]
    assert [(o.node, o.kind, o.snapshot) for o in result.refused] == [
        ("127.0.0.1", "config", None), ("evil.example.org", "config", None)]
    assert all(o.error and "not contacted" in o.error for o in result.refused)
    assert "discovery_allow: {ip_addresses: true}" in (result.refused[0].error or "")
    assert "discovery_allow: {domains: [example.org]}" in (result.refused[1].error or "")


@pytest.mark.parametrize("name", ["hv12:5985", "http://hv12/wsman", "hv 12", "u@hv12", "hv\u202e12", "a" * 64])
def test_inventory_names_pass_the_same_check(tmp_path: Path, name: str) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text(f'lmscan_inventory: 1\ndefaults: {{username: u, password_env: PW}}\n'
                   f'clusters:\n  - {{name: C, nodes: ["{name}"]}}\n', encoding="utf-8")
    with pytest.raises(InputError, match="not a host name|host name or address"):
        load_inventory(inv, environ={"PW": "x"})


def test_discovery_allow_is_read_and_checked(tmp_path: Path) -> None:
    inv = tmp_path / "inv.yaml"
    inv.write_text("lmscan_inventory: 1\ndefaults: {username: u, password_env: PW}\nclusters:\n"
                   "  - {name: C, discover_from: hv11.contoso.com, discovery_allow: {domains: [Corp.Local.], "
                   "ip_addresses: true}}\n")
    [d] = load_inventory(inv, environ={"PW": "x"}).discoveries()
    assert (d.domains, d.allow_addresses) == (("corp.local",), True)
    for bad in ("domains: [http://x]", "domains: [127.0.0.1]", "ip_adresses: true"):
        inv.write_text("lmscan_inventory: 1\ndefaults: {username: u, password_env: PW}\nclusters:\n"
                       f"  - {{name: C, discover_from: hv11.contoso.com, discovery_allow: {{{bad}}}}}\n")
        with pytest.raises(InputError):
            load_inventory(inv, environ={"PW": "x"})


def test_issue7_item5_a_seed_naming_127_0_0_1_never_gets_it_credentials(
        tmp_path: Path, wsman: Callable[..., FakeWSMan]) -> None:
    """The issue's case end to end: the seed lists loopback (where this fake listens, on the
    port the members would use) and other hostile names; nothing but the seed is contacted."""
    names = ["127.0.0.1", "localhost", "127.1", "[::1]", "evil.example.org", "hv12:5985", "u@127.0.0.1",
             "hv\x1b]0;x\x07"]

    def handler(req: CommandRequest) -> Reply:
        return Reply(stdout="".join(f"node:{n}\r\n" for n in names))

    srv = wsman(handler, username="u", password=SECRET)
    inv = tmp_path / "inv.yaml"
    inv.write_text(f"""\
lmscan_inventory: 1
defaults: {{username: u, password_env: PW, transport: basic, scheme: http, allow_unencrypted: true, timeout: 10}}
clusters:
  - name: HVCLU02
    port: {srv.port}
    discover_from: {{name: hv11.contoso.com, endpoint: "{srv.url_for('seed')}"}}
""")
    env = dict(os.environ, PW=SECRET, NO_COLOR="1")
    p = subprocess.run([sys.executable, "-m", "scanner", "collect", "--inventory", str(inv), "--out",
                        str(tmp_path / "out")], capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 3, p.stderr
    assert {e.path for e in srv.log} == {"/seed"}, [e.path for e in srv.log]   # only the seed was asked
    assert p.stdout.count("not contacted") == len(names), p.stdout
    assert "collected 0 of" in p.stdout and "\x1b" not in p.stdout + p.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.json"))

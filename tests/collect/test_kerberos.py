"""Kerberos against a real MIT KDC on loopback: real pywinrm, real GSSAPI on both ends.

The fake WS-Man endpoint accepts the tickets with the KDC's HTTP/localhost keytab; every error
below is produced by the KDC or the GSSAPI library for real, not simulated.
"""

from __future__ import annotations

import json
import re
import ssl
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from scanner.cli import main
from scanner.collect import kerberos
from scanner.collect.inventory import load_inventory
from scanner.collect.transport import Endpoint, NodeError, run_powershell
from scanner.errors import InputError

from .conftest import SECRET, snapshot_json
from .fakewsman import FakeWSMan, Reply
from .kdc import CLIENT, KDC, REALM, skew_ccache

pytestmark = pytest.mark.usefixtures("krb")
PRINCIPAL = f"{CLIENT}@{REALM}"


def served(wsman: Callable[..., FakeWSMan], krb: KDC, **kwargs: object) -> FakeWSMan:
    return wsman(Reply(stdout="hello from the node"), auth="kerberos", keytab=str(krb.service_keytab), **kwargs)


def endpoint(srv: FakeWSMan, **kwargs: object) -> Endpoint:
    settings: dict[str, object] = {"principal": PRINCIPAL, "timeout": 20.0}
    settings.update(kwargs)
    return Endpoint("HV01", settings.pop("url", srv.url), "kerberos", **settings)  # type: ignore[arg-type]


def failure(ep: Endpoint) -> str:
    with pytest.raises(NodeError) as caught:
        run_powershell(ep, "Get-Date")
    assert caught.value.kind == "auth", str(caught.value)
    line = str(caught.value)
    assert "\n" not in line and "Traceback" not in line
    return line


# --- it works --------------------------------------------------------------------------------


def test_keytab_alone_over_http_encrypts_every_message(wsman: Callable[..., FakeWSMan], krb: KDC,
                                                       tmp_path: Path) -> None:
    srv = served(wsman, krb)
    out = run_powershell(endpoint(srv, keytab=str(krb.client_keytab)), "Get-Date")
    assert out.stdout == b"hello from the node"
    assert srv.commands[0].user == PRINCIPAL
    assert srv.log and all(e.encrypted for e in srv.log), srv.log
    # the user's own (default) ticket cache was neither read nor written
    assert not (tmp_path / "user-ccache").exists()


def test_ticket_cache_from_kinit(wsman: Callable[..., FakeWSMan], krb: KDC, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    cache = krb.kinit(tmp_path / "kinit-cache")
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{cache}")
    srv = served(wsman, krb)
    out = run_powershell(endpoint(srv, principal=None), "Get-Date")
    assert out.stdout == b"hello from the node"
    assert srv.commands[0].user == PRINCIPAL
    assert all(e.encrypted for e in srv.log)


def test_principal_without_realm_takes_the_default_realm(wsman: Callable[..., FakeWSMan], krb: KDC) -> None:
    srv = served(wsman, krb)
    assert run_powershell(endpoint(srv, principal=CLIENT, keytab=str(krb.client_keytab)), "x").exit_code == 0
    assert srv.commands[0].user == PRINCIPAL


def test_keytab_ticket_is_obtained_again_before_it_expires(wsman: Callable[..., FakeWSMan], krb: KDC,
                                                           tmp_path: Path) -> None:
    keytab = krb.add_client("svc-short", tmp_path / "short.keytab", '-maxlife "4 seconds"')
    srv = served(wsman, krb)
    ep = endpoint(srv, principal=f"svc-short@{REALM}", keytab=str(keytab))
    run_powershell(ep, "Get-Date")
    time.sleep(2.5)  # under half of the ticket's 4 s is left: lmscan gets a new one from the keytab
    assert run_powershell(ep, "Get-Date").stdout == b"hello from the node"
    log = (krb.root / "kdc.log").read_text()
    assert len(re.findall(r"AS_REQ .*: ISSUE: .* svc-short@\S+ for krbtgt/", log)) == 2, log[-2000:]


def test_https_with_channel_binding(wsman: Callable[..., FakeWSMan], krb: KDC, tls: object) -> None:
    cert_der = ssl.PEM_cert_to_DER_cert(tls.server_cert.cert_chain_pems[0].bytes().decode())  # type: ignore[attr-defined]
    srv = served(wsman, krb, ssl_context=tls.server_context(), binding_cert=cert_der)  # type: ignore[attr-defined]
    out = run_powershell(endpoint(srv, keytab=str(krb.client_keytab), ca_bundle=tls.ca_bundle), "Get-Date")  # type: ignore[attr-defined]
    assert out.stdout == b"hello from the node"
    assert not any(e.encrypted for e in srv.log)  # TLS protects it; no second layer


def test_channel_binding_to_another_certificate_is_refused(wsman: Callable[..., FakeWSMan], krb: KDC,
                                                           tls: object) -> None:
    other = tls.ca.issue_cert("localhost")  # type: ignore[attr-defined]
    srv = served(wsman, krb, ssl_context=tls.server_context(),  # type: ignore[attr-defined]
                 binding_cert=ssl.PEM_cert_to_DER_cert(other.cert_chain_pems[0].bytes().decode()))
    line = failure(endpoint(srv, keytab=str(krb.client_keytab), ca_bundle=tls.ca_bundle))  # type: ignore[attr-defined]
    assert "refused the Kerberos ticket" in line
    assert any("binding" in f.lower() for f in srv.auth_failures), srv.auth_failures


# --- the errors admins meet, each produced for real ------------------------------------------


def test_clock_skew(wsman: Callable[..., FakeWSMan], krb: KDC, tmp_path: Path,
                    monkeypatch: pytest.MonkeyPatch) -> None:
    cache = krb.kinit(tmp_path / "skewed")
    skew_ccache(cache, 3600)
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{cache}")
    line = failure(endpoint(served(wsman, krb), principal=None))
    assert "clock skew too great" in line and "NTP" in line


def test_expired_ticket(wsman: Callable[..., FakeWSMan], krb: KDC, tmp_path: Path,
                        monkeypatch: pytest.MonkeyPatch) -> None:
    cache = krb.kinit(tmp_path / "short-lived", lifetime="2s")
    time.sleep(2.2)
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{cache}")
    line = failure(endpoint(served(wsman, krb), principal=None))
    assert "the Kerberos ticket has expired" in line and "kinit" in line


def test_no_ticket(wsman: Callable[..., FakeWSMan], krb: KDC) -> None:
    line = failure(endpoint(served(wsman, krb), principal=None))
    assert "no Kerberos ticket" in line and "kinit" in line and "keytab" in line


def test_unknown_spn(wsman: Callable[..., FakeWSMan], krb: KDC) -> None:
    srv = served(wsman, krb)
    line = failure(endpoint(srv, keytab=str(krb.client_keytab), spn="HTTP/hv01.lmscan.test"))
    assert "does not know the service principal HTTP/hv01.lmscan.test" in line
    assert "Server HTTP/hv01.lmscan.test@LMSCAN.TEST not found in Kerberos database" in line
    assert "setspn" in line


def test_unknown_spn_because_the_node_is_given_by_address(wsman: Callable[..., FakeWSMan], krb: KDC) -> None:
    srv = served(wsman, krb)
    line = failure(endpoint(srv, keytab=str(krb.client_keytab), url=srv.url.replace("localhost", "127.0.0.1")))
    assert "HTTP/127.0.0.1" in line and "not the node's full DNS name" in line


def test_kdc_unreachable(wsman: Callable[..., FakeWSMan], krb: KDC) -> None:
    srv = served(wsman, krb)
    krb.stop()
    try:
        line = failure(endpoint(srv, keytab=str(krb.client_keytab)))
    finally:
        krb.start()
    assert f"cannot reach a KDC for {REALM}" in line and "port 88" in line


def test_node_without_kerberos(wsman: Callable[..., FakeWSMan], krb: KDC, tls: object) -> None:
    srv = wsman(auth="certificate", ssl_context=tls.server_context())  # type: ignore[attr-defined]
    line = failure(endpoint(srv, keytab=str(krb.client_keytab), ca_bundle=tls.ca_bundle,  # type: ignore[attr-defined]
                            url=srv.url.replace("127.0.0.1", "localhost")))
    assert "the node does not offer Kerberos" in line and "winrm set winrm/config/service/auth" in line


def test_a_failed_keytab_login_is_not_repeated_for_every_node(wsman: Callable[..., FakeWSMan], krb: KDC) -> None:
    srv = served(wsman, krb)
    ep = endpoint(srv, keytab=str(krb.client_keytab))
    krb.stop()
    try:
        first = failure(ep)
    finally:
        krb.start()
    log = krb.root / "kdc.log"
    before = log.read_text()
    assert failure(ep) == first  # the same line at once, not another wait for an absent KDC
    assert log.read_text()[len(before):].count("AS_REQ") == 0
    kerberos.forget_credentials()  # a new run asks again
    assert run_powershell(ep, "x").stdout == b"hello from the node"


def test_keytab_without_the_principal(wsman: Callable[..., FakeWSMan], krb: KDC) -> None:
    line = failure(endpoint(served(wsman, krb), principal=f"someone-else@{REALM}", keytab=str(krb.client_keytab)))
    assert f"has no key for someone-else@{REALM}" in line and PRINCIPAL in line


def test_realm_in_the_wrong_case(wsman: Callable[..., FakeWSMan], krb: KDC) -> None:
    line = failure(endpoint(served(wsman, krb), principal=f"{CLIENT}@lmscan.test", keytab=str(krb.client_keytab)))
    assert "case-sensitive" in line


def test_wrong_realm(wsman: Callable[..., FakeWSMan], krb: KDC, tmp_path: Path) -> None:
    keytab = krb.copy_keytab(krb.client_keytab, tmp_path / "other-realm.keytab", realm="WRONG.TEST")
    line = failure(endpoint(served(wsman, krb), principal=f"{CLIENT}@WRONG.TEST", keytab=str(keytab)))
    assert "realm WRONG.TEST is unknown" in line


def test_keytab_lacks_the_encryption_type(wsman: Callable[..., FakeWSMan], krb: KDC, tmp_path: Path) -> None:
    keytab = tmp_path / "aes128.keytab"
    krb.admin("addprinc -randkey svc-etype",
              f"ktadd -e aes128-cts-hmac-sha1-96:normal -k {keytab} svc-etype",
              "cpw -randkey -e aes256-cts-hmac-sha1-96:normal svc-etype")
    keytab.chmod(0o600)
    line = failure(endpoint(served(wsman, krb), principal=f"svc-etype@{REALM}", keytab=str(keytab)))
    assert "no key of an encryption type" in line and "aes128-cts-hmac-sha1-96" in line


def test_stale_keytab(wsman: Callable[..., FakeWSMan], krb: KDC, tmp_path: Path) -> None:
    keytab = tmp_path / "stale.keytab"
    krb.admin("addprinc -randkey svc-stale", f"ktadd -k {keytab} svc-stale", "cpw -randkey svc-stale")
    line = failure(endpoint(served(wsman, krb), principal=f"svc-stale@{REALM}", keytab=str(keytab)))
    assert "password changed" in line


def test_read_keytab_lists_principals_and_types(krb: KDC) -> None:
    entries = kerberos.read_keytab(str(krb.client_keytab))
    assert {e.principal for e in entries} == {PRINCIPAL}
    assert {e.enctype for e in entries} == {"aes256-cts-hmac-sha1-96", "aes128-cts-hmac-sha1-96"}


# --- the inventory and the CLI ---------------------------------------------------------------


def write_inventory(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "inventory.yaml"
    path.write_text("lmscan_inventory: 1\n" + textwrap.dedent(body))
    return path


def test_inventory_principal_and_keytab_make_kerberos_the_default(krb: KDC, tmp_path: Path) -> None:
    path = write_inventory(tmp_path, f"""\
        defaults: {{principal: {PRINCIPAL}, keytab: {krb.client_keytab}, scheme: http}}
        clusters:
          - name: C1
            nodes: [hv01.contoso.com, {{name: hv02, spn: HTTP/hv02-alias.contoso.com}}]
        """)
    inv = load_inventory(path, environ={})
    first, second = (j.endpoint for j in inv.jobs())
    assert (first.transport, first.principal, first.keytab, first.spn) == (
        "kerberos", PRINCIPAL, str(krb.client_keytab), None)
    assert second.spn == "HTTP/hv02-alias.contoso.com"
    assert inv.ntlm_notice() is None


def test_inventory_refuses_a_keytab_others_can_read(krb: KDC, tmp_path: Path) -> None:
    keytab = tmp_path / "open.keytab"
    keytab.write_bytes(krb.client_keytab.read_bytes())
    keytab.chmod(0o644)
    path = write_inventory(tmp_path, f"""\
        clusters:
          - name: C1
            principal: {PRINCIPAL}
            keytab: {keytab}
            nodes: [hv01]
        """)
    with pytest.raises(InputError) as caught:
        load_inventory(path, environ={})
    assert f"inventory.yaml:5: clusters[0].keytab: keytab {keytab} can be read by other users" in str(caught.value)
    assert f"chmod 600 {keytab}" in str(caught.value)


def test_default_transport_follows_the_ticket_cache(krb: KDC, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_inventory(tmp_path, """\
        clusters:
          - name: C1
            username: CONTOSO\\\\svc
            password_env: LM_PW
            nodes: [hv01, hv02, hv03, hv04]
        """)
    without = load_inventory(path, environ={"LM_PW": "x"})
    assert {j.endpoint.transport for j in without.jobs()} == {"ntlm"}
    notice = without.ntlm_notice()
    assert notice and "NTLM is deprecated" in notice and "4 node(s)" in notice and "hv01, hv02, hv03 and 1 more" in notice
    monkeypatch.setenv("KRB5CCNAME", f"FILE:{krb.kinit(tmp_path / 'cache')}")
    with_ticket = load_inventory(path, environ={})  # no password needed, none asked for
    assert {j.endpoint.transport for j in with_ticket.jobs()} == {"kerberos"}
    assert with_ticket.ntlm_notice() is None


def test_check_auth_prints_a_table(wsman: Callable[..., FakeWSMan], krb: KDC, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    good = served(wsman, krb)
    ntlm = wsman(auth="ntlm", username="CONTOSO\\svc")
    (tmp_path / "pw").write_text(SECRET)
    (tmp_path / "pw").chmod(0o600)
    path = write_inventory(tmp_path, f"""\
        defaults: {{principal: {PRINCIPAL}, keytab: {krb.client_keytab}, timeout: 20}}
        clusters:
          - name: C1
            nodes:
              - {{name: hv01, endpoint: "{good.url}"}}
              - {{name: hv02, endpoint: "{good.url}", spn: HTTP/hv02.lmscan.test}}
              - {{name: hv03, endpoint: "{ntlm.url}", transport: ntlm, username: CONTOSO\\svc, password_file: pw}}
        """)
    code = main(["collect", "--check-auth", "--inventory", str(path)])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert re.fullmatch(r"node +transport +result", lines[0])
    assert re.fullmatch(r"hv01 +kerberos +ok \(\d+\.\d s\)", lines[1])
    assert re.match(r"hv02 +kerberos +Kerberos: the KDC does not know the service principal HTTP/hv02\.lmscan\.test",
                    lines[2])
    assert re.fullmatch(r"hv03 +ntlm +ok \(\d+\.\d s\)", lines[3])
    assert lines[4] == "2 of 3 nodes authenticated"
    assert code == 3
    assert "NTLM is deprecated" in err and "(hv03)" in err
    assert not good.commands and not ntlm.commands  # nothing ran
    assert good.open_shells() == 0 and ntlm.open_shells() == 0
    assert SECRET not in out + err


def test_collect_with_a_keytab_end_to_end(wsman: Callable[..., FakeWSMan], krb: KDC, tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    srv = wsman(Reply(stdout=snapshot_json("hv01", "C1")), auth="kerberos", keytab=str(krb.service_keytab))
    path = write_inventory(tmp_path, f"""\
        clusters:
          - name: C1
            principal: {PRINCIPAL}
            keytab: {krb.client_keytab}
            nodes: [{{name: hv01, endpoint: "{srv.url}"}}]
        """)
    assert main(["collect", "--inventory", str(path), "--out", str(tmp_path / "out")]) == 0, capsys.readouterr()
    assert json.loads((tmp_path / "out" / "C1" / "hv01.json").read_text())["node"] == "hv01"
    assert "NTLM" not in capsys.readouterr().err
    assert all(e.encrypted for e in srv.log)


def test_collect_without_out_or_check_auth_is_a_usage_error(tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = write_inventory(tmp_path, "clusters: [{name: C1, nodes: [hv01], principal: x@Y.TEST}]\n")
    assert main(["collect", "--inventory", str(path)]) == 2
    assert "--out DIR is required (or --check-auth)" in capsys.readouterr().err

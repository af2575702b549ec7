"""Kerberos against a real MIT KDC on loopback: real pywinrm, real GSSAPI on both ends.

The fake WS-Man endpoint accepts the tickets with the KDC's HTTP/localhost keytab; every error
below is produced by the KDC or the GSSAPI library for real, not simulated.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from pathlib import Path

import pytest

from scanner.collect import kerberos
from scanner.collect.transport import Endpoint, NodeError, run_powershell

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

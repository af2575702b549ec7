"""Fixtures for collection tests: loopback WS-Man endpoints, a test CA, a snapshot to answer with."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .fakewsman import FakeWSMan
from .kdc import KDC, missing_tools

#: A password unique enough that finding it anywhere in output means it leaked.
SECRET = "Pw-7f3a9c-Uniq!e"


def snapshot_doc(node: str = "HV01", cluster: str = "HVCLU01") -> dict[str, Any]:
    """A small valid snapshot (contracts §1) with non-ASCII names, as a node would print it."""
    return {
        "lmscan_snapshot": 1,
        "node": node,
        "collected_at": "2026-11-26T02:00:03Z",
        "collector": {"version": "1.0.0", "powershell": "5.1.17763.2183", "method": "winrm"},
        "sections": {
            "Cluster": {"Name": cluster, "Id": "59214967-4b76-4780-915e-19037d489a9d"},
            "ClusterNode": [{"Name": node, "Id": "1", "State": 0}],
            "ClusterNetwork": [
                {"Name": "LM Zürich 東京", "Id": "61bbae72-7f7a-4954-9d6f-2bd6c0b3b8e1", "Role": 1, "State": 3,
                 "Address": "10.108.2.0", "AddressMask": "255.255.255.0"},
            ],
        },
        "errors": {"VMMigrationNetwork": "The term 'Get-VMMigrationNetwork' is not recognized"},
    }


def snapshot_json(node: str = "HV01", cluster: str = "HVCLU01") -> str:
    return json.dumps(snapshot_doc(node, cluster), ensure_ascii=False, indent=1)


@pytest.fixture
def wsman() -> Iterator[Callable[..., FakeWSMan]]:
    """Start fakes with ``wsman(handler, **kwargs)``; each is stopped after the test, and the
    test fails if any shell was left open on it (``leaks_ok=True`` opts out)."""
    started: list[tuple[FakeWSMan, bool]] = []

    def start(handler: Any = None, *, leaks_ok: bool = False, **kwargs: Any) -> FakeWSMan:
        kwargs.setdefault("password", SECRET)
        srv = FakeWSMan(handler, **kwargs) if handler is not None else FakeWSMan(**kwargs)
        started.append((srv.start(), leaks_ok))
        return srv

    yield start
    leaked = []
    for srv, leaks_ok in started:
        srv.stop()
        if not leaks_ok and srv.open_shells():
            leaked.append(f"{srv.url}: {srv.open_shells()} shell(s) left open")
    assert not leaked, "; ".join(leaked)


class TLS:
    """A throwaway CA, a server certificate for 127.0.0.1 and a client certificate."""

    def __init__(self, tmp: Path) -> None:
        import trustme

        self.ca = trustme.CA()
        self.ca_bundle = str(tmp / "ca.pem")
        self.ca.cert_pem.write_to_path(self.ca_bundle)
        self.server_cert = self.ca.issue_cert("127.0.0.1", "localhost")
        client = self.ca.issue_cert("svc-lmscan@contoso.com", common_name="svc-lmscan")
        self.client_cert = str(tmp / "client.pem")
        self.client_key = str(tmp / "client.key")
        client.cert_chain_pems[0].write_to_path(self.client_cert)
        client.private_key_pem.write_to_path(self.client_key)

    def server_context(self, *, client_certs: bool = False, hostname: str | None = None) -> ssl.SSLContext:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        cert = self.ca.issue_cert(hostname) if hostname else self.server_cert
        cert.configure_cert(ctx)
        if client_certs:
            ctx.verify_mode = ssl.CERT_REQUIRED
            self.ca.configure_trust(ctx)
        return ctx


@pytest.fixture(scope="session")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TLS:
    return TLS(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def kdc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KDC]:
    """One MIT KDC on loopback for the session, its krb5.conf in KRB5_CONFIG while it runs.
    Skips where the KDC programs or python-gssapi are missing, but fails when CI is set."""
    import importlib.util
    import os

    missing = missing_tools()
    if importlib.util.find_spec("gssapi") is None:
        missing.append("python-gssapi (pip install -e '.[test]')")
    if missing:
        reason = (f"Kerberos tests need {', '.join(missing)} (Debian: apt-get install krb5-kdc krb5-admin-server "
                  "krb5-user libkrb5-dev; scripts/run-tests installs them)")
        if os.environ.get("CI"):
            pytest.fail(reason)
        pytest.skip(reason)
    realm = KDC(tmp_path_factory.mktemp("kdc")).create()
    saved = os.environ.get("KRB5_CONFIG")
    os.environ["KRB5_CONFIG"] = str(realm.krb5_conf)
    try:
        yield realm
    finally:
        realm.stop()
        if saved is None:
            os.environ.pop("KRB5_CONFIG", None)
        else:
            os.environ["KRB5_CONFIG"] = saved


@pytest.fixture
def krb(kdc: KDC, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[KDC]:
    """The session's KDC, with this test's own (empty) default ticket cache and no keytab
    credentials left over from earlier tests."""
    from scanner.collect import kerberos

    monkeypatch.setenv("KRB5CCNAME", f"FILE:{tmp_path / 'user-ccache'}")
    kerberos.forget_credentials()
    if kdc.proc is None:
        kdc.start()
    yield kdc
    kerberos.forget_credentials()

"""Fixtures for collection tests: loopback WS-Man endpoints, a test CA, a snapshot to answer with."""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .fakewsman import FakeWSMan

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

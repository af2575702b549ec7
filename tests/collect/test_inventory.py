"""Inventory: validated with file:line errors, defaults merged, secrets only from safe places."""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

import pytest

from scanner.collect.inventory import load_inventory, wsman_url
from scanner.errors import InputError

DATA = Path(__file__).resolve().parent.parent / "data" / "inventory"
ENV = {"LMSCAN_PASSWORD": "Pw-from-env"}


def load(path: Path, environ: dict[str, str] | None = None, **kw):  # type: ignore[no-untyped-def]
    return load_inventory(path, environ=ENV if environ is None else environ, **kw)


def write(tmp_path: Path, text: str, name: str = "inventory.yaml") -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def bad(path: Path, environ: dict[str, str] | None = None, **kw) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError) as info:
        load(path, environ, **kw)
    message = str(info.value)
    assert message.startswith(str(path)) and "\n" not in message
    return message


# --- the issue's example ---------------------------------------------------------------------

def test_issue_example_loads() -> None:
    inv = load(DATA / "issue-example.yaml")
    jobs = inv.jobs()
    assert [(j.cluster, j.endpoint.node) for j in jobs] == [
        ("HVCLU01", "hv01.contoso.com"), ("HVCLU01", "hv02.contoso.com"), ("LAB", "LAB1")]
    hv01 = jobs[0].endpoint
    assert hv01.url == "https://hv01.contoso.com:5986/wsman"
    assert (hv01.transport, hv01.username, hv01.password) == ("ntlm", "CONTOSO\\svc-lmscan", "Pw-from-env")
    assert hv01.verify_tls and hv01.timeout == 120.0 and not hv01.allow_unencrypted
    assert hv01.ca_bundle == str(DATA / "ca.pem")  # relative to the inventory file
    lab = jobs[2].endpoint
    assert (lab.url, lab.transport, lab.allow_unencrypted) == ("http://127.0.0.1:15985/wsman", "basic", True)
    [discovery] = inv.discoveries()
    assert discovery.cluster == "HVCLU02" and discovery.endpoint.url == "https://hv11.contoso.com:5986/wsman"
    member = discovery.member("HV12.contoso.com")
    assert member.url == "https://HV12.contoso.com:5986/wsman" and member.password == "Pw-from-env"
    assert [c.name for c in inv.clusters] == ["HVCLU01", "HVCLU02", "LAB"]


def test_issue_example_warns_about_basic_over_http_once_with_its_line() -> None:
    inv = load(DATA / "issue-example.yaml")
    [warning] = inv.warnings
    assert warning.startswith(f"{DATA / 'issue-example.yaml'}:17: clusters[2].nodes[0].allow_unencrypted: ")
    assert "Basic authentication over plain HTTP" in warning and "(LAB1)" in warning


def test_the_password_never_shows_in_repr_warnings_or_errors() -> None:
    inv = load(DATA / "issue-example.yaml")
    assert "Pw-from-env" not in repr(inv) and "Pw-from-env" not in " ".join(inv.warnings)


# --- every broken inventory names the file, the line and the problem --------------------------

BROKEN = [
    ("bad-password-in-clear.yaml", 4, ("defaults.password: a clear-text password is not allowed in the inventory; "
                                      "use password_env, password_file, password_keyring or password_prompt")),
    ("bad-unknown-key.yaml", 10, "clusters[0].nodes[1].transprot: unknown key 'transprot'; did you mean 'transport'?"),
    ("bad-transport.yaml", 7, ("clusters[0].transport: 'digest' is not allowed; use one of: ntlm, kerberos, credssp, "
                              "basic, certificate")),
    ("bad-scheme.yaml", 3, "defaults.scheme: 'ftp' is not allowed; use one of: https, http"),
    ("bad-no-nodes.yaml", 8, "clusters[1]: cluster 'HVCLU02' needs either 'nodes'"),
    ("bad-nodes-and-discovery.yaml", 8, ("clusters[0].discover_from: cluster 'HVCLU01' has both 'nodes' and "
                                         "'discover_from'; give one of them")),
    ("bad-duplicate-cluster.yaml", 8, "clusters[1].name: cluster 'hvclu01' is listed twice (also clusters[0])"),
    ("bad-duplicate-node.yaml", 11, ("clusters[1].nodes[1]: node 'HV02' is listed twice (also clusters[0].nodes[1], "
                                    "line 7)")),
    ("bad-timeout-zero.yaml", 5, "defaults.timeout: 0 must be a number of seconds above 0"),
    ("bad-timeout-text.yaml", 8, "clusters[0].nodes[0].timeout: '2m' must be a number of seconds above 0"),
    ("bad-basic-over-http.yaml", 7, ("lab1: Basic authentication over plain HTTP would send the password in clear "
                                    "text; use https, or set 'allow_unencrypted: true'")),
    ("bad-certificate-over-http.yaml", 7, "lab1: certificate authentication needs https"),
    ("bad-certificate-without-key.yaml", 4, "certificate authentication needs 'cert_key_pem'"),
    ("bad-version.yaml", 1, "lmscan_inventory: unsupported lmscan_inventory version 2; this lmscan reads version 1"),
    ("bad-not-an-inventory.yaml", None, "not an lmscan inventory: the key 'lmscan_inventory: 1' is missing"),
    ("bad-yaml-syntax.yaml", 5, "invalid YAML"),
    ("bad-duplicate-key.yaml", 8, "duplicate key 'name'"),
    ("bad-node-type.yaml", 9, "clusters[0].nodes[1]: 42 must be a host name or a mapping with 'name'"),
    ("bad-endpoint-url.yaml", 9, ("clusters[0].nodes[0].endpoint: 'ftp://hv01/wsman' must be a URL like "
                                 "https://host:5986/wsman")),
    ("bad-endpoint-port.yaml", 9, "'https://hv01:99999/wsman' has a bad port number"),
    ("bad-endpoint-and-port.yaml", 10, "clusters[0].nodes[0].port: give either 'endpoint' or 'port' for a node"),
    ("bad-missing-username.yaml", 6, "clusters[0].nodes[0]: hv01: ntlm authentication needs a 'username'"),
    ("bad-no-password-source.yaml", 6, ("hv01: no password source for CONTOSO\\svc-lmscan; set password_env, "
                                       "password_file, password_keyring or password_prompt")),
    ("bad-two-password-sources.yaml", 7, "give one password source, not password_env and password_file"),
    ("bad-empty-nodes.yaml", 7, "clusters[0].nodes: must not be an empty list"),
    ("bad-host-with-space.yaml", 7, "clusters[0].nodes[1]: 'hv 02' must be a host name or address"),
    ("bad-missing-ca-bundle.yaml", 5, "defaults.ca_bundle: file not found: "),
    ("bad-no-clusters.yaml", 1, "missing required key 'clusters'"),
]


@pytest.mark.parametrize(("name", "line", "fragment"), BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_inventory(name: str, line: int | None, fragment: str) -> None:
    path = DATA / name
    message = bad(path)
    if line is not None:
        assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message, message


def test_every_broken_file_is_tested() -> None:
    on_disk = {p.name for p in DATA.glob("bad-*.yaml")}
    assert on_disk == {b[0] for b in BROKEN}


def test_missing_file_empty_file_and_blank_cluster_name(tmp_path: Path) -> None:
    assert "cannot read" in bad(tmp_path / "nope.yaml")
    assert "lmscan_inventory" in bad(write(tmp_path, ""))
    message = bad(write(tmp_path, "lmscan_inventory: 1\nclusters:\n  - {name: ' ', nodes: [a]}\n"))
    assert message.endswith(":3: clusters[0].name: ' ' must be a cluster name")


# --- defaults, clusters and nodes merge --------------------------------------------------------

def test_node_overrides_cluster_overrides_defaults(tmp_path: Path) -> None:
    inv = load(write(tmp_path, """\
lmscan_inventory: 1
defaults: {username: a, password_env: LMSCAN_PASSWORD, timeout: 30, scheme: http}
clusters:
  - name: C1
    username: b
    port: 15985
    nodes:
      - n1
      - {name: n2, username: c, timeout: 5.5, scheme: https, port: 443}
      - {name: "fe80::1"}
"""))
    n1, n2, n3 = (j.endpoint for j in inv.jobs())
    assert (n1.username, n1.timeout, n1.url) == ("b", 30.0, "http://n1:15985/wsman")
    assert (n2.username, n2.timeout, n2.url) == ("c", 5.5, "https://n2:443/wsman")
    assert n3.url == "http://[fe80::1]:15985/wsman"


@pytest.mark.parametrize(("scheme", "url"), [("https", "https://hv01:5986/wsman"), ("http", "http://hv01:5985/wsman")])
def test_default_url_by_scheme(scheme: str, url: str) -> None:
    assert wsman_url(scheme, "hv01") == url


def test_a_level_naming_a_password_source_replaces_the_inherited_one(tmp_path: Path) -> None:
    secret = tmp_path / "pw.txt"
    secret.write_text("Pw-from-file\n")
    secret.chmod(0o600)
    inv = load(write(tmp_path, f"""\
lmscan_inventory: 1
defaults: {{username: a, password_env: LMSCAN_PASSWORD}}
clusters:
  - name: C1
    nodes:
      - n1
      - {{name: n2, password_file: {secret.name}}}
"""))
    assert [j.endpoint.password for j in inv.jobs()] == ["Pw-from-env", "Pw-from-file"]


def test_empty_defaults_are_allowed(tmp_path: Path) -> None:
    inv = load(write(tmp_path, "lmscan_inventory: 1\ndefaults:\nclusters:\n  - {name: K, transport: kerberos, nodes: [k1]}\n"))
    assert inv.jobs()[0].endpoint.url == "https://k1:5986/wsman"


def test_kerberos_needs_no_password_and_certificate_uses_files(tmp_path: Path) -> None:
    (tmp_path / "c.pem").write_text("x")
    (tmp_path / "k.pem").write_text("x")
    inv = load(write(tmp_path, """\
lmscan_inventory: 1
clusters:
  - name: K
    transport: kerberos
    nodes: [k1.contoso.com]
  - name: C
    transport: certificate
    cert_pem: c.pem
    cert_key_pem: k.pem
    nodes: [c1]
"""), environ={})
    k1, c1 = (j.endpoint for j in inv.jobs())
    assert (k1.transport, k1.username, k1.password) == ("kerberos", None, None)
    assert (c1.cert_pem, c1.cert_key_pem) == (str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))


def test_unverified_tls_is_a_warning_naming_the_nodes(tmp_path: Path) -> None:
    path = write(tmp_path, """\
lmscan_inventory: 1
defaults: {username: a, password_env: LMSCAN_PASSWORD}
clusters:
  - name: C1
    verify_tls: false
    nodes: [n1, n2]
  - name: C2
    nodes: [n3]
""")
    inv = load(path)
    assert [j.endpoint.verify_tls for j in inv.jobs()] == [False, False, True]
    assert inv.warnings == ((f"{path}:5: clusters[0].verify_tls: TLS certificates are not verified: a man in "
                             "the middle could read the password (n1, n2)"),)


def test_discovery_members_get_the_cluster_settings_not_the_discovery_node_overrides(tmp_path: Path) -> None:
    inv = load(write(tmp_path, """\
lmscan_inventory: 1
defaults: {username: a, password_env: LMSCAN_PASSWORD}
clusters:
  - name: C1
    scheme: http
    timeout: 9
    discover_from: {name: seed, endpoint: "http://127.0.0.1:1/wsman"}
"""))
    [d] = inv.discoveries()
    assert d.endpoint.url == "http://127.0.0.1:1/wsman" and d.endpoint.node == "seed"
    m = d.member("HV7")
    assert (m.node, m.url, m.timeout, m.password) == ("HV7", "http://HV7:5985/wsman", 9.0, "Pw-from-env")
    assert inv.jobs() == []


def test_discovery_cluster_settings_are_checked_at_load(tmp_path: Path) -> None:
    message = bad(write(tmp_path, """\
lmscan_inventory: 1
defaults: {username: a, password_env: LMSCAN_PASSWORD}
clusters:
  - name: C1
    transport: basic
    scheme: http
    discover_from: {name: seed, allow_unencrypted: true}
"""))
    assert "members of C1: Basic authentication over plain HTTP" in message


# --- where passwords come from -----------------------------------------------------------------

PASSWORD_FILE_INVENTORY = """\
lmscan_inventory: 1
defaults: {username: a, password_file: pw.txt}
clusters:
  - name: C1
    nodes: [n1, n2]
"""


@pytest.mark.skipif(os.name == "nt", reason="POSIX permissions")
def test_password_file_readable_only_by_its_owner(tmp_path: Path) -> None:
    secret = tmp_path / "pw.txt"
    secret.write_text("Pw-from-file\r\n")
    secret.chmod(0o600)
    inv = load(write(tmp_path, PASSWORD_FILE_INVENTORY))
    assert {j.endpoint.password for j in inv.jobs()} == {"Pw-from-file"}
    secret.chmod(0o640)
    message = bad(tmp_path / "inventory.yaml")
    assert f"password file {secret} can be read by other users; restrict it with: chmod 600 {secret}" in message
    assert "Pw-from-file" not in message


def test_password_file_missing_or_empty(tmp_path: Path) -> None:
    path = write(tmp_path, PASSWORD_FILE_INVENTORY)
    assert ":2: defaults.password_file: cannot read password file" in bad(path)
    (tmp_path / "pw.txt").write_text("\n")
    (tmp_path / "pw.txt").chmod(0o600)
    assert "is empty" in bad(path)


def test_missing_or_empty_environment_variable_is_named() -> None:
    path = DATA / "issue-example.yaml"
    assert f"{path}:7: defaults.password_env: environment variable LMSCAN_PASSWORD is not set" in bad(path, {})
    assert "environment variable LMSCAN_PASSWORD is empty" in bad(path, {"LMSCAN_PASSWORD": ""})


PROMPT_INVENTORY = """\
lmscan_inventory: 1
defaults: {username: CONTOSO\\svc, password_prompt: true}
clusters:
  - name: C1
    nodes: [n1, n2]
  - name: C2
    username: other
    nodes: [n3]
"""


def test_prompt_asks_once_per_user(tmp_path: Path) -> None:
    asked: list[str] = []

    def prompt(text: str) -> str:
        asked.append(text)
        return f"typed-{len(asked)}"

    inv = load(write(tmp_path, PROMPT_INVENTORY), prompt=prompt)
    assert asked == ["Password for CONTOSO\\svc: ", "Password for other: "]
    assert [j.endpoint.password for j in inv.jobs()] == ["typed-1", "typed-1", "typed-2"]


def test_prompt_without_a_terminal_is_a_clear_error(tmp_path: Path) -> None:
    message = bad(write(tmp_path, PROMPT_INVENTORY))
    assert ":2: defaults.password_prompt: password_prompt needs a terminal to ask on" in message
    assert "no password was entered" in bad(tmp_path / "inventory.yaml", prompt=lambda _t: "")


KEYRING_INVENTORY = """\
lmscan_inventory: 1
defaults:
  username: CONTOSO\\svc
  password_keyring: {service: lmscan}
clusters:
  - name: C1
    nodes: [n1]
"""


def test_keyring_not_installed_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "keyring", None)  # import keyring -> ImportError
    assert "password_keyring needs the keyring package: pip install keyring" in bad(write(tmp_path, KEYRING_INVENTORY))


def test_keyring_lookup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = {("lmscan", "CONTOSO\\svc"): "Pw-from-keyring"}
    fake = types.ModuleType("keyring")
    fake.get_password = lambda service, user: store.get((service, user))  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "keyring", fake)
    path = write(tmp_path, KEYRING_INVENTORY)
    assert load(path).jobs()[0].endpoint.password == "Pw-from-keyring"
    fake.get_password = lambda service, user: (_ for _ in ()).throw(RuntimeError("locked"))  # type: ignore[attr-defined]
    assert "the system keyring failed: RuntimeError: locked" in bad(path)
    fake.get_password = lambda service, user: None  # type: ignore[attr-defined]
    assert "no password in the system keyring for service 'lmscan' and user 'CONTOSO\\svc'; store one with: " \
           "keyring set lmscan CONTOSO\\svc" in bad(path)

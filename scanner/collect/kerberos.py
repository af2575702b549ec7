"""Kerberos for WinRM: credentials, the HTTP handshake, MS-WSMV message encryption, and errors
said with their fix.

Built on python-gssapi (MIT krb5), the optional ``lmscan[kerberos]`` extra, instead of pywinrm's
own ``[kerberos]`` extra (pykerberos): pykerberos can only use the process-wide default ticket
cache (``KRB5CCNAME``), cannot take a keytab, and reports failures as text only. Here:

* with ``keytab:``, the ticket is obtained from the keytab into a private in-memory credential
  cache (``MEMORY:``, never on disk, gone with the process) and obtained again before it
  expires; the user's own ticket cache is never read or written;
* without one, the user's ticket cache (``kinit``, ``KRB5CCNAME``) is used, as ``principal:``
  selects or by default;
* the SPN is ``HTTP/<fqdn>``: a short host name is resolved to the full name the SPN needs;
* every GSSAPI failure becomes one :class:`KerberosError` line naming the cause and the fix,
  chosen from the Kerberos error code (not the message text, which may be translated).

Only imported when a node uses Kerberos, so lmscan starts as fast without the extra.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import socket
import struct
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

import requests
from requests.auth import AuthBase

#: MIT's krb5 error table as GSSAPI minor codes (ERROR_TABLE_BASE_krb5, unsigned).
KRB5_BASE = 0x96C73A00
#: MIT's GSSAPI krb5 mechanism table (ERROR_TABLE_BASE_k5g).
K5G_BASE = 0x025EA100

# Offsets in the krb5 table (krb5/krb5_err.et) and the k5g table (gssapi/krb5/gssapi_err_krb5.et).
_C_PRINCIPAL_UNKNOWN = KRB5_BASE + 6
_S_PRINCIPAL_UNKNOWN = KRB5_BASE + 7
_ETYPE_NOSUPP = KRB5_BASE + 14
_PREAUTH_FAILED = KRB5_BASE + 24
_BAD_INTEGRITY = KRB5_BASE + 31
_TKT_EXPIRED = KRB5_BASE + 32
_SKEW = KRB5_BASE + 37
_WRONG_REALM = KRB5_BASE + 68
_CC_NOTFOUND = KRB5_BASE + 141  # "No Kerberos credentials available" (KRB5_CC_NOTFOUND)
_REALM_UNKNOWN = KRB5_BASE + 154
_KDC_UNREACH = KRB5_BASE + 156
_REALM_CANT_RESOLVE = KRB5_BASE + 164
_KT_NOTFOUND = KRB5_BASE + 181
_FCC_NOFILE = KRB5_BASE + 195
_PREAUTH_NO_KEY = KRB5_BASE + 210  # "Pre-authentication failed: No key table entry found"
_CCACHE_NOMATCH = K5G_BASE + 12
_KEYTAB_NOMATCH = K5G_BASE + 14

#: Kerberos encryption type numbers (RFC 3961/8009, MS-KILE) and their MIT names.
ENCTYPES = {
    1: "des-cbc-crc", 3: "des-cbc-md5", 16: "des3-cbc-sha1", 17: "aes128-cts-hmac-sha1-96",
    18: "aes256-cts-hmac-sha1-96", 19: "aes128-cts-hmac-sha256-128", 20: "aes256-cts-hmac-sha384-192",
    23: "rc4-hmac", 24: "rc4-hmac-exp",
}
INSTALL_HINT = ("pip install 'lmscan[kerberos]' (it builds python-gssapi: Debian/Ubuntu apt install "
                "libkrb5-dev krb5-user gcc python3-dev; RHEL dnf install krb5-devel krb5-workstation gcc python3-devel)")


class KerberosError(Exception):
    """One line that says what went wrong with Kerberos and how to fix it."""


def available() -> bool:
    """Whether python-gssapi (the ``kerberos`` extra) can be imported."""
    try:
        import gssapi  # noqa: F401
    except ImportError:
        return False
    return True


# --- keytabs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class KeytabEntry:
    principal: str
    kvno: int
    enctype: str


def read_keytab(path: str) -> list[KeytabEntry]:
    """The principals, key versions and encryption types in a keytab file (MIT format 0x502).

    Read here rather than through the library so that a keytab without the principal, or
    without a usable encryption type, is said plainly before any KDC is asked. Keys are skipped,
    never kept."""
    with open(path, "rb") as fh:
        data = fh.read()
    if len(data) < 2 or data[0] != 5 or data[1] not in (1, 2):
        raise KerberosError(f"{path} is not a Kerberos keytab (make one with ktpass, ktutil or msktutil)")
    v1 = data[1] == 1
    entries: list[KeytabEntry] = []
    pos = 2
    try:
        while pos + 4 <= len(data):
            (size,) = struct.unpack_from(">i", data, pos)
            pos += 4
            if size <= 0:  # a hole left by a removed entry
                pos += -size
                continue
            end = pos + size
            p = pos
            (count,) = struct.unpack_from(">H", data, p)
            p += 2
            count -= 1 if v1 else 0
            parts: list[str] = []
            for _ in range(count + 1):  # the realm, then the components
                (n,) = struct.unpack_from(">H", data, p)
                parts.append(data[p + 2:p + 2 + n].decode("utf-8", "replace"))
                p += 2 + n
            p += 0 if v1 else 4  # name type
            p += 4  # timestamp
            kvno = data[p]
            p += 1
            (etype, keylen) = struct.unpack_from(">HH", data, p)
            p += 4 + keylen
            if p + 4 <= end:
                (kvno32,) = struct.unpack_from(">I", data, p)
                kvno = kvno32 or kvno
            entries.append(KeytabEntry("/".join(parts[1:]) + "@" + parts[0], kvno,
                                       ENCTYPES.get(etype, f"enctype {etype}")))
            pos = end
    except (struct.error, IndexError):
        raise KerberosError(f"keytab {path} is damaged (cut off after {len(entries)} entries); make it anew") from None
    return entries


def check_keytab(path: str, principal: str) -> list[KeytabEntry]:
    """The keytab's entries for ``principal``; raise :class:`KerberosError` if it has none."""
    entries = read_keytab(path)
    mine = [e for e in entries if e.principal == principal]
    if mine:
        return mine
    held = sorted({e.principal for e in entries})
    same = [p for p in held if p.casefold() == principal.casefold()]
    if same:
        raise KerberosError(f"keytab {path} has no key for {principal} but has {same[0]}: realm names are "
                            "case-sensitive (write the realm in upper case, as the domain's DNS name: "
                            "svc-lmscan@CONTOSO.COM)")
    shown = ", ".join(held[:5]) + (f" and {len(held) - 5} more" if len(held) > 5 else "") if held else "nothing"
    raise KerberosError(f"keytab {path} has no key for {principal} (it holds {shown}); make the keytab for "
                        "that principal, or set principal: to one it holds")


# --- credentials -----------------------------------------------------------------------------

_lock = threading.Lock()
#: (principal, keytab) -> (credential, its lifetime when obtained, in seconds)
_cache: dict[tuple[str, str], tuple[Any, float]] = {}
#: A keytab ticket is obtained anew when less than this (or half its lifetime) is left.
RENEW_BEFORE = 600.0
#: (principal, keytab) -> (when, why): a failed attempt is not repeated for every node of a run
#: (an unreachable KDC would otherwise cost each node the KDC timeout, one after another).
_failed: dict[tuple[str, str], tuple[float, str]] = {}
RETRY_AFTER = 60.0


def credentials(principal: str | None, keytab: str | None) -> Any:
    """GSSAPI initiator credentials for a run.

    With a keytab: a private ``MEMORY:`` cache per (principal, keytab) for the process; the
    ticket is obtained on first use, and again from the keytab once it nears its end (GSSAPI's
    own refresh does not reach a credential handle that is already held).
    Without: the user's ticket cache (``principal`` picks one from a cache collection)."""
    import gssapi
    from gssapi.raw import GSSError

    krb5 = gssapi.MechType.kerberos
    try:
        if keytab:
            if not principal:
                raise KerberosError("keytab: needs principal: (the account the keytab was made for)")
            entries = check_keytab(keytab, _full_name(principal))
            key = (_full_name(principal), keytab)
            with _lock:
                held = _cache.get(key)
                if held is not None and _remaining(held[0]) > min(RENEW_BEFORE, held[1] / 2):
                    return held[0]
                failed = _failed.get(key)
                if failed is not None and time.monotonic() - failed[0] < RETRY_AFTER:
                    raise KerberosError(failed[1])
                store: dict[bytes | str, bytes | str] = {
                    b"ccache": f"MEMORY:lmscan-{os.getpid()}-{uuid.uuid4().hex}".encode(),
                    b"client_keytab": keytab.encode()}
                name = gssapi.Name(_full_name(principal), gssapi.NameType.kerberos_principal)
                try:
                    cred = gssapi.Credentials(name=name, usage="initiate", store=store, mechs=[krb5])
                    lifetime = cred.lifetime  # obtains the ticket now, so its errors are said here
                except GSSError as exc:
                    line = describe(exc, principal=principal, keytab=keytab,
                                    enctypes=sorted({e.enctype for e in entries}))
                    _failed[key] = (time.monotonic(), line)
                    raise KerberosError(line) from None
                _failed.pop(key, None)
                _cache[key] = (cred, float(lifetime or 0))
                return cred
        wanted = gssapi.Name(_full_name(principal), gssapi.NameType.kerberos_principal) if principal else None
        cred = gssapi.Credentials(name=wanted, usage="initiate", mechs=[krb5])
        if cred.lifetime == 0:
            raise KerberosError(_expired_line())
        return cred
    except GSSError as exc:
        raise KerberosError(describe(exc, principal=principal, keytab=keytab)) from None
    except OSError as exc:
        raise KerberosError(f"cannot read keytab {keytab}: {exc.strerror or exc}") from None


def _remaining(cred: Any) -> float:
    from gssapi.raw import GSSError

    try:
        return float(cred.lifetime or 0)
    except GSSError:  # expired
        return 0.0


def forget_credentials() -> None:
    """Drop the keytab credentials obtained so far (the next run obtains new tickets)."""
    with _lock:
        _cache.clear()
        _failed.clear()


def _full_name(principal: str | None) -> str:
    """A principal with its realm: the library's default realm is added when none is given."""
    if not principal:
        return ""
    if "@" in principal:
        return principal
    import gssapi

    name = gssapi.Name(principal, gssapi.NameType.kerberos_principal)
    return str(name.canonicalize(gssapi.MechType.kerberos))


def ticket_cache_available() -> bool:
    """Whether the environment has a usable Kerberos ticket (``kinit``/``KRB5CCNAME``)."""
    if not available():
        return False
    import gssapi
    from gssapi.raw import GSSError

    try:
        return bool(gssapi.Credentials(usage="initiate", mechs=[gssapi.MechType.kerberos]).lifetime)
    except GSSError:
        return False


# --- the service principal -------------------------------------------------------------------


def service_principal(host: str, service: str = "HTTP", spn: str | None = None) -> str:
    """The SPN to ask a ticket for: ``spn`` as given, else ``<service>/<fqdn of host>``.

    A short name is completed through the resolver (``getaddrinfo`` canonical name), the way
    Windows clients do, because a domain computer's SPNs are registered for its full DNS name."""
    if spn:
        return spn
    name = host.strip("[]")
    if "." not in name and not _is_address(name):
        try:
            infos = socket.getaddrinfo(name, None, flags=socket.AI_CANONNAME)
            canonical = next((i[3] for i in infos if i[3]), "")
            if "." in canonical:
                name = canonical
        except OSError:
            pass
    return f"{service}/{name.lower()}"


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _target(spn: str) -> Any:
    import gssapi

    if "@" in spn:  # an explicit realm: the exact principal
        return gssapi.Name(spn, gssapi.NameType.kerberos_principal)
    service, _, host = spn.partition("/")
    return gssapi.Name(f"{service}@{host}", gssapi.NameType.hostbased_service)


# --- HTTP authentication and message encryption ----------------------------------------------


def _negotiate_token(response: requests.Response) -> bytes | None:
    """The token of the server's ``WWW-Authenticate: Negotiate|Kerberos <token>``, b"" for none."""
    header = response.headers.get("WWW-Authenticate", "")
    for match in re.finditer(r"(?:^|,)\s*(Negotiate|Kerberos)\b\s*([A-Za-z0-9+/=]*)", header, re.I):
        return base64.b64decode(match.group(2)) if match.group(2) else b""
    return None


def _channel_bindings(response: requests.Response) -> Any:
    """RFC 5929 tls-server-end-point bindings from the connection's certificate (https only)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from gssapi.raw import ChannelBindings

    try:
        raw: Any = response.raw
        sock = raw._fp.fp.raw._sock  # urllib3's socket under http.client
        der = sock.getpeercert(True)
    except AttributeError:
        return None
    if not der:
        return None
    algorithm = x509.load_der_x509_certificate(der).signature_hash_algorithm
    if algorithm is None or algorithm.name in ("md5", "sha1"):
        algorithm = hashes.SHA256()
    digest = hashes.Hash(algorithm)
    digest.update(der)
    return ChannelBindings(application_data=b"tls-server-end-point:" + digest.finalize())


class WinRMKerberosAuth(AuthBase):
    """``Negotiate`` with a Kerberos token on the server's 401, mutual authentication required,
    channel binding over HTTPS, and the wrap/unwrap pair pywinrm's MS-WSMV encryption calls."""

    def __init__(self, credential: Any, spn: str) -> None:
        self.credential = credential
        self.spn = spn
        self.context: Any = None

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.register_hook("response", self._on_response)  # type: ignore[no-untyped-call]
        return request

    def _on_response(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401 or self.context is not None:
            return response
        if _negotiate_token(response) is None:
            offered = ", ".join(v.split(" ", 1)[0] for v in response.headers.get("WWW-Authenticate", "").split(","))
            raise KerberosError(f"the node does not offer Kerberos (it asks for: {offered.strip() or 'nothing'}): "
                                "enable it on the node with: winrm set winrm/config/service/auth @{Kerberos=\"true\"}")
        import gssapi
        from gssapi.raw import GSSError

        flags = (gssapi.RequirementFlag.mutual_authentication | gssapi.RequirementFlag.out_of_sequence_detection
                 | gssapi.RequirementFlag.integrity | gssapi.RequirementFlag.confidentiality)
        bindings = _channel_bindings(response) if response.url.lower().startswith("https") else None
        try:
            self.context = gssapi.SecurityContext(name=_target(self.spn), creds=self.credential, usage="initiate",
                                                  mech=gssapi.MechType.kerberos, flags=flags,
                                                  channel_bindings=bindings)
            token = self.context.step()
        except GSSError as exc:
            self.context = None
            raise KerberosError(describe(exc, spn=self.spn)) from None
        _ = response.content
        response.raw.release_conn()
        retry = response.request.copy()
        retry.headers["Authorization"] = "Negotiate " + base64.b64encode(token or b"").decode("ascii")
        answer: requests.Response = response.connection.send(retry, **kwargs)
        answer.history.append(response)
        reply = _negotiate_token(answer)
        if reply:
            try:
                self.context.step(reply)
                _ = self.context.complete  # python-gssapi raises a failed step's error here
            except GSSError as exc:
                line = describe(exc, spn=self.spn)
                if answer.status_code != 401 or not line.startswith("Kerberos failed"):
                    raise KerberosError(line) from None
                raise KerberosError(self._refused(_minor_text(exc))) from None
        if answer.status_code == 401:
            raise KerberosError(self._refused("HTTP 401"))
        if not self.context.complete:
            raise KerberosError(f"the node answered without proving it holds the key of {self.spn} (no mutual "
                                "authentication): it is not the computer the SPN belongs to")
        return answer

    def _refused(self, detail: str) -> str:
        return (f"the node refused the Kerberos ticket for {self.spn} (\"{detail}\"): the SPN may belong to another "
                "computer (setspn -Q), or the node demands channel binding and it did not match (a TLS-inspecting "
                "proxy between this host and the node)")

    # pywinrm's winrm/encryption.py calls these two for transport "kerberos"

    def wrap_winrm(self, host: str, message: bytes) -> tuple[bytes, bytes]:
        from gssapi.raw import IOV, IOVBufferType, wrap_iov

        iov = IOV(IOVBufferType.header, message, IOVBufferType.padding, std_layout=False)
        wrap_iov(self.context, iov, confidential=True)
        return (iov[1].value or b"") + (iov[2].value or b""), iov[0].value or b""

    def unwrap_winrm(self, host: str, message: bytes, header: bytes) -> bytes:
        from gssapi.raw import IOV, IOVBufferType, unwrap_iov

        iov = IOV((IOVBufferType.header, False, header), message, IOVBufferType.data, std_layout=False)
        unwrap_iov(self.context, iov)
        return bytes(iov[1].value or b"")


# --- errors ----------------------------------------------------------------------------------


def _expired_line() -> str:
    return ("the Kerberos ticket has expired: renew it with kinit (kinit -R while renewable), or give "
            "principal: and keytab: so lmscan obtains its own")


def describe(exc: Any, *, principal: str | None = None, keytab: str | None = None, spn: str | None = None,
             enctypes: list[str] | None = None) -> str:
    """One line for a GSSAPI failure: the cause in words, the library's own words, and the fix."""
    minor = int(getattr(exc, "min_code", 0) or 0) & 0xFFFFFFFF
    major = int(getattr(exc, "maj_code", 0) or 0)
    text = _minor_text(exc)
    said = f" (\"{text}\")" if text else ""
    who = principal or "the client"
    realm = _realm_of(principal) or _realm_in(text) or "the realm"
    if minor == _SKEW:
        return ("clock skew too great" + said + ": this host's clock and the domain's differ by more than the "
                "5 minutes Kerberos allows; synchronise it with the domain controllers (chrony/NTP)")
    if minor == _S_PRINCIPAL_UNKNOWN:
        host = (spn or "").partition("/")[2].partition("@")[0]
        line = f"the KDC does not know the service principal {spn or 'asked for'}{said}: "
        if host and (_is_address(host) or "." not in host):
            return line + (f"'{host}' is not the node's full DNS name, and SPNs are registered for that; give the "
                           "node by its FQDN in the inventory (or set spn:)")
        return line + ("the node has no HTTP SPN for this name (on Windows: setspn -L <node>; add one with "
                       "setspn -S HTTP/<fqdn> <node>), or WinRM is reached through an alias: set spn: in the inventory")
    if minor == _C_PRINCIPAL_UNKNOWN:
        return f"the KDC does not know the client principal {who}{said}: check its spelling and realm"
    if minor == _KDC_UNREACH:
        return (f"cannot reach a KDC for {realm}{said}: check the kdc lines for the realm in krb5.conf (or the "
                "_kerberos._tcp DNS SRV records) and that port 88 to the domain controllers is open")
    if minor in (_REALM_UNKNOWN, _REALM_CANT_RESOLVE, _WRONG_REALM):
        return (f"realm {realm} is unknown to this host{said}: realm names are the domain's DNS name in upper case "
                "(CONTOSO.COM); check the principal's realm, or add the realm to krb5.conf [realms] "
                "(or set dns_lookup_kdc = true)")
    if minor == _PREAUTH_NO_KEY or minor == _ETYPE_NOSUPP or (minor == _KT_NOTFOUND and keytab):
        have = ", ".join(enctypes or []) or "other types"
        return (f"keytab {keytab} has no key of an encryption type the KDC uses for {who}{said}; the keytab has "
                f"{have}: make it again with the account's types (ktpass /crypto AES256-SHA1, or ktutil -e "
                "aes256-cts-hmac-sha1-96) and check the account's msDS-SupportedEncryptionTypes")
    if minor in (_PREAUTH_FAILED, _BAD_INTEGRITY) and keytab:
        return (f"the KDC refused the key in keytab {keytab} for {who}{said}: the account's password changed since "
                "the keytab was made (its key version is old); make a new keytab")
    if minor in (_PREAUTH_FAILED, _BAD_INTEGRITY):
        return f"the KDC refused the credentials of {who}{said}"
    if minor == _TKT_EXPIRED or (major >> 16) & 0xFF == 11:  # GSS_S_CREDENTIALS_EXPIRED
        return _expired_line()
    if minor in (_CCACHE_NOMATCH, _KEYTAB_NOMATCH):
        return (f"the ticket cache holds no ticket for {who}{said}: run kinit {who}, or remove principal: to use "
                "the cache's own principal")
    if minor in (_CC_NOTFOUND, _FCC_NOFILE):
        cache = os.environ.get("KRB5CCNAME", "the default cache")
        return (f"no Kerberos ticket in {cache}{said}: run kinit first, or give principal: and keytab: for "
                "unattended runs")
    if (major >> 16) & 0xFF == 4:  # GSS_S_BAD_BINDINGS
        return (f"channel binding did not match{said}: something between this host and the node re-signs TLS "
                "(an inspecting proxy); connect directly")
    if (major >> 16) & 0xFF == 7:  # GSS_S_NO_CRED
        return f"no usable Kerberos credentials{said}: run kinit, or give principal: and keytab:"
    return f"Kerberos failed{said or ': ' + type(exc).__name__}"


def _minor_text(exc: Any) -> str:
    """The library's own words for the failure (the minor status, else the major)."""
    try:
        text = str(exc.gen_message())
    except Exception:  # noqa: BLE001  (a message we cannot render is left out, never a traceback)
        text = str(exc)
    parts = re.split(r"Minor \(\d+\):\s*", text, maxsplit=1)
    chosen = parts[1] if len(parts) == 2 and parts[1].strip() else re.sub(r"^Major \(\d+\):\s*", "", text)
    return " ".join(chosen.split()).rstrip(".")[:160]


def _realm_of(principal: str | None) -> str:
    return principal.rpartition("@")[2] if principal and "@" in principal else ""


def _realm_in(text: str) -> str:
    match = re.search(r"realm '?\"?([A-Za-z0-9.\-]+)", text)
    return match.group(1) if match else ""


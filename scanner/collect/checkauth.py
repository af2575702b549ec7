"""``lmscan collect --check-auth``: authentication alone against every node, as a table.

Each node is asked to open a WinRS shell, which is deleted at once; no command runs. That
proves the transport, the credentials (the Kerberos ticket or keytab, the password) and the
account's right to use WinRM, in seconds, before the first nightly scan.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from scanner.collect.fleet import DEFAULT_WORKERS
from scanner.collect.inventory import Inventory
from scanner.collect.transport import Endpoint, NodeError, check_auth


@dataclass(frozen=True)
class AuthCheck:
    """One node's result: ``error`` is None when it authenticated."""

    cluster: str
    node: str
    transport: str
    error: str | None
    elapsed: float


def check_inventory(inventory: Inventory, workers: int | None = None) -> list[AuthCheck]:
    """Every listed node, and each discovery endpoint (its members are only known by asking it)."""
    targets = [(job.cluster, job.endpoint) for job in inventory.jobs()]
    targets += [(d.cluster, d.endpoint) for d in inventory.discoveries()]
    if not targets:
        return []

    def one(target: tuple[str, Endpoint]) -> AuthCheck:
        cluster, ep = target
        try:
            return AuthCheck(cluster, ep.node, ep.transport, None, check_auth(ep))
        except NodeError as exc:
            return AuthCheck(cluster, ep.node, ep.transport, exc.reason, exc.elapsed or 0.0)

    with ThreadPoolExecutor(max_workers=min(workers or DEFAULT_WORKERS, len(targets)),
                            thread_name_prefix="lmscan-auth") as pool:
        return list(pool.map(one, targets))


def render_table(checks: list[AuthCheck]) -> str:
    """node, transport, result: one line per node, columns aligned; the result line is never cut."""
    rows = [("node", "transport", "result")]
    rows += [(c.node, c.transport, f"ok ({c.elapsed:.1f} s)" if c.error is None else c.error) for c in checks]
    width = [max(len(r[i]) for r in rows) for i in (0, 1)]
    lines = [f"{r[0]:<{width[0]}}  {r[1]:<{width[1]}}  {r[2]}".rstrip() for r in rows]
    failed = sum(1 for c in checks if c.error is not None)
    lines.append(f"{len(checks) - failed} of {len(checks)} nodes authenticated")
    return "\n".join(lines) + "\n"

"""Find a cluster's members by asking one of them (``discover_from``), before collecting.

The script is fixed text (nothing from the inventory goes into it), runs on Windows
PowerShell 2.0 too, and prints one ``node:<name>`` line per member so stray host output cannot
be mistaken for a name. A failed discovery becomes one error outcome for the cluster, never a
silent scan of nothing.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass

from scanner.collect.fleet import INTERRUPT_GRACE, TICK, NodeJob, NodeOutcome
from scanner.collect.inventory import Discovery, host_problem, is_address
from scanner.collect.output import is_ip_address, one_line, stderr_message
from scanner.collect.transport import (
    Cancellation,
    Endpoint,
    NodeError,
    RunOutput,
    redact,
    scrubber,
)
from scanner.errors import CollectionError

DISCOVERY_SCRIPT = """\
$ProgressPreference = 'SilentlyContinue'
$WarningPreference = 'SilentlyContinue'
try {
    $ErrorActionPreference = 'Stop'
    if (-not (Get-Command -Name 'Get-ClusterNode' -ErrorAction SilentlyContinue)) {
        Import-Module -Name 'FailoverClusters'
    }
    foreach ($node in @(Get-ClusterNode)) {
        Write-Output ('node:' + $node.Name)
    }
} catch {
    [Console]::Error.WriteLine('lmscan discovery failed: ' + $_.Exception.Message)
    exit 1
}
exit 0
"""

NODE_PREFIX = "node:"

Run = Callable[[Endpoint, str], RunOutput]


@dataclass(frozen=True)
class DiscoveryResult:
    """The member jobs found for one cluster, or the outcome that says why there are none.

    ``refused`` holds one error outcome per member name that failed the checks of
    :func:`member_problem`: those members are never contacted, so they never see credentials.
    """

    cluster: str
    jobs: tuple[NodeJob, ...]
    failure: NodeOutcome | None
    refused: tuple[NodeOutcome, ...] = ()


def parse_member_names(run: RunOutput, scrub: Callable[[str], str] = str) -> list[str]:
    """Member names from the discovery script's output; raise ValueError with the reason.

    Node text that goes into the reason passes ``scrub`` (the redaction) before it is cut.
    """
    if run.exit_code != 0:
        message = stderr_message(run.stderr, scrub) or one_line(scrub(run.stdout.decode("utf-8", errors="replace")))
        raise ValueError(f"Get-ClusterNode failed (exit code {run.exit_code})" + (f": {message}" if message else ""))
    text = run.stdout.decode("utf-8", errors="replace").lstrip("\ufeff")
    names: list[str] = []
    seen: set[str] = set()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith(NODE_PREFIX):
            name = line[len(NODE_PREFIX):].strip()
            if name and name.casefold() not in seen:
                seen.add(name.casefold())
                names.append(name)
    if not names:
        raise ValueError("Get-ClusterNode listed no nodes")
    return names


def member_host(name: str, discover_from: str) -> str:
    """The host name to reach member ``name``: with the domain of ``discover_from`` if it has one.

    Get-ClusterNode gives short names; when the inventory reached the cluster by FQDN
    (``hv11.contoso.com``), its members are reached the same way (``HV12.contoso.com``).
    """
    if "." in name or is_ip_address(discover_from) or "." not in discover_from:
        return name
    return f"{name}.{discover_from.split('.', 1)[1]}"


def _domain(host: str) -> str | None:
    """``contoso.com`` for ``hv11.contoso.com``; None for a short name or an address."""
    host = host.rstrip(".")
    return host.split(".", 1)[1].casefold() if "." in host and not is_address(host) else None


def member_problem(name: str, discovery: Discovery) -> str | None:
    """Why the member name a seed reported must not be contacted (with credentials), or None.

    The seed's answer is data from the field: the name must pass the inventory's host-name
    check, be an IP address or localhost only with ``discovery_allow: {ip_addresses: true}``,
    and, when it names a domain, lie in the seed's DNS domain or one of ``discovery_allow.domains``.
    """
    problem = host_problem(name, allow_addresses=discovery.allow_addresses)
    if problem:
        hint = " (allow it with discovery_allow: {ip_addresses: true})" if is_address(name) else ""
        return f"{problem}{hint}"
    domain = _domain(name)
    if domain is None:
        return None   # a short name is reached in the seed's domain (member_host)
    allowed = [d for d in (_domain(discovery.endpoint.node), *discovery.domains) if d]
    if any(domain == d or domain.endswith("." + d) for d in allowed):
        return None
    inside = " or ".join(allowed) if allowed else "no DNS domain (the seed was given without one)"
    return f"lies outside {inside} (allow its domain with discovery_allow: {{domains: [{domain}]}})"


def discover_cluster(discovery: Discovery, run: Run) -> DiscoveryResult:
    """Run the discovery script on ``discovery.endpoint`` and build one job per member."""
    start = time.monotonic()
    source = discovery.endpoint.node
    requests = 0
    try:
        output = run(discovery.endpoint, DISCOVERY_SCRIPT)
        requests = output.requests
        names = parse_member_names(output, scrubber(discovery.endpoint))
    except Exception as exc:  # noqa: BLE001 - every failure of one cluster's discovery is its outcome
        elapsed = getattr(exc, "elapsed", None)
        if isinstance(exc, NodeError):
            reason = exc.reason + (f" after {elapsed:.1f} s" if elapsed is not None else "")
            kind, requests = exc.kind, requests or exc.requests
        elif isinstance(exc, (CollectionError, ValueError)):
            reason, kind = str(exc), "output"
        else:
            reason, kind = f"{type(exc).__name__}: {exc}", "unexpected"
        failure = NodeOutcome(
            cluster=discovery.cluster, node=source, snapshot=None,
            error=one_line(redact(f"could not discover nodes from {source}: {reason}", discovery.endpoint)),
            elapsed=elapsed if elapsed is not None else time.monotonic() - start, requests=requests, kind=kind,
        )
        return DiscoveryResult(discovery.cluster, (), failure)
    jobs: list[NodeJob] = []
    refused: list[NodeOutcome] = []
    for name in names:
        problem = member_problem(name, discovery)
        if problem is None:
            jobs.append(NodeJob(discovery.cluster, discovery.member(member_host(name, source))))
            continue
        shown = name[:100]
        refused.append(NodeOutcome(discovery.cluster, shown, None, f"{shown}: not contacted: {source} reported "
                                   f"the member name {shown!r}, which {problem}", 0.0, 0, "config"))
    return DiscoveryResult(discovery.cluster, tuple(jobs), None, tuple(refused))


def _interrupted(discovery: Discovery) -> DiscoveryResult:
    source = discovery.endpoint.node
    return DiscoveryResult(discovery.cluster, (), NodeOutcome(
        discovery.cluster, source, None, f"could not discover nodes from {source}: interrupted", 0.0, 0,
        "interrupted"))


def discover_all(discoveries: Sequence[Discovery], run: Run, workers: int | None = None, *,
                 grace: float = INTERRUPT_GRACE) -> list[DiscoveryResult]:
    """Discover every cluster in parallel; results come back in the order given.

    Ctrl-C behaves as in the fleet: runs in flight are told to stop, and after ``grace``
    seconds the unfinished clusters come back as "interrupted" instead of raising.
    """
    if not discoveries:
        return []
    cancel = Cancellation()

    def one(discovery: Discovery) -> DiscoveryResult:
        with cancel.applies():
            return discover_cluster(discovery, run)

    pool = ThreadPoolExecutor(max_workers=max(1, min(workers or len(discoveries), len(discoveries))),
                              thread_name_prefix="lmscan-discover")
    futures: list[Future[DiscoveryResult]] = []
    try:
        for discovery in discoveries:
            futures.append(pool.submit(one, discovery))
        pending = set(futures)
        while pending:
            _, pending = wait(pending, timeout=TICK)
    except KeyboardInterrupt:
        cancel.cancel()
        for fut in futures:
            fut.cancel()
        try:
            wait(futures, timeout=grace)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: stop waiting at once
    finally:
        pool.shutdown(wait=False, cancel_futures=True)
    done = [f.result() if f.done() and not f.cancelled() else _interrupted(d) for d, f in zip(discoveries, futures, strict=False)]
    return done + [_interrupted(d) for d in discoveries[len(futures):]]

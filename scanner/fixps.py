"""Remediation actions as PowerShell: the one renderer of actions to commands.

Every value from a cluster or a policy reaches PowerShell through ``scanner.pwsh``: as a
single-quoted literal (``ps_quote``) or inside a one-line comment (``ps_comment``). Numbers and
booleans are written from Python values, never from text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from scanner.actions import (LIST_PROPERTY, Action, AddDelegation, RemoveDefaultRoute, RemoveMigrationNetwork,
                             SetAtcOverride, SetClusterProperty, SetHost, SetLMList, SetNetworkRole)
from scanner.pwsh import comment, quote

VM_RESOURCE_TYPE = "Get-ClusterResourceType -Name 'Virtual Machine'"
ROLE_NUMBER = {"None": 0, "Cluster": 1, "Client": 2, "ClusterAndClient": 3}
ATC_LISTS_NOTE = (
    "Network ATC selects the live-migration networks on this cluster (EnableLiveMigrationNetworkSelection is on) "
    "and would revert a direct Set-ClusterParameter. Either change the intents so that ATC chooses the right "
    "networks, or take the selection over from ATC with its global cluster override and set the lists as the "
    "site policy asks:")
ATC_HOST_NOTE = ("Network ATC sets the hosts' migration performance option and concurrency on this cluster; "
                 "set them through its global cluster override:")


def ps_comment(text: str) -> str:
    """A one-line ``#`` comment whose field text stays inert (our own words always come first)."""
    return f"# {comment(text)}".rstrip()


def ps_value(value: Any) -> str:
    """A Python value as a PowerShell argument."""
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, int):
        return str(int(value))
    return quote(value)


def setting_target(vm: str | None) -> str:
    """Where the live-migration lists live: the VM resource type (2012+) or one VM resource (2008 R2)."""
    return VM_RESOURCE_TYPE if vm is None else f"Get-ClusterResource -Name {quote(vm)}"


def set_list_command(vm: str | None, lst: str, ids: Sequence[str]) -> str:
    return (f"{setting_target(vm)} | Set-ClusterParameter -Name {LIST_PROPERTY[lst]} "
            f"-Value {quote(';'.join(ids))}")


def _names(names: Sequence[str]) -> str:
    return ", ".join(names) or "empty (the system default)"


def describe(a: Action) -> str:
    """One line saying what the action changes, for comments and -WhatIf output."""
    if isinstance(a, SetLMList):
        where = f"VM {a.vm_group or a.vm}" if a.vm else "the cluster"
        added = [n for i, n in zip(a.ids, a.names, strict=False) if i not in a.previous]
        removed = [i for i in a.previous if i not in a.ids]
        change = "; ".join(x for x in (f"adds {', '.join(added)}" if added else "",
                                       f"removes {', '.join(removed)}" if removed else "") if x)
        if not change and a.list == "order":
            change = "new order"
        return f"{a.property} of {where}: {_names(a.names)}" + (f" ({change})" if change else "")
    if isinstance(a, SetAtcOverride):
        return "Network ATC global cluster override: " + ", ".join(f"{k} = {_plain(v)}" for k, v in a.settings)
    if isinstance(a, SetHost):
        was = f" (was {_plain(a.previous)})" if a.previous is not None else ""
        return f"{a.setting} on {a.node}: {_plain(a.value)}{was}"
    if isinstance(a, RemoveMigrationNetwork):
        return f"remove host migration network {a.subnet} on {a.node}"
    if isinstance(a, SetClusterProperty):
        was = f" (was {_plain(a.previous)})" if a.previous is not None else ""
        return f"cluster {a.name}: {_plain(a.value)}{was}"
    if isinstance(a, AddDelegation):
        return f"constrained delegation of {a.node}'s computer account: add {', '.join(a.spns)}"
    if isinstance(a, RemoveDefaultRoute):
        return f"remove default route {a.prefix} via {a.next_hop or 'its gateway'} on {a.interface} of {a.node}"
    assert isinstance(a, SetNetworkRole)
    return f"cluster role of network {a.network} ({a.network_id}): {a.role} (was {a.previous or 'unknown'})"


def _plain(v: Any) -> str:
    if isinstance(v, bool):
        return "on" if v else "off"
    return str(v)


def commands(a: Action) -> list[str]:
    """The PowerShell lines that carry out one action (no comments)."""
    if isinstance(a, SetLMList):
        return [set_list_command(a.vm, a.list, a.ids)]
    if isinstance(a, SetAtcOverride):
        args = " ".join(f"-{k} {ps_value(v)}" for k, v in a.settings)
        return [f"$override = New-NetIntentGlobalClusterOverrides {args}",
                "Set-NetIntent -GlobalClusterOverrides $override"]
    if isinstance(a, SetHost):
        if a.setting == "VirtualMachineMigrationEnabled":
            verb = "Enable-VMMigration" if a.value else "Disable-VMMigration"
            return [f"{verb} -ComputerName {quote(a.node)}"]
        return [f"Set-VMHost -ComputerName {quote(a.node)} -{a.setting} {ps_value(a.value)}"]
    if isinstance(a, RemoveMigrationNetwork):
        return [f"Remove-VMMigrationNetwork -ComputerName {quote(a.node)} -Subnet {quote(a.subnet)}"]
    if isinstance(a, SetClusterProperty):
        return [f"(Get-Cluster).{a.name} = {ps_value(a.value)}"]
    if isinstance(a, AddDelegation):
        spns = ", ".join(quote(x) for x in a.spns)
        return [f"Get-ADComputer -Identity {quote(a.node.split('.')[0])} | "
                f"Set-ADObject -Add @{{ 'msDS-AllowedToDelegateTo' = @({spns}) }}"]
    if isinstance(a, RemoveDefaultRoute):
        return [f"Get-NetRoute -CimSession {quote(a.node)} -DestinationPrefix {quote(a.prefix)} "
                f"-InterfaceAlias {quote(a.interface)} | Remove-NetRoute -Confirm:$false"]
    assert isinstance(a, SetNetworkRole)
    return [f"(Get-ClusterNetwork | Where-Object {{ $_.Id -eq {quote(a.network_id)} }}).Role = "
            f"{ROLE_NUMBER[a.role]}"]


def needs_atc_note(actions: Sequence[Action]) -> str:
    """The sentence an ATC override needs in front of it, if any."""
    for a in actions:
        if isinstance(a, SetAtcOverride):
            keys = {k for k, _ in a.settings}
            return ATC_LISTS_NOTE if "EnableLiveMigrationNetworkSelection" in keys else ATC_HOST_NOTE
    return ""


def render(actions: Sequence[Action], note: str = "") -> str:
    """A result's remediation text: a comment per action, then its commands."""
    lines: list[str] = []
    if note:
        lines.append(ps_comment(note))
    atc = needs_atc_note(actions)
    if atc:
        lines.append(ps_comment(atc))
    legacy = any(isinstance(a, SetLMList) and a.vm for a in actions)
    if legacy:
        lines.append("Import-Module FailoverClusters")
    for a in actions:
        lines.append(ps_comment(describe(a)))
        lines.extend(commands(a))
    return "\n".join(lines)

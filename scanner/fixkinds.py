"""The fix kinds a rule may name (``fix:``), with what each does. Imports nothing: ``rules show`` prints these."""

from __future__ import annotations

#: Fix kinds a rule may name, with what they do (``lmscan rules show`` and the README print these).
FIXES: dict[str, str] = {
    "exclude_failing": "add the failing networks to MigrationExcludeNetworks (never a network of a preferred class)",
    "include_preferred": "remove the Up networks of a preferred class from MigrationExcludeNetworks",
    "preferred_first": "put the networks of a preferred class first in MigrationNetworkOrder",
    "drop_unknown_ids": "remove Ids that name no cluster network from both lists",
    "policy_lists": "set the VM resource's lists to the policy's (2008 R2): exclude what the policy excludes, "
                    "preferred networks first",
    "role_none": "set the network's cluster role to None (pinning the live-migration order if that would move it)",
    "enable_migration": "enable live migration on the host",
    "use_listed_networks": "turn UseAnyNetworkForMigration off",
    "remove_migration_networks": "remove the failing subnets from the host's migration networks",
    "host_policy": "set authentication, performance option and concurrency to the policy's values",
    "kerberos_auth": "switch migration authentication to Kerberos (on every node that uses CredSSP, so they agree)",
    "add_delegation": "add the missing cifs and migration-service SPNs to the computer account's constrained delegation",
    "remove_default_routes": "remove the default routes through the network's interfaces",
}

__all__ = ["FIXES"]

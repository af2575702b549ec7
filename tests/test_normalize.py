"""Snapshot sections -> cluster model: subnets, grouping, membership, effective order."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from scanner.normalize import (LMSetting, Network, effective_order, group_clusters, network_subnets,
                               parse_networks)
from scanner.snapshot import parse_snapshot


def snap(node, cluster="HVCLU01", **sections):
    doc = {"lmscan_snapshot": 1, "node": node, "sections": {"Cluster": {"Name": cluster}, **sections}}
    return parse_snapshot(json.dumps(doc).encode(), f"{node}.json")


def net(name, nid, metric, role="Cluster"):
    return Network(id=nid, name=name, role=role, state="Up", metric=metric, auto_metric=True, subnets=())


def test_subnets_from_every_property():
    merged = {"Address": "10.71.1.0", "AddressMask": "255.255.255.0",
              "Ipv4Addresses": ["10.71.1.0", "10.71.2.0"], "Ipv4PrefixLengths": [24, 24]}
    assert [str(s) for s in network_subnets(merged)] == ["10.71.1.0/24", "10.71.2.0/24"]
    ipv6_only = {"Address": "", "AddressMask": None, "Ipv4Addresses": [], "Ipv6Addresses": "fde1:53ba:e9a0:de11::",
                 "Ipv6PrefixLengths": 64}
    assert [str(s) for s in network_subnets(ipv6_only)] == ["fde1:53ba:e9a0:de11::/64"]
    assert network_subnets({"Address": "not an ip"}) == ()


def test_networks_parse_numbers_names_and_braced_ids():
    nets = parse_networks({"Name": "iSCSI", "Id": "{ABCDEF00-0000-0000-0000-000000000001}", "Role": 0, "State": "3",
                           "Metric": "40000", "AutoMetric": "True"})
    assert nets[0].id == "abcdef00-0000-0000-0000-000000000001"
    assert (nets[0].role, nets[0].state, nets[0].metric, nets[0].auto_metric) == ("None", "Up", 40000, True)


def test_effective_order_with_explicit_order():
    a, b, c = net("A", "a", 300), net("B", "b", 100), net("C", "c", 200)
    order = effective_order([a, b, c], LMSetting(exclude=("c",), order=("a",)))
    assert [n.name for n in order] == ["A", "B"]


def test_empty_order_puts_cluster_communication_network_last():
    mgmt = net("Mgmt", "m", 70240, "ClusterAndClient")
    csv = net("CSV", "c", 30240)
    lm = net("LM", "l", 30241)
    iscsi = net("iSCSI", "i", 10000, "None")   # lowest metric, but not a cluster-communication network
    order = effective_order([mgmt, csv, lm, iscsi], LMSetting(exclude=(), order=()))
    assert [n.name for n in order] == ["iSCSI", "LM", "Mgmt", "CSV"]


def test_order_list_skips_excluded_and_unknown_ids():
    a, b = net("A", "a", 1), net("B", "b", 2)
    order = effective_order([a, b], LMSetting(exclude=("a",), order=("gone", "a", "b")))
    assert [n.name for n in order] == ["B"]


def test_grouping_is_case_insensitive_and_missing_members_are_uncollected():
    nodes = {"Name": "HV01", "State": 0}, {"Name": "HV02", "State": "Up"}, {"Name": "HV03", "State": 1}
    s1 = snap("HV01", "HVCLU01", ClusterNode=list(nodes))
    s2 = snap("hv02", "hvclu01", ClusterNode=list(nodes))
    other = snap("HV11", "HVCLU02")
    clusters = group_clusters([s1, s2, other])
    assert [c.name for c in clusters] == ["HVCLU01", "HVCLU02"]
    c1 = clusters[0]
    # A collected node is named as Get-ClusterNode lists it, whatever its snapshot says.
    assert [(n.name, n.collected) for n in c1.nodes] == [("HV01", True), ("HV02", True), ("HV03", False)]
    assert "no snapshot" in (c1.nodes[2].error or "")
    assert c1.nodes[2].state == "Down"


def test_fqdn_and_short_names_are_one_node():
    s1 = snap("HV01", ClusterNode=[{"Name": "HV01"}, {"Name": "HV02"}])
    from scanner.normalize import NodeFailure
    clusters = group_clusters([s1], [NodeFailure("HVCLU01", "hv02.contoso.com", "HV02: connection refused")])
    assert [(n.name, n.collected, n.error) for n in clusters[0].nodes] == [
        ("HV01", True, None), ("HV02", False, "HV02: connection refused")]


def test_majority_view_wins_and_per_node_views_are_kept():
    nets = [{"Name": "LM", "Id": "l", "Role": 1}, {"Name": "Mgmt", "Id": "m", "Role": 3}]
    odd = [{"Name": "LM", "Id": "l", "Role": 3}, {"Name": "Mgmt", "Id": "m", "Role": 3}]
    setting = {"MigrationExcludeNetworks": "m", "MigrationNetworkOrder": "l"}
    snaps = [snap(f"HV0{i}", ClusterNetwork=n, VirtualMachineResourceType=setting)
             for i, n in ((1, nets), (2, odd), (3, nets))]
    c = group_clusters(snaps)[0]
    assert {n.name: n.role for n in c.networks} == {"LM": "Cluster", "Mgmt": "ClusterAndClient"}
    assert c.setting == LMSetting(exclude=("m",), order=("l",), raw_exclude="m", raw_order="l")
    assert c.nodes[1].networks is not None and c.nodes[1].networks[0].role == "ClusterAndClient"


def test_2008r2_per_vm_settings():
    vms = [{"Name": "Virtual Machine SQL01", "OwnerGroup": "SQL01", "OwnerNode": "HV01",
            "MigrationExcludeNetworks": "i", "MigrationNetworkOrder": "l;c"},
           {"Name": "Virtual Machine WEB01", "OwnerGroup": "WEB01", "MigrationExcludeNetworks": None}]
    c = group_clusters([snap("HV01", VirtualMachineResource=vms)])[0]
    assert c.legacy and c.setting is None
    assert [(vm.group, vm.setting.exclude) for vm in c.vms] == [("SQL01", ("i",)), ("WEB01", ())]


def test_each_node_keeps_its_own_interfaces_and_gaps_are_filled_once():
    nets = [{"Name": "LM", "Id": "l", "Role": 1}]
    rows = [{"Name": f"{n} - LM", "Node": n, "Network": "LM", "NetworkId": "l", "State": s}
            for n, s in (("HV01", 3), ("HV02", 1), ("HV03", 3))]
    # HV01 and HV02 report every row; HV03 reports none of its own (e.g. an older collector).
    snaps = [snap("HV01", ClusterNetwork=nets, ClusterNetworkInterface=rows),
             snap("HV02", ClusterNetwork=nets, ClusterNetworkInterface=[dict(r, State=3) for r in rows]),
             snap("HV03", ClusterNetwork=nets, ClusterNetworkInterface=rows[:2])]
    c = group_clusters(snaps)[0]
    got = sorted((i.node, i.state) for i in c.interfaces)
    # HV02's own report wins for HV02 (Up), HV03's row comes once, from the first full report.
    assert got == [("HV01", "Up"), ("HV02", "Up"), ("HV03", "Up")]


# --- a node that calls itself differently from Get-ClusterNode ----------------------------------

MEMBERS = [{"Name": "HYPERV-PROD-NODE01", "State": 0}, {"Name": "HYPERV-PROD-NODE02", "State": 0},
           {"Name": "HV03", "State": 0}]


def _iface(node):
    return {"Name": f"{node} - LM", "Node": node, "Network": "LM", "NetworkId": "n-lm", "State": "Up"}


def _member_snap(name, **top):
    doc = {"lmscan_snapshot": 1, "node": name, **top,
           "sections": {"Cluster": {"Name": "HVCLU01"}, "ClusterNode": MEMBERS,
                        "ClusterNetwork": [{"Name": "LM", "Id": "n-lm", "Role": 1, "State": 3}],
                        "ClusterNetworkInterface": [_iface(m["Name"]) for m in MEMBERS]}}
    return parse_snapshot(json.dumps(doc).encode(), f"{name}.json")


def _collected(snaps):
    (c,) = group_clusters(snaps)
    return {n.name: n for n in c.nodes}, c


def test_netbios_name_cut_to_15_characters_matches_its_cluster_node():
    nodes, c = _collected([_member_snap("HYPERV-PROD-NOD", dns_host_name="hyperv-prod-node01")])
    assert nodes["HYPERV-PROD-NODE01"].collected
    assert [i.node for i in c.interfaces if i.node == "HYPERV-PROD-NODE01"]


def test_netbios_name_alone_matches_when_only_one_member_fits():
    doc = {"lmscan_snapshot": 1, "node": "HYPERV-PROD-NOD",
           "sections": {"Cluster": {"Name": "HVCLU01"},
                        "ClusterNode": [{"Name": "HYPERV-PROD-NODE01"}, {"Name": "HV03"}]}}
    (c,) = group_clusters([parse_snapshot(json.dumps(doc).encode(), "a.json")])
    assert {(n.name, n.collected) for n in c.nodes} == {("HYPERV-PROD-NODE01", True), ("HV03", False)}


def test_ambiguous_netbios_name_is_not_guessed():
    # Both NODE01 and NODE02 start with the 15 characters: the snapshot is not matched to either.
    nodes, _ = _collected([_member_snap("HYPERV-PROD-NOD")])
    assert not nodes["HYPERV-PROD-NODE01"].collected and not nodes["HYPERV-PROD-NODE02"].collected


def test_fqdn_snapshot_matches_short_cluster_node_name():
    nodes, c = _collected([_member_snap("hv03.contoso.com")])
    assert nodes["HV03"].collected and nodes["HV03"].data is not None
    assert nodes["HV03"].data.interfaces and nodes["HV03"].data.interfaces[0].node == "HV03"


def test_short_snapshot_name_matches_fqdn_cluster_node_name():
    doc = {"lmscan_snapshot": 1, "node": "hv05",
           "sections": {"Cluster": {"Name": "HVCLU01"}, "ClusterNode": [{"Name": "HV05.contoso.com"}]}}
    (c,) = group_clusters([parse_snapshot(json.dumps(doc).encode(), "a.json")])
    assert [(n.name, n.collected) for n in c.nodes] == [("HV05.contoso.com", True)]


def test_inventory_failure_by_fqdn_or_netbios_name_lands_on_its_member():
    from scanner.normalize import NodeFailure
    snaps = [_member_snap("HV03")]
    (c,) = group_clusters(snaps, [NodeFailure("HVCLU01", "hyperv-prod-node01.contoso.com", "timed out")])
    nodes = {n.name: n for n in c.nodes}
    assert nodes["HYPERV-PROD-NODE01"].error == "timed out"
    assert len(c.nodes) == 3


# --- shared parsing (the memo) and fast paths agree with the plain coercions ---------------------

def test_memo_never_shares_sections_that_differ_in_type_nan_or_key_order():
    from scanner.normalize import SectionMemo, reduce_snapshot
    base = {"Name": "LM", "Id": "l", "Role": 1, "AutoMetric": None}
    nan = {"lmscan_snapshot": 1, "node": "HV02",
           "sections": {"Cluster": {"Name": "C"}, "ClusterNetwork": [dict(base, AutoMetric=float("nan"))]}}
    snaps = [
        snap("HV01", ClusterNetwork=[base]),
        parse_snapshot(json.dumps(nan).encode(), "HV02.json"),        # NaN: read by json, AutoMetric True
        snap("HV03", ClusterNetwork=[dict(base, Role=True)]),          # true is not 1 to as_enum
        snap("HV04", ClusterNetwork=[{"Id": "l", "NAME": "a", "name": "b"}]),
        snap("HV05", ClusterNetwork=[{"Id": "l", "name": "b", "NAME": "a"}]),   # prop reads them in order
    ]
    memo = SectionMemo()
    got = [reduce_snapshot(s, memo=memo) for s in snaps]
    assert got == [reduce_snapshot(s) for s in snaps]
    assert [d.networks[0].auto_metric for d in got[:2]] == [None, True]
    assert [d.networks[0].role for d in got[:3]] == ["Cluster", "Cluster", "True"]
    assert [d.networks[0].name for d in got[3:]] == ["a", "b"]


def test_memo_keeps_a_bounded_number_of_sections_and_finds_interleaved_clusters():
    from scanner.normalize import SectionMemo, reduce_snapshot
    memo = SectionMemo(size=12)
    nets = [[{"Name": "LM", "Id": f"n{i}", "Role": 1}] for i in range(10)]
    for i in range(10):
        d = reduce_snapshot(snap(f"HV{i}", f"C{i}", ClusterNetwork=nets[i], ClusterNode=[{"Name": f"HV{i}"}]), memo=memo)
        assert d.networks is not None and d.networks[0].id == f"n{i}"
        assert len(memo) <= 12
    # Nodes of clusters 8 and 9 read alternately share what the first nodes of each parsed.
    first = [reduce_snapshot(snap(f"HW{i}", f"C{i}", ClusterNetwork=nets[i]), memo=memo) for i in (8, 9, 8, 9)]
    assert first[0].networks is first[2].networks and first[1].networks is first[3].networks


def _reference_interfaces(section, networks, only_node=None):
    """parse_interfaces as it was before its fast paths: the plain coercions of scanner.values."""
    from scanner import values as v
    from scanner.normalize import Interface, short_name
    from scanner.values import prop as P
    by_name = {n.name.casefold(): n.id for n in networks}
    want = short_name(only_node) if only_node else None
    out = []
    for o in v.as_objects(section):
        raw = P(o, "Node")
        if want is not None and raw != only_node and (raw.__class__ is not str or short_name(raw) != want):
            continue
        net_name = v.text(P(o, "Network"))
        address = v.text(P(o, "Address"))
        addrs = [address] if address else []
        for key in ("Ipv4Addresses", "Ipv6Addresses"):
            addrs += [a for a in (v.text(x) for x in v.as_list(P(o, key))) if a and a not in addrs]
        out.append(Interface(
            name=v.text(P(o, "Name")), node=v.text(raw), network=net_name,
            network_id=v.norm_id(P(o, "NetworkId")) or by_name.get(net_name.casefold(), ""),
            adapter=v.text(P(o, "Adapter")), address=address,
            state=v.as_enum(P(o, "State"), v.INTERFACE_STATE) or "Unknown",
            adapter_id=v.norm_id(P(o, "AdapterId")), addresses=tuple(addrs)))
    return tuple(out)


ODD = st.sampled_from([None, "", " ", 3, -1, 7, 0, "3", " 3 ", "-1", "Up", "up", " UP ", "Failed", "Weird", True,
                       False, 3.0, 2.5, "HV01", "hv01.contoso.com", " HV02 ", "HV02.x", "{ABC-D}", " {abc-d} ",
                       ["10.0.0.1", " 10.0.0.1", None, ""], "10.0.0.1", ["10.0.0.1"], [" 10.0.0.1"], [],
                       ["10.0.0.1", "10.0.0.1"], {"Name": "HV01"}, {"Value": 3}, [1, 2]])
ROW_KEYS = st.sampled_from(["Name", "Node", "Network", "NetworkId", "Adapter", "AdapterId", "Address", "State",
                            "Ipv4Addresses", "Ipv6Addresses", "node", "STATE", "networkid"])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.dictionaries(ROW_KEYS, ODD, max_size=10), max_size=6), ODD)
def test_interface_rows_parse_as_the_plain_coercions_do(rows, node):
    from scanner.normalize import parse_interfaces
    nets = (net("LM", "l", 1), net("Up", "u", 2))
    for only in (None, node if isinstance(node, str) and node.strip() else "HV01"):
        assert parse_interfaces(rows, nets, only) == _reference_interfaces(rows, nets, only)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["Name", "State", "name", "STATE"]), ODD, max_size=3), max_size=5))
def test_cluster_members_parse_as_the_plain_coercions_do(rows):
    from scanner import values as v
    from scanner.normalize import SectionMemo, reduce_snapshot
    from scanner.values import prop as P
    want = tuple((v.text(P(o, "Name")), v.as_enum(P(o, "State"), v.NODE_STATE))
                 for o in v.as_objects(rows) if v.text(P(o, "Name")))
    assert reduce_snapshot(snap("HV01", ClusterNode=rows), memo=SectionMemo()).members == want

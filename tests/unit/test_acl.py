"""`hub acl`: least-privilege ACLs derived from the protocol, checked against Kafka's semantics."""

from __future__ import annotations

import io
import json
import shlex
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from typer.testing import CliRunner

from hub.broker import topics
from hub.cli.main import app
from hub.client.sdk import HubClient
from hub.deploy.acl import (
    HUB_LEADER_TOPIC,
    HUB_PRINCIPAL,
    AclEntry,
    Operation,
    PatternType,
    ResourceType,
    allows,
    consumer_group,
    derive_acls,
    principals,
)
from hub.deploy.render import kafka_acls_script, strimzi_users
from hub.errors import ProtocolError
from hub.federation.link import link_group
from hub.keys.file_store import FileKeyStore
from hub.policies.loader import load_protocol
from hub.policies.model import Party, Protocol
from hub.settings import default_protocol_path

T, G = ResourceType.TOPIC, ResourceType.GROUP
R, W, D = Operation.READ, Operation.WRITE, Operation.DESCRIBE
HUB_TOPICS = (topics.AUDIT, topics.QUARANTINE, topics.HUB_INBOUND)


@pytest.fixture(scope="module")
def protocol() -> Protocol:
    return load_protocol(default_protocol_path())


def _can(entries: list[AclEntry], who: str, op: Operation, rtype: ResourceType, name: str) -> bool:
    return allows(entries, principal=who, operation=op, resource_type=rtype, name=name)


def _assert_least_privilege(
    party_ids: list[str], entries: list[AclEntry], *, peers: tuple[str, ...] = ()
) -> None:
    """The protocol's rules about topics, stated as Kafka would answer each request."""
    everyone = [*party_ids, HUB_PRINCIPAL]
    all_names = [*HUB_TOPICS, *(topics.inbound(p) for p in party_ids)]
    all_names += [topics.outbound(p) for p in party_ids]
    for party in party_ids:
        writable = {n for n in all_names if _can(entries, party, W, T, n)}
        readable = {n for n in all_names if _can(entries, party, R, T, n)}
        assert writable == {topics.inbound(party)}
        if party in peers:
            # a peer's link only writes here: this hub's own link reads hub.out.<peer>
            assert readable == set()
            assert not any(e.resource_type is G for e in entries if e.principal == party)
            assert _can(entries, HUB_PRINCIPAL, R, T, topics.outbound(party))
            assert _can(entries, HUB_PRINCIPAL, R, G, link_group(party))
            continue
        assert readable == {topics.outbound(party)}
        assert not any(_can(entries, party, W, T, n) for n in ("hub-router-x", "hub.in.hub"))
        # its own groups, never another party's and never the hub's
        assert _can(entries, party, R, G, consumer_group(party))
        assert _can(entries, party, R, G, f"{consumer_group(party)}:webhook")
        for other in everyone:
            if other != party:
                assert not _can(entries, party, R, G, consumer_group(other))
                assert not _can(entries, party, R, G, f"{consumer_group(other)}:webhook")
        assert not _can(entries, party, R, G, "hub-router")
        assert not _can(entries, party, R, G, "hub-router-audit-sink")
        # cannot even learn that another party's topics exist
        for other in party_ids:
            if other != party:
                assert not _can(entries, party, D, T, topics.outbound(other))
                assert not _can(entries, party, D, T, topics.inbound(other))
    for party in party_ids:
        readers = {who for who in everyone if _can(entries, who, R, T, topics.inbound(party))}
        writers = {who for who in everyone if _can(entries, who, W, T, topics.outbound(party))}
        assert readers == {HUB_PRINCIPAL}
        if party not in peers:
            assert not _can(entries, HUB_PRINCIPAL, R, T, topics.outbound(party))
        assert writers == {HUB_PRINCIPAL}
    for name, ops in [(topics.AUDIT, (R, W)), (topics.QUARANTINE, (W,))]:
        for op in ops:
            assert {who for who in everyone if _can(entries, who, op, T, name)} == {HUB_PRINCIPAL}
    assert not any(_can(entries, who, R, T, topics.QUARANTINE) for who in everyone)
    # the hub's own internals
    assert _can(entries, HUB_PRINCIPAL, R, G, "hub-router")
    assert _can(entries, HUB_PRINCIPAL, R, G, "hub-router-audit-sink")
    assert _can(entries, HUB_PRINCIPAL, Operation.CREATE, T, HUB_LEADER_TOPIC)
    for other in ("hub-router-x", "hub-router-changelog"):  # the leader topic only
        assert not _can(entries, HUB_PRINCIPAL, Operation.CREATE, T, other)
        assert not _can(entries, HUB_PRINCIPAL, W, T, other)
    assert not _can(entries, HUB_PRINCIPAL, Operation.CREATE, T, topics.AUDIT)
    assert not any(e.resource_type is ResourceType.CLUSTER for e in entries)
    assert all(e.host == "*" and e.permission == "Allow" for e in entries)
    assert principals(entries) == everyone


def test_reference_protocol_is_least_privilege(protocol: Protocol) -> None:
    peers = tuple(p.id for p in protocol.peers)
    assert peers == ("swcsp-hub",)
    _assert_least_privilege(list(protocol.party_ids), derive_acls(protocol), peers=peers)


def test_a_peer_hub_only_writes_its_inbound_topic_and_the_link_reads_with_the_hubs_account(
    protocol: Protocol,
) -> None:
    # two clusters (issue 20): the North's link reads hub.out.swcsp-hub as the North's hub;
    # the South's link, with the account the North gives it, only writes hub.in.swcsp-hub
    entries = derive_acls(protocol)
    peer = [e for e in entries if e.principal == "swcsp-hub"]
    assert [(e.resource_type, e.resource_name, e.operation) for e in peer] == [
        (T, topics.inbound("swcsp-hub"), W)
    ]
    assert not _can(entries, "swcsp-hub", R, T, topics.outbound("swcsp-hub"))
    assert not _can(entries, "swcsp-hub", R, G, consumer_group("swcsp-hub"))
    assert _can(entries, HUB_PRINCIPAL, R, T, topics.outbound("swcsp-hub"))
    assert _can(entries, HUB_PRINCIPAL, R, G, link_group("swcsp-hub"))
    assert not _can(entries, HUB_PRINCIPAL, R, G, link_group("other-hub"))
    south = load_protocol(default_protocol_path().with_name("south-worcestershire.yaml"))
    south_entries = derive_acls(south)
    assert [e.resource_name for e in south_entries if e.principal == "nwcsp-hub"] == [
        topics.inbound("nwcsp-hub")
    ]
    assert _can(south_entries, HUB_PRINCIPAL, R, G, link_group("nwcsp-hub"))


def test_departments_cannot_reach_their_parents_groups_or_topics(protocol: Protocol) -> None:
    # a prefix ACL on `hub-consumer.redditch-bc` would cover `redditch-bc.housing-repairs`
    entries = derive_acls(protocol)
    parents = [
        p for p in protocol.party_ids if any(q.startswith(f"{p}.") for q in protocol.party_ids)
    ]
    assert parents, "the reference protocol has agencies with departments"
    for parent in parents:
        for child in (q for q in protocol.party_ids if q.startswith(f"{parent}.")):
            assert not _can(entries, parent, R, G, consumer_group(child))
            assert not _can(entries, parent, R, T, topics.outbound(child))
            assert not _can(entries, child, R, T, topics.outbound(parent))


def test_group_name_matches_the_sdk(tmp_path: Path) -> None:
    client = HubClient("redditch-bc.housing-repairs", bootstrap="x:1", keys=FileKeyStore(tmp_path))
    assert client.group_id == consumer_group("redditch-bc.housing-repairs")


def test_party_named_like_the_hub_principal_is_refused(protocol: Protocol) -> None:
    clash = protocol.model_copy(
        update={"parties": (*protocol.parties, Party(id=HUB_PRINCIPAL, name="x", kind="police"))}
    )
    with pytest.raises(ProtocolError, match="reserved"):
        derive_acls(clash)


_PARTY_ID = st.from_regex(r"\A[a-z0-9]{1,6}(-[a-z0-9]{1,4})?(\.[a-z0-9]{1,5}){0,2}\Z")


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(_PARTY_ID, min_size=1, max_size=8, unique=True))
def test_any_party_set_is_least_privilege(protocol: Protocol, ids: list[str]) -> None:
    ids = [i for i in ids if i != HUB_PRINCIPAL] or ["only-party"]
    parties = tuple(Party(id=i, name=i, kind="council") for i in ids)
    entries = derive_acls(protocol.model_copy(update={"parties": parties}))
    _assert_least_privilege(ids, entries)


def _from_strimzi(docs: list[dict[str, Any]]) -> set[AclEntry]:
    found = set()
    for doc in docs:
        assert doc["kind"] == "KafkaUser"
        assert doc["spec"]["authentication"] == {"type": "scram-sha-512"}
        assert doc["spec"]["authorization"]["type"] == "simple"
        for acl in doc["spec"]["authorization"]["acls"]:
            res = acl["resource"]
            for op in acl["operations"]:
                found.add(
                    AclEntry(
                        principal=doc["metadata"]["name"],
                        resource_type=ResourceType(res["type"]),
                        resource_name=res.get("name", ""),
                        pattern_type=PatternType(res.get("patternType", "literal")),
                        operation=Operation(op),
                        host=acl["host"],
                    )
                )
    return found


def test_strimzi_yaml_parses_and_matches_the_json_form(protocol: Protocol) -> None:
    runner = CliRunner()
    as_json = runner.invoke(app, ["acl", "--format", "json"])
    as_yaml = runner.invoke(app, ["acl", "--format", "strimzi", "--cluster", "csp"])
    assert as_json.exit_code == 0, as_json.output
    assert as_yaml.exit_code == 0, as_yaml.output
    entries = {AclEntry.model_validate(e) for e in json.loads(as_json.stdout)}
    docs = list(YAML(typ="safe").load_all(io.StringIO(as_yaml.stdout)))
    assert [d["metadata"]["name"] for d in docs] == [*protocol.party_ids, HUB_PRINCIPAL]
    assert all(d["metadata"]["labels"]["strimzi.io/cluster"] == "csp" for d in docs)
    assert _from_strimzi(docs) == entries == set(derive_acls(protocol))
    assert _from_strimzi(strimzi_users(derive_acls(protocol), cluster="csp")) == entries


def test_kafka_acls_script_is_shell_quoted_and_complete(protocol: Protocol) -> None:
    entries = derive_acls(protocol)
    script = kafka_acls_script(
        entries, bootstrap="kafka-1:9092", command_config="/etc/hub/admin props", tool="kafka-acls"
    )
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh"
    assert "set -eu" in lines
    parsed: set[AclEntry] = set()
    for line in lines:
        if line.startswith("#") or line == "set -eu":
            continue
        argv = shlex.split(line)
        assert argv[:5] == [
            "kafka-acls",
            "--bootstrap-server",
            "kafka-1:9092",
            "--command-config",
            "/etc/hub/admin props",
        ]
        opts = argv[5:]
        assert opts[0] == "--add"
        principal = opts[opts.index("--allow-principal") + 1].removeprefix("User:")
        ops = [opts[i + 1] for i, a in enumerate(opts) if a == "--operation"]
        rtype = "topic" if "--topic" in opts else "group"
        name = opts[opts.index(f"--{rtype}") + 1]
        pattern = opts[opts.index("--resource-pattern-type") + 1]
        assert opts[opts.index("--allow-host") + 1] == "*"
        for op in ops:
            parsed.add(
                AclEntry(
                    principal=principal,
                    resource_type=ResourceType(rtype),
                    resource_name=name,
                    pattern_type=PatternType(pattern),
                    operation=Operation(op),
                )
            )
    assert parsed == set(entries)


def test_cli_formats_and_bad_protocol(tmp_path: Path) -> None:
    runner = CliRunner()
    topics_out = runner.invoke(app, ["acl", "--format", "kafka-topics", "--partitions", "6"])
    assert topics_out.exit_code == 0
    assert (
        "--partitions 6 --replication-factor 3 --config min.insync.replicas=2" in topics_out.stdout
    )
    assert "--topic hub.in.hub " in topics_out.stdout
    missing = runner.invoke(app, ["acl", "--protocol", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 1
    assert "error: protocol" in missing.stderr


def test_the_ingress_writes_only_the_inbound_topics_of_the_parties_it_serves() -> None:
    protocol = load_protocol(default_protocol_path())
    served = ["redditch-bc.housing-repairs", "wrs"]
    entries = derive_acls(protocol, ingress_for=served)
    for party in protocol.party_ids:
        for operation, topic in (
            (Operation.WRITE, topics.inbound(party)),
            (Operation.READ, topics.inbound(party)),
            (Operation.READ, topics.outbound(party)),
            (Operation.WRITE, topics.outbound(party)),
        ):
            expected = (
                operation is Operation.WRITE
                and topic == topics.inbound(party)
                and (party in served)
            )
            got = allows(
                entries,
                principal="ingress",
                operation=operation,
                resource_type=ResourceType.TOPIC,
                name=topic,
            )
            assert got is expected, (party, operation, topic)
    for name in (topics.AUDIT, topics.QUARANTINE, topics.HUB_INBOUND):
        for operation in (Operation.READ, Operation.WRITE):
            assert not allows(
                entries,
                principal="ingress",
                operation=operation,
                resource_type=ResourceType.TOPIC,
                name=name,
            )
    assert "ingress" not in principals(derive_acls(protocol))  # only when asked for
    with pytest.raises(ProtocolError, match="no-such-party"):
        derive_acls(protocol, ingress_for=["no-such-party"])

"""`hub acl`: least-privilege Kafka ACLs (and topics) derived from the protocol."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from hub.cli.common import handle_errors, load_settings
from hub.deploy.acl import derive_acls, principals
from hub.deploy.render import (
    TopicSpec,
    hub_topics,
    kafka_acls_script,
    kafka_topics_script,
    strimzi_topics,
    strimzi_users,
    yaml_documents,
)
from hub.policies.loader import load_protocol

__all__ = ["acl_command"]


class AclFormat(StrEnum):
    """What `hub acl` prints."""

    KAFKA_ACLS = "kafka-acls"
    STRIMZI = "strimzi"
    JSON = "json"
    STRIMZI_TOPICS = "strimzi-topics"
    KAFKA_TOPICS = "kafka-topics"
    PRINCIPALS = "principals"


@handle_errors
def acl_command(
    fmt: Annotated[
        AclFormat,
        typer.Option(
            "--format",
            help="kafka-acls: a sh script of kafka-acls commands; strimzi: KafkaUser YAML; "
            "json: the ACL entries; strimzi-topics: KafkaTopic YAML; kafka-topics: a sh script "
            "creating the topics; principals: the Kafka users, one per line.",
        ),
    ] = AclFormat.KAFKA_ACLS,
    protocol_path: Annotated[
        Path | None,
        typer.Option("--protocol", help="Protocol YAML file (default: HUB_PROTOCOL)."),
    ] = None,
    bootstrap: Annotated[
        str, typer.Option("--bootstrap", help="HOST:PORT for the kafka-acls/kafka-topics scripts.")
    ] = "localhost:9092",
    command_config: Annotated[
        str | None,
        typer.Option(help="Admin client properties file (SASL_SSL) passed to the scripts."),
    ] = None,
    tool_dir: Annotated[
        str | None,
        typer.Option(help="Directory of kafka-acls.sh/kafka-topics.sh (default: on PATH)."),
    ] = None,
    cluster: Annotated[
        str, typer.Option("--cluster", help="Strimzi Kafka cluster name (strimzi.io/cluster).")
    ] = "hub",
    partitions: Annotated[
        int | None, typer.Option(help="Partitions per topic (default: HUB_PARTITIONS).", min=1)
    ] = None,
    replicas: Annotated[int, typer.Option(help="Replication factor per topic.", min=1)] = 3,
    min_insync: Annotated[int, typer.Option(help="min.insync.replicas per topic.", min=1)] = 2,
    ingress_for: Annotated[
        list[str] | None,
        typer.Option(
            "--ingress-for",
            help="A party the HTTP ingress publishes for (repeat); its Kafka user 'ingress' "
            "may write only their inbound topics.",
        ),
    ] = None,
) -> None:
    """Kafka ACLs (and Strimzi KafkaUser resources) derived from the protocol.

    Each party may write only hub.in.PARTY and read only hub.out.PARTY (with its own
    consumer groups); only the hub reads inbound and writes outbound, audit and quarantine.
    """
    settings = load_settings()
    protocol = load_protocol(protocol_path or settings.protocol)
    entries = derive_acls(protocol, ingress_for=ingress_for or ())
    spec = TopicSpec(
        partitions=partitions or settings.partitions, replicas=replicas, min_insync=min_insync
    )
    wanted = hub_topics(protocol.party_ids, spec)
    prefix = f"{tool_dir.rstrip('/')}/" if tool_dir else ""
    if fmt is AclFormat.JSON:
        payload = [e.model_dump(mode="json") for e in entries]
        typer.echo(json.dumps(payload, indent=2))
    elif fmt is AclFormat.STRIMZI:
        typer.echo(yaml_documents(strimzi_users(entries, cluster=cluster)), nl=False)
    elif fmt is AclFormat.STRIMZI_TOPICS:
        typer.echo(yaml_documents(strimzi_topics(wanted, cluster=cluster)), nl=False)
    elif fmt is AclFormat.KAFKA_TOPICS:
        script = kafka_topics_script(
            wanted,
            bootstrap=bootstrap,
            command_config=command_config,
            tool=f"{prefix}kafka-topics.sh",
        )
        typer.echo(script, nl=False)
    elif fmt is AclFormat.PRINCIPALS:
        typer.echo("\n".join(principals(entries)))
    else:
        script = kafka_acls_script(
            entries,
            bootstrap=bootstrap,
            command_config=command_config,
            tool=f"{prefix}kafka-acls.sh",
        )
        typer.echo(script, nl=False)

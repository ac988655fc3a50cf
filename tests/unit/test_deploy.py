"""Deployment files: docker-compose.yml and deploy/k8s parse, have the agreed shape, and the
files generated from the protocol equal what `hub acl` produces now (`make deploy-manifests`).
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from typer.testing import CliRunner

from hub.cli.main import app
from hub.deploy.acl import HUB_PRINCIPAL
from hub.policies.loader import load_protocol
from hub.settings import default_protocol_path

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
PROTOCOL = ["--protocol", str(default_protocol_path()), "--partitions", "3"]
SCRIPT_ARGS = [
    *PROTOCOL,
    "--bootstrap",
    "kafka-1:9092,kafka-2:9092,kafka-3:9092",
    "--command-config",
    "/tmp/admin.properties",  # noqa: S108  # a path inside the kafka-setup container
    "--tool-dir",
    "/opt/kafka/bin",
]
# the Makefile's deploy-manifests target, file by file
GENERATED = {
    "deploy/compose/principals.txt": ["--format", "principals", *PROTOCOL],
    "deploy/compose/acls.sh": ["--format", "kafka-acls", *SCRIPT_ARGS],
    "deploy/compose/topics.sh": ["--format", "kafka-topics", *SCRIPT_ARGS],
    "deploy/k8s/users.yaml": ["--format", "strimzi", *PROTOCOL, "--cluster", "hub"],
    "deploy/k8s/topics.yaml": ["--format", "strimzi-topics", *PROTOCOL, "--cluster", "hub"],
}


def _load(path: Path) -> list[dict[str, Any]]:
    return [d for d in YAML(typ="safe").load_all(io.StringIO(path.read_text())) if d]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    (doc,) = _load(COMPOSE)
    return doc


@pytest.mark.parametrize("path", sorted(GENERATED))
def test_generated_files_match_hub_acl(path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HUB_PROTOCOL", raising=False)
    monkeypatch.delenv("HUB_PARTITIONS", raising=False)
    result = CliRunner().invoke(app, ["acl", *GENERATED[path]])
    assert result.exit_code == 0, result.output
    assert (ROOT / path).read_text() == result.stdout, f"{path} drifted: make deploy-manifests"


def test_compose_brokers_are_kraft_with_sasl_ssl_only(compose: dict[str, Any]) -> None:
    services = compose["services"]
    brokers = sorted(n for n in services if n.startswith("kafka-") and n != "kafka-setup")
    assert brokers == ["kafka-1", "kafka-2", "kafka-3"]
    for name in brokers:
        svc = services[name]
        assert svc["image"].startswith("apache/kafka:")
        assert svc["environment"]["NODE_ID"] == name.removeprefix("kafka-")
        # only the SASL_SSL EXTERNAL listener (9094) is published, and only on loopback
        assert [p.split(":")[-1] for p in svc["ports"]] == ["9094"]
        assert all(p.startswith("127.0.0.1:") for p in svc["ports"])
    start = (ROOT / "deploy/compose/kafka-start.sh").read_text()
    assert "process.roles=broker,controller" in start
    assert "controller.quorum.voters=1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093" in start
    assert (
        "listener.security.protocol.map=INTERNAL:SASL_SSL,EXTERNAL:SASL_SSL,CONTROLLER:SSL" in start
    )
    assert "sasl.enabled.mechanisms=SCRAM-SHA-512" in start
    assert "allow.everyone.if.no.acl.found=false" in start
    assert "listener.name.controller.ssl.client.auth=required" in start
    assert "PLAINTEXT" not in start.replace("no PLAINTEXT listener", "")


def test_compose_hub_workers_postgres_and_no_secrets(compose: dict[str, Any]) -> None:
    services = compose["services"]
    workers = sorted(n for n in services if n.startswith("hub-worker"))
    assert workers == ["hub-worker-1", "hub-worker-2"]
    for name in workers:
        env = services[name]["environment"]
        assert env["HUB_AUDIT_URL"].startswith("postgresql://hub@postgres:")
        assert env["HUB_KAFKA_BOOTSTRAP"] == "kafka-1:9092,kafka-2:9092,kafka-3:9092"
        assert services[name]["env_file"] == "deploy/secrets/hub.env"
        assert services[name]["depends_on"]["kafka-setup"]["condition"] == (
            "service_completed_successfully"
        )
    assert services["postgres"]["environment"]["POSTGRES_PASSWORD_FILE"].startswith("/run/secrets/")
    assert "prometheus" in services
    assert "console" not in services  # no `hub console` yet: no placeholder service
    text = COMPOSE.read_text()
    assert "PASSWORD=" not in text.replace("POSTGRES_PASSWORD_FILE", "")
    secret_files = [s["file"] for s in compose["secrets"].values()]
    assert all(f.startswith("./deploy/secrets/") for f in secret_files)
    assert "deploy/secrets/" in (ROOT / ".gitignore").read_text().splitlines()


def test_docker_compose_config_validates(tmp_path: Path) -> None:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose not installed (Debian: apt-get install docker-compose)")
    # the env file is a generated secret: validate against an empty stand-in
    (tmp_path / "deploy" / "secrets").mkdir(parents=True)
    (tmp_path / "deploy" / "secrets" / "hub.env").write_text("")
    shutil.copy(COMPOSE, tmp_path / "docker-compose.yml")
    result = subprocess.run(  # fixed argv, no shell
        [binary, "-f", str(tmp_path / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_k8s_manifests_have_kinds_and_required_fields() -> None:
    docs = [d for path in sorted(K8S.glob("*.yaml")) for d in _load(path)]
    kinds: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        assert {"apiVersion", "kind", "metadata", "spec"} <= doc.keys(), doc
        assert doc["metadata"]["name"]
        kinds.setdefault(doc["kind"], []).append(doc)
    assert sorted(kinds) == [
        "Deployment",
        "Kafka",
        "KafkaNodePool",
        "KafkaTopic",
        "KafkaUser",
        "ScaledObject",
        "TriggerAuthentication",
    ]
    (kafka,) = kinds["Kafka"]
    assert kafka["metadata"]["annotations"]["strimzi.io/kraft"] == "enabled"
    assert kafka["spec"]["kafka"]["authorization"] == {"type": "simple"}
    listeners = kafka["spec"]["kafka"]["listeners"]
    assert all(lst["tls"] and lst["authentication"]["type"] == "scram-sha-512" for lst in listeners)
    (pool,) = kinds["KafkaNodePool"]
    assert pool["spec"]["replicas"] == 3
    assert sorted(pool["spec"]["roles"]) == ["broker", "controller"]
    protocol = load_protocol(default_protocol_path())
    users = [u["metadata"]["name"] for u in kinds["KafkaUser"]]
    assert users == [*protocol.party_ids, HUB_PRINCIPAL]
    for doc in kinds["KafkaUser"] + kinds["KafkaTopic"] + [pool]:
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == kafka["metadata"]["name"]
    (deployment,) = kinds["Deployment"]
    assert deployment["spec"]["replicas"] == 2
    (worker,) = deployment["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e for e in worker["env"]}
    port = int(env["HUB_METRICS_PORT"]["value"])
    assert env["HUB_METRICS_HOST"]["value"] == "0.0.0.0"  # noqa: S104 - the kubelet probes the pod IP
    (metrics,) = [p for p in worker["ports"] if p["name"] == "metrics"]
    assert metrics["containerPort"] == port
    assert worker["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "metrics"}
    assert worker["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "metrics"}
    for name in ("HUB_KAFKA_SECURITY_PROTOCOL", "HUB_KAFKA_SASL_MECHANISM", "HUB_KAFKA_USERNAME"):
        assert env[name]["value"]
    assert env["HUB_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert "secretKeyRef" in env["HUB_KAFKA_PASSWORD"]["valueFrom"]
    assert "secretKeyRef" in env["HUB_AUDIT_URL"]["valueFrom"]
    assert "secretKeyRef" in env["HUB_PSEUDONYM_KEY"]["valueFrom"]


def test_k8s_router_replicas_scale_out_without_a_shared_volume() -> None:
    """Issue 22: no volume shared between replicas, state in PostgreSQL, KEDA on lag, and
    never more replicas than partitions per inbound topic (the ceiling on parallelism)."""
    docs = {d["kind"]: d for d in _load(K8S / "hub.yaml")}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    assert all("persistentVolumeClaim" not in v for v in pod["volumes"])
    assert "podAffinity" not in pod.get("affinity", {})  # nothing pins replicas to one node
    (worker,) = pod["containers"]
    env = {e["name"]: e for e in worker["env"]}
    assert "secretKeyRef" in env["HUB_STATE_URL"]["valueFrom"]
    assert "secretKeyRef" in env["HUB_AUDIT_STREAM_KEY"]["valueFrom"]
    assert env["HUB_AUDIT_SINK"]["value"] == "worker"
    scaled = docs["ScaledObject"]["spec"]
    assert scaled["scaleTargetRef"]["name"] == docs["Deployment"]["metadata"]["name"]
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == "hub-router"
    assert trigger["metadata"]["allowIdleConsumers"] == "false"
    inbound = [
        t["spec"]["partitions"]
        for t in _load(K8S / "topics.yaml")
        if t["spec"]["topicName"].startswith("hub.in.")
    ]
    assert set(inbound) == {int(env["HUB_PARTITIONS"]["value"])}
    assert scaled["maxReplicaCount"] == inbound[0]
    assert scaled["minReplicaCount"] == docs["Deployment"]["spec"]["replicas"]

#!/bin/bash
# Start one KRaft node (broker + controller) of the compose cluster.
#
# Broker certificates have subject CN=kafka-N only, so the mapping rule below turns the
# controller listener's TLS principal into User:kafka-N (a super user).
# Listeners: INTERNAL (clients and inter-broker) and EXTERNAL (published on 127.0.0.1 for
# host-side tools) are SASL_SSL with SCRAM-SHA-512; CONTROLLER is TLS with client
# certificates: SCRAM cannot authenticate the controller quorum itself, because the
# credentials live in the metadata log the controllers serve. There is no PLAINTEXT listener.
# The admin SCRAM user (inter-broker, and the setup job) is written into the metadata log at
# format time (KIP-900, `kafka-storage format --add-scram`).
set -euo pipefail
: "${NODE_ID:?NODE_ID (1-3)}" "${CLUSTER_ID:?CLUSTER_ID}" "${EXTERNAL_PORT:?EXTERNAL_PORT}"

secrets=/etc/kafka/secrets
admin_password="$(cat "$secrets/scram/admin.password")"
conf=/tmp/server.properties
host="kafka-${NODE_ID}"
scram='org.apache.kafka.common.security.scram.ScramLoginModule required'

cat >"$conf" <<PROPS
process.roles=broker,controller
node.id=${NODE_ID}
controller.quorum.voters=1@kafka-1:9093,2@kafka-2:9093,3@kafka-3:9093
listeners=INTERNAL://:9092,CONTROLLER://:9093,EXTERNAL://:9094
advertised.listeners=INTERNAL://${host}:9092,EXTERNAL://localhost:${EXTERNAL_PORT}
listener.security.protocol.map=INTERNAL:SASL_SSL,EXTERNAL:SASL_SSL,CONTROLLER:SSL
inter.broker.listener.name=INTERNAL
controller.listener.names=CONTROLLER
sasl.enabled.mechanisms=SCRAM-SHA-512
sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512
listener.name.internal.scram-sha-512.sasl.jaas.config=${scram} username="admin" password="${admin_password}";
listener.name.external.scram-sha-512.sasl.jaas.config=${scram};
ssl.keystore.type=PEM
ssl.keystore.location=${secrets}/tls/${host}.pem
ssl.truststore.type=PEM
ssl.truststore.location=${secrets}/tls/ca.crt
listener.name.controller.ssl.client.auth=required
ssl.principal.mapping.rules=RULE:^CN=([a-z0-9-]+)$/\$1/,DEFAULT
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
allow.everyone.if.no.acl.found=false
super.users=User:admin;User:kafka-1;User:kafka-2;User:kafka-3
log.dirs=/var/lib/kafka/data
auto.create.topics.enable=false
default.replication.factor=3
offsets.topic.replication.factor=3
transaction.state.log.replication.factor=3
transaction.state.log.min.isr=2
PROPS

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted -t "$CLUSTER_ID" -c "$conf" \
    --add-scram "SCRAM-SHA-512=[name=admin,password=${admin_password}]"
exec /opt/kafka/bin/kafka-server-start.sh "$conf"

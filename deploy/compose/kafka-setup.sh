#!/bin/bash
# One-shot setup of the compose cluster, run by the `kafka-setup` service as the admin user:
# SCRAM credentials for every principal `hub acl --format principals` names (passwords from
# deploy/secrets/scram/<principal>.password), then the topics and the least-privilege ACLs
# generated from the protocol (topics.sh, acls.sh: `make deploy-manifests`). Idempotent: run
# it again after adding a party or rotating a password.
set -euo pipefail
here=/etc/hub/compose
secrets=/etc/kafka/secrets
bootstrap=kafka-1:9092,kafka-2:9092,kafka-3:9092
admin=/tmp/admin.properties

cat >"$admin" <<PROPS
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="admin" password="$(cat "$secrets/scram/admin.password")";
ssl.truststore.type=PEM
ssl.truststore.location=${secrets}/tls/ca.crt
PROPS

until /opt/kafka/bin/kafka-broker-api-versions.sh --bootstrap-server "$bootstrap" \
    --command-config "$admin" >/dev/null 2>&1; do
    echo "waiting for the brokers" >&2
    sleep 2
done

while read -r principal; do
    [ -n "$principal" ] || continue
    password_file="$secrets/scram/${principal}.password"
    if [ ! -s "$password_file" ]; then
        echo "no password for ${principal}: run deploy/make-dev-secrets.sh" >&2
        exit 1
    fi
    /opt/kafka/bin/kafka-configs.sh --bootstrap-server "$bootstrap" --command-config "$admin" \
        --alter --entity-type users --entity-name "$principal" \
        --add-config "SCRAM-SHA-512=[password=$(cat "$password_file")]"
done <"$here/principals.txt"

sh "$here/topics.sh"
sh "$here/acls.sh"
echo "kafka-setup: users, topics and ACLs applied"

#!/usr/bin/env bash
# A second single-node Kafka with TLS, SASL (SCRAM-SHA-256/512, PLAIN) and mTLS listeners, for tests
# that must see a secured cluster. It never touches the plaintext broker on 9092.
#
#   docker/kafka-tls.sh up|down|status|logs|clean
#
# It is docker/kafka-local.sh with HR_KAFKA_SECURITY=sasl_ssl (listeners, users and certificate
# files are described there), its own ports and state, and the plaintext broker's jars.
#
# Environment:
#   HR_KAFKA_TLS_PORT   SASL_SSL port (default 9192; the next four ports are taken too)
#   HR_KAFKA_TLS_STATE  state directory, certificates in <state>/tls (default <repo>/.kafka/tls-broker)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
port=${HR_KAFKA_TLS_PORT:-9192}
export HR_KAFKA_SECURITY=sasl_ssl
export HR_KAFKA_MODE=native
export HR_KAFKA_PORT=$port
export HR_KAFKA_CONTROLLER_PORT=$((port + 1))
export HR_KAFKA_STATE=${HR_KAFKA_TLS_STATE:-$repo/.kafka/tls-broker}
export HR_KAFKA_LIB=${HR_KAFKA_LIB:-$repo/.kafka/lib}
export HR_KAFKA_HEAP=${HR_KAFKA_TLS_HEAP:-512m}
exec "$repo/docker/kafka-local.sh" "$@"

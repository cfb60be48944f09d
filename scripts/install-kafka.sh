#!/usr/bin/env bash
# Install a real Apache Kafka broker (KRaft) into .tools/kafka from Maven Central — no tarball, no Docker.
#
# The work is `floe tools install-kafka` (src/floe_stream/runtime/devtools/kafka_install.py, with the pom and log config
# it ships in src/floe_stream/runtime/devtools/apache_kafka/), so a user of the installed wheel has the same command.
# Idempotent. KAFKA_VERSION overrides the pom's version (docs/DEVELOPMENT.md lists what was verified);
# FLOE_KAFKA_HOME installs elsewhere (the Python side reads the same variable), e.g. another version beside the default.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FLOE="${ROOT}/.venv/bin/floe"
[[ -x "${FLOE}" ]] || FLOE="floe"
exec "${FLOE}" tools install-kafka ${FLOE_KAFKA_HOME:+--home "${FLOE_KAFKA_HOME}"}

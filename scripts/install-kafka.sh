#!/usr/bin/env bash
# Install a real Apache Kafka broker (KRaft) into .tools/kafka from Maven Central — no tarball, no Docker.
#
# scripts/kafka/pom.xml declares org.apache.kafka:kafka_2.13 and an SLF4J binding; Maven copies their runtime
# jars into .tools/kafka/lib, and floe_stream.runtime.embedded.ApacheKafka runs
# `java -cp '.tools/kafka/lib/*' kafka.tools.StorageTool format …` then `kafka.Kafka server.properties`.
#
# Idempotent: does nothing when .tools/kafka/INSTALLED matches the requested version and the pom.
# KAFKA_VERSION overrides the pom's version (docs/DEVELOPMENT.md lists what was verified); FLOE_KAFKA_HOME
# installs elsewhere (the Python side reads the same variable), e.g. to try another version beside the default.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEST="${FLOE_KAFKA_HOME:-${ROOT}/.tools/kafka}"
POM="${ROOT}/scripts/kafka/pom.xml"
VERSION="${KAFKA_VERSION:-$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "${POM}")}"
STAMP="${VERSION} $(cat "${POM}" "${ROOT}/scripts/kafka/log4j2.properties" | sha256sum | cut -c1-16)"

if [[ -f "${DEST}/INSTALLED" && "$(cat "${DEST}/INSTALLED")" == "${STAMP}" ]] && ls "${DEST}"/lib/kafka_2.13-*.jar >/dev/null 2>&1; then
    echo "Apache Kafka ${VERSION} already installed: ${DEST}"
    exit 0
fi
for tool in java mvn; do
    command -v "${tool}" >/dev/null || { echo "install-kafka: '${tool}' is required (OpenJDK 17 + Maven 3.8)" >&2; exit 1; }
done

echo "install-kafka: resolving org.apache.kafka:kafka_2.13:${VERSION} from Maven Central…"
mkdir -p "$(dirname "${DEST}")"
WORK="$(mktemp -d "$(dirname "${DEST}")/kafka-install.XXXXXX")"
trap 'rm -rf "${WORK}"' EXIT
mvn -q -B -Dstyle.color=never -f "${POM}" -Dkafka.version="${VERSION}" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="${WORK}/lib"
cp "${ROOT}/scripts/kafka/log4j2.properties" "${WORK}/log4j2.properties"
echo "${VERSION}" > "${WORK}/VERSION"
echo "${STAMP}" > "${WORK}/INSTALLED"
rm -rf "${DEST}"
mv "${WORK}" "${DEST}"
trap - EXIT
echo "install-kafka: installed Apache Kafka ${VERSION} ($(ls "${DEST}/lib" | wc -l) jars) in ${DEST}"

#!/usr/bin/env bash
# Binaries the tests run for real. Idempotent; each step skips when its tool is present.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
command -v prometheus-alertmanager >/dev/null || need_apt+=(prometheus-alertmanager)
command -v prometheus >/dev/null || need_apt+=(prometheus)
command -v chromium >/dev/null || need_apt+=(chromium)  # headless browser of the HTML report test
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (Debian packages)…"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi
if [ -f scripts/install-helm.sh ]; then bash scripts/install-helm.sh; fi
bash scripts/install-kafka.sh  # Apache Kafka (KRaft) from Maven Central into .tools/kafka
bash scripts/install-emitters.sh  # dbt, Airflow (own venvs), Apache Iceberg REST catalog server (Maven) into .tools/

#!/usr/bin/env bash
# Make sure a PostgreSQL server answers on 127.0.0.1:5432 with trust auth for the tests.
# Idempotent: installs Debian's server when missing, switches loopback auth to trust (a machine image may ship
# the server installed but stopped, with scram-sha-256 on loopback), starts the cluster and waits for it.
set -euo pipefail
if [ -n "${FLOE_TEST_PG_DSN:-}" ]; then exit 0; fi  # the caller brings its own server
if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  echo "installing PostgreSQL (Debian package)…"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql >/dev/null
fi
ver=$(ls /etc/postgresql | sort -V | tail -1)
hba=/etc/postgresql/$ver/main/pg_hba.conf
changed=0
if grep -Eq '^host\s+all\s+all\s+\S+\s+(peer|scram-sha-256|md5|password)\s*$' "$hba"; then
  sed -i -E 's/^(host\s+all\s+all\s+\S+\s+)(peer|scram-sha-256|md5|password)\s*$/\1trust/' "$hba"
  changed=1
fi
if pg_isready -q -h 127.0.0.1 -p 5432; then
  if [ "$changed" = 1 ]; then pg_ctlcluster --skip-systemctl-redirect "$ver" main reload; fi
  exit 0
fi
pg_ctlcluster --skip-systemctl-redirect "$ver" main start || true
for _ in $(seq 1 50); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 0.2; done
echo "PostgreSQL did not come up on 127.0.0.1:5432 (see /var/log/postgresql/)" >&2
exit 1

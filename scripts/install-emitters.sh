#!/usr/bin/env bash
# The real emitters the integration tests run (issue 21), installed from PyPI and Maven Central into .tools/:
#
#   .tools/dbt/           venv: dbt-core 1.11 + dbt-duckdb + openlineage-dbt (dbt-ol)     scripts/tools/dbt.txt
#   .tools/airflow/       venv: Airflow 3.3 + OpenLineage + PostgreSQL providers + floe    scripts/tools/airflow.txt
#                         (+ metadata-template.db: an empty, migrated SQLite metadata database for the tests)
#   .tools/iceberg-rest/  Apache Iceberg's REST catalog server (iceberg-open-api, one runnable jar, Java 17)
#   Dagster               in floe-stream's own venv (the extra floe-stream[dagster], `make install`): its pins fit
#
# Idempotent and cached: each venv carries a stamp (its requirements file, the Python version, and for Airflow
# floe-stream's pyproject.toml); a second run with nothing changed only compares stamps. A changed requirements
# file re-runs pip in the existing venv (incremental); a changed Python rebuilds the venv.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${ROOT}/.tools"
PY="${PYTHON:-python3}"
ICEBERG_REST_VERSION="${ICEBERG_REST_VERSION:-1.10.1}"
mkdir -p "${TOOLS}"

venv_tool() {  # venv_tool NAME REQUIREMENTS [extra pip args…]
    local name="$1" reqs="$2"; shift 2
    local dest="${TOOLS}/${name}" pyver stamp
    pyver="$("${PY}" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')"
    stamp="${pyver} $(cat "${reqs}" "$@" "${BASH_SOURCE[0]}" 2>/dev/null | sha256sum | cut -c1-16)"  # this script too
    if [[ -f "${dest}/INSTALLED" && "$(cat "${dest}/INSTALLED")" == "${stamp}" ]]; then
        echo "${name} already installed: ${dest} ($(cat "${dest}/VERSIONS"))"
        return 0
    fi
    if [[ ! -x "${dest}/bin/python" || "$("${dest}/bin/python" -c 'import sys; print("%d.%d.%d" % sys.version_info[:3])')" != "${pyver}" ]]; then
        rm -rf "${dest}"
        "${PY}" -m venv "${dest}"
        "${dest}/bin/pip" install -q --upgrade pip
    fi
    echo "install-emitters: ${name} (pip, ${reqs#"${ROOT}/"})…"
    local start=${SECONDS}
    if [[ "${name}" == airflow ]]; then
        PYTHONWARNINGS=ignore "${dest}/bin/pip" install -q -r "${reqs}" "${ROOT}"  # floe-stream with its dependencies, pins checked together
    else
        "${dest}/bin/pip" install -q -r "${reqs}"
    fi
    if [[ "${name}" == airflow ]]; then  # a migrated, empty metadata database the tests copy (saves a migration each)
        rm -rf "${dest}/home" "${dest}/metadata-template.db"
        AIRFLOW_HOME="${dest}/home" AIRFLOW__DATABASE__SQL_ALCHEMY_CONN="sqlite:///${dest}/metadata-template.db" \
            AIRFLOW__CORE__LOAD_EXAMPLES=false "${dest}/bin/airflow" db migrate >"${dest}/db-migrate.log" 2>&1 \
            || { echo "install-emitters: airflow db migrate failed, see ${dest}/db-migrate.log" >&2; exit 1; }
    fi
    "${dest}/bin/pip" list --format=freeze 2>/dev/null \
        | grep -iE '^(dbt-core|dbt-duckdb|openlineage-dbt|openlineage-python|apache-airflow|apache-airflow-providers-(openlineage|postgres))==' \
        | tr '\n' ' ' > "${dest}/VERSIONS"
    echo "${stamp}" > "${dest}/INSTALLED"
    echo "install-emitters: ${name} installed in $((SECONDS - start)) s: $(cat "${dest}/VERSIONS")"
}

venv_tool dbt "${ROOT}/scripts/tools/dbt.txt"
venv_tool airflow "${ROOT}/scripts/tools/airflow.txt" "${ROOT}/pyproject.toml"

# Apache Iceberg's REST catalog server: the plain jar of org.apache.iceberg:iceberg-open-api (self-contained:
# JDBC catalog, sqlite-jdbc, Jetty, Hadoop's local FileIO). 1.11.0+ publish no runnable jar.
ICE="${TOOLS}/iceberg-rest"
JAR="iceberg-open-api-${ICEBERG_REST_VERSION}.jar"
if [[ -f "${ICE}/${JAR}" && "$(cat "${ICE}/VERSION" 2>/dev/null)" == "${ICEBERG_REST_VERSION}" ]]; then
    echo "Iceberg REST catalog ${ICEBERG_REST_VERSION} already installed: ${ICE}/${JAR}"
else
    for tool in java mvn; do
        command -v "${tool}" >/dev/null || { echo "install-emitters: '${tool}' is required (OpenJDK 17 + Maven 3.8)" >&2; exit 1; }
    done
    echo "install-emitters: org.apache.iceberg:iceberg-open-api:${ICEBERG_REST_VERSION} from Maven Central…"
    start=${SECONDS}
    WORK="$(mktemp -d "${TOOLS}/iceberg-rest-install.XXXXXX")"
    trap 'rm -rf "${WORK}"' EXIT
    mvn -q -B -Dstyle.color=never dependency:copy -Dartifact="org.apache.iceberg:iceberg-open-api:${ICEBERG_REST_VERSION}" \
        -Dtransitive=false -DoutputDirectory="${WORK}"
    echo "${ICEBERG_REST_VERSION}" > "${WORK}/VERSION"
    rm -rf "${ICE}"
    mv "${WORK}" "${ICE}"
    trap - EXIT
    echo "install-emitters: Iceberg REST catalog ${ICEBERG_REST_VERSION} installed in $((SECONDS - start)) s: ${ICE}/${JAR}"
fi

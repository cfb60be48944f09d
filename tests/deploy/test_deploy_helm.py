"""The Helm chart helm/floe-stream, rendered by the real helm binary.

* ``helm lint --strict`` and Kubernetes 1.33 schema validation (kubernetes-validate --strict) of every rendered
  manifest over the values matrix in tests/deploy/values/; the CRD kinds (KEDA, Prometheus Operator) are checked
  against the JSON Schemas in tests/deploy/schemas/;
* what a user would notice: a Deployment per enabled deployable with the right command and consumer group,
  probes on /healthz and /readyz, secrets only as references, the migration hook, PDBs, autoscaling;
* values.schema.json and the chart's own checks refuse bad values at install time.
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import pytest
import yaml

from tests.deploy.support import (
    CHART,
    DEPLOYABLES,
    ENV_ALLOW_LIST,
    KUBE_VERSION,
    NAMESPACE,
    SCHEMAS_DIR,
    SECRETISH,
    VALUES_DIR,
    Helm,
    Manifests,
    containers,
    env_of,
    full,
    iter_env,
    pod_spec,
    settings_env_names,
    unknown_floe_env,
    values_files,
)

SCHEMA_REFUSED = "values don't meet the specifications of the schema"

CRD_SCHEMAS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda-scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda-triggerauthentication.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.json",
    ("monitoring.coreos.com/v1", "PrometheusRule"): "prometheusrule.json",
}

# What each values file of the matrix must deploy.
ENABLED = {
    "defaults.yaml": {"processor", "ticker", "sink-postgres", "sink-alerts"},
    "everything-on.yaml": set(DEPLOYABLES),
    "autoscaling.yaml": {"processor", "ticker", "sink-postgres", "sink-alerts", "sink-openlineage"},
    "external-secrets.yaml": {"processor", "ticker", "sink-postgres", "sink-alerts"},
}
# Deployables with a PodDisruptionBudget: those running at least 2 pods (replicas or autoscaler minimum).
PDBS = {
    "defaults.yaml": {"processor"},
    "everything-on.yaml": {
        "processor",
        "ticker",
        "sink-postgres",
        "sink-alerts",
        "sink-openlineage",
        "source-iceberg",
    },
    "autoscaling.yaml": {"processor", "sink-alerts"},
    "external-secrets.yaml": set(),
}
MATRIX = values_files()


@cache
def crd_schema(key: tuple[str, str]) -> dict[str, Any]:
    return json.loads((SCHEMAS_DIR / CRD_SCHEMAS[key]).read_text())


def crd_errors(doc: dict[str, Any]) -> list[str]:
    schema = crd_schema((doc["apiVersion"], doc["kind"]))
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def kubernetes_validate_cli() -> str:
    local = Path(sys.executable).parent / "kubernetes-validate"
    found = str(local) if local.exists() else shutil.which("kubernetes-validate")
    if not found:
        pytest.fail(
            "kubernetes-validate CLI missing: `.venv/bin/pip install kubernetes-validate`", pytrace=False
        )
    return found


def test_matrix_is_complete() -> None:
    assert set(MATRIX) == set(ENABLED) == set(PDBS), "register every values file of tests/deploy/values here"


# --- lint and schema validation ------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", MATRIX)
def test_helm_lint_strict(helm: Helm, values_file: str) -> None:
    proc = helm.run(
        "lint", "--strict", str(CHART), "--kube-version", KUBE_VERSION, "-f", str(VALUES_DIR / values_file)
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("values_file", MATRIX)
def test_every_rendered_manifest_is_valid(
    helm: Helm, kubernetes_validate: ModuleType, values_file: str, tmp_path: Path
) -> None:
    text = helm.render_text(values_file)
    manifests = Manifests.parse(text)
    assert manifests, "nothing rendered"

    # The CLI, as an operator would run it on the rendered chart.
    rendered = tmp_path / "rendered.yaml"
    rendered.write_text(text)
    proc = subprocess.run(
        [kubernetes_validate_cli(), "--strict", "-k", KUBE_VERSION, str(rendered)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    assert "ERROR" not in output, output
    # It only warns on kinds it has no schema for: those must be exactly the CRD kinds checked below.
    unknown = {
        (api, kind) for kind, api in re.findall(r"find schema for kind (\S+) with api version (\S+)", output)
    }
    assert unknown <= set(CRD_SCHEMAS), f"kinds nobody validated: {unknown - set(CRD_SCHEMAS)}"

    # Every document on its own: built-in kinds against Kubernetes' schemas, CRDs against ours.
    for doc in manifests:
        key = (doc["apiVersion"], doc["kind"])
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        if key in CRD_SCHEMAS:
            assert not crd_errors(doc), f"{where}: {crd_errors(doc)}"
        else:
            try:
                kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                pytest.fail(f"{where} is not a valid Kubernetes {KUBE_VERSION} object: {exc}")


def test_validators_catch_broken_manifests(rendered, kubernetes_validate: ModuleType) -> None:
    """Negative controls: the validators above do reject what the API server or KEDA would reject."""
    deployment = rendered("defaults.yaml").get("Deployment", full("processor"))
    kubernetes_validate.validate(deployment, KUBE_VERSION, strict=True)

    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "three"
    unknown_field = copy.deepcopy(deployment)
    pod_spec(unknown_field)["containers"][0]["livenessProbes"] = {}
    for broken in (wrong_type, unknown_field):
        with pytest.raises(kubernetes_validate.ValidationError):
            kubernetes_validate.validate(broken, KUBE_VERSION, strict=True)

    scaled = rendered("autoscaling.yaml").get("ScaledObject", full("processor"))
    assert not crd_errors(scaled)
    not_a_string = copy.deepcopy(scaled)
    # KEDA reads trigger metadata as map[string]string.
    not_a_string["spec"]["triggers"][0]["metadata"]["lagThreshold"] = 500
    typo = copy.deepcopy(scaled)
    typo["spec"]["triggers"][0]["metadata"]["lagTreshold"] = "500"
    assert crd_errors(not_a_string)
    assert crd_errors(typo)


# --- deployables ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", MATRIX)
def test_one_deployment_per_enabled_deployable(rendered, values_file: str) -> None:
    manifests = rendered(values_file)
    expected = ENABLED[values_file]
    assert manifests.names("Deployment") == {full(n) for n in expected}
    assert manifests.names("Service") == {full(n) for n in expected}

    images = set()
    for name in expected:
        d = DEPLOYABLES[name]
        deployment = manifests.get("Deployment", full(name))
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/component"] == name
        assert labels["app.kubernetes.io/name"] == "floe-stream"
        assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == name
        (container,) = pod_spec(deployment)["containers"]
        assert container["name"] == "floe"
        assert container.get("command") is None, "the image's ENTRYPOINT (floe) must stay"
        assert container["args"] == list(d.args)
        images.add(container["image"])
        env = env_of(container)
        assert env["FLOE_KAFKA__GROUP_PREFIX"]["value"] == "floe"
        annotations = deployment["metadata"].get("annotations", {})
        assert annotations.get("floe.dev/consumer-group") == d.group
    assert len(images) == 1, f"every deployable runs the same image: {images}"


def test_consumer_groups_follow_the_group_prefix(helm: Helm) -> None:
    manifests = helm.render(set_=["kafka.groupPrefix=acme", "processor.autoscaling.keda.enabled=true"])
    processor = manifests.get("Deployment", full("processor"))
    assert processor["metadata"]["annotations"]["floe.dev/consumer-group"] == "acme-processor"
    assert env_of(pod_spec(processor)["containers"][0])["FLOE_KAFKA__GROUP_PREFIX"]["value"] == "acme"
    trigger = manifests.get("ScaledObject", full("processor"))["spec"]["triggers"][0]
    assert trigger["metadata"]["consumerGroup"] == "acme-processor"


def test_image_tag_defaults_to_app_version_and_digest_pins(rendered) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    default = pod_spec(rendered("defaults.yaml").get("Deployment", full("processor")))["containers"][0]
    assert default["image"] == f"ghcr.io/floe-stream/floe-stream:{chart['appVersion']}"
    pinned = pod_spec(rendered("everything-on.yaml").get("Deployment", full("processor")))["containers"][0]
    assert pinned["image"] == (
        "registry.example.com/data/floe-stream:0.1.0-rc1@sha256:"
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
    )
    assert pinned["imagePullPolicy"] == "Always"


@pytest.mark.parametrize("values_file", MATRIX)
def test_probes_use_the_health_endpoints(rendered, values_file: str) -> None:
    for deployment in rendered(values_file).kind("Deployment"):
        (container,) = pod_spec(deployment)["containers"]
        port = int(env_of(container)["FLOE_HEALTH_PORT"]["value"])
        assert container["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    if values_file == "everything-on.yaml":
        assert port == 9000


@pytest.mark.parametrize("values_file", MATRIX)
def test_pods_are_non_root_with_a_read_only_root(rendered, values_file: str) -> None:
    manifests = rendered(values_file)
    for workload in [*manifests.kind("Deployment"), *manifests.kind("Job")]:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] == 10001
        assert spec["automountServiceAccountToken"] is False
        assert spec["enableServiceLinks"] is False
        tmp_volumes = {v["name"] for v in spec["volumes"] if "emptyDir" in v}
        for c in containers(workload):
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"]["drop"] == ["ALL"]
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert tmp, f"{c['name']}: a read-only root needs a writable /tmp"
            assert tmp[0]["name"] in tmp_volumes


def test_graceful_shutdown(rendered) -> None:
    for deployment in rendered("defaults.yaml").kind("Deployment"):
        assert pod_spec(deployment)["terminationGracePeriodSeconds"] == 30
        assert "lifecycle" not in pod_spec(deployment)["containers"][0]
    everything = rendered("everything-on.yaml")
    graces = {
        d["metadata"]["name"]: pod_spec(d)["terminationGracePeriodSeconds"]
        for d in everything.kind("Deployment")
    }
    assert graces.pop(full("processor")) == 60  # the deployable's own value wins
    assert set(graces.values()) == {45}
    for deployment in everything.kind("Deployment"):
        pre_stop = pod_spec(deployment)["containers"][0]["lifecycle"]["preStop"]
        assert pre_stop == {"exec": {"command": ["sleep", "5"]}}


def test_rendered_settings_load_into_settings(
    rendered, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The plain FLOE_* values the chart renders, and the floe.yaml it mounts, are accepted by
    floe_stream.settings (types, ranges, structure)."""
    from floe_stream.settings import load_settings
    from floe_stream.sinks.alerts.config import resolve_config

    monkeypatch.chdir(tmp_path)  # no stray .env
    manifests = rendered("everything-on.yaml")
    sink = manifests.get("Deployment", full("sink-postgres"))
    (container,) = pod_spec(sink)["containers"]
    for name, entry in env_of(container).items():
        if name.startswith("FLOE_") and "value" in entry:
            monkeypatch.setenv(name, entry["value"])
    floe_yaml = tmp_path / "floe.yaml"
    floe_yaml.write_text(manifests.get("ConfigMap", full("config"))["data"]["floe.yaml"])
    monkeypatch.setenv("FLOE_CONFIG_FILE", str(floe_yaml))
    settings = load_settings()
    assert settings.openlineage.transport == "http"  # from floe.yaml
    assert settings.sources.iceberg.properties["type"] == "rest"
    assert [r.targets() for r in resolve_config(settings.alerts, settings.config_file).routes] == [
        ("slack",),
        ("alertmanager",),
    ]
    assert settings.kafka.bootstrap_servers == "kafka-0.kafka:9092,kafka-1.kafka:9092,kafka-2.kafka:9092"
    assert settings.kafka.partitions == 12
    assert settings.kafka.replication_factor == 3
    assert settings.health_port == 9000
    assert settings.tick_interval_s == 5
    assert settings.log_level == "WARNING"  # values `env` overrides the chart's own FLOE_LOG_LEVEL
    assert str(settings.contracts_dir) == "/etc/floe/contracts"


# --- secrets -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", MATRIX)
def test_secrets_are_only_referenced(helm: Helm, rendered, values_file: str) -> None:
    manifests = rendered(values_file)
    assert not manifests.kind("Secret"), "the chart must never carry a secret"
    text = helm.render_text(values_file)
    assert not re.search(r"://[^/\s:@]+:[^/\s@]+@", text), "credentials embedded in a URL"
    for workload, entry in iter_env(manifests):
        if SECRETISH.search(entry["name"]):
            assert "value" not in entry, f"{workload}: {entry['name']} has a plain value"
            ref = entry["valueFrom"]["secretKeyRef"]
            assert ref["name"], f"{workload}: {entry}"
            assert ref["key"], f"{workload}: {entry}"

    values = yaml.safe_load((VALUES_DIR / values_file).read_text()) or {}
    declared = [(None, e) for e in values.get("secretEnv", [])]
    for name, d in DEPLOYABLES.items():
        declared += [(name, e) for e in values.get(d.values_key, {}).get("secretEnv", [])]
    for scope, item in declared:
        targets = [full(scope)] if scope else [full(n) for n in ENABLED[values_file]]
        for target in targets:
            env = env_of(pod_spec(manifests.get("Deployment", target))["containers"][0])
            expected = {"name": item["secretName"], "key": item["key"]}
            if "optional" in item:
                expected["optional"] = item["optional"]
            assert env[item["name"]] == {"name": item["name"], "valueFrom": {"secretKeyRef": expected}}


@pytest.mark.parametrize("values_file", MATRIX)
def test_database_dsn_only_where_needed(rendered, values_file: str) -> None:
    manifests = rendered(values_file)
    dsn_secret = (
        (yaml.safe_load((VALUES_DIR / values_file).read_text()) or {}).get("database", {}).get("dsn", {})
    )
    expected_ref = {
        "name": dsn_secret.get("existingSecret", "floe-database"),
        "key": dsn_secret.get("key", "dsn"),
    }
    for name in ENABLED[values_file]:
        env = env_of(pod_spec(manifests.get("Deployment", full(name)))["containers"][0])
        if DEPLOYABLES[name].needs_database:
            assert env["FLOE_DATABASE__DSN"]["valueFrom"]["secretKeyRef"] == expected_ref
        else:
            assert "FLOE_DATABASE__DSN" not in env, f"{name} gets database credentials it does not need"
    (job,) = manifests.kind("Job")
    migrate = next(c for c in containers(job) if c["args"] == ["db", "migrate"])
    assert env_of(migrate)["FLOE_DATABASE__DSN"]["valueFrom"]["secretKeyRef"] == expected_ref


def test_sasl_ssl_with_mutual_tls_from_existing_secrets(rendered) -> None:
    manifests = rendered("external-secrets.yaml")
    workloads = [*manifests.kind("Deployment"), *manifests.kind("Job")]
    assert len(workloads) == 5
    for workload in workloads:
        spec = pod_spec(workload)
        volume = next(v for v in spec["volumes"] if v["name"] == "kafka-tls")
        assert volume["secret"]["secretName"] == "floe-kafka-tls"
        for c in containers(workload):
            env = env_of(c)
            assert env["FLOE_KAFKA__SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
            assert env["FLOE_KAFKA__SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
            assert env["FLOE_KAFKA__SASL_USERNAME"]["value"] == "floe"
            assert env["FLOE_KAFKA__SASL_PASSWORD"] == {
                "name": "FLOE_KAFKA__SASL_PASSWORD",
                "valueFrom": {"secretKeyRef": {"name": "floe-kafka-sasl", "key": "password"}},
            }
            assert env["FLOE_KAFKA__SSL_CAFILE"]["value"] == "/etc/floe/kafka-tls/ca.crt"
            assert env["FLOE_KAFKA__SSL_CERTFILE"]["value"] == "/etc/floe/kafka-tls/tls.crt"
            assert env["FLOE_KAFKA__SSL_KEYFILE"]["value"] == "/etc/floe/kafka-tls/tls.key"
            mount = next(m for m in c["volumeMounts"] if m["name"] == "kafka-tls")
            assert mount == {"name": "kafka-tls", "mountPath": "/etc/floe/kafka-tls", "readOnly": True}


def test_plaintext_kafka_has_no_credentials(rendered) -> None:
    for _, entry in iter_env(rendered("defaults.yaml")):
        assert not entry["name"].startswith(("FLOE_KAFKA__SASL", "FLOE_KAFKA__SSL")), entry


@pytest.mark.parametrize(
    "kw",
    [
        {"set_": ["kafka.sasl.password=hunter2"]},
        {"set_": ["database.dsn=postgresql://floe:hunter2@db:5432/floe"]},
        {"set_json": ['extraEnv=[{"name":"FLOE_KAFKA__SASL_PASSWORD","value":"hunter2"}]']},
        {"set_json": ['sinkAlerts.extraEnv=[{"name":"SMTP_PASSWORD","value":"hunter2"}]']},
        {"set_": ["sinkAlerts.env.SLACK_WEBHOOK_URL=https://hooks.example.com/T0/B0/hunter2"]},
        {"set_": ["env.PAGERDUTY_ROUTING_KEY=hunter2"]},
        {"set_json": ['sinkOpenlineage.secretEnv=[{"name":"OPENLINEAGE_API_KEY","value":"hunter2"}]']},
    ],
    ids=[
        "sasl-password",
        "dsn",
        "extraEnv",
        "deployable-extraEnv",
        "env-webhook",
        "env-routing-key",
        "secretEnv",
    ],
)
def test_plain_secret_values_are_refused(helm: Helm, kw: dict[str, list[str]]) -> None:
    assert SCHEMA_REFUSED in helm.render_error(**kw)


# --- hook job, config ----------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", MATRIX)
def test_migration_hook_job(rendered, values_file: str) -> None:
    manifests = rendered(values_file)
    job = manifests.get("Job", full("migrate"))
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook"].split(",")) == {"pre-install", "pre-upgrade"}
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    # In order: the schema first, then the topics.
    assert [c["args"] for c in spec["initContainers"]] == [["db", "migrate"]]
    assert [c["args"] for c in spec["containers"]] == [["topics", "create"]]
    # At pre-install nothing of the release exists yet: the ServiceAccount and the floe.yaml ConfigMap the Job
    # uses are hooks too, created before it, with the same floe.yaml as the Deployments'.
    account = manifests.get("ServiceAccount", spec["serviceAccountName"])
    (config_volume,) = [v for v in spec["volumes"] if "configMap" in v]
    config = manifests.get("ConfigMap", config_volume["configMap"]["name"])
    for hook in (account, config):
        hook_annotations = hook["metadata"]["annotations"]
        assert hook_annotations["helm.sh/hook"] == annotations["helm.sh/hook"]
        assert int(hook_annotations["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    assert config["data"] == manifests.get("ConfigMap", full("config"))["data"]
    for container in containers(job):
        names = set(env_of(container))
        assert "FLOE_CONTRACTS_DIR" not in names, "the hook mounts no contracts"
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert Path(env_of(container)["FLOE_CONFIG_FILE"]["value"]).parent == Path(mounts["config"])
        assert not {n for n in names if n.startswith("EXAMPLE_")}, (
            "channel secrets (secretEnv) stay out of the hook"
        )
    kafka_env = env_of(spec["containers"][0])
    assert kafka_env["FLOE_KAFKA__PARTITIONS"]["value"] == str(
        (yaml.safe_load((VALUES_DIR / values_file).read_text()) or {}).get("kafka", {}).get("partitions", 6)
    )


def test_migration_steps_can_be_switched_off(helm: Helm) -> None:
    topics_only = helm.render(set_=["migrations.dbMigrate=false"])
    spec = pod_spec(topics_only.get("Job", full("migrate")))
    assert "initContainers" not in spec
    assert [c["args"] for c in spec["containers"]] == [["topics", "create"]]
    assert "FLOE_DATABASE__DSN" not in env_of(spec["containers"][0])

    none = helm.render(set_=["migrations.enabled=false"])
    assert not none.kind("Job")
    assert none.names("ServiceAccount") == {"floe-stream"}


def test_contracts_from_files_are_mounted(helm: Helm, repo: Path) -> None:
    examples = sorted((repo / "examples" / "contracts").glob("*.yaml"))
    assert examples, "examples/contracts has no contract"
    args = [f"contracts.files.{p.name.replace('.', chr(92) + '.')}={p}" for p in examples]
    manifests = helm.render(set_file=args)
    data = manifests.get("ConfigMap", "floe-stream-contracts")["data"]
    assert data == {p.name: p.read_text() for p in examples}
    for deployment in manifests.kind("Deployment"):
        spec = pod_spec(deployment)
        (container,) = spec["containers"]
        mounts = {m["name"]: m for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert mounts["contracts"]["mountPath"] == env_of(container)["FLOE_CONTRACTS_DIR"]["value"]
        assert volumes["contracts"]["configMap"]["name"] == "floe-stream-contracts"
        config_file = Path(env_of(container)["FLOE_CONFIG_FILE"]["value"])
        assert Path(mounts["config"]["mountPath"]) == config_file.parent
        assert volumes["config"]["configMap"]["items"] == [
            {"key": config_file.name, "path": config_file.name}
        ]


def test_contracts_and_config_from_values(rendered) -> None:
    manifests = rendered("everything-on.yaml")
    values = yaml.safe_load((VALUES_DIR / "everything-on.yaml").read_text())
    contracts = manifests.get("ConfigMap", "floe-stream-contracts")["data"]
    assert contracts["orders.yaml"] == values["contracts"]["files"]["orders.yaml"]
    assert yaml.safe_load(contracts["payments.yaml"]) == values["contracts"]["files"]["payments.yaml"]
    config = manifests.get("ConfigMap", "floe-stream-config")["data"]
    assert yaml.safe_load(config["floe.yaml"]) == values["config"]["floe"]


def test_existing_configmaps_are_used_as_given(helm: Helm) -> None:
    manifests = helm.render(
        set_=["contracts.existingConfigMap=team-contracts", "config.existingConfigMap=team-config"]
    )
    assert not manifests.kind("ConfigMap")
    volumes = {v["name"]: v for v in pod_spec(manifests.get("Deployment", full("processor")))["volumes"]}
    assert volumes["contracts"]["configMap"]["name"] == "team-contracts"
    assert volumes["config"]["configMap"]["name"] == "team-config"
    job_volumes = {v["name"]: v for v in pod_spec(manifests.get("Job", full("migrate")))["volumes"]}
    assert job_volumes["config"]["configMap"]["name"] == "team-config"


def test_config_changes_roll_the_pods(helm: Helm) -> None:
    def checksums(**kw: list[str]) -> set[str]:
        manifests = helm.render(**kw)
        return {
            d["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
            for d in manifests.kind("Deployment")
        }

    base = checksums(set_=["contracts.files.a\\.yaml=x: 1"])
    assert len(base) == 1
    assert checksums(set_=["contracts.files.a\\.yaml=x: 1"]) == base
    assert checksums(set_=["contracts.files.a\\.yaml=x: 2"]) != base
    assert checksums(set_=["contracts.files.a\\.yaml=x: 1", "config.floe.clock_skew_s=5"]) != base


# --- availability and scheduling -----------------------------------------------------------------------


def _pods_of(manifests: Manifests, selector: dict[str, str]) -> list[str]:
    return [
        d["metadata"]["name"]
        for d in manifests.kind("Deployment")
        if selector.items() <= d["spec"]["template"]["metadata"]["labels"].items()
    ]


@pytest.mark.parametrize("values_file", MATRIX)
def test_pod_disruption_budgets(rendered, values_file: str) -> None:
    manifests = rendered(values_file)
    assert manifests.names("PodDisruptionBudget") == {full(n) for n in PDBS[values_file]}
    for pdb in manifests.kind("PodDisruptionBudget"):
        assert _pods_of(manifests, pdb["spec"]["selector"]["matchLabels"]) == [pdb["metadata"]["name"]]
    if values_file == "everything-on.yaml":
        assert manifests.get("PodDisruptionBudget", full("processor"))["spec"] == {
            "maxUnavailable": 2,
            "selector": manifests.get("Deployment", full("processor"))["spec"]["selector"],
        }
        assert manifests.get("PodDisruptionBudget", full("ticker"))["spec"]["minAvailable"] == 1


def test_scheduling_everything_on(rendered) -> None:
    manifests = rendered("everything-on.yaml")
    processor = pod_spec(manifests.get("Deployment", full("processor")))
    (rule,) = processor["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    assert rule["topologyKey"] == "kubernetes.io/hostname"
    assert _pods_of(manifests, rule["labelSelector"]["matchLabels"]) == [full("processor")]
    assert processor["nodeSelector"] == {"kubernetes.io/os": "linux", "node.example.com/pool": "streaming"}
    assert processor["priorityClassName"] == "floe-high"

    ticker = pod_spec(manifests.get("Deployment", full("ticker")))
    assert "preferredDuringSchedulingIgnoredDuringExecution" in ticker["affinity"]["podAntiAffinity"]
    assert ticker["nodeSelector"] == {"kubernetes.io/os": "linux"}

    # Iceberg watchers share the tables in a consumer group (a new pod takes its share once the old one's
    # poll in flight is published): replicas, rolling updates and spreading like every other deployable
    iceberg = manifests.get("Deployment", full("source-iceberg"))
    assert iceberg["spec"]["replicas"] == 2
    assert iceberg["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    (rule,) = pod_spec(iceberg)["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert _pods_of(manifests, rule["labelSelector"]["matchLabels"]) == [full("source-iceberg")]

    for deployment in manifests.kind("Deployment"):
        assert pod_spec(deployment)["tolerations"][0]["key"] == "dedicated"


def test_default_rollout_and_spread(rendered, helm: Helm) -> None:
    processor = rendered("defaults.yaml").get("Deployment", full("processor"))
    assert processor["spec"]["replicas"] == 2
    assert processor["spec"]["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    assert (
        "preferredDuringSchedulingIgnoredDuringExecution"
        in pod_spec(processor)["affinity"]["podAntiAffinity"]
    )
    off = helm.render(set_=["podAntiAffinity.type=none"])
    assert all("affinity" not in pod_spec(d) for d in off.kind("Deployment"))


# --- metrics -------------------------------------------------------------------------------------------


def test_metrics_services_and_service_monitor(rendered) -> None:
    manifests = rendered("everything-on.yaml")
    services = manifests.kind("Service")
    for service in services:
        deployment = manifests.get("Deployment", service["metadata"]["name"])
        assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
        assert service["spec"]["ports"] == [
            {"name": "http", "port": 8080, "targetPort": "http", "protocol": "TCP"}
        ]
    (monitor,) = manifests.kind("ServiceMonitor")
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert all(selector.items() <= s["metadata"]["labels"].items() for s in services)
    assert monitor["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    (endpoint,) = monitor["spec"]["endpoints"]
    assert (endpoint["port"], endpoint["path"], endpoint["interval"]) == ("http", "/metrics", "15s")
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": [NAMESPACE]}
    assert not rendered("defaults.yaml").kind("ServiceMonitor")


# --- autoscaling ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("values_file", ["defaults.yaml", "everything-on.yaml"])
def test_autoscaling_is_off_by_default(rendered, values_file: str) -> None:
    manifests = rendered(values_file)
    assert not manifests.kind("ScaledObject")
    assert not manifests.kind("HorizontalPodAutoscaler")
    assert all(isinstance(d["spec"]["replicas"], int) for d in manifests.kind("Deployment"))


def test_keda_scales_consumer_groups_on_lag(rendered) -> None:
    manifests = rendered("autoscaling.yaml")
    assert manifests.names("ScaledObject") == {
        full("processor"),
        full("sink-postgres"),
        full("sink-openlineage"),
    }
    expected_topics = {
        "processor": ["floe.materializations", "floe.catalog-commits"],
        "sink-postgres": ["floe.check-results", "floe.violations"],
        "sink-openlineage": ["floe.violations"],
    }
    for name, topics in expected_topics.items():
        scaled = manifests.get("ScaledObject", full(name))
        deployment = manifests.get("Deployment", scaled["spec"]["scaleTargetRef"]["name"])
        assert scaled["spec"]["scaleTargetRef"]["kind"] == "Deployment"
        assert "replicas" not in deployment["spec"], "the autoscaler owns replicas"
        env = env_of(pod_spec(deployment)["containers"][0])
        triggers = scaled["spec"]["triggers"]
        assert [t["metadata"]["topic"] for t in triggers] == topics
        for trigger in triggers:
            assert trigger["type"] == "kafka"
            meta = trigger["metadata"]
            assert meta["consumerGroup"] == DEPLOYABLES[name].group
            assert meta["bootstrapServers"] == env["FLOE_KAFKA__BOOTSTRAP_SERVERS"]["value"]
            assert meta["allowIdleConsumers"] == "false"
            assert "authenticationRef" not in trigger
    processor = manifests.get("ScaledObject", full("processor"))["spec"]
    assert (processor["minReplicaCount"], processor["maxReplicaCount"]) == (2, 12)
    meta = processor["triggers"][0]["metadata"]
    assert (meta["lagThreshold"], meta["activationLagThreshold"], meta["offsetResetPolicy"]) == (
        "500",
        "10",
        "earliest",
    )


def test_cpu_hpa(rendered) -> None:
    manifests = rendered("autoscaling.yaml")
    (hpa,) = manifests.kind("HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": full("sink-alerts"),
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 4)
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"] == {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}
    assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 300
    assert "replicas" not in manifests.get("Deployment", full("sink-alerts"))["spec"]


def test_keda_authenticates_with_the_pods_secrets(rendered) -> None:
    manifests = rendered("external-secrets.yaml")
    triggers = manifests.get("ScaledObject", full("processor"))["spec"]["triggers"]
    assert len(triggers) == 2  # materializations and catalog-commits
    for trigger in triggers:
        assert trigger["metadata"]["sasl"] == "scram_sha512"
        assert trigger["metadata"]["tls"] == "enable"
    (auth_name,) = {t["authenticationRef"]["name"] for t in triggers}
    auth = manifests.get("TriggerAuthentication", auth_name)["spec"]
    refs = {r["parameter"]: (r["name"], r["key"]) for r in auth["secretTargetRef"]}
    assert refs == {
        "password": ("floe-kafka-sasl", "password"),
        "ca": ("floe-kafka-tls", "ca.crt"),
        "cert": ("floe-kafka-tls", "tls.crt"),
        "key": ("floe-kafka-tls", "tls.key"),
    }
    (username,) = auth["env"]
    (container,) = pod_spec(manifests.get("Deployment", full("processor")))["containers"]
    assert username["parameter"] == "username"
    assert username["containerName"] == container["name"]
    assert env_of(container)[username["name"]]["value"] == "floe"


# --- refused values ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kw", "where"),
    [
        ({"set_": ["processor.replicas=three"]}, "/processor/replicas"),
        ({"set_string": ["ticker.replicas=2"]}, "/ticker/replicas"),
        ({"set_": ["processor.replicas=-1"]}, "/processor/replicas"),
        ({"set_": ["processor.bogus=1"]}, "bogus"),
        ({"set_": ["replicaCount=3"]}, "replicaCount"),
        ({"set_": ["kafka.sasl.passwrd.key=x"]}, "passwrd"),
        ({"set_": ["processor.resources.requests.cpu=-1"]}, "/processor/resources/requests/cpu"),
        (
            {"set_string": ["sinkAlerts.resources.limits.memory=-512Mi"]},
            "/sinkAlerts/resources/limits/memory",
        ),
        ({"set_": ["kafka.partitions=0"]}, "/kafka/partitions"),
        ({"set_": ["settings.healthPort=70000"]}, "/settings/healthPort"),
        ({"set_": ["settings.logLevel=TRACE"]}, "/settings/logLevel"),
        ({"set_": ["kafka.securityProtocol=TLS"]}, "/kafka/securityProtocol"),
        (
            {"set_json": ['processor.autoscaling.keda.topics=["orders"]']},
            "/processor/autoscaling/keda/topics",
        ),
        ({"set_": ["processor.autoscaling.keda.lagThreshold=0"]}, "lagThreshold"),
        ({"set_": ["sourceIceberg.replicas=-1"]}, "/sourceIceberg/replicas"),
        ({"set_": ["ticker.autoscaling.keda.enabled=true"]}, "autoscaling"),
        ({"set_": ["podAntiAffinity.type=maybe"]}, "/podAntiAffinity/type"),
        ({"set_": ["terminationGracePeriodSeconds=-5"]}, "/terminationGracePeriodSeconds"),
        ({"set_": ["image.pullPolicy=Sometimes"]}, "/image/pullPolicy"),
        ({"set_": ["contracts.files.orders\\.json={}"]}, "orders.json"),
        ({"set_": ["serviceMonitor.interval=often"]}, "/serviceMonitor/interval"),
    ],
)
def test_schema_refuses_bad_values(helm: Helm, kw: dict[str, list[str]], where: str) -> None:
    error = helm.render_error(**kw)
    assert SCHEMA_REFUSED in error
    assert where in error, error


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"set_": ["processor.replicas=7"]}, "processor.replicas=7 exceeds kafka.partitions=6"),
        (
            {
                "set_": [
                    "sourceIceberg.enabled=true",
                    "sourceIceberg.replicas=7",
                    "config.floe.sources.iceberg.properties.type=rest",
                ]
            },
            "sourceIceberg.replicas=7 exceeds kafka.partitions=6: its replicas share the tables by partition",
        ),
        (
            {
                "set_": [
                    "processor.autoscaling.keda.enabled=true",
                    "processor.autoscaling.keda.maxReplicas=12",
                ]
            },
            "processor.autoscaling.keda.maxReplicas=12 exceeds kafka.partitions=6",
        ),
        (
            {
                "set_": [
                    "sinkPostgres.autoscaling.hpa.enabled=true",
                    "sinkPostgres.autoscaling.hpa.maxReplicas=8",
                ]
            },
            "sinkPostgres.autoscaling.hpa.maxReplicas=8 exceeds kafka.partitions=6",
        ),
        (
            {"set_": ["processor.autoscaling.keda.enabled=true", "processor.autoscaling.hpa.enabled=true"]},
            "enable at most one of autoscaling.keda and autoscaling.hpa",
        ),
        (
            {
                "set_": [
                    "processor.autoscaling.keda.enabled=true",
                    "processor.autoscaling.keda.minReplicas=5",
                    "processor.autoscaling.keda.maxReplicas=2",
                ]
            },
            "minReplicas=5 is above maxReplicas=2",
        ),
        (
            {"set_": ["sinkAlerts.autoscaling.hpa.enabled=true", "sinkAlerts.resources.requests.cpu=null"]},
            "needs sinkAlerts.resources.requests.cpu",
        ),
        ({"set_": ["kafka.securityProtocol=SASL_SSL"]}, "needs kafka.sasl.username"),
        (
            {"set_": ["kafka.securityProtocol=SASL_PLAINTEXT", "kafka.sasl.username=floe"]},
            "needs kafka.sasl.password.existingSecret",
        ),
        (
            {
                "set_": [
                    "kafka.securityProtocol=SSL",
                    "kafka.tls.existingSecret=tls",
                    "kafka.tls.certKey=tls.crt",
                ]
            },
            "kafka.tls.certKey and kafka.tls.keyKey go together",
        ),
        ({"set_": ["preStop.enabled=true", "preStop.sleepSeconds=30"]}, "leaves no time to drain"),
        ({"set_": ["database.dsn.existingSecret="]}, "database.dsn.existingSecret is required"),
        (
            {"set_": ["serviceMonitor.enabled=true", "service.enabled=false"]},
            "serviceMonitor.enabled needs service",
        ),
        (
            {"set_": ["contracts.existingConfigMap=c", "contracts.files.a\\.yaml=x: 1"]},
            "either contracts.existingConfigMap or contracts.files",
        ),
    ],
)
def test_chart_refuses_inconsistent_values(helm: Helm, kw: dict[str, list[str]], message: str) -> None:
    assert message in helm.render_error(**kw)


def test_scaling_limits_are_inclusive(helm: Helm) -> None:
    at_limit = helm.render(set_=["processor.replicas=6"])
    assert at_limit.get("Deployment", full("processor"))["spec"]["replicas"] == 6
    more_partitions = helm.render(set_=["kafka.partitions=24", "processor.replicas=24"])
    assert more_partitions.get("Deployment", full("processor"))["spec"]["replicas"] == 24


def test_database_free_install(helm: Helm) -> None:
    """Without the database deployables and migration, no DSN Secret is needed at all."""
    manifests = helm.render(
        set_=[
            "database.dsn.existingSecret=",
            "sinkPostgres.enabled=false",
            "sinkAlerts.enabled=false",
            "migrations.dbMigrate=false",
        ]
    )
    assert manifests.names("Deployment") == {full("processor"), full("ticker")}
    assert all(e["name"] != "FLOE_DATABASE__DSN" for _, e in iter_env(manifests))


# --- settings names, NOTES -----------------------------------------------------------------------------


def test_env_allow_list_is_still_needed() -> None:
    stale = ENV_ALLOW_LIST & settings_env_names()
    assert not stale, f"now fields of Settings, remove them from ENV_ALLOW_LIST: {stale}"


@pytest.mark.parametrize("values_file", MATRIX)
def test_floe_env_names_are_settings(rendered, values_file: str) -> None:
    used = {e["name"] for _, e in iter_env(rendered(values_file))}
    assert unknown_floe_env(used) == set(), "FLOE_* names the process would ignore (typo, or no such setting)"


def test_install_notes_list_what_to_create(helm: Helm) -> None:
    proc = helm.run(
        "install",
        "floe-stream",
        str(CHART),
        "--namespace",
        NAMESPACE,
        "--dry-run=client",
        "-f",
        str(VALUES_DIR / "external-secrets.yaml"),
    )
    assert proc.returncode == 0, proc.stderr
    notes = proc.stdout.split("NOTES:", 1)[1]
    assert (
        "floe-stream-processor: floe run processor, group floe-processor, KEDA 1-6 replicas on lag" in notes
    )
    for secret in (
        "floe-postgres (key uri)",
        "floe-kafka-sasl (key password)",
        "floe-kafka-tls",
        "floe-alert-channels",
    ):
        assert secret in notes


def test_chart_metadata(repo: Path) -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["type"] == "application"
    project = (repo / "pyproject.toml").read_text()
    version = re.search(r'^version = "([^"]+)"', project, re.M)
    assert version
    assert chart["appVersion"] == version.group(1), "appVersion follows the package version"


# --- floe.yaml (config.floe) and what an enabled deployable needs ------------------------------------------


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        (
            {"set_": ["sourceIceberg.enabled=true"]},
            "at '/sourceIceberg/enabled': value must be 'sourceIceberg.enabled needs the catalog to watch",
        ),
        (
            {"set_": ["sourceIceberg.enabled=true", "config.floe.sources.iceberg.poll_interval_s=5"]},
            "sourceIceberg.enabled needs the catalog to watch: set config.floe.sources.iceberg.properties",
        ),
        ({"set_": ["config.floe.alerting.enabled=true"]}, "additional properties 'alerting' not allowed"),
        (
            {"set_": ["config.floe.database.dsn=postgresql://u:hunter2@db/floe"]},
            "a secret is not read from floe.yaml: use database.dsn.existingSecret",
        ),
        (
            {"set_": ["config.floe.openlineage.api_key=hunter2"]},
            "set FLOE_OPENLINEAGE__API_KEY with secretEnv",
        ),
        (
            {"set_json": ['config.floe.alerts.channels=[{"name":"h","type":"webhook","secret":"hunter2"}]']},
            "name an env var with secret_env",
        ),
    ],
    ids=[
        "iceberg-no-catalog",
        "iceberg-no-properties",
        "unknown-key",
        "dsn-inline",
        "api-key-inline",
        "channel-secret-inline",
    ],
)
def test_schema_refuses_what_would_not_start(helm: Helm, kw: dict[str, list[str]], message: str) -> None:
    error = helm.render_error(**kw)
    assert SCHEMA_REFUSED in error and message in error, error


def test_iceberg_source_with_a_catalog_renders(helm: Helm) -> None:
    manifests = helm.render(
        set_=[
            "sourceIceberg.enabled=true",
            "config.floe.sources.iceberg.properties.type=rest",
            "config.floe.sources.iceberg.properties.uri=http://rest:8181",
        ]
    )
    assert full("source-iceberg") in manifests.names("Deployment")
    # ... or with the catalog in an existing ConfigMap (its content is the operator's)
    manifests = helm.render(set_=["sourceIceberg.enabled=true", "config.existingConfigMap=team-config"])
    assert full("source-iceberg") in manifests.names("Deployment")


def test_config_schema_knows_every_settings_section(repo: Path) -> None:
    """values.schema.json's floe.yaml keys are exactly the settings' top-level fields (no drift)."""
    import json

    from floe_stream.settings import Settings

    schema = json.loads((repo / "helm" / "floe-stream" / "values.schema.json").read_text())
    keys = set(schema["definitions"]["floeConfig"]["properties"])
    assert keys == set(Settings.model_fields) - {"config_file"}

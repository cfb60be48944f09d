"""docker-compose.yaml: the development stack, checked structurally (and by `docker compose config` when the
compose plugin is installed), plus its Prometheus and Alertmanager files with promtool and amtool."""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.deploy.support import REPO, unknown_floe_env

COMPOSE_FILE = REPO / "docker-compose.yaml"
COMPOSE_DIR = REPO / "deploy" / "compose"
FLOE_SERVICES = {
    "processor": ["run", "processor"],
    "ticker": ["run", "ticker"],
    "sink-postgres": ["run", "sink", "postgres"],
    "sink-alerts": ["run", "sink", "alerts"],
    "sink-openlineage": ["run", "sink", "openlineage"],
}
INFRASTRUCTURE = {"kafka", "postgres", "alertmanager", "prometheus", "marquez", "marquez-db", "mailpit"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE_FILE.read_text())


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):
        return dict.fromkeys(deps, "service_started")
    return {name: (spec or {}).get("condition", "service_started") for name, spec in deps.items()}


def service_settings(service: dict[str, Any], monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Any:
    """The settings the service loads: its FLOE_* environment, FLOE_CONFIG_FILE read from the bind-mounted
    repository file."""
    from floe_stream.settings import load_settings

    monkeypatch.chdir(tmp_path)
    env = environment(service)
    for key, value in env.items():
        if key.startswith("FLOE_"):
            monkeypatch.setenv(key, value)
    monkeypatch.setenv("FLOE_CONFIG_FILE", str(REPO / bind_mounts(service)[env["FLOE_CONFIG_FILE"]]))
    return load_settings()


def bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """target -> host source of the service's bind mounts (short syntax, host paths start with . or /)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = source
    return mounts


def published_ports(service: dict[str, Any]) -> list[tuple[int, int]]:
    out = []
    for port in service.get("ports", []):
        host, container = str(port).rsplit(":", 1)
        out.append((int(host.split(":")[-1]), int(container.split("/")[0])))
    return out


def test_compose_file_is_valid(services: dict[str, dict[str, Any]], compose: dict[str, Any]) -> None:
    assert set(services) >= INFRASTRUCTURE | set(FLOE_SERVICES) | {"floe-init"}
    for name, service in services.items():
        assert "image" in service or "build" in service, name
        for dependency, condition in depends_on(service).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            assert condition in ("service_started", "service_healthy", "service_completed_successfully")
            if condition == "service_healthy":
                assert "healthcheck" in services[dependency], f"{dependency} has no healthcheck to wait for"
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if not source.startswith((".", "/")):
                assert source in compose.get("volumes", {}), f"{name}: undeclared named volume {source}"
    host_ports = [host for s in services.values() for host, _ in published_ports(s)]
    assert len(host_ports) == len(set(host_ports)), f"a host port is published twice: {sorted(host_ports)}"
    assert not any(published_ports(services[n]) for n in FLOE_SERVICES), "published ports would break --scale"

    docker = shutil.which("docker")
    has_compose = bool(docker) and (
        subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=30, check=False
        ).returncode
        == 0
    )
    if has_compose:
        proc = subprocess.run(
            [docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"],
            capture_output=True,
            text=True,
            cwd=REPO,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr


def test_kafka_runs_in_kraft_mode(services: dict[str, dict[str, Any]]) -> None:
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    env = environment(kafka)
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
    assert not any("zookeeper" in name for name in services)
    assert not any("ZOOKEEPER" in key for key in env)
    cluster_id = env["CLUSTER_ID"]
    assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16, (
        "CLUSTER_ID must be a Kafka Uuid (16 bytes)"
    )
    # floe reaches the broker on an advertised listener.
    advertised = {urlsplit(u).netloc for u in env["KAFKA_ADVERTISED_LISTENERS"].split(",")}
    for name in [*FLOE_SERVICES, "floe-init"]:
        assert environment(services[name])["FLOE_KAFKA__BOOTSTRAP_SERVERS"] in advertised
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false", "topics come from `floe topics create`"


def test_floe_services_run_the_repository_image(services: dict[str, dict[str, Any]]) -> None:
    images = set()
    for name, args in FLOE_SERVICES.items():
        service = services[name]
        build = service["build"]
        assert (REPO / build["context"]).resolve() == REPO
        assert (REPO / build["context"] / build.get("dockerfile", "Dockerfile")).is_file()
        assert service["command"] == args
        assert "entrypoint" not in service, "the image's ENTRYPOINT is floe"
        images.add(service["image"])
        assert depends_on(service)["floe-init"] == "service_completed_successfully"
        assert service["read_only"] is True
        assert "/tmp" in service["tmpfs"]
    assert len(images) == 1
    assert services["floe-init"]["image"] in images


def test_init_migrates_then_creates_topics(services: dict[str, dict[str, Any]]) -> None:
    init = services["floe-init"]
    assert init["entrypoint"] == ["/bin/sh", "-c"]
    assert init["command"] == ["floe db migrate && floe topics create"]
    assert init["restart"] == "no"
    assert depends_on(init) == {"kafka": "service_healthy", "postgres": "service_healthy"}


def test_floe_env_names_are_settings(services: dict[str, dict[str, Any]]) -> None:
    for name, service in services.items():
        unknown = unknown_floe_env(environment(service))
        assert not unknown, f"{name}: FLOE_* names the process would ignore: {unknown}"


def test_floe_env_loads_into_settings(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:

    settings = service_settings(services["sink-postgres"], monkeypatch, tmp_path)
    dsn = urlsplit(settings.database.dsn.get_secret_value())
    postgres = environment(services["postgres"])
    assert dsn.hostname in services
    assert (dsn.username, dsn.password, dsn.path.lstrip("/")) == (
        postgres["POSTGRES_USER"],
        postgres["POSTGRES_PASSWORD"],
        postgres["POSTGRES_DB"],
    )
    assert settings.health_port == 8080


def test_contracts_and_config_are_mounted(services: dict[str, dict[str, Any]]) -> None:
    for name in FLOE_SERVICES:
        env = environment(services[name])
        mounts = bind_mounts(services[name])
        assert mounts[env["FLOE_CONTRACTS_DIR"]] == "./examples/contracts"
        assert (REPO / "examples" / "contracts").is_dir()
        config = mounts[env["FLOE_CONFIG_FILE"]]
        assert (REPO / config).is_file()
        assert isinstance(yaml.safe_load((REPO / config).read_text()), dict)
        for source in mounts.values():
            assert (REPO / source).exists(), f"{name} mounts missing {source}"


def test_prometheus_scrapes_every_floe_service(services: dict[str, dict[str, Any]]) -> None:
    prometheus = services["prometheus"]
    mounts = bind_mounts(prometheus)
    config = yaml.safe_load((REPO / mounts["/etc/prometheus/prometheus.yml"]).read_text())
    (floe_job,) = [j for j in config["scrape_configs"] if j["job_name"] == "floe"]
    assert floe_job["metrics_path"] == "/metrics"
    (sd,) = floe_job["dns_sd_configs"]
    assert set(sd["names"]) == set(FLOE_SERVICES)
    assert all(int(environment(services[n])["FLOE_HEALTH_PORT"]) == sd["port"] for n in FLOE_SERVICES)
    for rule_file in config["rule_files"]:
        assert rule_file in mounts, f"rule file {rule_file} is not mounted"
        assert (REPO / mounts[rule_file]).is_file()
    (alertmanagers,) = config["alerting"]["alertmanagers"]
    (target,) = alertmanagers["static_configs"][0]["targets"]
    host, port = target.split(":")
    assert host in services
    assert (int(port), int(port)) in published_ports(services[host])


def test_alertmanager_mails_to_mailpit(services: dict[str, dict[str, Any]]) -> None:
    mounts = bind_mounts(services["alertmanager"])
    config = yaml.safe_load((REPO / mounts["/etc/alertmanager/alertmanager.yml"]).read_text())
    host, port = config["global"]["smtp_smarthost"].split(":")
    assert host == "mailpit"
    assert int(port) == 1025  # Mailpit's SMTP port (its web UI is 8025)
    assert int(port) in {container for _, container in published_ports(services["mailpit"])}
    receivers = {r["name"] for r in config["receivers"]}
    assert config["route"]["receiver"] in receivers


def test_marquez_receives_openlineage(
    services: dict[str, dict[str, Any]], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = service_settings(services["sink-openlineage"], monkeypatch, tmp_path)
    assert settings.openlineage.transport == "http"
    url = urlsplit(settings.openlineage.url)
    marquez = environment(services["marquez"])
    assert url.hostname == "marquez"
    assert url.port == int(marquez["MARQUEZ_PORT"])
    assert marquez["POSTGRES_HOST"] == "marquez-db"
    assert depends_on(services["marquez"]) == {"marquez-db": "service_healthy"}
    db = environment(services["marquez-db"])
    assert (db["POSTGRES_USER"], db["POSTGRES_PASSWORD"], db["POSTGRES_DB"]) == (
        "marquez",
        "marquez",
        "marquez",
    )


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        pytest.fail(
            f"{name} missing: `make tools` (Debian packages prometheus, prometheus-alertmanager)",
            pytrace=False,
        )
    return path


def test_prometheus_and_alertmanager_configs_pass_their_checkers(tmp_path: Path) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(COMPOSE_DIR / "prometheus-rules.yml", rules / "floe.rules.yml")
    text = (COMPOSE_DIR / "prometheus.yml").read_text()
    (tmp_path / "prometheus.yml").write_text(re.sub(r"/etc/prometheus/rules/", f"{rules}/", text))
    for args in (
        [_tool("promtool"), "check", "config", str(tmp_path / "prometheus.yml")],
        [_tool("promtool"), "check", "rules", str(COMPOSE_DIR / "prometheus-rules.yml")],
        [_tool("amtool"), "check-config", str(COMPOSE_DIR / "alertmanager.yml")],
    ):
        proc = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "SUCCESS" in proc.stdout + proc.stderr

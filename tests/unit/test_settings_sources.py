"""Settings sources: keyword arguments > environment / .env > FLOE_CONFIG_FILE > program defaults > field
defaults; secrets never from the file; the alerts routing inline in the file or in its own file."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from floe_stream.runtime.devtools.dev import dev_settings
from floe_stream.settings import ConfigError, Settings, load_settings, secret_paths
from floe_stream.sinks.alerts.config import resolve_config


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No FLOE_* variable of the machine and no .env of the repository leaks into these tests."""
    import os

    for name in list(os.environ):
        if name.startswith("FLOE_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def write(tmp_path: Path, doc: object, name: str = "floe.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(doc))
    return path


def test_file_is_read_and_env_overrides_it_key_by_key(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path,
        {
            "kafka": {"bootstrap_servers": "from-file:9092", "partitions": 3, "topic_prefix": "file."},
            "clock_skew_s": 7,
            "tick_interval_s": 2,
        },
    )
    monkeypatch.setenv("FLOE_CONFIG_FILE", str(path))
    s = load_settings()
    assert (s.kafka.bootstrap_servers, s.kafka.partitions, s.clock_skew_s) == ("from-file:9092", 3, 7.0)
    assert s.kafka.client_id == "floe-stream"  # not in the file: the default

    monkeypatch.setenv("FLOE_KAFKA__PARTITIONS", "9")
    monkeypatch.setenv("FLOE_CLOCK_SKEW_S", "5")
    s = load_settings()
    assert s.kafka.partitions == 9 and s.clock_skew_s == 5.0  # environment > file
    assert s.kafka.bootstrap_servers == "from-file:9092" and s.kafka.topic_prefix == "file."  # merged

    s = load_settings(clock_skew_s=1, kafka={"partitions": 12})
    assert s.clock_skew_s == 1.0 and s.kafka.partitions == 12  # init > environment
    assert s.kafka.bootstrap_servers == "from-file:9092"  # still merged below
    assert s.tick_interval_s == 2.0


def test_dotenv_sits_with_the_environment_above_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, {"clock_skew_s": 7, "log_level": "ERROR"})
    (tmp_path / ".env").write_text(f"FLOE_CONFIG_FILE={path}\nFLOE_CLOCK_SKEW_S=4\n")
    s = load_settings()
    assert s.config_file == path
    assert s.clock_skew_s == 4.0 and s.log_level == "ERROR"


def test_program_defaults_are_below_the_file_and_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    defaults = {"clock_skew_s": 3, "tick_interval_s": 4, "kafka": {"linger_ms": 9, "partitions": 2}}
    s = load_settings(defaults=defaults)
    assert (s.clock_skew_s, s.tick_interval_s, s.kafka.linger_ms, s.kafka.partitions) == (3.0, 4.0, 9, 2)
    monkeypatch.setenv("FLOE_CONFIG_FILE", str(write(tmp_path, {"tick_interval_s": 8})))
    monkeypatch.setenv("FLOE_KAFKA__PARTITIONS", "5")
    s = load_settings(defaults=defaults)
    assert (s.clock_skew_s, s.tick_interval_s, s.kafka.linger_ms, s.kafka.partitions) == (3.0, 8.0, 9, 5)
    assert isinstance(s, Settings)


def test_floe_dev_takes_the_environment_over_its_dev_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    contracts = tmp_path / "contracts"
    contracts.mkdir()
    s = dev_settings(bootstrap="127.0.0.1:1", dsn="postgresql://x@h/d", demo=False, contracts_dir=contracts)
    assert (s.clock_skew_s, s.tick_interval_s, s.kafka.fetch_max_wait_ms) == (60.0, 5.0, 20)

    monkeypatch.setenv("FLOE_CLOCK_SKEW_S", "5")
    monkeypatch.setenv("FLOE_KAFKA__FETCH_MAX_WAIT_MS", "33")
    monkeypatch.setenv("FLOE_KAFKA__BOOTSTRAP_SERVERS", "elsewhere:9092")
    s = dev_settings(bootstrap="127.0.0.1:1", dsn="postgresql://x@h/d", demo=False, contracts_dir=contracts)
    assert s.clock_skew_s == 5.0 and s.kafka.fetch_max_wait_ms == 33  # environment > dev defaults
    assert s.kafka.bootstrap_servers == "127.0.0.1:1"  # the embedded broker it started is explicit
    assert s.database.dsn.get_secret_value() == "postgresql://x@h/d" and s.health_port == -1
    assert s.contracts_dir == contracts  # --contracts is a flag

    monkeypatch.setenv("FLOE_KAFKA__LINGER_MS", "7")
    facts = {"linger_ms": 3}  # a fact of the broker it started (e.g. whether it supports idempotence)
    s = dev_settings(
        bootstrap="b:1", dsn="postgresql://x@h/d", demo=False, contracts_dir=contracts, broker_facts=facts
    )
    assert s.kafka.linger_ms == 3 and s.kafka.fetch_max_wait_ms == 33

    monkeypatch.setenv("FLOE_CONTRACTS_DIR", str(tmp_path))
    s = dev_settings(bootstrap="127.0.0.1:1", dsn="postgresql://x@h/d", demo=False, contracts_dir=None)
    assert s.contracts_dir == tmp_path  # environment > the example contracts

    s = dev_settings(bootstrap="127.0.0.1:1", dsn="postgresql://x@h/d", demo=True, contracts_dir=contracts)
    assert s.clock_skew_s == 1.0 and s.tick_interval_s == 1.0  # --demo's scripted timings are explicit


@pytest.mark.parametrize(
    ("doc", "needle"),
    [
        ({"database": {"dsn": "postgresql://u:hunter2@db/floe"}}, "database.dsn is a secret"),
        ({"kafka": {"sasl_password": "hunter2"}}, "set FLOE_KAFKA__SASL_PASSWORD in the environment"),
        ({"openlineage": {"api_key": "hunter2"}}, "FLOE_OPENLINEAGE__API_KEY"),
        (
            {"sources": {"iceberg": {"secret_properties": {"credential": "hunter2"}}}},
            "FLOE_SOURCES__ICEBERG__SECRET_PROPERTIES__<KEY>",
        ),
        (
            {
                "alerts": {
                    "channels": [{"name": "h", "type": "webhook", "url": "http://x", "secret": "hunter2"}]
                }
            },
            "alerts.channels[0].secret is a secret",
        ),
    ],
)
def test_a_secret_written_in_the_file_stops_start_up_without_showing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, doc: dict[str, object], needle: str
) -> None:
    monkeypatch.setenv("FLOE_CONFIG_FILE", str(write(tmp_path, doc)))
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert needle in message and "hunter2" not in message and "\n" not in message


def test_every_secret_field_is_guarded() -> None:
    """A new SecretStr field is refused in the file without anyone listing it."""
    paths = {".".join(p) for p in secret_paths(Settings)}
    assert {"database.dsn", "kafka.sasl_password", "openlineage.api_key", "checks.probe_password",
            "sources.iceberg.secret_properties"} <= paths  # fmt: skip


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        ("kafkaa: {bootstrap_servers: x}\n", "unknown key(s) ['kafkaa']"),
        ("- a\n- b\n", "must be a YAML mapping"),
        ("kafka: [\n", "is not valid YAML"),
        ("kafka: {partitions: 0}\n", "FLOE_KAFKA__PARTITIONS"),
        ("kafka: {partitionz: 3}\n", "FLOE_KAFKA__PARTITIONZ"),
    ],
)
def test_a_bad_file_is_one_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: str, needle: str
) -> None:
    path = tmp_path / "floe.yaml"
    path.write_text(content)
    monkeypatch.setenv("FLOE_CONFIG_FILE", str(path))
    with pytest.raises(ConfigError, match="FLOE_CONFIG_FILE") as err:
        load_settings()
    assert needle in str(err.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOE_CONFIG_FILE", str(tmp_path / "nope.yaml"))
    with pytest.raises(ConfigError, match="cannot read FLOE_CONFIG_FILE"):
        load_settings()


def test_empty_file_means_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for content in ("", "{}\n", "# nothing\n"):
        (tmp_path / "floe.yaml").write_text(content)
        monkeypatch.setenv("FLOE_CONFIG_FILE", str(tmp_path / "floe.yaml"))
        assert load_settings().model_dump(exclude={"config_file"}) == Settings().model_dump(
            exclude={"config_file"}
        )


ROUTING = {
    "policy": {"dedup_window_s": 60},
    "channels": [{"name": "am", "type": "alertmanager", "url": "http://am:9093"}],
    "routes": [{"channel": "am", "min_severity": "warning"}],
}


def test_alerts_routing_inline_in_the_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOE_CONFIG_FILE", str(write(tmp_path, {"alerts": ROUTING})))
    s = load_settings()
    cfg = resolve_config(s.alerts, s.config_file)
    assert [c.name for c in cfg.channels] == ["am"] and cfg.routes[0].targets() == ("am",)
    assert cfg.policy.dedup_window_s == 60


def test_alerts_routing_in_its_own_file_still_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOE_ALERTS__CONFIG_FILE", str(write(tmp_path, ROUTING, "alerts.yaml")))
    s = load_settings()
    assert resolve_config(s.alerts, s.config_file).routes[0].targets() == ("am",)
    # ... also when the config file points at it
    monkeypatch.delenv("FLOE_ALERTS__CONFIG_FILE")
    alerts_file = tmp_path / "alerts.yaml"
    monkeypatch.setenv(
        "FLOE_CONFIG_FILE", str(write(tmp_path, {"alerts": {"config_file": str(alerts_file)}}))
    )
    s = load_settings()
    assert resolve_config(s.alerts, s.config_file).routes[0].targets() == ("am",)


def test_alerts_routing_given_twice_or_wrong_is_one_config_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alerts_file = write(tmp_path, ROUTING, "alerts.yaml")
    monkeypatch.setenv("FLOE_CONFIG_FILE", str(write(tmp_path, {"alerts": {"routes": ROUTING["routes"]}})))
    monkeypatch.setenv("FLOE_ALERTS__CONFIG_FILE", str(alerts_file))
    s = load_settings()
    with pytest.raises(ConfigError, match="given twice"):
        resolve_config(s.alerts, s.config_file)
    monkeypatch.delenv("FLOE_ALERTS__CONFIG_FILE")
    s = load_settings()
    with pytest.raises(ConfigError, match=r"FLOE_CONFIG_FILE.*routes\[0\] names unknown channel"):
        resolve_config(s.alerts, s.config_file)


def test_no_routing_is_an_empty_config_not_an_error() -> None:
    cfg = resolve_config(load_settings().alerts)
    assert cfg.routes == () and cfg.channels == ()

"""Process configuration. Sources, strongest first:

1. keyword arguments (``Settings(...)``, ``load_settings(...)``; ``floe dev``'s explicit flags);
2. environment variables (prefix ``FLOE_``, nested with ``__``) and a ``.env`` file;
3. the configuration file named by ``FLOE_CONFIG_FILE``: YAML with the structure of :class:`Settings`
   (``kafka: {bootstrap_servers: ...}``, ``alerts: {channels: [...], routes: [...]}``...), nested sections
   merged key by key with the sources above;
4. the defaults below (``floe dev`` puts its own dev defaults here).

Secrets (every :class:`pydantic.SecretStr` field, and an alert channel's ``secret``) come only from the
environment (a Kubernetes Secret, ``.env``) or, for alert channels, the variable a ``secret_env``/``url_env``
names: written inline in the configuration file they stop start-up with one message naming the variable
to use instead. They are never rendered by :meth:`Settings.safe_dict`.
Examples::

    FLOE_KAFKA__BOOTSTRAP_SERVERS=kafka:9092
    FLOE_KAFKA__SECURITY_PROTOCOL=SASL_SSL
    FLOE_KAFKA__SASL_USERNAME=floe  FLOE_KAFKA__SASL_PASSWORD=...
    FLOE_DATABASE__DSN=postgresql://floe:...@db:5432/floe
    FLOE_CONTRACTS_DIR=/etc/floe/contracts
"""

from __future__ import annotations

import ipaddress
import os
import types
import typing
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from floe_stream.contracts.policy import CheckPolicy
from floe_stream.topics.bounds import InputLimits
from floe_stream.validation import describe


class ConfigError(Exception):
    """A configuration problem that must stop start-up with one clear message."""


class KafkaSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    bootstrap_servers: str = "127.0.0.1:9092"
    client_id: str = "floe-stream"
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    topic_prefix: str = "floe."
    partitions: int = Field(default=6, ge=1, description="partition count used when floe creates its topics")
    replication_factor: int = Field(default=1, ge=1)
    group_prefix: str = "floe"
    fetch_max_wait_ms: int = Field(default=50, ge=1)
    session_timeout_ms: int = Field(default=10_000, ge=1_000)
    heartbeat_interval_ms: int = Field(default=3_000, ge=100)
    max_poll_interval_ms: int = Field(
        default=300_000,
        ge=1_000,
        description="a member that does not poll for this long leaves its group (aiokafka's default). A sink "
        "waiting for its destination pauses its partitions and keeps polling, so an outage longer than this "
        "does not rebalance the group",
    )
    max_batch_records: int = Field(default=1_000, ge=1)
    commit_interval_ms: int = Field(
        default=1_000,
        ge=0,
        description="offsets (and the processor's state checkpoint) are committed at most this often, always "
        "after the effects of every batch they cover; 0 = after every batch. A crash replays at most this "
        "much (effects are idempotent)",
    )
    processing_guarantee: Literal["at_least_once", "exactly_once"] = Field(
        default="at_least_once",
        description="at_least_once: effects idempotent by id, a crash may re-send records the readers "
        "dedupe. exactly_once (Apache Kafka only, refused on brokers without transactions): the processor "
        "commits its outputs, state changelog and consumed offsets in one transaction per partition and "
        "commit interval, and every floe consumer reads with isolation_level=read_committed — set it on "
        "the processor AND the sinks. Outputs become visible at each commit (kafka.commit_interval_ms)",
    )
    transaction_timeout_ms: int = Field(
        default=60_000,
        ge=1_000,
        description="exactly_once: the broker aborts a transaction left open this long by a dead processor "
        "that nobody took over (a successor aborts it at once)",
    )
    linger_ms: int = Field(default=5, ge=0)
    results_linger_ms: int = Field(
        default=20,
        ge=0,
        description="at_least_once: the processor gathers its check results (one per evaluated event) and other "
        "non-alert records this long into fewer produce requests; violations never wait (a producer of their "
        "own), and a commit sends what is gathered first. 0 = with every batch",
    )
    max_request_size: int = Field(default=4 * 1024 * 1024, ge=1024)
    max_record_bytes: int = Field(
        default=1_000_000,
        ge=1024,
        description="the largest input value the processor evaluates: a bigger one is dead-lettered (reason "
        "'record too large', its first 64 KiB kept, the original size in the floe-dlq-truncated header) so that "
        "the DLQ copy fits Apache Kafka's default message.max.bytes (1,048,588)",
    )
    enable_idempotence: bool = Field(
        default=False,
        description="idempotent producers (no duplicate on a producer retry); turn on for Apache Kafka and "
        "other brokers with InitProducerId — Tansu 0.6 fails it, and floe's effects are idempotent by id anyway",
    )

    @property
    def exactly_once(self) -> bool:
        return self.processing_guarantee == "exactly_once"

    def client_kwargs(self) -> dict[str, Any]:
        """Connection keyword arguments shared by aiokafka producers, consumers and admin clients."""
        kw: dict[str, Any] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            kw["ssl_context"] = create_ssl_context(
                cafile=str(self.ssl_cafile) if self.ssl_cafile else None,
                certfile=str(self.ssl_certfile) if self.ssl_certfile else None,
                keyfile=str(self.ssl_keyfile) if self.ssl_keyfile else None,
            )
        if self.security_protocol.startswith("SASL"):
            kw["sasl_mechanism"] = self.sasl_mechanism or "PLAIN"
            kw["sasl_plain_username"] = self.sasl_username
            kw["sasl_plain_password"] = self.sasl_password.get_secret_value() if self.sasl_password else None
        return kw


class DatabaseSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    dsn: SecretStr = SecretStr("postgresql://postgres@127.0.0.1:5432/floe")
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=4, ge=1)
    connect_timeout_s: float = Field(default=5.0, gt=0)


class SinkSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    """How a sink grows a fetched batch while a backlog keeps the fetches full (one write, one commit)."""

    flush_interval_ms: int = Field(
        default=200, ge=1, description="at most this long spent collecting one write (a backlog only)"
    )
    flush_max_records: int = Field(
        default=10_000,
        ge=1,
        description="at most this many records per write (bench.sink (a): 21–24k results/s at 5,000, "
        "24–30k at 10,000)",
    )


class IcebergSourceSettings(BaseModel):
    """`floe run source iceberg`: the catalog to watch (pyiceberg properties) and which tables."""

    model_config = ConfigDict(extra="forbid")

    catalog_name: str = Field(
        default="default", description="pyiceberg catalog name; also the events' 'catalog'"
    )
    properties: dict[str, str] = Field(
        default_factory=dict, description="pyiceberg catalog properties, e.g. type=rest, uri=…, warehouse=…"
    )
    secret_properties: dict[str, SecretStr] = Field(
        default_factory=dict,
        description="properties that are secrets (credential, token, a uri with a password)",
    )
    namespaces: list[str] = Field(
        default_factory=list, description="namespaces to watch (nested: 'a.b'); empty = all"
    )
    tables: list[str] = Field(default_factory=lambda: ["*"], description="globs on 'namespace.table'")
    exclude: list[str] = Field(default_factory=list, description="globs on 'namespace.table' to skip")
    poll_interval_s: float = Field(default=30.0, gt=0)
    backfill: bool = Field(
        default=False, description="first sight of a table: publish its history, not only the newest"
    )
    max_snapshots_per_poll: int = Field(
        default=100, ge=1, description="per table and poll (backfill, bursts)"
    )
    schema_changes: bool = Field(
        default=True, description="also publish a schema change that made no snapshot"
    )
    load_concurrency: int = Field(default=8, ge=1, description="tables loaded in parallel (metadata reads)")
    request_timeout_s: float = Field(
        default=30.0,
        gt=0,
        description="REST catalogs: connect and read timeout of each request (pyiceberg sets none: a catalog "
        "that never answers would hold the watcher, and every table, for ever)",
    )


class SourcesSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    iceberg: IcebergSourceSettings = IcebergSourceSettings()


class CustomMetric(BaseModel):
    """A user-defined metric (FR-046): which event feeds it, which field is the value, which fields are labels."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-zA-Z_][a-zA-Z0-9_]*$", description="Prometheus-safe metric name")
    instrument: Literal["counter", "histogram", "gauge"] = "counter"
    description: str = ""
    unit: str = ""
    source: Literal["materialization", "check_result", "violation"] = "materialization"
    field: str | None = Field(
        default=None, description="dotted path of the numeric value; counter without = +1"
    )
    labels: list[str] = Field(default_factory=list, description="dotted paths whose values become labels")
    where: dict[str, str] = Field(
        default_factory=dict, description="only events whose field (dotted) equals this"
    )


class TelemetrySettings(BaseModel):
    """Traces and extra metrics. OTLP is used when OTEL_EXPORTER_OTLP_ENDPOINT is set."""

    model_config = ConfigDict(extra="forbid")

    traces_exporter: Literal["auto", "none", "console", "file", "otlp"] = Field(
        default="auto",
        description="auto = otlp when OTEL_EXPORTER_OTLP_ENDPOINT is set, else none (no spans)",
    )
    traces_file: Path | None = Field(
        default=None, description="JSON lines of finished spans (traces_exporter=file)"
    )
    trace_sample_ratio: float = Field(
        default=1.0, ge=0, le=1, description="parent-based trace-id ratio sampler"
    )
    metrics_otlp: bool | None = Field(
        default=None, description="push metrics over OTLP too; None = when the env var is set"
    )
    lag_interval_s: float = Field(default=5.0, gt=0, description="how often consumer lag is refreshed")
    histogram_samples_per_batch: int = Field(
        default=32,
        ge=1,
        description="cap of histogram observations per batch and series (evenly spaced sample)",
    )
    custom_metrics: list[CustomMetric] = Field(default_factory=list)


class OpenLineageSettings(BaseModel):
    """`floe run sink openlineage`: FAIL/COMPLETE RunEvents for violation episodes."""

    model_config = ConfigDict(extra="forbid")

    transport: Literal["openlineage", "http", "kafka", "file", "console"] = Field(
        default="openlineage",
        description="every transport is openlineage-python's. openlineage: configured as every OpenLineage "
        "client is (openlineage.yml via OPENLINEAGE_CONFIG / the working directory / ~/.openlineage, "
        "OPENLINEAGE_URL + OPENLINEAGE_API_KEY, OPENLINEAGE__TRANSPORT__*: http, async_http, kafka, file, "
        "console, composite and the cloud ones; nothing configured = console). http|kafka|file|console: "
        "floe's shorthands, built from the fields below",
    )
    url: str = Field(default="http://127.0.0.1:5000", description="http: Marquez base URL")
    endpoint: str = Field(default="api/v1/lineage", description="http: path below url")
    api_key: SecretStr | None = Field(
        default=None, description="http: sent as 'Authorization: Bearer …' (the client's api_key auth)"
    )
    timeout_s: float = Field(
        default=5.0,
        gt=0,
        description="http: request timeout; kafka (any, also from openlineage.yml): a batch's delivery wait, "
        "then retried",
    )
    topic: str = Field(
        default="openlineage.events",
        description="kafka: topic on the floe cluster (FLOE_KAFKA__* connection; created when missing)",
    )
    file: Path = Field(default=Path("openlineage.jsonl"), description="file: JSON lines, appended")
    namespace: str = Field(default="floe-stream", description="job namespace of the emitted runs")
    dataset_namespace: str | None = Field(
        default=None,
        description="namespace of the affected dataset; default: the contract's first server, else 'floe'",
    )
    producer: str = "https://github.com/floe-stream/floe-stream"
    max_retries: int | None = Field(
        default=None,
        ge=0,
        description="transient failures retried this often, then dead-lettered; None = until it works",
    )
    retry_backoff_s: float = Field(default=0.2, gt=0, description="first retry delay; doubles up to 5 s")


class ChecksSettings(CheckPolicy):
    """Global check policy (overridable per contract, see processors/policy.py) and probe runtime knobs."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    ping_concurrency: int = Field(default=200, ge=1, description="pings in flight at once per processor")
    ping_concurrency_per_contract: int | None = Field(
        default=None,
        ge=1,
        description="pings of one contract in flight at once; None = a quarter of the bound",
    )
    ping_timeout_max_s: float = Field(
        default=60.0,
        gt=0,
        description="cap on a ping's timeout, whatever a contract's floe.checks.ping_timeout_s",
    )
    probe_allow: list[str] = Field(
        default_factory=list,
        description="networks probes may reach beyond public addresses (e.g. 10.0.0.0/8, 127.0.0.1): loopback, "
        "link-local, private and other non-global addresses are refused unless listed here",
    )
    probe_allow_public: bool = Field(
        default=True, description="probes may reach public addresses (false: only probe_allow)"
    )
    probe_user: str | None = Field(
        default=None, description="user name of database probes (PostgreSQL: sent without a password)"
    )
    probe_password: SecretStr | None = Field(
        default=None, description="sent only to probe_credential_hosts, over verified TLS (SELECT 1)"
    )
    probe_credential_hosts: list[str] = Field(
        default_factory=list,
        description="host or host:port the probe password is bound to; to any other target no password is sent",
    )
    probe_tls_ca_file: Path | None = Field(
        default=None, description="CA bundle verifying probe_credential_hosts (default: the system's)"
    )
    contracts_poll_s: float = Field(default=5.0, gt=0, description="contracts directory re-scan period")
    watch_contracts_dir: bool = Field(default=True, description="reload changed contract files while running")
    contracts_cache_dir: Path | None = Field(
        default=None,
        description="where the compiled forms of the contracts directory's files are kept (default: "
        "$XDG_CACHE_HOME or ~/.cache, /floe-stream/compiled; entries are named by content, one folder serves "
        "every directory); a file is parsed once, later starts load its compiled form",
    )

    @field_validator("probe_allow", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        if isinstance(value, str):  # FLOE_CHECKS__PROBE_ALLOW=127.0.0.1,10.0.0.0/8
            value = [v for v in value.replace(" ", ",").split(",") if v]
        for entry in value if isinstance(value, list) else []:
            try:
                ipaddress.ip_network(str(entry).strip(), strict=False)
            except ValueError:
                raise ValueError(
                    f"{entry!r} is not an IP address or network (e.g. 10.0.0.0/8, 127.0.0.1, ::1)"
                ) from None
        return value

    def policy(self) -> CheckPolicy:
        return CheckPolicy.model_validate({k: getattr(self, k) for k in CheckPolicy.model_fields})


DEFAULT_TARGETS = {"freshness": 99.0, "availability": 99.5, "schema_drift": 99.0, "quality": 95.0}


class HistorySettings(BaseModel):
    """SLA history in PostgreSQL: raw retention (aggregates and episodes are kept forever)."""

    model_config = ConfigDict(extra="forbid")

    retention_days: int = Field(default=90, ge=1, description="raw check results / violation events kept")
    auto_prune: bool = Field(
        default=True, description="the PostgreSQL sink prunes once per UTC day (on ticks)"
    )
    register_contracts: bool = Field(
        default=True, description="the sink registers FLOE_CONTRACTS_DIR at start"
    )
    default_targets: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_TARGETS),
        description="compliance target (%) per check type when the contract states none (floe sla report)",
    )
    at_risk_budget_pct: float = Field(
        default=25.0, ge=0, le=100, description="error budget left (%) under which a pair is 'at risk'"
    )


class AlertsSettings(BaseModel):
    """The alerts sink's routing: inline here (``policy``/``channels``/``routes``, e.g. the ``alerts:`` section
    of FLOE_CONFIG_FILE) or in a separate YAML file (``config_file``), not both; validated by
    floe_stream.sinks.alerts.config. Neither: the sink runs with no routes and delivers nothing (it says so)."""

    model_config = ConfigDict(extra="forbid")

    config_file: Path | None = Field(
        default=None, description="separate alerts YAML (channels, routes, policy)"
    )
    public_url: str = Field(default="http://localhost:8080", description="base of links in notifications")
    policy: dict[str, Any] | None = Field(default=None, description="dedup, rate limit, grouping, circuit")
    channels: list[dict[str, Any]] | None = Field(
        default=None, description="[{name, type, url|url_env, secret_env, options...}]"
    )
    routes: list[dict[str, Any]] | None = Field(
        default=None, description="[{channel|channels, min_severity, match, match_re, continue}]"
    )

    def inline_routing(self) -> dict[str, Any]:
        """The routing given here (not in config_file): the keys that are set."""
        return {k: v for k in ("policy", "channels", "routes") if (v := getattr(self, k)) is not None}


CONFIG_FILE_ENV = "FLOE_CONFIG_FILE"


def _is_secret(annotation: Any) -> bool:
    if annotation is SecretStr:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        return any(_is_secret(a) for a in typing.get_args(annotation))
    return False


def _models_in(annotation: Any) -> Iterator[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        yield annotation
    elif isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is not None:
        for a in typing.get_args(annotation):
            yield from _models_in(a)


def secret_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Dotted paths of every SecretStr field (also dict[str, SecretStr]) of ``model``, nested models included."""
    out: list[tuple[str, ...]] = []
    for name, info in model.model_fields.items():
        path = (*prefix, name)
        if _is_secret(info.annotation):
            out.append(path)
        for sub in _models_in(info.annotation):
            out.extend(secret_paths(sub, path))
    return out


def env_name(path: tuple[str, ...]) -> str:
    return "FLOE_" + "__".join(p.upper() for p in path)


def read_config_file(
    path: Path, fields: Mapping[str, FieldInfo], secrets: list[tuple[str, ...]]
) -> dict[str, Any]:
    """Parse FLOE_CONFIG_FILE; every problem is one :class:`ConfigError` naming the file."""
    where = f"{CONFIG_FILE_ENV}={path}"
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where} is not valid YAML: {exc}") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{where} must be a YAML mapping (the structure of the settings), not {type(raw).__name__}"
        )
    unknown = sorted(str(k) for k in raw if k not in fields or k == "config_file")
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {unknown}; known: {sorted(k for k in fields if k != 'config_file')}"
        )
    for secret in secrets:
        node: Any = raw
        for part in secret:
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None and node != {}:
            raise ConfigError(
                f"{where}: {'.'.join(secret)} is a secret and is not read from the file: "
                f"set {env_name(secret)}{'__<KEY>' if isinstance(node, dict) else ''} in the environment instead"
            )
    alerts = raw.get("alerts")
    for i, ch in enumerate((alerts or {}).get("channels") or () if isinstance(alerts, dict) else ()):
        if isinstance(ch, dict) and ch.get("secret") is not None:
            raise ConfigError(
                f"{where}: alerts.channels[{i}].secret is a secret and is not read from the file: "
                "name an environment variable with secret_env instead"
            )
    return raw


class ConfigFileSource(PydanticBaseSettingsSource):
    """The YAML file named by FLOE_CONFIG_FILE (init ``config_file`` > environment > ``.env``)."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path | None) -> None:
        super().__init__(settings_cls)
        self.path = path
        self.data = (
            read_config_file(path, settings_cls.model_fields, secret_paths(settings_cls))
            if path is not None
            else {}
        )

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.data)


class DefaultsSource(PydanticBaseSettingsSource):
    """Defaults of one program (``floe dev``): below every other source, above the field defaults."""

    def __init__(self, settings_cls: type[BaseSettings], defaults: Mapping[str, Any]) -> None:
        super().__init__(settings_cls)
        self.defaults = dict(defaults)

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return self.defaults.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self.defaults)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLOE_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    config_file: Path | None = Field(
        default=None,
        description="YAML with the structure of these settings; environment and .env override it",
    )

    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    sink: SinkSettings = SinkSettings()
    history: HistorySettings = HistorySettings()
    alerts: AlertsSettings = AlertsSettings()
    telemetry: TelemetrySettings = TelemetrySettings()
    openlineage: OpenLineageSettings = OpenLineageSettings()
    sources: SourcesSettings = SourcesSettings()
    checks: ChecksSettings = ChecksSettings()
    limits: InputLimits = InputLimits()
    contracts_dir: Path = Path("contracts")
    tick_interval_s: float = Field(
        default=10.0, gt=0, description="ticker period; absence is detected within one"
    )
    clock_skew_s: float = Field(default=60.0, ge=0, description="tolerance added to every freshness SLA")
    health_host: str = "0.0.0.0"
    health_port: int = Field(
        default=8080, ge=-1, le=65535, description="0 = any free port, -1 = no HTTP server"
    )
    health_stall_s: float = Field(
        default=120.0,
        gt=0,
        description="/healthz turns 503 when the consume loop has not completed a fetch for this long, beyond the "
        "fetch's own wait (docs/OBSERVABILITY.md)",
    )
    health_loop_lag_s: float = Field(
        default=10.0,
        gt=0,
        description="/healthz turns 503 when the event loop is blocked for longer than this",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    event_loop: Literal["auto", "uvloop", "asyncio"] = Field(
        default="auto",
        description="the event loop of `floe run …`: uvloop (libuv, in C: less CPU per Kafka round trip, "
        "bench/processor.py) where it is installed ('auto'), or Python's own asyncio loop",
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        path: Any = None
        if isinstance(init_settings, InitSettingsSource):
            path = init_settings.init_kwargs.get("config_file")
        if path is None:
            path = env_settings().get("config_file") or dotenv_settings().get("config_file")
        sources: tuple[PydanticBaseSettingsSource, ...] = (
            init_settings,
            env_settings,
            dotenv_settings,
            ConfigFileSource(settings_cls, Path(path) if path else None),
        )
        defaults = _program_defaults.get(settings_cls)
        if defaults:
            sources += (DefaultsSource(settings_cls, defaults),)
        return (*sources, file_secret_settings)

    def safe_dict(self) -> dict[str, Any]:
        """A dict safe to log: secrets masked by SecretStr's repr."""
        return self.model_dump(mode="python")


_program_defaults: dict[type[BaseSettings], Mapping[str, Any]] = {}


def load_settings(*, defaults: Mapping[str, Any] | None = None, **overrides: Any) -> Settings:
    """Load settings (keyword arguments > environment/.env > FLOE_CONFIG_FILE > ``defaults`` > field
    defaults); raise :class:`ConfigError` with one readable message. ``defaults`` are a program's own
    defaults (``floe dev``): the environment and the configuration file override them, nested sections
    key by key."""
    cls: type[Settings] = Settings
    if defaults:
        cls = type("ProgramSettings", (Settings,), {"__module__": __name__})
        _program_defaults[cls] = defaults
    try:
        return cls(**overrides)
    except ValidationError as exc:
        problems = describe(exc, location=lambda loc: "FLOE_" + "__".join(str(p).upper() for p in loc))
        where = overrides.get("config_file") or os.environ.get(CONFIG_FILE_ENV)
        suffix = f" (environment, .env or {CONFIG_FILE_ENV}={where})" if where else ""
        raise ConfigError(f"invalid configuration{suffix}: {problems}") from None
    finally:
        _program_defaults.pop(cls, None)

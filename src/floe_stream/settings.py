"""Process configuration: environment variables (prefix ``FLOE_``, nested with ``__``) or a ``.env`` file.

Secrets are :class:`pydantic.SecretStr` and are never rendered by :meth:`Settings.safe_dict`.
Examples::

    FLOE_KAFKA__BOOTSTRAP_SERVERS=kafka:9092
    FLOE_KAFKA__SECURITY_PROTOCOL=SASL_SSL
    FLOE_KAFKA__SASL_USERNAME=floe  FLOE_KAFKA__SASL_PASSWORD=...
    FLOE_DATABASE__DSN=postgresql://floe:...@db:5432/floe
    FLOE_CONTRACTS_DIR=/etc/floe/contracts
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    max_batch_records: int = Field(default=1_000, ge=1)
    linger_ms: int = Field(default=5, ge=0)
    max_request_size: int = Field(default=4 * 1024 * 1024, ge=1024)

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

    flush_interval_ms: int = Field(default=200, ge=1, description="max time records wait in a sink buffer")
    flush_max_records: int = Field(default=2_000, ge=1)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FLOE_",
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
    )

    kafka: KafkaSettings = KafkaSettings()
    database: DatabaseSettings = DatabaseSettings()
    sink: SinkSettings = SinkSettings()
    contracts_dir: Path = Path("contracts")
    tick_interval_s: float = Field(default=10.0, gt=0, description="ticker period; absence is detected within one")
    clock_skew_s: float = Field(default=60.0, ge=0, description="tolerance added to every freshness SLA")
    health_host: str = "0.0.0.0"
    health_port: int = Field(default=8080, ge=-1, le=65535, description="0 = any free port, -1 = no HTTP server")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"

    def safe_dict(self) -> dict[str, Any]:
        """A dict safe to log: secrets masked by SecretStr's repr."""
        return self.model_dump(mode="python")


def load_settings(**overrides: Any) -> Settings:
    """Load settings from the environment; raise :class:`ConfigError` with one readable message."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"FLOE_{'__'.join(str(p).upper() for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None

"""Where to ping an asset: the contract's ``floe.probe`` override, else its ``servers`` entry. Pure."""

from __future__ import annotations

from typing import Any

from floe_stream.contracts.models import MonitoredAsset, ServerRef
from floe_stream.probes.base import ProbeTarget

# ODCS server types → built-in probe
_SERVER_PROBES = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "kafka": "kafka",
    "api": "http",
    "http": "http",
    "https": "http",
}


def _statuses(value: Any) -> tuple[int, ...]:
    if value is None:
        return (200,)
    if isinstance(value, int) and not isinstance(value, bool):
        return (value,)
    if isinstance(value, list | tuple) and value and all(isinstance(v, int) for v in value):
        return tuple(value)
    raise ValueError(f"expected_status must be a status code or a list of them, got {value!r}")


def _from_server(server: ServerRef) -> ProbeTarget | None:
    kind = _SERVER_PROBES.get(server.type.lower())
    if kind is None:
        if server.url and server.url.startswith(("http://", "https://")):
            kind = "http"
        elif server.host and server.port:
            kind = "tcp"
        else:
            return None
    return ProbeTarget(
        type=kind, host=server.host, port=server.port, url=server.url, database=server.database
    )


def target_for(asset: MonitoredAsset) -> ProbeTarget | None:
    """The probe target of an asset with an availability SLA, or None (nothing to ping).

    ``floe.probe`` (``{type, url | host+port, database, expected_status, server}``) wins field by field
    over the chosen server (``server`` names one of the contract's ``servers``; default the first one a
    probe can reach). Raises ValueError on an invalid override."""
    override: Any = asset.overrides.get("probe") or {}
    if not isinstance(override, dict):
        raise ValueError(f"floe.probe must be a mapping, got {type(override).__name__}")
    servers = list(asset.servers)
    if "server" in override:
        servers = [s for s in servers if s.server == override["server"]]
        if not servers:
            raise ValueError(f"floe.probe.server {override['server']!r} is not one of the contract's servers")
    base = next((t for t in (_from_server(s) for s in servers) if t is not None), None)
    if not override or set(override) <= {"server"}:
        return base
    kind = override.get("type") or (base.type if base else None)
    if kind is None:
        url = override.get("url")
        kind = "http" if isinstance(url, str) and url.startswith(("http://", "https://")) else "tcp"
    port = override.get("port", base.port if base else None)
    if port is not None and (isinstance(port, bool) or not isinstance(port, int)):
        raise ValueError(f"floe.probe.port must be an integer, got {port!r}")
    options = {
        k: str(v)
        for k, v in override.items()
        if k not in {"type", "host", "port", "url", "database", "expected_status", "server"}
    }
    return ProbeTarget(
        type=str(kind),
        host=override.get("host", base.host if base else None),
        port=port,
        url=override.get("url", base.url if base else None),
        database=override.get("database", base.database if base else None),
        expected_status=_statuses(override.get("expected_status")),
        options=options,
    )


def probe_problems(asset: MonitoredAsset) -> list[str]:
    """Lint: an availability SLA without a usable probe target (``servers`` or ``floe.probe``)."""
    try:
        target = target_for(asset) if asset.availability is not None else None
        if asset.availability is not None and target is None:
            return [
                f"{asset.asset_id}: availability SLA but no probe target (servers or floe.probe); not pinged"
            ]
    except ValueError as exc:
        return [f"{asset.asset_id}: {exc}"]
    return []

"""Where to ping an asset: the contract's ``floe.probe`` override, else its ``servers`` entry. Pure."""

from __future__ import annotations

from typing import Any

from floe_stream.contracts.models import MonitoredAsset, ServerRef
from floe_stream.probes.base import ProbeTarget
from floe_stream.probes.guard import ProbeGuard, static_problem

# ODCS server types → built-in probe
_SERVER_PROBES = {
    "postgres": "postgres",
    "postgresql": "postgres",
    "kafka": "kafka",
    "api": "http",
    "http": "http",
    "https": "http",
}


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
    probe can reach). The override is typed and validated when the contract loads
    (:class:`floe_stream.contracts.extension.ProbeOverride`); raises ValueError when it names an unknown server."""
    override = asset.floe.probe
    given = override.fields_set() if override is not None else set()
    servers = list(asset.servers)
    if override is not None and override.server is not None:
        servers = [s for s in servers if s.server == override.server]
        if not servers:
            raise ValueError(f"floe.probe.server {override.server!r} is not one of the contract's servers")
    base = next((t for t in (_from_server(s) for s in servers) if t is not None), None)
    if override is None or given <= {"server"}:
        return base
    kind = override.type or (base.type if base else None)
    if kind is None:
        url = override.url
        kind = "http" if isinstance(url, str) and url.startswith(("http://", "https://")) else "tcp"

    def pick(name: str, fallback: Any) -> Any:
        return getattr(override, name) if name in given else fallback

    return ProbeTarget(
        type=str(kind),
        host=pick("host", base.host if base else None),
        port=pick("port", base.port if base else None),
        url=pick("url", base.url if base else None),
        database=pick("database", base.database if base else None),
        expected_status=override.expected_status or (200,),
        options=override.options(),
    )


def probe_problems(asset: MonitoredAsset, guard: ProbeGuard | None = None) -> list[str]:
    """Lint: an availability SLA without a usable probe target (``servers`` or ``floe.probe``), or with one
    the operator's allow-list (``guard``, default: the default allow-list) does not permit."""
    try:
        target = target_for(asset) if asset.availability is not None else None
        if asset.availability is not None and target is None:
            return [
                f"{asset.asset_id}: availability SLA but no probe target (servers or floe.probe); not pinged"
            ]
    except ValueError as exc:
        return [f"{asset.asset_id}: {exc}"]
    if target is not None:
        refused = static_problem(target, guard if guard is not None else ProbeGuard())
        if refused:
            return [f"{asset.asset_id}: availability not evaluated: {refused}"]
    return []


def probe_where(asset: MonitoredAsset, guard: ProbeGuard | None = None) -> str:
    """Where an asset is pinged, for ``floe contracts explain``: the target, or why it is not pinged."""
    try:
        target = target_for(asset)
    except ValueError as exc:
        return f"not evaluated: invalid probe: {exc}"
    if target is None:
        return "no probe target: not pinged"
    refused = static_problem(target, guard if guard is not None else ProbeGuard())
    return f"not evaluated: {refused}" if refused else target.display()

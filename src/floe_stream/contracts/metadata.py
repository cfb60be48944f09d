"""What a contract says besides its tables and SLAs: who owns it, where it is served, and its ``floe`` settings."""

from __future__ import annotations

from typing import Any

from open_data_contract_standard.model import CustomProperty, Server, Team, TeamMember
from pydantic import ValidationError

from floe_stream.contracts.document import DocumentProblem, kind, required
from floe_stream.contracts.extension import FloeExtension, extension_problem, unknown_keys
from floe_stream.contracts.models import ServerRef

__all__ = ["floe_settings", "server_ref", "team_and_owner", "typed_floe"]


def team_and_owner(
    team: Team | list[TeamMember] | None, custom: list[CustomProperty] | None
) -> tuple[str | None, str | None]:
    """(team name, owner): v3.1 ``team`` is an object with members, v3.0 a bare list of members.

    The owner is the ``owner`` custom property if set, else the current member (no ``dateOut``) whose role
    contains "owner", else the first current member."""
    team_name, members = (team.name, team.members or []) if isinstance(team, Team) else (None, team or [])
    current = [m for m in members if not m.dateOut] or members
    member = next(
        (m for m in current if m.role and "owner" in m.role.lower()), current[0] if current else None
    )
    owner = (member.username or member.name) if member else None
    for prop in custom or []:
        if prop.property == "owner" and isinstance(prop.value, str) and prop.value.strip():
            owner = prop.value.strip()
    return team_name, owner


def server_ref(server: Server, where: str, warnings: list[str]) -> ServerRef:
    port: int | None = None
    if isinstance(server.port, int):
        port = server.port
    elif isinstance(server.port, str) and server.port.strip().isdigit():
        port = int(server.port)
    elif server.port is not None:
        warnings.append(f"{where}.port: {server.port!r} is not a port number; ignored")
    return ServerRef(
        server=required(server.server, where, "server"),
        type=required(server.type, where, "type"),
        host=server.host,
        port=port,
        database=server.database,
        schema_name=server.schema_,
        url=server.endpointUrl or server.location,
        catalog=server.catalog,
        project=server.project,
        dataset=server.dataset,
        account=server.account,
        region=server.regionName or server.region,
        service_name=server.serviceName,
        location=server.location or server.path,
        catalog_url=server.catalogUrl,
        warehouse=server.warehouse,
        namespace=server.namespace,
        environment=server.environment,
    )


def floe_settings(
    props: list[CustomProperty] | None, where: str, warnings: list[str] | None = None
) -> tuple[dict[str, Any], FloeExtension]:
    """The raw mapping under the ``floe`` custom property and its typed, validated form."""
    found = [(j, p.value) for j, p in enumerate(props or []) if p.property == "floe"]
    if not found:
        return {}, FloeExtension()
    if len(found) > 1:
        raise DocumentProblem(
            f"{where}: the 'floe' custom property appears {len(found)} times; merge them into one"
        )
    j, value = found[0]
    at = f"{where}[{j}] floe"
    if value is None:
        return {}, FloeExtension()
    if not isinstance(value, dict):
        raise DocumentProblem(f"{at}: value must be a mapping of floe settings, got {kind(value)}")
    if warnings is not None:
        warnings.extend(f"{at}: {w}" for w in unknown_keys(value))
    return dict(value), typed_floe(value, at)


def typed_floe(value: dict[str, Any], at: str) -> FloeExtension:
    """``value`` as :class:`FloeExtension`; DocumentProblem naming the exact key otherwise."""
    try:
        return FloeExtension.model_validate(value)
    except ValidationError as exc:
        key, problem = extension_problem(exc)
        raise DocumentProblem(f"{at}.{key}: {problem}") from None

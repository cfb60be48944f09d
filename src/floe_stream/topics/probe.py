"""Internal: the outcome of one availability ping. Keyed by asset, co-partitioned with the inputs."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from floe_stream.topics.base import WireModel
from floe_stream.topics.bounds import Identifier, NonEmptyIdentifier, Text


class ProbeResult(WireModel):
    probe_id: Identifier = Field(description="deterministic: asset + scheduled tick time")
    asset: NonEmptyIdentifier
    scheduled_at: AwareDatetime = Field(
        description="the tick time the ping was due for (dedupe key per asset)"
    )
    started_at: AwareDatetime
    duration_ms: float = Field(ge=0, allow_inf_nan=False)
    ok: bool
    reason: Text | None = Field(
        default=None, description="why it failed: timeout, connection refused, status 503 …"
    )
    probe: Identifier = Field(description="probe type used: postgres, http, tcp, kafka or a plug-in name")
    target: Identifier = Field(description="host:port or URL without credentials")

"""Internal: the outcome of one availability ping. Keyed by asset, co-partitioned with the inputs."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from floe_stream.topics.base import WireModel


class ProbeResult(WireModel):
    probe_id: str = Field(description="deterministic: asset + scheduled tick time")
    asset: str = Field(min_length=1)
    scheduled_at: AwareDatetime = Field(
        description="the tick time the ping was due for (dedupe key per asset)"
    )
    started_at: AwareDatetime
    duration_ms: float = Field(ge=0)
    ok: bool
    reason: str | None = Field(
        default=None, description="why it failed: timeout, connection refused, status 503 …"
    )
    probe: str = Field(description="probe type used: postgres, http, tcp, kafka or a plug-in name")
    target: str = Field(description="host:port or URL without credentials")

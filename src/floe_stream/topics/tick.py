"""Input: a tick drives time (absence deadlines, availability pings). One per partition per interval."""

from __future__ import annotations

from pydantic import AwareDatetime, Field

from floe_stream.topics.base import WireModel
from floe_stream.topics.bounds import NonEmptyIdentifier


class Tick(WireModel):
    tick_time: AwareDatetime = Field(description="interval-aligned time this tick stands for")
    interval_s: float = Field(gt=0, allow_inf_nan=False)
    ticker_id: NonEmptyIdentifier

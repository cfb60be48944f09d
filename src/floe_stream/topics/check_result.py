"""Output: one record per check evaluation (pass, fail, skipped or error). Keyed by asset."""

from __future__ import annotations

from typing import Literal

import orjson
from pydantic import AwareDatetime, Field

from floe_stream.topics.base import WireModel
from floe_stream.topics.enums import CheckStatus, CheckType, Severity


class CheckResult(WireModel):
    result_id: str = Field(description="deterministic: the same input always gives the same id")
    asset: str
    contract_id: str
    contract_version: str
    check_type: CheckType
    status: CheckStatus
    severity: Severity | None = None
    evaluated_at: AwareDatetime
    trigger: Literal["event", "tick", "replay"] = "event"
    metric: float | None = Field(
        default=None, description="data age (s), quality score, availability ratio …"
    )
    sla_consumed: float | None = Field(default=None, description="fraction of the SLA used, 1.0 = breached")
    expected: str | None = None
    actual: str | None = None
    message: str = ""
    source_event_id: str | None = None

    def to_json(self) -> bytes:
        """The same bytes as ``model_dump_json()`` (a unit test holds them equal), ~4× faster: every field is
        a str, number, None, StrEnum or datetime, which orjson writes exactly as pydantic does."""
        return orjson.dumps(self.__dict__, option=orjson.OPT_UTC_Z)

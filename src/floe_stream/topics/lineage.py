"""Internal: what every processor instance shares about lineage and asset health (compacted topic).

Keys: ``edge:<job>|<in|out>|<dataset>`` (one lineage edge seen in an OpenLineage run event that reads or writes
a monitored asset; a tombstone when it expires) and
``health:<asset>`` (the asset's open violation episodes, published by the processor that owns the asset when
they change; an empty list = healthy). Each processor reads the topic in full (no consumer group), so
impact context (downstream consumers, upstream assets currently violating) spans all instances.
"""

from __future__ import annotations

from typing import Literal

from pydantic import AwareDatetime, Field

from floe_stream.topics.base import WireModel


class OpenEpisodeSummary(WireModel):
    check_type: str
    severity: str
    since: AwareDatetime


class LineageEdge(WireModel):
    kind: Literal["edge"] = "edge"
    job: str = Field(description="'<namespace>/<name>' of the OpenLineage job")
    dataset: str = Field(description="'<namespace>/<name>' of the dataset")
    direction: Literal["in", "out"] = Field(description="in = the job reads the dataset, out = it writes it")
    seen_at: AwareDatetime | None = Field(
        default=None, description="tick time the publishing processor last saw it; expires a week later"
    )

    def key(self) -> str:
        return f"edge:{self.job}|{self.direction}|{self.dataset}"


class AssetHealth(WireModel):
    kind: Literal["health"] = "health"
    asset: str
    open: list[OpenEpisodeSummary] = Field(default_factory=list)

    def key(self) -> str:
        return f"health:{self.asset}"

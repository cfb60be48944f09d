"""Base classes for wire models: our own formats are frozen and strict, foreign ones tolerant."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class WireModel(BaseModel):
    """A wire format we own: frozen, unknown fields rejected."""

    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)


class ForeignModel(BaseModel):
    """A wire format somebody else owns (OpenLineage, Iceberg): frozen, unknown fields kept."""

    model_config = ConfigDict(frozen=True, extra="allow", populate_by_name=True)

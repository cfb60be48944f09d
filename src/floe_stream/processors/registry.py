"""The checks the processor runs, in this order. A new check is one module in ``checks/`` (a class with
``check_type``, ``on_update``, ``on_tick`` and ``explain``: :class:`~floe_stream.processors.checks.base.Check`)
plus one line here; its ``explain()`` is what ``floe contracts explain`` shows for it (in this order too)."""

from __future__ import annotations

from floe_stream.processors.checks.availability import AvailabilityCheck
from floe_stream.processors.checks.base import Check
from floe_stream.processors.checks.drift import SchemaDriftCheck
from floe_stream.processors.checks.frequency import FrequencyCheck
from floe_stream.processors.checks.freshness import FreshnessCheck
from floe_stream.processors.checks.lifecycle import LifecycleCheck
from floe_stream.processors.checks.quality import QualityCheck
from floe_stream.processors.checks.retention import RetentionCheck
from floe_stream.processors.checks.time_of_availability import TimeOfAvailabilityCheck

CHECKS: tuple[Check, ...] = (
    FreshnessCheck(),
    SchemaDriftCheck(),
    QualityCheck(),
    AvailabilityCheck(),
    FrequencyCheck(),
    TimeOfAvailabilityCheck(),
    RetentionCheck(),  # updates only, LifecycleCheck ticks only: their order matters to explain alone
    LifecycleCheck(),
)

"""A check that raises over the real broker: an ``error`` check result for that check, the other checks'
results and violations as usual, and nothing dead-lettered (the event is not lost)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from floe_stream.contracts.models import MonitoredAsset
from floe_stream.processors.checks.base import ExplainContext
from floe_stream.processors.checks.freshness import FreshnessCheck
from floe_stream.processors.checks.quality import QualityCheck
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import AssetState, AssetUpdate, EvalContext, Evaluation
from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.settings import Settings
from floe_stream.topics import CheckResult, MaterializationEvent, TopicKey, ViolationData
from floe_stream.topics.enums import CheckStatus, CheckType
from tests.conftest import REPO, wait_for
from tests.integration.helpers import Running, publish, read_all, violations

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


class BrokenDrift:
    check_type = CheckType.SCHEMA_DRIFT

    def on_update(
        self, asset: MonitoredAsset, state: AssetState, update: AssetUpdate, ctx: EvalContext
    ) -> list[Evaluation]:
        raise RuntimeError("bug in the drift check")

    def on_tick(self, asset: MonitoredAsset, state: AssetState, ctx: EvalContext) -> list[Evaluation]:
        return []

    def explain(self, asset: MonitoredAsset, ex: ExplainContext) -> list[dict[str, Any]]:
        return []


async def test_a_raising_check_is_an_error_result_not_a_dead_letter(settings: Settings) -> None:
    s = settings.model_copy(update={"contracts_dir": REPO / "tests" / "fixtures" / "contracts"})
    engine = Engine(checks=(FreshnessCheck(), BrokenDrift(), QualityCheck()), clock_skew_s=s.clock_skew_s)
    processor = processor_service(s, load_registry(s), engine=engine)
    async with Running(processor):
        await wait_for(lambda: processor.ever_assigned)
        old = datetime.now(UTC) - timedelta(hours=2)  # test.slow: 1 h latency SLA → breached on arrival
        await publish(s, TopicKey.MATERIALIZATIONS, [
            ("test.slow", MaterializationEvent(event_id="e-broken", asset="test.slow", materialized_at=old)),
        ])  # fmt: skip

        async def results() -> list[CheckResult] | None:
            got = [
                CheckResult.model_validate_json(r.value) for r in await read_all(s, TopicKey.CHECK_RESULTS)
            ]
            mine = [r for r in got if r.source_event_id == "e-broken"]
            return mine if len(mine) >= 2 else None

        got = await wait_for(results, timeout=15)
        by_type = {r.check_type: r for r in got}
        assert by_type[CheckType.SCHEMA_DRIFT].status == CheckStatus.ERROR
        assert "RuntimeError: bug in the drift check" in by_type[CheckType.SCHEMA_DRIFT].message
        assert by_type[CheckType.FRESHNESS].status == CheckStatus.FAIL  # the other check ran
        opened = await wait_for(lambda: _freshness_violation(s), timeout=10)
        assert opened.asset == "test.slow"
        assert await read_all(s, TopicKey.DLQ) == []  # the event was not dead-lettered


async def _freshness_violation(s: Settings) -> ViolationData | None:
    for e in await violations(s):
        if isinstance(e.data, ViolationData) and e.data.violation_type == CheckType.FRESHNESS:
            return e.data
    return None

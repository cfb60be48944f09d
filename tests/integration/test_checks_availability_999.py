"""Availability at 99.9 % over the real broker: a target that goes down is an ERROR after three failed pings
(long before 1000 samples could judge the ratio), and the episode resolves five pings after it is back."""

from __future__ import annotations

from pathlib import Path

import pytest

from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.runtime.deployables.ticker import Ticker
from floe_stream.settings import Settings
from floe_stream.topics import CheckResult, CheckStatus, ResolvedData, Severity, TopicKey, ViolationData
from tests.conftest import wait_for
from tests.integration.checks_support import HttpTarget, availability_contract, probing_loopback, write
from tests.integration.helpers import Running, read_all, violations

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


async def _results(s: Settings) -> list[CheckResult]:
    out = [CheckResult.model_validate_json(r.value) for r in await read_all(s, TopicKey.CHECK_RESULTS)]
    return [r for r in out if r.asset == "test.api" and r.check_type.value == "availability"]


@pytest.mark.slow
async def test_outage_and_recovery_at_999(settings: Settings, tmp_path: Path) -> None:
    http = await HttpTarget(status=200).start()
    server = f"  - server: api\n    type: api\n    location: http://127.0.0.1:{http.port}/health"
    contracts = tmp_path / "contracts"
    write(
        contracts,
        "api.odcs.yaml",
        availability_contract("avail-999", "test.api", server, sla="99.9%", interval_s=0.3),
    )
    s = probing_loopback(settings, contracts_dir=contracts)
    processor = processor_service(s, load_registry(s))
    try:
        async with Running(processor, Ticker(s, ticker_id="t1")):
            await wait_for(lambda: processor.ever_assigned, timeout=30)
            await wait_for(lambda: http.requests >= 2, timeout=30)
            http.status = 503

            async def opened() -> ViolationData | None:
                for e in await violations(s):
                    if isinstance(e.data, ViolationData) and e.data.asset == "test.api":
                        return e.data
                return None

            v = await wait_for(opened, timeout=30)
            assert v.severity == Severity.ERROR
            assert v.context["consecutive_failures"] == "3"  # not the first failed ping

            # the check results are another topic: no order with the violations
            async def first_failed_ping() -> CheckResult | None:
                return next((r for r in await _results(s) if "down" in r.message), None)

            first_fail = await wait_for(first_failed_ping, timeout=30)
            assert first_fail.status == CheckStatus.PASS  # one failed ping: no verdict yet

            http.status = 200

            async def resolved() -> ResolvedData | None:
                for e in await violations(s):
                    if isinstance(e.data, ResolvedData) and e.data.correlation_key == v.correlation_key:
                        return e.data
                return None

            back = await wait_for(resolved, timeout=30)
            assert back.open_duration_s < 20  # minutes-scale at 60 s pings, not the rest of the 24 h window

            async def results_since() -> list[CheckResult]:  # another topic: no order with the violations
                return [r for r in await _results(s) if r.evaluated_at >= back.resolved_at]

            after = await wait_for(results_since, timeout=30)
            assert {r.status for r in after} == {CheckStatus.PASS}  # fewer than 1000 pings: outage rule only
    finally:
        await http.stop()

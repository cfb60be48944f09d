"""The SLA properties beyond latency over the real broker: a missed ``frequency`` run while the data is
still fresh, a missed ``timeOfAvailability`` deadline, and an ``endOfSupport`` notice to the consumers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from floe_stream.processors.model import AssetState
from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.runtime.deployables.ticker import Ticker
from floe_stream.settings import Settings
from floe_stream.topics import MaterializationEvent, ResolvedData, Severity, TopicKey, ViolationData
from floe_stream.topics.enums import CheckType
from tests.conftest import wait_for
from tests.integration.checks_support import write
from tests.integration.helpers import Running, publish, violations

pytestmark = [pytest.mark.kafka, pytest.mark.postgres]


def contract(deadline: str) -> str:
    return f"""apiVersion: v3.1.0
kind: DataContract
id: sla-props
name: sla-props
version: 1.0.0
status: active
customProperties:
  - property: floe
    value:
      consumers: [finance-dashboard]
schema:
  - name: freq
    customProperties: [{{property: floe, value: {{asset: test.freq}}}}]
    properties: [{{name: id}}]
  - name: toa
    customProperties: [{{property: floe, value: {{asset: test.toa}}}}]
    properties: [{{name: id}}]
  - name: eos
    customProperties: [{{property: floe, value: {{asset: test.eos}}}}]
    properties: [{{name: id}}]
slaProperties:
  - property: latency
    value: 1
    unit: h
    element: freq
  - property: frequency
    value: 2
    unit: s
    element: freq
  - property: timeOfAvailability
    value: "{deadline}"
    element: toa
  - property: endOfSupport
    value: "2020-01-01T00:00:00Z"
    element: eos
"""


async def _violation(
    s: Settings, asset: str, kind: type = ViolationData
) -> ViolationData | ResolvedData | None:
    for e in await violations(s):
        if isinstance(e.data, kind) and e.data.asset == asset:
            return e.data
    return None


async def test_frequency_time_of_availability_and_lifecycle(settings: Settings, tmp_path: Path) -> None:
    now = datetime.now(UTC)
    deadline = (now - timedelta(seconds=30)).strftime("%H:%M:%SZ")  # today's deadline has just passed
    s = settings.model_copy(
        update={"contracts_dir": write(tmp_path / "c", "sla.odcs.yaml", contract(deadline)).parent}
    )
    # floe has watched test.toa for two days (as a processor running since then would have)
    seeded = AssetState(asset_id="test.toa", watch_since=now - timedelta(days=2))
    await publish(s, TopicKey.PROCESSOR_STATE, [("test.toa", seeded.model_dump_json().encode())])
    processor = processor_service(s, load_registry(s))
    async with Running(processor, Ticker(s, ticker_id="t1")):
        await wait_for(lambda: processor.ever_assigned)
        await publish(s, TopicKey.MATERIALIZATIONS, [
            ("test.freq", MaterializationEvent(event_id="f1", asset="test.freq", materialized_at=datetime.now(UTC))),
        ])  # fmt: skip

        missed = await wait_for(lambda: _violation(s, "test.freq"), timeout=15)
        assert isinstance(missed, ViolationData)
        assert (missed.violation_type, missed.severity) == (CheckType.FREQUENCY, Severity.ERROR)
        assert "missed run" in missed.message  # while the data is well inside its 1 h latency SLA

        await publish(s, TopicKey.MATERIALIZATIONS, [
            ("test.freq", MaterializationEvent(event_id="f2", asset="test.freq", materialized_at=datetime.now(UTC))),
        ])  # fmt: skip
        back = await wait_for(lambda: _violation(s, "test.freq", ResolvedData), timeout=10)
        assert back.correlation_key == missed.correlation_key

        toa = await wait_for(lambda: _violation(s, "test.toa"), timeout=10)
        assert isinstance(toa, ViolationData)
        assert toa.violation_type == CheckType.TIME_OF_AVAILABILITY
        assert "missed" in toa.message

        eos = await wait_for(lambda: _violation(s, "test.eos"), timeout=10)
        assert isinstance(eos, ViolationData)
        assert (eos.violation_type, eos.severity) == (CheckType.LIFECYCLE, Severity.WARNING)
        assert eos.consumers == ["finance-dashboard"]
        assert "past end of support" in eos.message

"""Instruments are injected: the processor the composition root builds (runtime/deployables/app.py ``processor_service``)
records into the Instruments it is given — its checks' durations (BatchMetrics) and the probes
its contract runtime refuses — never into the process-wide ones behind its back."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

from floe_stream.processors.model import Outputs, Record
from floe_stream.processors.testing import Inputs
from floe_stream.runtime.deployables.app import load_registry, processor_service
from floe_stream.settings import KafkaSettings, Settings
from floe_stream.telemetry.metrics import Instruments
from floe_stream.topics.catalog import TopicKey
from floe_stream.topics.materialization import MaterializationEvent
from tests.conftest import wait_for


class Recorder:
    """One instrument: every call (value, attributes)."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, dict[str, Any]]] = []

    def add(self, value: float, attributes: dict[str, Any] | None = None) -> None:
        self.calls.append((value, dict(attributes or {})))

    record = set = add


class Recording:
    """Stands in for :class:`Instruments`: any instrument asked for is a :class:`Recorder`."""

    def __getattr__(self, name: str) -> Recorder:
        r = Recorder()
        setattr(self, name, r)
        return r


CONTRACT = """apiVersion: v3.1.0
kind: DataContract
id: inj
name: inj
version: 1.0.0
status: active
customProperties:
  - property: floe
    value:
      probe: {type: http, url: 'http://127.0.0.1:9/health'}
schema:
  - name: orders
    customProperties:
      - property: floe
        value: {asset: inj.orders}
slaProperties:
  - property: availability
    value: "50%"
  - property: frequency
    value: 1h
"""


async def test_the_processor_records_into_the_instruments_it_is_given(tmp_path: Path) -> None:
    (tmp_path / "inj.yaml").write_text(CONTRACT)
    s = Settings(
        kafka=KafkaSettings(topic_prefix="inj.", bootstrap_servers="127.0.0.1:9"),
        contracts_dir=tmp_path,
        health_port=-1,
    )
    rec = Recording()
    processor = processor_service(s, load_registry(s), metrics=cast(Instruments, rec))
    try:
        at = datetime.now(UTC)
        inputs = Inputs(prefix="inj.")
        mat = MaterializationEvent(asset="inj.orders", materialized_at=at)
        kind, r = inputs(TopicKey.MATERIALIZATIONS, mat, at=at)

        def emit(_: Record | None, o: Outputs) -> None:
            pass

        processor.pipeline.feed(kind, r.partition, [r], emit)
        processor.obs.acc.flush(force=True)
        assert rec.check_duration.calls  # BatchMetrics: the checks were timed into the given instruments
        # ChecksRuntime: the contract's probe targets loopback, which the default allow-list refuses
        assert processor.checks.schedule_pings(list(processor.checks.live.registry.assets()), at) == 1
        assert await wait_for(lambda: rec.probes_refused.calls == [(1, {})], timeout=10)
    finally:
        await processor.checks.stop()
        await processor.strategy.close()  # never started: closes what the constructors made
        await processor.consumer.stop()
        if processor.producer is not None:
            await processor.producer.stop()


def test_only_the_composition_root_asks_for_the_process_instruments() -> None:
    """``instruments()`` (the process's one set) is called where deployables are composed, nowhere else: every
    other part gets its instruments as a parameter (no silent fallback to the global ones)."""
    src = Path(__file__).resolve().parents[2] / "src" / "floe_stream"
    callers = sorted(
        str(f.relative_to(src)) for f in src.rglob("*.py") if re.search(r"\binstruments\(\)", f.read_text())
    )
    assert callers == [
        "runtime/deployables/app.py",  # the composition root
        "sinks/alerts/replay.py",  # `floe alerts replay`, a one-shot command composing its own dispatcher
        "telemetry/metrics.py",  # the definition (and setup_metrics creating them up front)
    ]

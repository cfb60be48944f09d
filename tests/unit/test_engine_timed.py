"""The engine measures the first ``timed_updates`` updates of a batch through the instrumented checks and calls
the plain checks for the rest: the same verdicts either way, the duration samples only from the measured ones."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from floe_stream.contracts.models import FreshnessSla, MonitoredAsset
from floe_stream.processors.engine import Engine
from floe_stream.processors.model import AssetUpdate, Outputs
from floe_stream.processors.registry import CHECKS
from floe_stream.telemetry.metrics import BatchMetrics, instrument_checks, instruments

T0 = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def asset() -> MonitoredAsset:
    return MonitoredAsset.model_validate({
        "asset_id": "sales.orders", "contract_id": "c1", "contract_name": "sales-orders",
        "contract_version": "1.0.0", "table": "orders", "freshness": FreshnessSla(threshold_s=120),
    })  # fmt: skip


def run(engine: Engine, n: int) -> list[tuple[str, str, str]]:
    a, out = asset(), Outputs()
    for i in range(n):
        at = T0 + timedelta(minutes=i)
        u = AssetUpdate(
            "sales.orders", "materialization", f"e{i}", at, data_timestamp=T0 + timedelta(seconds=30 * i)
        )
        engine.update_into(a, u, at, out)
    return [(r.result_id, r.status.value, r.message or "") for r in out.check_results]


def test_only_the_budgeted_updates_are_measured_and_the_verdicts_do_not_change() -> None:
    acc = BatchMetrics(lambda _: "sales-orders", instruments())
    engine = Engine(instrument_checks(CHECKS, acc), untimed=CHECKS)
    engine.timed_updates = 3
    measured = run(engine, 10)
    samples = sum(len(v) for v in acc.durations.values())
    assert samples == 3  # one freshness evaluation per update, measured for the first three only
    assert engine.timed_updates == 0
    assert {status for _, status, _ in measured} == {"pass", "fail"}  # the SLA is breached half way
    assert measured == run(Engine(CHECKS), 10)  # the plain engine: identical results


def test_untimed_must_be_the_same_checks() -> None:
    with pytest.raises(ValueError, match="same checks"):
        Engine(CHECKS, untimed=CHECKS[:-1])

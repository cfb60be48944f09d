"""timeToDetect / timeToNotify / timeToRepair summaries (pure)."""

from __future__ import annotations

from floe_stream.contracts.models import ResponseSla
from floe_stream.reporting.response import ResponseRow, render_response, summarize_response


def test_targets_episodes_and_open_episodes() -> None:
    rows = [
        ResponseRow("a", detect_s=30, notify_s=5, delivered=True, repair_s=600, resolved=True),
        ResponseRow(
            "a", detect_s=None, notify_s=None, delivered=False, repair_s=100, resolved=False
        ),  # open, young
        ResponseRow(
            "a", detect_s=200, notify_s=90, delivered=True, repair_s=7200, resolved=False
        ),  # open, old
        ResponseRow("b", detect_s=10, notify_s=1, delivered=True, repair_s=50, resolved=True),
    ]
    stats = {
        (s.asset, s.measure): s
        for s in summarize_response(
            rows, {"a": ResponseSla(time_to_detect_s=60, time_to_notify_s=60, time_to_repair_s=3600)}
        )
    }
    assert (stats["a", "detect"].episodes, stats["a", "detect"].within) == (2, 1)  # one not measurable
    assert (stats["a", "notify"].episodes, stats["a", "notify"].within) == (3, 1)  # never delivered = late
    assert (stats["a", "repair"].episodes, stats["a", "repair"].within) == (
        2,
        1,
    )  # the young open one: no verdict
    assert stats["a", "repair"].compliance_pct == 50.0
    assert stats["b", "detect"].within is None  # no target: measured, not judged
    assert stats["b", "detect"].compliance_pct is None
    assert "b | detect | - | 1 | - | 10.0s | 10.0s" in render_response(list(stats.values()))

"""`floe run processor` with timing probes, for ``bench/processor.py --breakdown``: where an input record's
latency goes inside the processor process. Bench code only: it wraps methods from the outside.

    python -m bench.processor_probe OUT.json run processor

Per batch of materializations handled, for the records that change their asset's schema (the ones whose
violations bench/processor.py times) and for all: input CreateTime → handler start (the fetch: the broker's
append, the fetch request and response, aiokafka's decoding, waiting for the loop), the handler's own time
(decode → checks → episodes → encoded outputs handed to the producers), and the loop's lateness (a task that
asks to wake every millisecond: how long the loop was busy elsewhere). Written as percentiles at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import sys
import time
from typing import Any

from floe_stream.runtime.framework import service

_rows: list[tuple[float, float, list[int], list[int]]] = []  # (start ms, end ms, input ts, drift input ts)
_late: list[float] = []
_process = service.ConsumerService.process
_run = service.ConsumerService.run


async def _timed_process(self: service.ConsumerService, batch: service.Batch) -> None:
    t0 = time.time() * 1000
    mats = [r for recs in batch.values() for r in recs if r.topic.endswith("materializations")]
    await _process(self, batch)
    if mats:
        drift = [r.timestamp for r in mats if b'"columns"' in (r.value or b"")]
        _rows.append((t0, time.time() * 1000, [r.timestamp for r in mats], drift))


async def _lateness() -> None:
    while True:
        t = time.perf_counter()
        await asyncio.sleep(0.001)
        _late.append((time.perf_counter() - t) * 1000 - 1)


async def _run_probed(self: service.ConsumerService) -> None:
    task = asyncio.ensure_future(_lateness())
    try:
        await _run(self)
    finally:
        task.cancel()


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return round(xs[min(len(xs) - 1, int(len(xs) * q / 100))], 2) if xs else float("nan")


def _dump(out: str) -> None:
    rows = _rows[len(_rows) // 8 :]  # the warm-up left out
    fetch = [t0 - ts for t0, _, tss, _ in rows for ts in tss]
    fetch_d = [t0 - ts for t0, _, _, d in rows for ts in d]
    handler = [t1 - t0 for t0, t1, _, _ in rows]
    handler_d = [t1 - t0 for t0, t1, _, d in rows if d]
    qs = (50, 90, 99)
    summary: dict[str, Any] = {
        "batches": len(rows),
        "records_per_batch_p50_p99": [_pct([len(t) for _, _, t, _ in rows], q) for q in (50, 99)],
        "input_to_handler_ms": [_pct(fetch, q) for q in qs],
        "input_to_handler_drift_ms": [_pct(fetch_d, q) for q in qs],
        "handler_ms": [_pct(handler, q) for q in qs],
        "handler_with_drift_ms": [_pct(handler_d, q) for q in qs],
        "loop_lateness_ms": [_pct(_late, q) for q in qs],
    }
    with open(out, "w") as fh:
        json.dump(summary, fh)


def main() -> None:
    out = sys.argv.pop(1)
    service.ConsumerService.process = _timed_process  # type: ignore[method-assign]
    service.ConsumerService.run = _run_probed  # type: ignore[method-assign]
    atexit.register(_dump, out)
    from floe_stream.cli.main import main as floe

    floe()


if __name__ == "__main__":
    main()

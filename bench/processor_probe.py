"""`floe run processor` with timing probes, for ``bench/processor.py --breakdown``: where an input record's
latency goes inside the processor process. Bench code only: it wraps methods from the outside.

    python -m bench.processor_probe OUT.json run processor

Per batch of materializations handled, for the records that change their asset's schema (the ones whose
violations bench/processor.py times) and for all: input CreateTime → handler start (the fetch: the broker's
append, the fetch request and response, aiokafka's decoding, waiting for the loop), the handler's own time
(decode → checks → episodes → encoded outputs handed to the producers) and its CPU per record (the thread's
CPU time over the batch, the little that other tasks run while it awaits the producers included: what the handler
costs when the process shares its cores, beside bench/processor_cpu.py's figure on a warm cache), the gap before a batch (the end of the previous one → this one's start: the next fetch's answer,
aiokafka's decoding, waiting for a core), whether a fetch was in flight when the handler started (aiokafka
sends the next one before the batch is handled: then fetching and handling overlap), the loop's lateness (a
task that asks to wake every millisecond: how long the loop was busy elsewhere) and the garbage collector's
pauses. Written as percentiles at exit.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import json
import sys
import time
from typing import Any

from floe_stream.runtime.framework import service

_rows: list[tuple[float, float, list[int], list[int]]] = []  # (start ms, end ms, input ts, drift input ts)
# (gap before the batch ms, handler CPU a record ms, a fetch in flight), one for each row of _rows
_more: list[tuple[float, float, bool]] = []
_late: list[float] = []
_gc: list[tuple[float, int, float]] = []  # (end ms, generation, pause ms)
_gc_t0 = [0.0]
_prev_end = [0.0]
_process = service.ConsumerService.process
_run = service.ConsumerService.run


async def _timed_process(self: service.ConsumerService, batch: service.Batch) -> None:
    t0, c0 = time.time() * 1000, time.thread_time()
    gap = t0 - _prev_end[0] if _prev_end[0] else float("nan")
    fetcher = getattr(self.consumer, "_fetcher", None)  # aiokafka's internals: bench code only
    in_flight = bool(getattr(fetcher, "_in_flight", ()))
    mats = [r for recs in batch.values() for r in recs if r.topic.endswith("materializations")]
    await _process(self, batch)
    t1 = time.time() * 1000
    _prev_end[0] = t1
    if mats:
        drift = [r.timestamp for r in mats if b'"columns"' in (r.value or b"")]
        _rows.append((t0, t1, [r.timestamp for r in mats], drift))
        _more.append((gap, (time.thread_time() - c0) * 1000 / len(mats), in_flight))


def _gc_callback(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _gc_t0[0] = time.perf_counter()
    else:
        _gc.append((time.time() * 1000, info["generation"], (time.perf_counter() - _gc_t0[0]) * 1000))


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
    skip = len(_rows) // 8  # the warm-up left out
    rows, more = _rows[skip:], _more[skip:]
    fetch = [t0 - ts for t0, _, tss, _ in rows for ts in tss]
    fetch_d = [t0 - ts for t0, _, _, d in rows for ts in d]
    handler = [t1 - t0 for t0, t1, _, _ in rows]
    handler_d = [t1 - t0 for t0, t1, _, d in rows if d]
    more_d = [m for m, r in zip(more, rows, strict=True) if r[3]]
    gcs = [(g, d) for t, g, d in _gc if rows and t >= rows[0][0]]  # after the warm-up, like the rows
    qs = (50, 90, 99)
    summary: dict[str, Any] = {
        "batches": len(rows),
        "records_per_batch_p50_p99": [_pct([len(t) for _, _, t, _ in rows], q) for q in (50, 99)],
        "records_per_drift_batch_p50_p99": [_pct([len(t) for _, _, t, d in rows if d], q) for q in (50, 99)],
        "input_to_handler_ms": [_pct(fetch, q) for q in qs],
        "input_to_handler_drift_ms": [_pct(fetch_d, q) for q in qs],
        "handler_ms": [_pct(handler, q) for q in qs],
        "handler_with_drift_ms": [_pct(handler_d, q) for q in qs],
        "handler_cpu_a_record_drift_ms": [_pct([c for _, c, _ in more_d], q) for q in qs],
        "gap_before_a_batch_drift_ms": [_pct([g for g, _, _ in more_d], q) for q in qs],
        "fetch_in_flight_at_handler_start": round(sum(f for _, _, f in more) / len(more), 3)
        if more
        else None,
        "loop_lateness_ms": [_pct(_late, q) for q in qs],
        "gc_collections_gen0_1_2": [sum(1 for g, _ in gcs if g == n) for n in (0, 1, 2)],
        "gc_longest_pause_ms": round(max((d for _, d in gcs), default=0.0), 2),
    }
    with open(out, "w") as fh:
        json.dump(summary, fh)


def main() -> None:
    out = sys.argv.pop(1)
    service.ConsumerService.process = _timed_process  # type: ignore[method-assign]
    service.ConsumerService.run = _run_probed  # type: ignore[method-assign]
    gc.callbacks.append(_gc_callback)
    atexit.register(_dump, out)
    from floe_stream.cli.main import main as floe

    floe()


if __name__ == "__main__":
    main()

"""Run pings concurrently with a bound and a per-ping timeout; never inside the event-handling path.

``submit`` starts a ping as a background task and returns at once; finished outcomes collect in a buffer
that the owner drains (the processor publishes them to ``probe-results``). A ping still in flight for an
asset is not started again, so a slow target costs one slot, never a pile-up; a timeout is a failure with
reason ``timeout``.

Two lanes: an asset whose last ping timed out is *suspect* and waits for a slot of its own, smaller lane
(``suspect_concurrency``, default a quarter of the bound), so a crowd of hanging targets can never take the
slots of healthy ones; its first good answer moves it back.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from floe_stream.probes.base import Probe, ProbeError, ProbeTarget
from floe_stream.processors.ids import stable_id
from floe_stream.topics.probe import ProbeResult

log = logging.getLogger(__name__)


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ProbeError):
        return str(exc)[:200] or "failed"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()[:200]
    text = str(exc).splitlines()[0][:200] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class ProbeRunner:
    def __init__(
        self, probes: dict[str, Probe], *, concurrency: int = 200, suspect_concurrency: int | None = None
    ) -> None:
        self.probes = probes
        self.sem = asyncio.Semaphore(concurrency)
        self.suspect_sem = asyncio.Semaphore(suspect_concurrency or max(1, concurrency // 4))
        self.suspect: set[str] = set()
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self.results: list[ProbeResult] = []
        self.ready = asyncio.Event()
        self.started = 0
        self.skipped_busy = 0

    async def ping(
        self, asset_id: str, target: ProbeTarget, scheduled_at: datetime, timeout_s: float
    ) -> ProbeResult:
        """One ping (waits for a slot, then at most ``timeout_s``). Never raises for a failed ping."""
        probe = self.probes.get(target.type)
        suspect = asset_id in self.suspect
        async with self.suspect_sem if suspect else self.sem:
            started = datetime.now(UTC)
            t0 = time.perf_counter()
            ok, reason = True, None
            if probe is None:
                ok, reason = False, f"no probe for type {target.type!r}"
            else:
                try:
                    async with asyncio.timeout(timeout_s):  # no extra task per ping (unlike wait_for)
                        await probe.ping(target)
                except asyncio.CancelledError:
                    raise
                except BaseException as exc:  # any failure of a plug-in is a failed ping
                    ok, reason = False, failure_reason(exc)
            duration_ms = (time.perf_counter() - t0) * 1000
        if reason == "timeout":
            self.suspect.add(asset_id)
        elif suspect:
            self.suspect.discard(asset_id)
        return ProbeResult(
            probe_id=stable_id("probe", asset_id, scheduled_at.isoformat()),
            asset=asset_id,
            scheduled_at=scheduled_at,
            started_at=started,
            duration_ms=round(duration_ms, 3),
            ok=ok,
            reason=reason,
            probe=target.type,
            target=target.display(),
        )

    def submit(self, asset_id: str, target: ProbeTarget, scheduled_at: datetime, timeout_s: float) -> bool:
        """Start a ping in the background; False when the previous ping of this asset is still running."""
        if asset_id in self.inflight:
            self.skipped_busy += 1
            return False
        task = asyncio.create_task(
            self._run(asset_id, target, scheduled_at, timeout_s), name=f"ping:{asset_id}"
        )
        self.inflight[asset_id] = task
        self.started += 1
        return True

    async def _run(
        self, asset_id: str, target: ProbeTarget, scheduled_at: datetime, timeout_s: float
    ) -> None:
        try:
            result = await self.ping(asset_id, target, scheduled_at, timeout_s)
            self.results.append(result)
            self.ready.set()
        except Exception:
            log.exception("ping of %s crashed", asset_id)
        finally:
            self.inflight.pop(asset_id, None)

    def take(self) -> list[ProbeResult]:
        out, self.results = self.results, []
        self.ready.clear()
        return out

    async def close(self) -> None:
        tasks = list(self.inflight.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.inflight.clear()

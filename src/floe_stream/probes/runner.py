"""Run pings concurrently with a bound and a per-ping timeout; never inside the event-handling path.

``submit`` starts a ping as a background task and returns at once; finished outcomes collect in a buffer
that the owner drains (the processor publishes them to ``probe-results``). A ping still in flight for an
asset is not started again, so a slow target costs one slot, never a pile-up; a timeout is a failure with
reason ``timeout``.

Two lanes: an asset whose last ping timed out is *suspect* and waits for a slot of its own, smaller lane
(``suspect_concurrency``, default a quarter of the bound), so a crowd of hanging targets can never take the
slots of healthy ones; its first good answer moves it back. Within a lane, slots are shared per contract
(:class:`FairSlots`): one contract holds at most ``per_contract`` of them (default a quarter), and a freed
slot goes to the waiting contract holding the fewest — 200 tables of one contract against a tarpit cannot
starve the others.

Before a ping, the runner's :class:`~floe_stream.probes.guard.ProbeGuard` resolves and checks the target
against the operator's allow-list; a target that is not allowed is not pinged and produces no result (it is
counted in :attr:`ProbeRunner.refused`, and ``on_refused`` is told once per asset and reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

from floe_stream.probes.base import Probe, ProbeError, ProbeTarget
from floe_stream.probes.guard import ProbeGuard, ProbeRefused
from floe_stream.processors.ids import stable_id
from floe_stream.runtime.framework.supervision import cancel_all
from floe_stream.topics.bounds import as_text
from floe_stream.topics.probe import ProbeResult

log = logging.getLogger(__name__)


def failure_reason(exc: BaseException) -> str:
    """Why a ping failed, as the probe result's ``reason`` (valid input text: an exception quoting a server's
    answer may hold control characters, which would make the processor refuse the result)."""
    return as_text(_failure_reason(exc), 200)


def _failure_reason(exc: BaseException) -> str:
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


class FairSlots:
    """A semaphore shared by owners (contracts): at most ``limit`` holders, and at most ``per_owner`` of them
    of one owner, so no contract can take the slots the others need. A freed slot goes to the waiting owner
    that holds the fewest (first come among equals)."""

    def __init__(self, limit: int, per_owner: int | None = None) -> None:
        self.limit = limit
        self.per_owner = min(limit, per_owner or max(1, limit // 4))
        self.used = 0
        self.held: Counter[str] = Counter()
        self.waiting: dict[str, deque[asyncio.Future[None]]] = {}

    def _under_share(self, owner: str) -> bool:
        return not owner or self.held[owner] < self.per_owner  # "": not attributed, only the total bound

    def _may_take(self, owner: str) -> bool:
        return self.used < self.limit and self._under_share(owner)

    async def acquire(self, owner: str) -> None:
        if not self.waiting.get(owner) and self._may_take(owner):
            self._take(owner)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.setdefault(owner, deque()).append(fut)
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():  # granted while being cancelled: give it back
                self.release(owner)
            else:
                queue = self.waiting.get(owner)
                if queue is not None and fut in queue:
                    queue.remove(fut)
                    if not queue:
                        del self.waiting[owner]
            raise

    def _take(self, owner: str) -> None:
        self.used += 1
        self.held[owner] += 1

    def release(self, owner: str) -> None:
        self.used -= 1
        self.held[owner] -= 1
        if self.held[owner] <= 0:
            del self.held[owner]
        self._wake()

    def _wake(self) -> None:
        while self.used < self.limit:
            ready = [o for o in self.waiting if self._under_share(o)]
            if not ready:
                return
            fewest = min(ready, key=lambda o: self.held[o])
            queue = self.waiting[fewest]
            fut = queue.popleft()
            if not queue:
                del self.waiting[fewest]
            if not fut.done():
                self._take(fewest)
                fut.set_result(None)

    @contextlib.asynccontextmanager
    async def hold(self, owner: str) -> AsyncIterator[None]:
        await self.acquire(owner)
        try:
            yield
        finally:
            self.release(owner)


class ProbeRunner:
    def __init__(
        self,
        probes: dict[str, Probe],
        *,
        concurrency: int = 200,
        suspect_concurrency: int | None = None,
        per_contract: int | None = None,
        guard: ProbeGuard | None = None,
        on_refused: Callable[[str, str], None] | None = None,
    ) -> None:
        self.probes = probes
        self.guard = guard if guard is not None else ProbeGuard()
        self.on_refused = on_refused
        """``(asset id, reason)``, once per asset and reason: a target the allow-list does not permit"""
        self.slots = FairSlots(concurrency, per_contract)
        suspect = suspect_concurrency or max(1, concurrency // 4)
        self.suspect_slots = FairSlots(
            suspect, max(1, (per_contract or concurrency // 4) * suspect // concurrency)
        )
        self.suspect: set[str] = set()
        self.inflight: dict[str, asyncio.Task[None]] = {}
        self.results: list[ProbeResult] = []
        self.ready = asyncio.Event()
        self.started = 0
        self.skipped_busy = 0
        self.refused = 0
        self._refused_told: dict[str, str] = {}

    async def ping(
        self,
        asset_id: str,
        target: ProbeTarget,
        scheduled_at: datetime,
        timeout_s: float,
        owner: str = "",
    ) -> ProbeResult | None:
        """One ping (waits for a slot of ``owner``'s share, then at most ``timeout_s``, name resolution
        included). Never raises for a failed ping; None when the target is not allowed (not evaluated)."""
        probe = self.probes.get(target.type)
        suspect = asset_id in self.suspect
        async with (self.suspect_slots if suspect else self.slots).hold(owner):
            started = datetime.now(UTC)
            t0 = time.perf_counter()
            ok, reason = True, None
            if probe is None:
                ok, reason = False, f"no probe for type {target.type!r}"
            else:
                try:
                    async with asyncio.timeout(timeout_s):  # no extra task per ping (unlike wait_for)
                        pinned = await self.guard.pin(target)
                        await probe.ping(pinned)
                except asyncio.CancelledError:
                    raise
                except ProbeRefused as exc:
                    self._refuse(asset_id, str(exc))
                    return None
                except BaseException as exc:  # any failure of a plug-in is a failed ping
                    ok, reason = False, failure_reason(exc)
            duration_ms = (time.perf_counter() - t0) * 1000
        self._refused_told.pop(asset_id, None)
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

    def _refuse(self, asset_id: str, reason: str) -> None:
        self.refused += 1
        if self._refused_told.get(asset_id) != reason:
            self._refused_told[asset_id] = reason
            if self.on_refused is not None:
                self.on_refused(asset_id, reason)

    def submit(
        self, asset_id: str, target: ProbeTarget, scheduled_at: datetime, timeout_s: float, owner: str = ""
    ) -> bool:
        """Start a ping in the background; False when the previous ping of this asset is still running."""
        if asset_id in self.inflight:
            self.skipped_busy += 1
            return False
        task = asyncio.create_task(
            self._run(asset_id, target, scheduled_at, timeout_s, owner), name=f"ping:{asset_id}"
        )
        self.inflight[asset_id] = task
        self.started += 1
        return True

    async def _run(
        self, asset_id: str, target: ProbeTarget, scheduled_at: datetime, timeout_s: float, owner: str
    ) -> None:
        try:
            result = await self.ping(asset_id, target, scheduled_at, timeout_s, owner)
            if result is not None:
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
        await cancel_all(list(self.inflight.values()))
        self.inflight.clear()

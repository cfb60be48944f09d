"""PostgreSQL state of the alert decisions and the delivery ledger (tables of migration 0003_alerts). Loads and
writes only: what to decide is :mod:`.decisions`.

* a batch's state is loaded, decided and saved under a per-contract transaction-scoped advisory lock; decisions
  are recorded per event id and reused on replay: replicas and restarts decide the same event the same way,
  exactly once;
* the ledger claims (event, channel) as 'sending' before a delivery and marks it 'delivered' after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
import zlib
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from floe_stream.backoff import Backoff
from floe_stream.sinks.alerts.decisions import AlertState, Decisions
from floe_stream.sinks.alerts.model import Alert, Decision, DedupEntry, Incident, Silence
from floe_stream.topics.enums import Severity
from floe_stream.topics.violation import ViolationCloudEvent

_LOCK_NS = 0x0F1EA7  # advisory-lock namespace of the alert decisions (second key: hashtext(contract_id))
_RESEND_LOCK = 0x0F1EA8


def _lock_key(contract_id: str) -> int:
    """A stable signed 32-bit advisory-lock key per contract."""
    v = zlib.crc32(contract_id.encode())
    return v - (1 << 32) if v >= 1 << 31 else v


@dataclass
class Claim:
    claimed: set[str] = field(default_factory=set)  # ours to send now
    done: set[str] = field(default_factory=set)  # delivered (or dead-lettered) already
    busy: set[str] = field(default_factory=set)  # another sink is sending right now


def _silence(r: asyncpg.Record) -> Silence:
    return Silence(
        silence_id=r["silence_id"],
        contract=r["contract"],
        asset=r["asset"],
        starts_at=r["starts_at"],
        ends_at=r["ends_at"],
        comment=r["comment"],
        created_by=r["created_by"],
        expired_at=r["expired_at"],
    )


class DecisionTransaction:
    """Loads the state the decisions of a batch read and saves what they concluded: one read per state table,
    one ``executemany`` per write, in the transaction of :meth:`AlertStore.locked`."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self.conn = conn

    async def load(self, alerts: Sequence[Alert], *, now: datetime, rate_window_s: float) -> AlertState:
        conn = self.conn
        decided = {
            r["event_id"]: Decision(
                event_id=r["event_id"],
                notify=r["notify"],
                channels=tuple(r["channels"]),
                reason=r["reason"],
                replaces_severity=Severity(r["replaces_severity"]) if r["replaces_severity"] else None,
            )
            for r in await conn.fetch(
                "SELECT event_id, notify, channels, reason, replaces_severity FROM alert_decisions"
                " WHERE event_id = ANY($1::text[])",
                [a.violation_id for a in alerts],
            )
        }
        pending = [a for a in alerts if a.violation_id not in decided]
        if not pending:  # a replay: every event keeps its first decision
            return AlertState(decided=decided)
        silences = tuple(
            _silence(r)
            for r in await conn.fetch(
                "SELECT * FROM alert_silences WHERE expired_at IS NULL AND starts_at <= $1 AND ends_at > $1",
                now,
            )
        )
        recent = {
            r["contract_id"]: int(r["n"])
            for r in await conn.fetch(
                "SELECT contract_id, count(*) AS n FROM alert_decisions WHERE contract_id = ANY($1::text[])"
                " AND notify AND status = 'firing' AND decided_at > $2 GROUP BY contract_id",
                sorted({a.contract_id for a in pending}),
                now - timedelta(seconds=rate_window_s),
            )
        }
        keys = list(dict.fromkeys((a.asset, a.violation_type.value) for a in pending))
        dedup = {
            (r["asset"], r["violation_type"]): DedupEntry(
                asset=r["asset"],
                violation_type=r["violation_type"],
                window_started_at=r["window_started_at"],
                severity=Severity(r["severity"]),
            )
            for r in await conn.fetch(
                "SELECT d.* FROM alert_dedup d JOIN unnest($1::text[], $2::text[]) AS k(asset, violation_type)"
                " USING (asset, violation_type)",
                [k[0] for k in keys],
                [k[1] for k in keys],
            )
        }
        incidents = {
            r["correlation_key"]: Incident(
                correlation_key=r["correlation_key"],
                status=r["status"],
                severity=Severity(r["severity"]),
                channels=tuple(r["channels"]),
                violation_id=r["violation_id"],
            )
            for r in await conn.fetch(
                "SELECT correlation_key, status, severity, channels, violation_id FROM alert_incidents"
                " WHERE correlation_key = ANY($1::text[])",
                list(dict.fromkeys(a.correlation_key for a in pending)),
            )
        }
        return AlertState(
            decided=decided, silences=silences, notified_recently=recent, dedup=dedup, incidents=incidents
        )

    async def save(self, decisions: Decisions, *, now: datetime) -> None:
        conn = self.conn
        await conn.executemany(
            "INSERT INTO alert_decisions (event_id, status, correlation_key, contract_id, asset, violation_type,"
            " severity, notify, reason, channels, replaces_severity, decided_at)"
            " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT (event_id) DO NOTHING",
            [
                (
                    a.violation_id,
                    a.status,
                    a.correlation_key,
                    a.contract_id,
                    a.asset,
                    a.violation_type.value,
                    a.severity.value,
                    d.notify,
                    d.reason,
                    list(d.channels),
                    d.replaces_severity.value if d.replaces_severity else None,
                    now,
                )
                for a, d in decisions.made
            ],
        )
        if decisions.dedup:
            await conn.executemany(
                "INSERT INTO alert_dedup (asset, violation_type, window_started_at, severity)"
                " VALUES ($1,$2,$3,$4) ON CONFLICT (asset, violation_type) DO UPDATE SET"
                " window_started_at = EXCLUDED.window_started_at, severity = EXCLUDED.severity",
                [(e.asset, e.violation_type, e.window_started_at, e.severity.value) for e in decisions.dedup],
            )
        if decisions.opened:
            await conn.executemany(
                "INSERT INTO alert_incidents (correlation_key, status, severity, channels, violation_id,"
                " contract_id, asset, payload, opened_at, updated_at)"
                " VALUES ($1,'open',$2,$3,$4,$5,$6,$7::jsonb,$8,$8)"
                " ON CONFLICT (correlation_key) DO UPDATE SET status = 'open', severity = EXCLUDED.severity,"
                " channels = EXCLUDED.channels, violation_id = EXCLUDED.violation_id,"
                " payload = EXCLUDED.payload, updated_at = EXCLUDED.updated_at, resolved_at = NULL,"
                " opened_at = CASE WHEN alert_incidents.status = 'open' THEN alert_incidents.opened_at"
                " ELSE EXCLUDED.opened_at END",
                [
                    (
                        i.correlation_key,
                        i.severity.value,
                        list(i.channels),
                        a.violation_id,
                        a.contract_id,
                        a.asset,
                        a.event.model_dump_json(),
                        now,
                    )
                    for i, a in decisions.opened
                ],
            )
        if decisions.resolved:
            await conn.executemany(
                "UPDATE alert_incidents SET status = 'resolved', resolved_at = $2, updated_at = $2"
                " WHERE correlation_key = $1",
                [(key, now) for key in decisions.resolved],
            )


class AlertStore:
    def __init__(self, pool: asyncpg.Pool, instance_id: str | None = None) -> None:
        self.pool = pool
        self.instance_id = instance_id or uuid.uuid4().hex[:12]
        self._marks: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
        self._flusher: asyncio.Task[None] | None = None

    # --- the state the decisions read and write ----------------------------------------------------------
    @contextlib.asynccontextmanager
    async def locked(self, contract_ids: Iterable[str]) -> AsyncIterator[DecisionTransaction]:
        """One transaction holding the advisory locks of ``contract_ids`` (sorted: no deadlock between
        replicas): load the state, decide (pure), save, commit."""
        async with self.pool.acquire() as conn, conn.transaction():
            keys = sorted({_lock_key(c) for c in contract_ids})
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, k) FROM unnest($2::int[]) AS k",
                _LOCK_NS,
                keys,
            )
            yield DecisionTransaction(conn)

    # --- ledger -------------------------------------------------------------------------------------------
    async def claim(
        self,
        event_ids: Sequence[str],
        channel: str,
        notification_ids: Sequence[str] | str,
        *,
        stale_s: float,
        retry_failed: bool,
    ) -> Claim:
        """Claim (event, channel) rows for sending, in one statement. ``retry_failed``: a replay may re-send
        dead-lettered ones; a 'sending' claim older than ``stale_s`` belongs to a dead sink and is taken over."""
        nids = (
            [notification_ids] * len(event_ids)
            if isinstance(notification_ids, str)
            else list(notification_ids)
        )
        # rows in a fixed order, so two replicas claiming overlapping sets lock them in the same order
        pairs = sorted(zip(event_ids, nids, strict=True))
        for attempt in range(5):
            try:
                return await self._claim(
                    [e for e, _ in pairs], channel, [n for _, n in pairs], stale_s, retry_failed
                )
            except asyncpg.exceptions.DeadlockDetectedError:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    async def _claim(
        self, event_ids: list[str], channel: str, nids: list[str], stale_s: float, retry_failed: bool
    ) -> Claim:
        async with self.pool.acquire() as conn:
            got = await conn.fetch(
                "INSERT INTO alert_deliveries (event_id, channel, status, notification_id, claimed_by, claimed_at)"
                " SELECT e, $2, 'sending', nid, $4, now() FROM unnest($1::text[], $3::text[]) AS t(e, nid)"
                " ON CONFLICT (event_id, channel) DO UPDATE SET status = 'sending',"
                " notification_id = EXCLUDED.notification_id, claimed_by = EXCLUDED.claimed_by, claimed_at = now()"
                " WHERE (alert_deliveries.status = 'failed' AND $5)"
                " OR (alert_deliveries.status = 'sending'"
                "     AND alert_deliveries.claimed_at < now() - make_interval(secs => $6))"
                " RETURNING event_id",
                list(event_ids),
                channel,
                nids,
                self.instance_id,
                retry_failed,
                stale_s,
            )
            claim = Claim(claimed={r["event_id"] for r in got})
            rest = [e for e in event_ids if e not in claim.claimed]
            if rest:
                for r in await conn.fetch(
                    "SELECT event_id, status FROM alert_deliveries WHERE channel = $1 AND event_id = ANY($2::text[])",
                    channel,
                    rest,
                ):
                    (claim.busy if r["status"] == "sending" else claim.done).add(r["event_id"])
        return claim

    async def claim_waiting(
        self,
        event_ids: Sequence[str],
        channel: str,
        notification_id: str,
        *,
        stale_s: float,
        retry_failed: bool,
        stopping: asyncio.Event | None = None,
    ) -> list[str]:
        """Claim, waiting while another sink holds a fresh claim on some rows (until it finishes or goes stale).
        Returns the event ids this sink must send."""
        mine: list[str] = []
        todo = list(event_ids)
        backoff = Backoff(0.1, 1.0)
        while todo:
            c = await self.claim(todo, channel, notification_id, stale_s=stale_s, retry_failed=retry_failed)
            mine.extend(e for e in todo if e in c.claimed)
            todo = [e for e in todo if e in c.busy]
            if todo:
                if stopping is not None and stopping.is_set():
                    raise asyncio.CancelledError("stopping while another sink holds a delivery claim")
                await asyncio.sleep(backoff.next())
        return mine

    async def mark(
        self,
        event_ids: Sequence[str],
        channel: str,
        *,
        delivered: bool,
        attempts: int,
        error: str | None = None,
    ) -> None:
        """Record a delivery outcome; returns once it is durable. Concurrent marks are coalesced into one
        pipelined ``executemany`` (many deliveries finish at once; one round trip instead of one each)."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        row = (list(event_ids), channel, "delivered" if delivered else "failed", attempts, error)
        self._marks.append((row, fut))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_marks())
        await fut

    async def _flush_marks(self) -> None:
        while self._marks:
            await asyncio.sleep(0)  # let the deliveries finishing in this loop turn join the batch
            items, self._marks = self._marks, []
            try:
                async with self.pool.acquire() as conn:
                    await conn.executemany(
                        "UPDATE alert_deliveries SET status = $3, attempts = attempts + $4, last_error = $5,"
                        " delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END"
                        " WHERE channel = $2 AND event_id = ANY($1::text[])",
                        [row for row, _ in items],
                    )
            except BaseException as exc:
                for _, f in items:
                    if not f.done():
                        f.set_exception(exc)
                if isinstance(exc, asyncio.CancelledError):
                    raise
                continue
            for _, f in items:
                if not f.done():
                    f.set_result(None)

    async def release(self, event_ids: Sequence[str], channel: str) -> None:
        """Give a claim back (shutdown before the call was made): the next owner sends it."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM alert_deliveries WHERE channel = $2 AND event_id = ANY($1::text[])"
                " AND status = 'sending' AND claimed_by = $3",
                list(event_ids),
                channel,
                self.instance_id,
            )

    # --- re-sends while firing ---------------------------------------------------------------------------
    async def due_for_resend(
        self, channels: Sequence[str], interval_s: float
    ) -> list[tuple[Alert, tuple[str, ...]]]:
        """Open incidents on ``channels`` not (re-)sent for ``interval_s``; one replica at a time takes them."""
        if not channels:
            return []
        async with self.pool.acquire() as conn, conn.transaction():
            if not await conn.fetchval("SELECT pg_try_advisory_xact_lock($1, 0)", _RESEND_LOCK):
                return []
            rows = await conn.fetch(
                "UPDATE alert_incidents SET last_resent_at = now()"
                " WHERE status = 'open' AND channels && $1::text[]"
                " AND coalesce(last_resent_at, updated_at) < now() - make_interval(secs => $2)"
                " RETURNING payload, channels, severity",
                list(channels),
                interval_s,
            )
        out = []
        for r in rows:
            ev = ViolationCloudEvent.model_validate(json.loads(r["payload"]))
            alert = Alert.from_event(ev)
            if alert.severity.value != r["severity"]:
                alert = alert.model_copy(update={"severity": Severity(r["severity"])})
            out.append((alert, tuple(c for c in r["channels"] if c in channels)))
        return out

    # --- silences ----------------------------------------------------------------------------------------
    async def add_silence(
        self,
        *,
        contract: str | None,
        asset: str | None,
        starts_at: datetime,
        ends_at: datetime,
        comment: str = "",
        created_by: str = "",
    ) -> Silence:
        sid = uuid.uuid4().hex[:12]
        async with self.pool.acquire() as conn:
            r = await conn.fetchrow(
                "INSERT INTO alert_silences (silence_id, contract, asset, starts_at, ends_at, comment, created_by)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7) RETURNING *",
                sid,
                contract,
                asset,
                starts_at,
                ends_at,
                comment,
                created_by,
            )
        return _silence(r)

    async def list_silences(self, *, include_inactive: bool = False) -> list[Silence]:
        sql = "SELECT * FROM alert_silences"
        if not include_inactive:
            sql += " WHERE expired_at IS NULL AND ends_at > now()"
        async with self.pool.acquire() as conn:
            return [_silence(r) for r in await conn.fetch(sql + " ORDER BY starts_at, silence_id")]

    async def expire_silence(self, silence_id: str) -> bool:
        async with self.pool.acquire() as conn:
            status = await conn.execute(
                "UPDATE alert_silences SET expired_at = now() WHERE silence_id = $1 AND expired_at IS NULL",
                silence_id,
            )
        return bool(status.endswith(" 1"))

    async def stats(self) -> dict[str, Any]:
        async with self.pool.acquire() as conn:
            rows = await conn.fetch("SELECT status, count(*) AS n FROM alert_deliveries GROUP BY status")
            supp = await conn.fetch(
                "SELECT reason, count(*) AS n FROM alert_decisions WHERE NOT notify GROUP BY reason"
            )
        return {
            "deliveries": {r["status"]: r["n"] for r in rows},
            "suppressed": {r["reason"]: r["n"] for r in supp},
        }

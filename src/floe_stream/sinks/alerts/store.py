"""PostgreSQL state of the alert router and the delivery ledger (tables of migration 0003_alerts).

* decisions are made under a per-contract transaction-scoped advisory lock, recorded per event id and
  reused on replay: replicas and restarts route the same event the same way, exactly once;
* the ledger claims (event, channel) as 'sending' before a delivery and marks it 'delivered' after it.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from floe_stream.sinks.alerts import router
from floe_stream.sinks.alerts.config import Policy
from floe_stream.sinks.alerts.model import Alert, Decision, DedupEntry, Incident, Silence
from floe_stream.topics.enums import Severity
from floe_stream.topics.violation import ViolationCloudEvent

_LOCK_NS = 0x0F1EA7  # advisory-lock namespace of the alert router (second key: hashtext(contract_id))
_RESEND_LOCK = 0x0F1EA8


@dataclass
class Claim:
    claimed: list[str] = field(default_factory=list)  # ours to send now
    done: list[str] = field(default_factory=list)  # delivered (or dead-lettered) already
    busy: list[str] = field(default_factory=list)  # another sink is sending right now


def _silence(r: asyncpg.Record) -> Silence:
    return Silence(
        silence_id=r["silence_id"], contract=r["contract"], asset=r["asset"], starts_at=r["starts_at"],
        ends_at=r["ends_at"], comment=r["comment"], created_by=r["created_by"], expired_at=r["expired_at"],
    )  # fmt: skip


class AlertStore:
    def __init__(self, pool: asyncpg.Pool, instance_id: str | None = None) -> None:
        self.pool = pool
        self.instance_id = instance_id or uuid.uuid4().hex[:12]

    # --- decisions --------------------------------------------------------------------------------------
    async def decide(
        self,
        alerts: Sequence[Alert],
        *,
        now: datetime,
        policy: Policy,
        route: Callable[[Alert], tuple[str, ...]],
        resolve_capable: frozenset[str],
    ) -> tuple[dict[str, Decision], set[str]]:
        """Decision per event id, and the ids decided now (not replayed); one transaction per contract,
        serialised across replicas."""
        by_contract: dict[str, list[Alert]] = defaultdict(list)
        for a in alerts:
            by_contract[a.contract_id].append(a)
        out: dict[str, Decision] = {}
        new: set[str] = set()
        async with self.pool.acquire() as conn:
            for contract_id, items in by_contract.items():
                async with conn.transaction():
                    await conn.execute(
                        "SELECT pg_advisory_xact_lock($1, hashtext($2))", _LOCK_NS, contract_id
                    )
                    got, fresh = await self._decide_contract(
                        conn, contract_id, items, now, policy, route, resolve_capable
                    )
                    out.update(got)
                    new.update(fresh)
        return out, new

    async def _decide_contract(
        self,
        conn: asyncpg.Connection,
        contract_id: str,
        alerts: list[Alert],
        now: datetime,
        policy: Policy,
        route: Callable[[Alert], tuple[str, ...]],
        resolve_capable: frozenset[str],
    ) -> tuple[dict[str, Decision], set[str]]:
        ids = [a.event_id for a in alerts]
        out: dict[str, Decision] = {
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
                ids,
            )
        }
        pending = [a for a in alerts if a.event_id not in out]
        if not pending:
            return out, set()
        silences = [
            _silence(r)
            for r in await conn.fetch(
                "SELECT * FROM alert_silences WHERE expired_at IS NULL AND starts_at <= $1 AND ends_at > $1",
                now,
            )
        ]
        recent = int(
            await conn.fetchval(
                "SELECT count(*) FROM alert_decisions WHERE contract_id = $1 AND notify AND status = 'firing'"
                " AND decided_at > $2",
                contract_id,
                now - timedelta(seconds=policy.rate_limit.per_s),
            )
        )
        dedup: dict[tuple[str, str], DedupEntry | None] = {}
        incidents: dict[str, Incident | None] = {}
        for a in pending:
            dkey = (a.asset, a.violation_type.value)
            if dkey not in dedup:
                r = await conn.fetchrow(
                    "SELECT * FROM alert_dedup WHERE asset = $1 AND violation_type = $2", a.asset, dkey[1]
                )
                dedup[dkey] = (
                    DedupEntry(asset=r["asset"], violation_type=r["violation_type"],
                               window_started_at=r["window_started_at"], severity=Severity(r["severity"]))
                    if r else None
                )  # fmt: skip
            if a.correlation_key not in incidents:
                r = await conn.fetchrow(
                    "SELECT * FROM alert_incidents WHERE correlation_key = $1", a.correlation_key
                )
                incidents[a.correlation_key] = (
                    Incident(correlation_key=r["correlation_key"], status=r["status"], severity=Severity(r["severity"]),
                             channels=tuple(r["channels"]), violation_id=r["violation_id"])
                    if r else None
                )  # fmt: skip
            incident = incidents[a.correlation_key]
            d = router.decide(
                a,
                now=now,
                policy=policy,
                channels=route(a) if a.status == "firing" else (),
                dedup=dedup[dkey],
                recent_notified=recent,
                silences=silences,
                incident=incident,
                resolve_capable=resolve_capable,
            )
            out[a.event_id] = d
            await conn.execute(
                "INSERT INTO alert_decisions (event_id, status, correlation_key, contract_id, asset, violation_type,"
                " severity, notify, reason, channels, replaces_severity, decided_at)"
                " VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12) ON CONFLICT (event_id) DO NOTHING",
                a.event_id, a.status, a.correlation_key, a.contract_id, a.asset, a.violation_type.value,
                a.severity.value, d.notify, d.reason, list(d.channels),
                d.replaces_severity.value if d.replaces_severity else None, now,
            )  # fmt: skip
            if not d.notify:
                continue
            if a.status == "firing":
                recent += 1
                entry = router.next_dedup(a, dedup[dkey], now, policy)
                if entry is not dedup[dkey]:
                    dedup[dkey] = entry
                    await conn.execute(
                        "INSERT INTO alert_dedup (asset, violation_type, window_started_at, severity)"
                        " VALUES ($1,$2,$3,$4) ON CONFLICT (asset, violation_type) DO UPDATE SET"
                        " window_started_at = EXCLUDED.window_started_at, severity = EXCLUDED.severity",
                        entry.asset, entry.violation_type, entry.window_started_at, entry.severity.value,
                    )  # fmt: skip
            new_incident = router.next_incident(a, d, incident)
            if new_incident is not None:
                incidents[a.correlation_key] = new_incident
                if a.status == "firing":
                    await conn.execute(
                        "INSERT INTO alert_incidents (correlation_key, status, severity, channels, violation_id,"
                        " contract_id, asset, payload, opened_at, updated_at)"
                        " VALUES ($1,'open',$2,$3,$4,$5,$6,$7::jsonb,$8,$8)"
                        " ON CONFLICT (correlation_key) DO UPDATE SET status = 'open', severity = EXCLUDED.severity,"
                        " channels = EXCLUDED.channels, violation_id = EXCLUDED.violation_id,"
                        " payload = EXCLUDED.payload, updated_at = EXCLUDED.updated_at, resolved_at = NULL,"
                        " opened_at = CASE WHEN alert_incidents.status = 'open' THEN alert_incidents.opened_at"
                        " ELSE EXCLUDED.opened_at END",
                        a.correlation_key, new_incident.severity.value, list(new_incident.channels), a.event_id,
                        a.contract_id, a.asset, a.event.model_dump_json(), now,
                    )  # fmt: skip
                else:
                    await conn.execute(
                        "UPDATE alert_incidents SET status = 'resolved', resolved_at = $2, updated_at = $2"
                        " WHERE correlation_key = $1",
                        a.correlation_key,
                        now,
                    )
        return out, {a.event_id for a in pending}

    # --- ledger -------------------------------------------------------------------------------------------
    async def claim(
        self,
        event_ids: Sequence[str],
        channel: str,
        notification_id: str,
        *,
        stale_s: float,
        retry_failed: bool,
    ) -> Claim:
        """Claim (event, channel) rows for sending. ``retry_failed``: a replay may re-send dead-lettered ones."""
        async with self.pool.acquire() as conn:
            got = await conn.fetch(
                "INSERT INTO alert_deliveries (event_id, channel, status, notification_id, claimed_by, claimed_at)"
                " SELECT e, $2, 'sending', $3, $4, now() FROM unnest($1::text[]) AS e"
                " ON CONFLICT (event_id, channel) DO UPDATE SET status = 'sending',"
                " notification_id = EXCLUDED.notification_id, claimed_by = EXCLUDED.claimed_by, claimed_at = now()"
                " WHERE (alert_deliveries.status = 'failed' AND $5)"
                " OR (alert_deliveries.status = 'sending'"
                "     AND alert_deliveries.claimed_at < now() - make_interval(secs => $6))"
                " RETURNING event_id",
                list(event_ids), channel, notification_id, self.instance_id, retry_failed, stale_s,
            )  # fmt: skip
            claim = Claim(claimed=[r["event_id"] for r in got])
            rest = [e for e in event_ids if e not in set(claim.claimed)]
            if rest:
                for r in await conn.fetch(
                    "SELECT event_id, status FROM alert_deliveries WHERE channel = $1 AND event_id = ANY($2::text[])",
                    channel,
                    rest,
                ):
                    (claim.busy if r["status"] == "sending" else claim.done).append(r["event_id"])
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
        delay = 0.1
        while todo:
            c = await self.claim(todo, channel, notification_id, stale_s=stale_s, retry_failed=retry_failed)
            mine.extend(c.claimed)
            todo = c.busy
            if todo:
                if stopping is not None and stopping.is_set():
                    raise asyncio.CancelledError("stopping while another sink holds a delivery claim")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
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
        async with self.pool.acquire() as conn:
            await conn.execute(
                "UPDATE alert_deliveries SET status = $3, attempts = attempts + $4, last_error = $5,"
                " delivered_at = CASE WHEN $3 = 'delivered' THEN now() ELSE delivered_at END"
                " WHERE channel = $2 AND event_id = ANY($1::text[])",
                list(event_ids), channel, "delivered" if delivered else "failed", attempts, error,
            )  # fmt: skip

    async def release(self, event_ids: Sequence[str], channel: str) -> None:
        """Give a claim back (shutdown before the call was made): the next owner sends it."""
        async with self.pool.acquire() as conn:
            await conn.execute(
                "DELETE FROM alert_deliveries WHERE channel = $2 AND event_id = ANY($1::text[])"
                " AND status = 'sending' AND claimed_by = $3",
                list(event_ids), channel, self.instance_id,
            )  # fmt: skip

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
                sid, contract, asset, starts_at, ends_at, comment, created_by,
            )  # fmt: skip
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

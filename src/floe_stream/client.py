"""Publisher kit: tell floe-stream that an asset was materialized or a table committed, in a few lines.

Sync (any script, Dagster/Airflow hooks)::

    from floe_stream.client import FloeClient

    with FloeClient("kafka:9092", topic_prefix="floe.") as floe:
        floe.publish_materialization("sales.orders", row_count=1234, run_id=context.run_id)

Async::

    async with FloeClient("kafka:9092") as floe:
        await floe.apublish_materialization("sales.orders", row_count=1234)

Every event is validated by the wire model before it leaves (a bad argument raises ``ValueError`` at once,
never retried), keyed by asset / table (so it lands on the partition of its processor) and sent with
``acks=all``; broker errors are retried with exponential backoff and jitter, reusing the same ``event_id``, so
a retry that duplicates a record is recognised downstream. After the last attempt :class:`PublishError` is
raised. Connection and security settings are :class:`~floe_stream.settings.KafkaSettings` (SASL/SSL included);
:meth:`FloeClient.from_env` reads them from ``FLOE_KAFKA__*`` like every floe process.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import uuid
from collections.abc import Coroutine, Iterable, Mapping
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal, TypedDict, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError, MessageSizeTooLargeError
from pydantic import BaseModel
from typing_extensions import Unpack

from floe_stream.backoff import Backoff
from floe_stream.settings import KafkaSettings
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.commit import CatalogCommitEvent, IcebergSchema
from floe_stream.topics.materialization import MaterializationEvent, ObservedColumn, QualityResult

__all__ = [
    "CommitFields",
    "FloeClient",
    "MaterializationFields",
    "PublishError",
    "commit_event",
    "materialization_event",
]

log = logging.getLogger(__name__)
T = TypeVar("T")
Operation = Literal["append", "replace", "overwrite", "delete"]
RETRYABLE = (KafkaError, ConnectionError, OSError, asyncio.TimeoutError)


class MaterializationFields(TypedDict, total=False):
    """Keyword fields of :func:`materialization_event` (and so of ``publish_materialization``)."""

    materialized_at: datetime | str | None
    event_id: str | None
    data_timestamp: datetime | str | None
    run_id: str | None
    job: str | None
    producer: str | None
    row_count: int | None
    columns: Iterable[ObservedColumn | Mapping[str, Any]] | None
    quality: Iterable[QualityResult | Mapping[str, Any]] | None
    labels: Mapping[str, str] | None


class CommitFields(TypedDict, total=False):
    """Keyword fields of :func:`commit_event` (and so of ``publish_commit``)."""

    table: str | None
    snapshot_id: int | None
    sequence_number: int | None
    timestamp_ms: int | None
    operation: Operation
    schema: IcebergSchema | Mapping[str, Any] | None
    summary: Mapping[str, str] | None
    catalog: str | None


class PublishError(Exception):
    """The event could not be delivered after every retry."""


def _aware(value: datetime | str | None, *, default_now: bool) -> datetime | None:
    if value is None:
        return datetime.now(UTC) if default_now else None
    if isinstance(value, str):
        value = datetime.now(UTC) if value == "now" else datetime.fromisoformat(value.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError(f"{value!r} has no time zone: pass an aware datetime (e.g. datetime.now(UTC))")
    return value


def materialization_event(
    asset: str,
    *,
    materialized_at: datetime | str | None = None,
    event_id: str | None = None,
    data_timestamp: datetime | str | None = None,
    run_id: str | None = None,
    job: str | None = None,
    producer: str | None = "floe_stream.client",
    row_count: int | None = None,
    columns: Iterable[ObservedColumn | Mapping[str, Any]] | None = None,
    quality: Iterable[QualityResult | Mapping[str, Any]] | None = None,
    labels: Mapping[str, str] | None = None,
) -> MaterializationEvent:
    """Build and validate a :class:`MaterializationEvent` (``materialized_at`` defaults to now).

    ``event_id`` defaults to ``{asset}:{run_id}`` when a run id is given (a re-sent hook is then the same
    event), else a random UUID.
    """
    when = _aware(materialized_at, default_now=True)
    return MaterializationEvent(
        event_id=event_id or (f"{asset}:{run_id}" if run_id else str(uuid.uuid4())),
        asset=asset,
        materialized_at=when,  # type: ignore[arg-type]
        data_timestamp=_aware(data_timestamp, default_now=False),
        run_id=run_id,
        job=job,
        producer=producer,
        row_count=row_count,
        columns=[c if isinstance(c, ObservedColumn) else ObservedColumn.model_validate(c) for c in columns]
        if columns is not None
        else None,
        quality=[q if isinstance(q, QualityResult) else QualityResult.model_validate(q) for q in quality]
        if quality is not None
        else None,
        labels=dict(labels or {}),
    )


def commit_event(
    event: CatalogCommitEvent | Mapping[str, Any] | None = None,
    *,
    table: str | None = None,
    snapshot_id: int | None = None,
    sequence_number: int | None = None,
    timestamp_ms: int | None = None,
    operation: Operation = "append",
    schema: IcebergSchema | Mapping[str, Any] | None = None,
    summary: Mapping[str, str] | None = None,
    catalog: str | None = None,
) -> CatalogCommitEvent:
    """A validated :class:`CatalogCommitEvent` from a model, a JSON-like mapping, or keyword arguments.

    ``event_id`` defaults to ``{table}:{snapshot_id}`` (the id the Iceberg watcher gives the same snapshot).
    """
    if event is not None:
        ev = (
            event if isinstance(event, CatalogCommitEvent) else CatalogCommitEvent.model_validate(dict(event))
        )
        return ev if ev.event_id else ev.model_copy(update={"event_id": f"{ev.table}:{ev.snapshot_id}"})
    if table is None or snapshot_id is None or schema is None:
        raise ValueError("publish_commit needs an event, or table, snapshot_id and schema")
    ev = CatalogCommitEvent(
        table=table,
        snapshot_id=snapshot_id,
        sequence_number=sequence_number if sequence_number is not None else 0,
        timestamp_ms=timestamp_ms if timestamp_ms is not None else int(datetime.now(UTC).timestamp() * 1000),
        operation=operation,
        table_schema=schema
        if isinstance(schema, IcebergSchema)
        else IcebergSchema.model_validate(dict(schema)),
        summary=dict(summary or {}),
        catalog=catalog,
    )
    return ev if ev.event_id else ev.model_copy(update={"event_id": f"{ev.table}:{ev.snapshot_id}"})


class FloeClient:
    """Publish floe input events to Kafka. Thread-safe sync methods; async methods for the caller's loop."""

    def __init__(
        self,
        bootstrap_servers: str | None = None,
        topic_prefix: str | None = None,
        *,
        kafka: KafkaSettings | None = None,
        retries: int = 5,
        backoff_s: float = 0.2,
        max_backoff_s: float = 5.0,
        timeout_s: float = 30.0,
    ) -> None:
        cfg = kafka or KafkaSettings()
        updates: dict[str, Any] = {}
        if bootstrap_servers is not None:
            updates["bootstrap_servers"] = bootstrap_servers
        if topic_prefix is not None:
            updates["topic_prefix"] = topic_prefix
        self.kafka = cfg.model_copy(update=updates) if updates else cfg
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.timeout_s = timeout_s
        self._producers: dict[int, tuple[asyncio.AbstractEventLoop, AIOKafkaProducer]] = {}
        self._thread_loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._existing: set[str] = set()  # topics seen in the broker's metadata (checked once each)

    @classmethod
    def from_env(cls, **kwargs: Any) -> FloeClient:
        """Connection settings from ``FLOE_KAFKA__*`` (and ``.env``), as for every floe process."""
        from floe_stream.settings import load_settings

        return cls(kafka=load_settings().kafka, **kwargs)

    def topic(self, key: TopicKey) -> str:
        return topic_name(self.kafka.topic_prefix, key)

    # --- async API -----------------------------------------------------------------------------------
    async def apublish_materialization(
        self, asset: str, **fields: Unpack[MaterializationFields]
    ) -> MaterializationEvent:
        """Validate, then deliver a materialization event (see :func:`materialization_event` for the fields)."""
        ev = materialization_event(asset, **fields)
        await self._deliver(self.topic(TopicKey.MATERIALIZATIONS), ev.asset, ev)
        return ev

    async def apublish_commit(
        self, event: CatalogCommitEvent | Mapping[str, Any] | None = None, **fields: Unpack[CommitFields]
    ) -> CatalogCommitEvent:
        """Validate, then deliver a catalog commit event (a model, a mapping, or keyword fields)."""
        ev = commit_event(event, **fields)
        await self._deliver(self.topic(TopicKey.CATALOG_COMMITS), ev.table, ev)
        return ev

    async def apublish_raw(self, key: TopicKey, record_key: str | None, value: bytes) -> None:
        """Deliver pre-encoded bytes (e.g. an OpenLineage event) with the same retries."""
        await self._send(self.topic(key), record_key, value)

    async def aclose(self) -> None:
        loop = asyncio.get_running_loop()
        entry = self._producers.pop(id(loop), None)
        if entry is not None:
            await entry[1].stop()

    async def __aenter__(self) -> FloeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # --- sync API ------------------------------------------------------------------------------------
    def publish_materialization(
        self, asset: str, **fields: Unpack[MaterializationFields]
    ) -> MaterializationEvent:
        """Blocking :meth:`apublish_materialization` (safe to call from inside a running event loop's thread too)."""
        ev = materialization_event(asset, **fields)
        self._sync(self._deliver(self.topic(TopicKey.MATERIALIZATIONS), ev.asset, ev))
        return ev

    def publish_commit(
        self, event: CatalogCommitEvent | Mapping[str, Any] | None = None, **fields: Unpack[CommitFields]
    ) -> CatalogCommitEvent:
        ev = commit_event(event, **fields)
        self._sync(self._deliver(self.topic(TopicKey.CATALOG_COMMITS), ev.table, ev))
        return ev

    def publish_raw(self, key: TopicKey, record_key: str | None, value: bytes) -> None:
        self._sync(self._send(self.topic(key), record_key, value))

    def close(self) -> None:
        """Stop the sync API's producer and thread (also registered to run at interpreter exit)."""
        with self._lock:
            loop, thread = self._thread_loop, self._thread
            self._thread_loop = self._thread = None
        if loop is None or thread is None:
            return
        atexit.unregister(self.close)
        entry = self._producers.pop(id(loop), None)
        if entry is not None:
            asyncio.run_coroutine_threadsafe(entry[1].stop(), loop).result(self.timeout_s)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(self.timeout_s)
        loop.close()

    def __enter__(self) -> FloeClient:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- internals -----------------------------------------------------------------------------------
    def _sync(self, coro: Coroutine[Any, Any, T]) -> T:
        with self._lock:
            if self._thread_loop is None:
                loop = asyncio.new_event_loop()
                thread = threading.Thread(target=loop.run_forever, name="floe-client", daemon=True)
                thread.start()
                self._thread_loop, self._thread = loop, thread
                # a client nobody closes (module-level in an Airflow worker, a Dagster code location) still
                # flushes and stops its producer at interpreter exit, instead of "Unclosed AIOKafkaProducer"
                atexit.register(self.close)
            loop = self._thread_loop
        budget = self.timeout_s * (self.retries + 1) + self.max_backoff_s * self.retries
        return asyncio.run_coroutine_threadsafe(coro, loop).result(budget)

    async def _producer(self) -> AIOKafkaProducer:
        loop = asyncio.get_running_loop()
        entry = self._producers.get(id(loop))
        if entry is not None and entry[0] is loop:
            return entry[1]
        from floe_stream.runtime.framework.kafka import make_producer

        producer = make_producer(self.kafka, linger_ms=0, request_timeout_ms=int(self.timeout_s * 1000))
        try:
            await asyncio.wait_for(producer.start(), self.timeout_s)
        except BaseException:
            await producer.stop()
            raise
        self._producers[id(loop)] = (loop, producer)
        return producer

    async def _deliver(self, topic: str, key: str, event: BaseModel) -> None:
        await self._send(topic, key, event.model_dump_json(by_alias=True, exclude_none=True).encode())

    async def _send(self, topic: str, key: str | None, value: bytes) -> None:
        backoff = Backoff(self.backoff_s, self.max_backoff_s, jitter=True)
        for attempt in range(self.retries + 1):
            try:
                producer = await self._producer()
                if topic not in self._existing:
                    await self._check_exists(producer, topic)
                await asyncio.wait_for(
                    producer.send_and_wait(topic, value, key=key.encode() if key else None), self.timeout_s
                )
                return
            except MessageSizeTooLargeError as exc:  # the same bytes would fail again: no retry
                raise PublishError(
                    f"could not publish to {topic} at {self.kafka.bootstrap_servers}: the record ({len(value)} bytes) "
                    f"is larger than the broker or kafka.max_request_size accepts ({type(exc).__name__})"
                ) from exc
            except RETRYABLE as exc:
                await self._discard_producer()
                if attempt >= self.retries:
                    raise PublishError(
                        f"could not publish to {topic} at {self.kafka.bootstrap_servers} after {attempt + 1} attempt(s): "
                        f"{type(exc).__name__}: {exc}"
                    ) from exc
                delay = backoff.next()
                log.warning(
                    "publish to %s failed (%s), retry %d/%d in %.2fs",
                    topic,
                    exc,
                    attempt + 1,
                    self.retries,
                    delay,
                )
                await asyncio.sleep(delay)

    async def _check_exists(self, producer: AIOKafkaProducer, topic: str) -> None:
        """Never let a send create the topic: aiokafka's metadata request for one topic allows auto-creation,
        and a broker with ``auto.create.topics.enable`` (Apache Kafka's default) would create it with its own
        partition count, breaking co-partitioning. A request for all topics creates nothing."""
        cluster = await asyncio.wait_for(producer.client.fetch_all_metadata(), self.timeout_s)
        if topic not in cluster.topics():
            raise PublishError(
                f"topic {topic} does not exist at {self.kafka.bootstrap_servers}: run `floe topics create`"
            )
        self._existing.add(topic)

    async def _discard_producer(self) -> None:
        entry = self._producers.pop(id(asyncio.get_running_loop()), None)
        if entry is not None:
            try:
                await asyncio.wait_for(entry[1].stop(), self.timeout_s)
            except Exception:  # already broken: nothing more to flush
                log.debug("producer stop failed", exc_info=True)

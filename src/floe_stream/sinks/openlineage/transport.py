"""Where OpenLineage events go: openlineage-python's own transports (http, async http, kafka, file, console,
composite and the cloud ones), configured the way every OpenLineage client is configured.

``FLOE_OPENLINEAGE__TRANSPORT=openlineage`` (the default) is the client's own resolution: ``openlineage.yml``
(``OPENLINEAGE_CONFIG``, the working directory, ``~/.openlineage``), ``OPENLINEAGE_URL`` / ``OPENLINEAGE_API_KEY``,
``OPENLINEAGE__TRANSPORT__TYPE=…``; with nothing configured it prints to the console (its ``console`` transport
logs each event at INFO). floe's shorthands ``http|kafka|file|console`` build the same library transports from
``FLOE_OPENLINEAGE__*`` (:func:`build_transport`).

One adapter (:class:`OpenLineageTransport`) keeps floe's contract around whichever transport that is: a batch is
emitted event by event, in order, on a worker thread; :class:`TransportError` says how many went out
(``delivered``) and whether a retry can help (``permanent``: an HTTP 4xx other than 408/429, a Kafka message
refused for its size or form; everything else — connection refused, 5xx, timeouts, other Kafka delivery
errors — is transient). floe's retries, dead-lettering and
delivery accounting (the sink) stay around it.

Kafka: the library's KafkaTransport only logs a delivery error and flushes without a bound. The adapter watches
its producer (:class:`_WatchedProducer`): every produced message is accounted for by its delivery report, the
batch ends with one flush bounded by ``timeout_s``, and an error or a message still undelivered then is a
transient failure from that event on (the queued rest is purged). A message that was in flight when the flush
gave up may still arrive: the retry then re-sends an identical event (events are deterministic), never loses one.
``close()`` flushes within ``timeout_s`` too, then ends the producer (its librdkafka threads live as long as the
producer object, and the library only drops its own reference); a closed adapter emits nothing.
async_http delivers in the background and only counts failures: the adapter waits for the batch (bounded) and any
failure — a rejection included — fails the whole batch transiently.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from floe_stream.settings import KafkaSettings, OpenLineageSettings

if TYPE_CHECKING:
    from openlineage.client.transport import Transport as OLTransport

log = logging.getLogger(__name__)

Event = dict[str, Any]


class TransportError(Exception):
    """``delivered``: how many of the events passed to ``emit`` went out before the failure (in order)."""

    def __init__(self, message: str, *, permanent: bool, delivered: int = 0) -> None:
        super().__init__(message)
        self.permanent = permanent
        self.delivered = delivered


class Transport(Protocol):
    name: str

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def emit(self, events: Sequence[Event]) -> None:
        """Deliver every event, in order; raise TransportError otherwise."""
        ...


# --- building openlineage-python's transports ----------------------------------------------------------------
def kafka_producer_config(kafka: KafkaSettings) -> dict[str, Any]:
    """floe's Kafka connection (``FLOE_KAFKA__*``) as confluent-kafka (librdkafka) producer properties."""
    conf: dict[str, Any] = {
        "bootstrap.servers": kafka.bootstrap_servers,
        "client.id": f"{kafka.client_id}-openlineage",
        "security.protocol": kafka.security_protocol,
        "linger.ms": kafka.linger_ms,
        "message.max.bytes": kafka.max_request_size,
        "enable.idempotence": kafka.enable_idempotence,
        "acks": "all",
    }
    if kafka.security_protocol in ("SSL", "SASL_SSL"):
        for key, path in (
            ("ssl.ca.location", kafka.ssl_cafile),
            ("ssl.certificate.location", kafka.ssl_certfile),
            ("ssl.key.location", kafka.ssl_keyfile),
        ):
            if path is not None:
                conf[key] = str(path)
    if kafka.security_protocol.startswith("SASL"):
        conf["sasl.mechanism"] = kafka.sasl_mechanism or "PLAIN"
        if kafka.sasl_username is not None:
            conf["sasl.username"] = kafka.sasl_username
        if kafka.sasl_password is not None:
            conf["sasl.password"] = kafka.sasl_password.get_secret_value()
    return conf


def build_transport(cfg: OpenLineageSettings, kafka: KafkaSettings) -> OLTransport:
    """openlineage-python's transport for ``cfg.transport`` (blocking: reads openlineage.yml)."""
    from openlineage.client.transport import (
        ConsoleTransport,
        FileTransport,
        HttpConfig,
        HttpTransport,
        KafkaConfig,
        KafkaTransport,
    )
    from openlineage.client.transport.console import ConsoleConfig
    from openlineage.client.transport.file import FileConfig
    from openlineage.client.transport.http import ApiKeyTokenProvider, TokenProvider
    from openlineage.client.transport.http_common import DEFAULT_RETRY_CONFIG

    if cfg.transport == "http":
        auth = (
            ApiKeyTokenProvider({"apiKey": cfg.api_key.get_secret_value()})
            if cfg.api_key is not None
            else TokenProvider({})
        )
        return HttpTransport(
            HttpConfig(
                url=cfg.url.rstrip("/") + "/",  # the endpoint is joined below the URL's path
                endpoint=cfg.endpoint.lstrip("/"),
                timeout=cfg.timeout_s,
                auth=auth,
                # floe retries around the transport (backoff, /readyz, dead-lettering): no retry inside it,
                # and a 5xx comes back as its status
                retry={**DEFAULT_RETRY_CONFIG, "total": 0, "status_forcelist": []},
            )
        )
    if cfg.transport == "kafka":
        return KafkaTransport(KafkaConfig(config=kafka_producer_config(kafka), topic=cfg.topic, flush=True))
    if cfg.transport == "file":
        cfg.file.parent.mkdir(parents=True, exist_ok=True)
        return FileTransport(FileConfig(log_file_path=str(cfg.file), append=True))
    if cfg.transport == "console":
        return ConsoleTransport(ConsoleConfig())
    return client_transport()


def client_transport() -> OLTransport:
    """The transport an ``OpenLineageClient()`` resolves (openlineage.yml, OPENLINEAGE_*, else console).

    The client copies ``OPENLINEAGE_URL`` into ``OPENLINEAGE__TRANSPORT__…`` variables of the process while it
    resolves; they are put back afterwards (the resolved transport keeps its configuration)."""
    from openlineage.client import OpenLineageClient

    before = dict(os.environ)
    try:
        client = OpenLineageClient()
    finally:
        for k in set(os.environ) - set(before):
            del os.environ[k]
        for k, v in before.items():
            if os.environ.get(k) != v:
                os.environ[k] = v
    return client.transport


def children(t: Any) -> Iterator[Any]:
    """``t`` and every transport inside it: a composite's ``transports``, a transform's ``transport``,
    datadog's ``http`` / ``async_http``."""
    yield t
    inner = [*(getattr(t, "transports", None) or ())]
    inner += [c for c in (getattr(t, a, None) for a in ("transport", "http", "async_http")) if c is not None]
    for child in inner:
        if hasattr(child, "emit"):
            yield from children(child)


# --- Kafka delivery accounting -----------------------------------------------------------------------------
class _Ticket:
    """One batch's Kafka messages: the index of the event each belongs to, until its delivery report."""

    def __init__(self) -> None:
        self.pending: dict[int, int] = {}  # event index → messages awaiting their report
        self.failed: dict[int, str] = {}  # event index → the first delivery error
        self.refused: set[int] = set()  # event indexes whose message the broker can never take

    def first_bad(self) -> tuple[int, str] | None:
        bad = [(i, e) for i, e in self.failed.items()]
        bad += [(i, "not delivered within the flush timeout") for i, n in self.pending.items() if n > 0]
        return min(bad) if bad else None


class _WatchedProducer:
    """A confluent-kafka Producer, proxied: ``produce`` adds floe's own delivery report (recording the outcome
    for the event being emitted, then calling the library's), and the library's unbounded ``flush()`` is bounded.
    Everything else goes to the producer."""

    def __init__(self, producer: Any, flush_timeout_s: float) -> None:
        self._producer = producer
        self.flush_timeout_s = flush_timeout_s
        self.ticket: _Ticket | None = None
        self.index = 0
        self.key: str | None = None  # for a dict event the library computes no key: floe gives the run key

    def produce(self, *args: Any, **kw: Any) -> None:
        ticket, i = self.ticket, self.index
        theirs: Callable[[Any, Any], None] | None = kw.pop("on_delivery", None) or kw.pop("callback", None)
        if kw.get("key") is None and self.key is not None:
            kw["key"] = self.key

        def on_delivery(err: Any, msg: Any) -> None:
            if ticket is not None:
                ticket.pending[i] -= 1
                if err is not None:
                    ticket.failed.setdefault(i, str(err))
                    if _never_deliverable(err):
                        ticket.refused.add(i)
            if theirs is not None:
                theirs(err, msg)

        if ticket is not None:
            ticket.pending[i] = ticket.pending.get(i, 0) + 1
        try:
            self._producer.produce(*args, on_delivery=on_delivery, **kw)
        except BaseException:
            if ticket is not None:
                ticket.pending[i] -= 1
            raise

    def flush(self, timeout: float = -1) -> int:
        remaining: int = self._producer.flush(self.flush_timeout_s if timeout < 0 else timeout)
        return remaining

    def give_up(self) -> None:
        """Drop what is still queued (it is retried by floe, not delivered late as well)."""
        self._producer.purge(in_queue=True, in_flight=False, blocking=True)
        self._producer.poll(0)

    def release(self) -> None:
        """End the producer (after the bounded flush of close): what it still holds is dropped — a batch not
        delivered was reported failed and is retried by whoever consumes it next — and its threads stop. Its
        threads live as long as the producer object: the library's close() only forgets its own reference."""
        p, self._producer = self._producer, None
        if p is None:
            return
        p.purge(in_queue=True, in_flight=True, blocking=False)
        p.poll(0)  # serve the purged messages' reports (they hold the batch's callbacks)
        end = getattr(
            p, "close", None
        )  # confluent-kafka >= 2.11; before it, dropping the last reference does it
        if end is not None:
            end()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)


def _watch_kafka(t: Any, flush_timeout_s: float) -> _WatchedProducer | None:
    from openlineage.client.transport import KafkaTransport

    if not isinstance(t, KafkaTransport):
        return None
    if t.producer is None:
        t._setup_producer(t.kafka_config.config)
    if not isinstance(t.producer, _WatchedProducer):
        t.producer = _WatchedProducer(t.producer, flush_timeout_s)  # type: ignore[assignment]
    t.flush = False  # the adapter flushes once per batch (bounded) and checks every report
    return t.producer  # type: ignore[return-value]


def run_key(ev: Event) -> str:
    """openlineage-python's Kafka key for a RunEvent (``run:<namespace>/<name>`` of the root/parent/own job),
    computed for floe's dict events (the library computes it for its typed events only)."""
    parent = ((ev.get("run") or {}).get("facets") or {}).get("parent") or {}
    for job in ((parent.get("root") or {}).get("job"), parent.get("job"), ev.get("job")):
        if job and job.get("namespace") and job.get("name"):
            return f"run:{job['namespace']}/{job['name']}"
    return "run:"


def _status(exc: BaseException) -> int | None:
    """The HTTP status of a failed request (requests/httpx errors carry the response), on the cause chain."""
    seen: BaseException | None = exc
    for _ in range(5):
        if seen is None:
            return None
        status = getattr(getattr(seen, "response", None), "status_code", None)
        if isinstance(status, int):
            return status
        seen = seen.__cause__ or seen.__context__
    return None


_NEVER_DELIVERABLE = frozenset({
    2,  # INVALID_MSG (corrupt)
    4,  # INVALID_MSG_SIZE
    10,  # MSG_SIZE_TOO_LARGE: over the broker's (or the topic's) message.max.bytes
    18,  # RECORD_LIST_TOO_LARGE
    87,  # INVALID_RECORD
})  # fmt: skip
"""Kafka error codes (librdkafka's, the protocol's) of a message no retry can deliver: the message itself is at
fault, never the cluster. Authorization and connection errors stay transient (the destination is wrong or down:
the sink holds its offsets until it is fixed)."""


def _never_deliverable(err: Any) -> bool:
    """``err`` (a confluent-kafka KafkaError, or an exception carrying one) says this message can never be
    delivered: an event built from one violation too large for the topic (a 400 KB message is in three facets)
    would otherwise be retried for ever, and no later event of any asset delivered."""
    if not hasattr(err, "code") and getattr(err, "args", None):
        err = err.args[0]
    code = getattr(err, "code", None)
    return callable(code) and code() in _NEVER_DELIVERABLE


def classify(exc: BaseException) -> tuple[bool, str]:
    """(permanent, reason): an HTTP 4xx other than 408/429 is permanent, and so is a Kafka message the
    producer or broker refuses for its size or form; everything else is transient."""
    status = _status(exc)
    if status is None:
        return _never_deliverable(exc), f"{type(exc).__name__}: {exc}"
    permanent = 400 <= status < 500 and status not in (408, 429)
    return permanent, f"HTTP {status}: {exc}"


class OpenLineageTransport:
    """floe's :class:`Transport` over one openlineage-python transport (``transport``), built at :meth:`start`
    from the settings unless given."""

    def __init__(
        self, cfg: OpenLineageSettings, kafka: KafkaSettings, transport: OLTransport | None = None
    ) -> None:
        self.cfg = cfg
        self.kafka = kafka
        self.name: str = cfg.transport
        self.transport: OLTransport | None = transport
        self._watches: list[_WatchedProducer] = []
        self._closed = False

    @property
    def kind(self) -> str:
        return str(getattr(self.transport, "kind", None) or type(self.transport).__name__)

    async def start(self) -> None:
        if self.cfg.transport == "kafka":
            await self._ensure_topic()
        if self.transport is None:
            self.transport = await asyncio.to_thread(build_transport, self.cfg, self.kafka)
        self._watches = [
            w for t in children(self.transport) if (w := _watch_kafka(t, self.cfg.timeout_s)) is not None
        ]
        log.info("openlineage transport: %s", self.describe())

    def describe(self) -> str:
        kinds = [str(getattr(t, "kind", None) or type(t).__name__) for t in children(self.transport)]
        return kinds[0] + (f" ({', '.join(kinds[1:])})" if len(kinds) > 1 else "")

    async def _ensure_topic(self) -> None:
        """The kafka shorthand's topic, created when missing with floe's partitions and replication (Apache
        Kafka's auto-creation would pick the broker's defaults)."""
        from floe_stream.runtime.framework.kafka import create_missing_topics

        if await create_missing_topics(self.kafka, {self.cfg.topic: {}}):
            log.info("created OpenLineage topic %s", self.cfg.topic)

    async def close(self) -> None:
        """Flush within ``timeout_s`` and end every producer: nothing of the transport outlives it (a Kafka
        producer left alive kept reconnecting to, and logging about, a stopped broker)."""
        self._closed = True
        if self.transport is not None:
            await asyncio.to_thread(self._close)

    def _close(self) -> None:
        try:
            assert self.transport is not None
            self.transport.close(self.cfg.timeout_s)  # the library's: a flush bounded by the timeout
        finally:
            for w in self._watches:
                w.release()
            self._watches = []

    async def emit(self, events: Sequence[Event]) -> None:
        if not events:
            return
        if self._closed:  # the library would build a new producer, unwatched and never closed
            raise TransportError(f"openlineage {self.kind}: transport closed", permanent=False)
        await asyncio.to_thread(self._emit_all, events)

    def _emit_all(self, events: Sequence[Event]) -> None:
        t = self.transport
        assert t is not None
        ticket = _Ticket()
        async_failed = self._async_http_failed()
        for w in self._watches:
            w.ticket = ticket
        done, error = len(events), None
        try:
            for i, ev in enumerate(events):
                for w in self._watches:
                    w.index, w.key = i, run_key(ev)
                t.emit(ev)  # type: ignore[arg-type]  # Serde takes dicts; the library's own headers, auth, …
        except Exception as exc:
            done, error = i, exc
        finally:
            for w in self._watches:
                w.ticket = None
        bad = self._settle(ticket) if self._watches else None
        if bad is not None and (error is None or bad[0] < done):
            raise TransportError(
                f"openlineage {self.kind} → {self._kafka_topics()}: {bad[1]}",
                permanent=bad[0] in ticket.refused,  # that event's dead letter; the ones after it go on
                delivered=bad[0],
            )
        if error is not None:
            permanent, reason = classify(error)
            raise TransportError(f"openlineage {self.kind}: {reason}", permanent=permanent, delivered=done)
        self._check_async_http(async_failed)

    def _settle(self, ticket: _Ticket) -> tuple[int, str] | None:
        """One bounded flush of every watched producer; the first event with a message not delivered."""
        for w in self._watches:
            if w.flush() > 0:
                w.give_up()
        return ticket.first_bad()

    def _kafka_topics(self) -> str:
        return ", ".join(
            str(getattr(t, "topic", "")) for t in children(self.transport) if hasattr(t, "topic")
        )

    def _async_http(self) -> list[Any]:
        from openlineage.client.transport import AsyncHttpTransport

        return [t for t in children(self.transport) if isinstance(t, AsyncHttpTransport)]

    def _async_http_failed(self) -> dict[int, int]:
        return {id(t): t.get_stats()["failed"] for t in self._async_http()}

    def _check_async_http(self, failed_before: dict[int, int]) -> None:
        """async_http delivers in the background and only counts failures: wait (bounded) for the batch, and a
        failure or an event still pending fails the whole batch (transiently; it is sent again)."""
        for t in self._async_http():
            finished = t.wait_for_completion(self.cfg.timeout_s)
            if not finished or t.get_stats()["failed"] > failed_before.get(id(t), 0):
                raise TransportError(
                    "openlineage async_http: events failed or not delivered in time", permanent=False
                )


def make_transport(cfg: OpenLineageSettings, kafka: KafkaSettings) -> Transport:
    return OpenLineageTransport(cfg, kafka)

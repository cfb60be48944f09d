"""The processor's outputs as Kafka records: what the pipeline (processors/pipeline.py) produced for one input
record → check-results, violations (CloudEvents), dlq and re-routed input records, each on its partition.

Encoding only: the records are collected in an :class:`Emitted` that the commit strategy hands to Kafka
(runtime/deployables/commit.py). What is written is known per input record here, before any of it is sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Protocol

from floe_stream.processors.bounds import OutputTooLarge
from floe_stream.processors.model import Outputs, Record
from floe_stream.processors.router import REROUTED
from floe_stream.runtime.framework.kafka import NO_HEADERS, Lanes, OutRecord, dead_letter
from floe_stream.telemetry.tracing import TRACEPARENT
from floe_stream.topics.catalog import TopicKey, topic_name
from floe_stream.topics.check_result import CheckResult
from floe_stream.topics.enums import CheckStatus, CheckType
from floe_stream.topics.partitioning import partition_for
from floe_stream.topics.violation import ResolvedData, ViolationData, encode_violation

_Encoded = tuple[ViolationData | ResolvedData, tuple[bytes, bytes, list[tuple[str, bytes]]]]
"""A violation and its (key, value, headers)."""


class Emitted:
    """Encoded records of some input records: check results grouped by (topic, partition) as they are made
    (the per-event path, :meth:`BatchProducer.enqueue`'s ``lanes``), everything else as records."""

    __slots__ = ("lanes", "records")

    def __init__(self) -> None:
        self.lanes: Lanes = {}
        self.records: list[OutRecord] = []

    def __bool__(self) -> bool:
        return bool(self.lanes or self.records)


class OutputObserver(Protocol):
    """Telemetry's view of the outputs (telemetry/hooks.py)."""

    result_types: frozenset[CheckType]
    """The check types whose results :meth:`result` wants to see."""

    def result(self, r: CheckResult) -> None: ...

    def violation(self, v: ViolationData | ResolvedData) -> None: ...

    def dead_letter(self, topic: str, reason: str) -> None: ...


class OutputEncoder:
    """Encodes the outputs of each input record into :attr:`buf` (set by the processor per input partition)."""

    def __init__(
        self,
        topic_prefix: str,
        observer: OutputObserver | None = None,
        traceparent: Callable[[str], str | None] | None = None,
        max_record_bytes: int = 1_000_000,
    ) -> None:
        """``traceparent(check type)``: the trace context a violation continues (telemetry/tracing.py)."""
        self.t_results = topic_name(topic_prefix, TopicKey.CHECK_RESULTS)
        self.t_viol = topic_name(topic_prefix, TopicKey.VIOLATIONS)
        self.t_dlq = topic_name(topic_prefix, TopicKey.DLQ)
        self.partitions: dict[str, int] = {self.t_results: 1, self.t_viol: 1, self.t_dlq: 1}
        """Partition count of each output topic (set when the processor has read them)."""
        self.observer = observer
        self.traceparent = traceparent
        self.max_record_bytes = max_record_bytes
        self.buf = Emitted()
        self.check_counts: Counter[tuple[CheckType, CheckStatus]] = Counter()
        """Check results by (type, status) since the last :meth:`take_counts` (``floe_contract_checks_total``)."""
        self.on_violation: list[Callable[[ViolationData | ResolvedData], None]] = []
        """Called with each violation written (`floe dev` shows them)."""

    def emit(self, rec: Record | None, out: Outputs) -> None:
        """Encode the outputs of one input record. Raises :class:`OutputTooLarge`, having added nothing, when
        one of them is over ``max_record_bytes`` (the pipeline dead-letters the input instead)."""
        # Hand-inlined per-result loop (locals for attributes, lanes grouped here instead of a helper per
        # result): once per check result, measured by bench/processor_cpu.py and bench/processor.py. Each output
        # is encoded once and measured by its encoding's length, in one plain loop before anything is added
        # (bench/versus.py throughput: list, max(map), any(genexpr) and zip passes cost ~1 µs per event).
        buf = self.buf
        limit = self.max_record_bytes
        too_large = False
        results: list[tuple[CheckResult, bytes]] = []
        for r in out.check_results:
            encoded = r.to_json()
            if len(encoded) > limit:
                too_large = True
            results.append((r, encoded))
        violations: list[_Encoded] = []
        if out.violations:  # encoded inline: once per violation (bench/processor_cpu.py, drift)
            traceparent = self.traceparent
            for v in out.violations:
                # the StrEnum member is the str its .value is (a property: ~0.3 µs)
                tp = traceparent(v.violation_type) if traceparent is not None else None
                v_key, v_value, v_headers = encode_violation(v, traceparent=tp)  # + the verdict span's
                if tp:
                    v_headers = [*v_headers, (TRACEPARENT, tp.encode())]
                if len(v_value) > limit:
                    too_large = True
                violations.append((v, (v_key, v_value, v_headers)))
        if too_large:
            raise OutputTooLarge(self._too_large(results, violations))
        if results:
            n_res = self.partitions[self.t_results]
            counts = self.check_counts
            t_results, lanes = self.t_results, buf.lanes
            obs = self.observer
            noted = obs.result_types if obs is not None else frozenset()
            for r, encoded in results:
                lane = (t_results, partition_for(r.asset, n_res))
                value = (r.asset.encode(), encoded, NO_HEADERS)
                if lane in lanes:
                    lanes[lane].append(value)
                else:
                    lanes[lane] = [value]
                if r.check_type in noted:
                    obs.result(r)  # type: ignore[union-attr]
                counts[(r.check_type, r.status)] += 1
        if violations:  # written inline (bench/processor_cpu.py, drift)
            n_v, t_viol, records = self.partitions[self.t_viol], self.t_viol, buf.records
            observer, on_violation = self.observer, self.on_violation
            for v, (v_key, v_value, v_headers) in violations:
                if observer is not None:
                    observer.violation(v)
                records.append(OutRecord(t_viol, partition_for(v.asset, n_v), v_key, v_value, v_headers))
                for cb in on_violation:
                    cb(v)
        if out.dead_letters:
            n_dlq = self.partitions[self.t_dlq]
            for d in out.dead_letters:
                buf.records.append(dead_letter(self.t_dlq, d.record, d.reason, n_dlq, self.max_record_bytes))
                if self.observer is not None:
                    self.observer.dead_letter(d.record.topic, d.reason)
        for f in out.forwards:
            # an event that arrived on another asset's partition goes, once, to its owner's partition
            aid = f.asset_id.encode()
            headers = [*f.record.headers, (REROUTED, aid)]
            buf.records.append(OutRecord(f.record.topic, f.partition, aid, f.record.value or b"", headers))

    def _too_large(
        self,
        results: list[tuple[CheckResult, bytes]],
        violations: list[_Encoded],
    ) -> str:
        sizes = [(len(b), f"a {r.check_type.value} check result of {r.asset}") for r, b in results]
        sizes += [(len(e[1]), f"a {v.violation_type.value} violation of {v.asset}") for v, e in violations]
        size, what = max(sizes)
        return f"outputs too large: {what} would be {size} bytes > kafka.max_record_bytes={self.max_record_bytes}"

    def take(self) -> Emitted:
        """The records encoded since the last call; :attr:`buf` starts empty again."""
        buf, self.buf = self.buf, Emitted()
        return buf

    def take_counts(self) -> Counter[tuple[CheckType, CheckStatus]]:
        counts, self.check_counts = self.check_counts, Counter()
        return counts

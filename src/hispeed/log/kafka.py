"""The Kafka backend of the Log interface, on confluent-kafka (librdkafka).

Every topic lives in Apache Kafka. Records come out as the same Arrow batches as from the
embedded log; the only per-record Python is the client's own message objects, read column by
column with the garbage collector paused (a batch of message objects holds no cycles, and
collecting while tens of thousands are alive costs more than reading them).

- Keys go to partitions by murmur2, as Kafka's Java clients and the embedded log do, so a
  topic moves between backends and between hispeed and other clients without re-keying.
- A transaction is a Kafka transaction of a transactional producer kept per owner (a query,
  a connector); its input offsets go in with `send_offsets_to_transaction` and the group
  metadata of the owner's consumer, so a worker that lost its partitions is fenced.
- Every consumer reads `read_committed`.
- `prefix` puts every topic and group name of this log under a namespace: tests and the
  conformance runner share one broker that way.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import operator
import re
import threading
import time
import uuid
import weakref
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.errors import (
    ConfigError,
    InvalidRecordError,
    LogError,
    OffsetOutOfRangeError,
    TopicExistsError,
    TransactionError,
    UnknownTopicError,
)
from hispeed.log._native import NativeFetcher, by_partition, headers_column
from hispeed.log._native import extension as native_extension
from hispeed.log.base import (
    _KNOWN_CONFIGS,
    RECORD_SCHEMA,
    AppendResult,
    AppendSignal,
    Consumer,
    Log,
    PartitionInfo,
    PolledBatch,
    TopicConfig,
    TopicInfo,
    TopicPartition,
    Transaction,
    check_reset,
    parse_topics,
    to_append_batch,
    validate_topic_name,
)
from hispeed.log.murmur2 import partitions_for_keys

ck: Any
try:
    import confluent_kafka as ck
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        ConfigResource,
        NewTopic,
    )
except ImportError:  # pragma: no cover - the `kafka` extra is part of every install we test
    ck = None

log = logging.getLogger(__name__)

GUARANTEES = ("exactly_once", "exactly_once_v2", "at_least_once")
_TIMEOUT = 30.0
#: librdkafka cannot write a record timestamp of 0 (it means "now" there): such a record
#: carries this header, which hispeed's reads turn back into timestamp 0 and drop
ZERO_TIMESTAMP_HEADER = "hispeed.timestamp.zero"
#: the longest wait for records of the native fetcher, between services of the consumer queue
_NATIVE_WAIT = 0.1
#: errors a new topic gives for a moment, until every broker knows its leaders
_SETTLING = ("NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "NOT_LEADER_OR_FOLLOWER")


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No collections while a batch of message objects (which hold no cycles) is alive."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def consume_some(client: Any, max_records: int, timeout: float) -> list[Any]:
    """The messages there within `timeout` s: waits for the first one only, then takes what
    has arrived (librdkafka's consume waits for all `max_records`, or the whole timeout)."""
    first = client.poll(timeout)
    if first is None:
        return []
    if max_records <= 1:
        return [first]
    return [first, *client.consume(max_records - 1, 0)]


#: message objects turned into Arrow at a time: a chunk's few MB stay in the CPU's caches and
#: in Python's memory arenas (100,000 at a time cost about 40% more CPU per record: page faults
#: as the arenas are freed and allocated again, and cache misses)
CHUNK = 10_000


def fetch_batches(
    client: Any, max_records: int, timeout: float, name: Any = None
) -> tuple[list[tuple[TopicPartition, pa.RecordBatch]], list[tuple[TopicPartition, int]]]:
    """Up to `max_records` messages as `messages_to_batches` gives them, waiting up to
    `timeout` s for the first one only. They are taken CHUNK at a time, and each chunk's
    message objects freed before the collector resumes (so it never traverses them)."""
    batches: list[tuple[TopicPartition, pa.RecordBatch]] = []
    eof: list[tuple[TopicPartition, int]] = []
    while max_records > 0:
        want = min(max_records, CHUNK)
        with gc_paused():
            msgs = consume_some(client, want, timeout)
            got = len(msgs)
            more, ends = messages_to_batches(msgs, name)
            del msgs
        batches += more
        eof += ends
        if got < want:
            break  # nothing more has arrived
        max_records -= got
        timeout = 0.0
    return batches, eof


def _bytes_upto(batch: pa.RecordBatch) -> np.ndarray:
    """Each record's running total of key and value bytes."""
    sizes = [pc.fill_null(pc.binary_length(batch.column(c)), 0) for c in (2, 3)]
    return np.cumsum(sizes[0].to_numpy() + sizes[1].to_numpy())


def _kafka_error(err: Any) -> str:
    return err.str() if hasattr(err, "str") else str(err)


class KafkaLog(AppendSignal, Log):
    """A `Log` whose topics live in Apache Kafka at `bootstrap` ("host:port[,host:port]")."""

    shared = True

    def __init__(
        self,
        bootstrap: str,
        *,
        prefix: str = "",
        app_id: str | None = None,
        guarantee: str = "exactly_once",
        transactional_id: str | None = None,
        default_partitions: int = 1,
        topic_config: Mapping[str, Any] | None = None,
        session_timeout_ms: int = 10_000,
        transaction_timeout_ms: int = 10_000,
        config: Mapping[str, Any] | None = None,
        timeout: float = _TIMEOUT,
    ) -> None:
        """`transactional_id`: the stem of this process's transactional ids (one per owner);
        keep it stable across restarts of one worker so that a restart aborts what the
        previous run left open at once, instead of after `transaction_timeout_ms`.
        `config`: more librdkafka settings for every client (security, for instance).
        `topic_config`: topic settings (`retention.ms`...) for every topic this log creates."""
        if ck is None:
            raise ConfigError(
                "Kafka mode needs the confluent-kafka package: pip install 'hispeed[kafka]'"
            )
        if guarantee not in GUARANTEES:
            raise ConfigError(
                f"processing.guarantee cannot be {guarantee!r}: use exactly_once or at_least_once"
            )
        self.bootstrap = bootstrap
        self.prefix = prefix
        #: hispeed's own topics and groups (`_hispeed_...`) are the application's:
        #: `_hispeed-<app id>_...` in Kafka, so applications sharing a cluster stay apart
        self.app_id = app_id
        self._own = f"_hispeed-{app_id}_" if app_id else "_hispeed_"
        self.guarantee = "at_least_once" if guarantee == "at_least_once" else "exactly_once"
        self.default_partitions = default_partitions
        #: settings every topic this log creates gets, unless its own say otherwise
        self.topic_config = dict(topic_config or {})
        TopicConfig.from_dict(self.topic_config)  # checked now, not at the first topic
        self.session_timeout_ms = session_timeout_ms
        self.transaction_timeout_ms = transaction_timeout_ms
        self.timeout = timeout
        self._txn_stem = transactional_id or f"{prefix}hispeed-{uuid.uuid4().hex[:12]}"
        self._base: dict[str, Any] = {"bootstrap.servers": bootstrap, **(config or {})}
        # topics are created explicitly: asking a broker with auto.create.topics.enable (its
        # default) about a topic that does not exist must not create it
        self._admin: Any = AdminClient(
            {**self._base, "client.id": "hispeed-admin", "allow.auto.create.topics": False}
        )
        self._producer: Any = None
        self._producer_lock = threading.Lock()
        self._txn: dict[str, _TxnProducer] = {}
        self._txn_lock = threading.Lock()
        self._reader: Any = None
        self._reader_lock = threading.RLock()
        self._meta: dict[str, tuple[int, TopicConfig]] = {}
        self._deleted: set[str] = set()
        self._round_robin = 0
        self._consumers: weakref.WeakSet[KafkaConsumer] = weakref.WeakSet()
        self._committers: dict[str, Any] = {}
        #: per group, the partitions whose committed offsets a read has seen: a group's first
        #: offsets show a moment after their transaction commits, later ones at once
        self._shown_offsets: dict[str, set[TopicPartition]] = {}
        self._data = threading.Condition()
        self._appends = 0
        self._closed = False
        try:
            self._admin.list_topics(timeout=min(timeout, 10.0))
        except ck.KafkaException as e:
            raise LogError(
                f"cannot reach Kafka at {bootstrap}: {_kafka_error(e.args[0])}"
            ) from None

    # -- names --------------------------------------------------------------------------

    def _p(self, name: str) -> str:
        if name.startswith("_hispeed_"):
            name = self._own + name[len("_hispeed_") :]
        return self.prefix + name

    def _unp(self, name: str) -> str | None:
        if not name.startswith(self.prefix):
            return None
        name = name[len(self.prefix) :]
        if name.startswith(self._own):
            return "_hispeed_" + name[len(self._own) :]
        if name.startswith("_hispeed"):
            return None  # another application's
        return name

    def _tp(self, tp: TopicPartition, offset: int | None = None) -> Any:
        if offset is None:
            return ck.TopicPartition(self._p(tp.topic), tp.partition)
        return ck.TopicPartition(self._p(tp.topic), tp.partition, offset)

    def client_config(self, **extra: Any) -> dict[str, Any]:
        """librdkafka settings for another client of the same cluster."""
        return {**self._base, **extra}

    # -- topics -------------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        exist_ok: bool = False,
    ) -> TopicInfo:
        self._check_open()
        validate_topic_name(name)
        count = partitions or self.default_partitions
        if count < 1 or count > 10_000:
            raise ConfigError(f"a topic has 1 to 10000 partitions, not {count}")
        config = {**self.topic_config, **(config or {})}
        cfg = TopicConfig.from_dict(config)
        given = cfg.to_dict()
        kafka_config = {k: str(given[k]) for k in config}
        if kafka_config.get("compression.type") == "none":
            kafka_config["compression.type"] = "uncompressed"  # Kafka's "none" is "uncompressed"
        deadline = time.monotonic() + self.timeout
        while True:
            new = NewTopic(self._p(name), num_partitions=count, config=kafka_config)
            future = self._admin.create_topics([new], operation_timeout=self.timeout)[self._p(name)]
            try:
                future.result()
                break
            except ck.KafkaException as e:
                err = e.args[0]
                if err.code() == ck.KafkaError.TOPIC_ALREADY_EXISTS:
                    if name in self._deleted and time.monotonic() < deadline:
                        time.sleep(0.1)  # the broker is still deleting an earlier one
                        continue
                    if exist_ok:
                        return self.describe_topic(name)
                    raise TopicExistsError(f"topic {name!r} already exists") from None
                raise LogError(f"Kafka refused to create {name!r}: {_kafka_error(err)}") from None
        self._deleted.discard(name)
        self._meta[name] = (count, cfg)
        self._wait_for_metadata(name, count)
        return self.describe_topic(name)

    def _wait_for_metadata(self, name: str, count: int) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            md = self._admin.list_topics(self._p(name), timeout=self.timeout).topics.get(
                self._p(name)
            )
            if (
                md is not None
                and md.error is None
                and len(md.partitions) == count
                and all(p.leader >= 0 for p in md.partitions.values())
            ):
                return
            time.sleep(0.02)
        raise LogError(f"topic {name!r} was created but its partitions have no leader yet")

    def delete_topic(self, name: str) -> None:
        self._check_open()
        self._partition_count(name)  # fails clearly for an unknown topic
        future = self._admin.delete_topics([self._p(name)], operation_timeout=self.timeout)
        try:
            future[self._p(name)].result()
        except ck.KafkaException as e:
            raise LogError(f"Kafka refused to delete {name!r}: {_kafka_error(e.args[0])}") from None
        self._meta.pop(name, None)
        self._deleted.add(name)
        deadline = time.monotonic() + self.timeout
        while name in self.list_topics(internal=True) and time.monotonic() < deadline:
            time.sleep(0.02)

    def delete_namespace(self) -> None:
        """Delete every topic of this log's prefix (not waiting for the broker to finish)."""
        if not self.prefix:
            raise LogError("only a log with a prefix has a namespace of its own to delete")
        topics = [
            t
            for t in self._admin.list_topics(timeout=self.timeout).topics
            if t.startswith(self.prefix)
        ]
        if topics:
            for future in self._admin.delete_topics(topics, operation_timeout=0).values():
                with contextlib.suppress(ck.KafkaException):
                    future.result()
        self._meta.clear()

    def list_topics(self, *, internal: bool = False) -> list[str]:
        self._check_open()
        topics = self._admin.list_topics(timeout=self.timeout).topics
        names = (self._unp(t) for t in topics)
        return sorted(n for n in names if n and (internal or not n.startswith("__")))

    def _partition_count(self, name: str) -> int:
        cached = self._meta.get(name)
        if cached is not None:
            return cached[0]
        md = self._admin.list_topics(self._p(name), timeout=self.timeout).topics.get(self._p(name))
        if md is None or md.error is not None or not md.partitions:
            raise UnknownTopicError(f"topic {name!r} does not exist")
        count = len(md.partitions)
        self._meta[name] = (count, self._describe_config(name))
        return count

    def _config(self, name: str) -> TopicConfig:
        self._partition_count(name)
        return self._meta[name][1]

    def _describe_config(self, name: str) -> TopicConfig:
        resource = ConfigResource("topic", self._p(name))
        try:
            entries = self._admin.describe_configs([resource])[resource].result(self.timeout)
        except ck.KafkaException:
            return TopicConfig()
        values: dict[str, Any] = {}
        for key in _KNOWN_CONFIGS:
            entry = entries.get(key)
            if entry is None or entry.value is None:
                continue
            value = "none" if entry.value == "uncompressed" else entry.value
            if key == "compression.type" and value not in ("none", "lz4", "zstd"):
                continue  # "producer", gzip, snappy: what hispeed writes is not compressed
            values[key] = value
        try:
            return TopicConfig.from_dict(values)
        except ConfigError:
            return TopicConfig()

    def describe_topic(self, name: str) -> TopicInfo:
        self._check_open()
        count = self._partition_count(name)
        parts = []
        for p in range(count):
            start, end = self.offsets(name, p)
            parts.append(PartitionInfo(p, start, end, 0, 0))
        return TopicInfo(name, parts, self._config(name), internal=name.startswith("__"))

    # -- appending ----------------------------------------------------------------------

    def _route(
        self, topic: str, records: Any, partition: int | None
    ) -> tuple[pa.RecordBatch, np.ndarray]:
        """Normalize records and decide each one's partition, as the embedded log does."""
        self._check_open()
        count = self._partition_count(topic)
        batch = to_append_batch(records)
        if self._config(topic).compacts and batch.column(1).null_count:
            raise InvalidRecordError(
                f"topic {topic!r} is compacted, so every record needs a key; "
                f"{batch.column(1).null_count} of {batch.num_rows} have none"
            )
        if partition is not None:
            if not 0 <= partition < count:
                raise LogError(
                    f"topic {topic!r} has partitions 0 to {count - 1}; there is no {partition}"
                )
            return batch, np.full(batch.num_rows, partition, np.int32)
        if count == 1:
            return batch, np.zeros(batch.num_rows, np.int32)
        target = partitions_for_keys(batch.column(1), count)
        if batch.column(1).null_count:
            self._round_robin = (self._round_robin + 1) % count
            target[target < 0] = self._round_robin
        return batch, target

    def _produce(
        self,
        producer: Any,
        topic: str,
        batch: pa.RecordBatch,
        target: np.ndarray,
        acks: _Acks,
        *,
        bulk: bool = False,
    ) -> None:
        """Hand the batch's records to the producer, each to its partition in `target`.

        Each record's delivery reaches `acks`, unless `bulk`: then (a transaction's records,
        whose failure fails the transaction) only each partition's first and last record
        report, which is what a transaction's offset ranges need, and the records between
        them go through the native extension without a Python call each (when it is built,
        and the batch has no headers and no timestamp 0)."""
        physical = self._p(topic)
        bulk = bulk and batch.num_rows > 2 and isinstance(producer, ck.Producer)
        ext = native_extension() if bulk else None
        stamps = batch.column(0).to_numpy()
        headers_col = batch.column(3)
        if ext is not None and headers_col.null_count == len(headers_col) and stamps.all():
            self._produce_bulk(ext, producer, physical, batch, target, stamps, acks)
            return
        headers: list[Any] = (
            [None] * batch.num_rows
            if headers_col.null_count == len(headers_col)
            else [
                [(h["key"], h["value"]) for h in hs] if hs else None
                for hs in headers_col.to_pylist()
            ]
        )
        rows = zip(
            target.tolist(),
            batch.column(1).to_pylist(),
            batch.column(2).to_pylist(),
            stamps.tolist(),
            headers,
            strict=True,
        )
        self._send(producer, physical, rows, acks.done)

    @staticmethod
    def _send(producer: Any, physical: str, rows: Iterable[tuple[Any, ...]], callback: Any) -> None:
        """Produce (partition, key, value, timestamp, headers) rows, each reporting to callback."""
        produce = producer.produce
        for p, k, v, t, h in rows:
            if t == 0:  # librdkafka reads 0 as "now": say it in a header hispeed reads back
                h = [*(h or ()), (ZERO_TIMESTAMP_HEADER, b"")]
            while True:
                try:
                    if h is None:
                        produce(physical, v, k, partition=p, timestamp=t, on_delivery=callback)
                    else:
                        produce(
                            physical,
                            v,
                            k,
                            partition=p,
                            timestamp=t,
                            headers=h,
                            on_delivery=callback,
                        )
                    break
                except BufferError:
                    producer.poll(0.01)  # the local queue is full: let deliveries drain it
        producer.poll(0)

    def _produce_bulk(
        self,
        ext: Any,
        producer: Any,
        physical: str,
        batch: pa.RecordBatch,
        target: np.ndarray,
        stamps: np.ndarray,
        acks: _Acks,
    ) -> None:
        """`_produce` of a transaction's batch: each partition's first record, then the middle
        ones natively, then each partition's last; one partition's records keep their order."""
        n = batch.num_rows
        target = np.ascontiguousarray(target, np.int32)
        stamps = np.ascontiguousarray(stamps, np.int64)
        _, first = np.unique(target, return_index=True)
        _, from_end = np.unique(target[::-1], return_index=True)
        last = np.setdiff1d(n - 1 - from_end, first)
        skip = np.zeros(n, np.uint8)
        skip[first] = 1
        skip[last] = 1
        keys, values = batch.column(1), batch.column(2)

        def rows(which: np.ndarray) -> Iterator[tuple[Any, ...]]:
            for i in np.sort(which).tolist():
                yield int(target[i]), keys[i].as_py(), values[i].as_py(), int(stamps[i]), None

        def parts(array: pa.Array) -> tuple[Any, ...]:
            valid, offsets, data = array.buffers()
            return (valid if array.null_count else None, offsets, data, array.offset)

        self._send(producer, physical, rows(first), acks.done)
        start = 0
        while start < n:
            try:
                start = ext.produce(
                    producer, physical, target, skip, parts(keys), parts(values), stamps, start
                )
            except RuntimeError as e:  # the producer's transaction is failing: commit says how
                raise TransactionError(str(e)) from None
            if start < n:
                producer.poll(0.01)  # the local queue is full: let deliveries drain it
        self._send(producer, physical, rows(last), acks.done)

    def _plain_producer(self) -> Any:
        with self._producer_lock:
            if self._producer is None:
                self._producer = ck.Producer(
                    {
                        **self._base,
                        "client.id": "hispeed",
                        "allow.auto.create.topics": False,
                        "enable.idempotence": True,
                        "acks": "all",
                        "linger.ms": 2,
                        "batch.num.messages": 10_000,
                        "queue.buffering.max.messages": 1_000_000,
                    }
                )
            return self._producer

    def append(self, topic: str, records: Any, *, partition: int | None = None) -> AppendResult:
        batch, target = self._route(topic, records, partition)
        n = batch.num_rows
        acks = _Acks(target)
        if n == 0:
            return AppendResult(target, acks.offsets)
        producer = self._plain_producer()
        self._produce(producer, topic, batch, target, acks)
        deadline = time.monotonic() + self.timeout
        while acks.pending and time.monotonic() < deadline:
            producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        if acks.pending:
            raise LogError(f"Kafka did not acknowledge {acks.pending} of {n} records to {topic!r}")
        if acks.errors:
            raise LogError(
                f"Kafka refused {len(acks.errors)} of {n} records to {topic!r}: {acks.errors[0]}"
            )
        self._notify()
        return AppendResult(target, acks.offsets)

    # -- reading ------------------------------------------------------------------------

    def _reader_consumer(self) -> Any:
        if self._reader is None:
            config = self._consumer_config(f"{self.prefix}_hispeed_reader")
            # a read wants what is there: the broker need not wait for more before answering
            # that the end is reached (a transaction's marker after the last record costs a
            # fetch that finds nothing)
            config["fetch.wait.max.ms"] = 1
            self._reader = ck.Consumer(config)
        return self._reader

    def _consumer_config(self, group: str, reset: str = "earliest") -> dict[str, Any]:
        return {
            **self._base,
            "group.id": group,
            "client.id": "hispeed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": reset,
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "session.timeout.ms": self.session_timeout_ms,
            "heartbeat.interval.ms": max(100, self.session_timeout_ms // 5),
            "partition.assignment.strategy": "range",
            "fetch.wait.max.ms": 50,
            "fetch.max.bytes": 52_428_800,
            "max.partition.fetch.bytes": 10_485_760,
        }

    def read(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        max_records: int | None = None,
        max_bytes: int | None = None,
    ) -> list[pa.RecordBatch]:
        self._check_open()
        count = self._partition_count(topic)
        if not 0 <= partition < count:
            raise LogError(
                f"topic {topic!r} has partitions 0 to {count - 1}; there is no {partition}"
            )
        start, end = self.offsets(topic, partition)
        if offset < start or offset > end:
            raise OffsetOutOfRangeError(
                f"offset {offset} is out of range for {topic}[{partition}]: "
                + (
                    f"it holds offsets {start} to {end - 1}"
                    if end > start
                    else f"it is empty, and the next offset is {end}"
                ),
                start,
                end,
            )
        if offset == end:
            return []
        budget = max_records if max_records is not None else 1 << 62
        byte_budget = max_bytes if max_bytes is not None else 1 << 62
        out: list[pa.RecordBatch] = []
        tp = TopicPartition(topic, partition)
        with self._reader_lock:
            reader = self._reader_consumer()
            reader.assign([self._tp(tp, offset)])
            try:
                position = offset
                idle_until = time.monotonic() + self.timeout
                while budget > 0 and byte_budget > 0 and position < end:
                    batches, eof = fetch_batches(reader, min(budget, 100_000), 0.2, self._unp)
                    for _, batch in batches:
                        if budget <= 0 or byte_budget <= 0:
                            break
                        upto = _bytes_upto(batch)  # at least one record, however big
                        keep = min(batch.num_rows, int(np.searchsorted(upto, byte_budget)) + 1)
                        batch = batch.slice(0, keep) if keep < batch.num_rows else batch
                        out.append(batch)
                        budget -= batch.num_rows
                        byte_budget -= int(upto[keep - 1])
                        position = batch.column(0)[batch.num_rows - 1].as_py() + 1
                    if eof:
                        break
                    if batches:
                        idle_until = time.monotonic() + self.timeout
                    elif time.monotonic() > idle_until:
                        raise LogError(f"reading {topic}[{partition}] from Kafka timed out")
            finally:
                reader.unassign()
        if max_records is not None and sum(b.num_rows for b in out) > max_records:
            table = pa.Table.from_batches(out, schema=RECORD_SCHEMA).slice(0, max_records)
            out = table.to_batches()
        return out

    def offsets(self, topic: str, partition: int) -> tuple[int, int]:
        """(log start offset, last stable offset): the end a read_committed reader reaches."""
        self._check_open()
        deadline = time.monotonic() + self.timeout
        while True:
            with self._reader_lock:
                try:
                    low, high = self._reader_consumer().get_watermark_offsets(
                        self._tp(TopicPartition(topic, partition)),
                        timeout=self.timeout,
                        cached=False,
                    )
                    return int(low), int(high)
                except ck.KafkaException as e:
                    err = e.args[0]
            settling = err.retriable() or err.name() in _SETTLING
            if settling and time.monotonic() < deadline:
                time.sleep(0.05)  # a new topic's leader is not known everywhere yet
                continue
            if err.code() in (
                ck.KafkaError.UNKNOWN_TOPIC_OR_PART,
                ck.KafkaError._UNKNOWN_PARTITION,
                ck.KafkaError._UNKNOWN_TOPIC,
            ):
                self._meta.pop(topic, None)
                count = self._partition_count(topic)  # "does not exist", for an unknown topic
                raise LogError(
                    f"topic {topic!r} has partitions 0 to {count - 1}; there is no {partition}"
                )
            raise LogError(
                f"could not read the offsets of {topic}[{partition}]: {_kafka_error(err)}"
            )

    # -- groups -------------------------------------------------------------------------

    def _live_consumer(self, group: str) -> KafkaConsumer | None:
        for consumer in list(self._consumers):
            if consumer.group == group and not consumer.closed:
                return consumer
        return None

    def _committer(self, group: str) -> Any:
        """A consumer of the group that never joins it: commits (and group metadata) for a
        group with no live member in this process."""
        committer = self._committers.get(group)
        if committer is None:
            committer = ck.Consumer(self._consumer_config(self._p(group)))
            self._committers[group] = committer
        return committer

    def group_metadata(self, group: str) -> Any:
        live = self._live_consumer(group)
        if live is not None:
            return live.group_metadata()
        return self._committer(group).consumer_group_metadata()

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        self._check_open()
        if not offsets:
            return
        parts = [self._tp(tp, o) for tp, o in offsets.items()]
        live = self._live_consumer(group)
        try:
            if live is not None:
                live.commit_raw(parts)
            else:
                self._committer(group).commit(offsets=parts, asynchronous=False)
        except ck.KafkaException as e:
            raise LogError(
                f"Kafka refused the offsets of group {group!r}: {_kafka_error(e.args[0])}"
            ) from None

    def committed_offsets(self, group: str, topic: str | None = None) -> dict[TopicPartition, int]:
        self._check_open()
        from confluent_kafka import ConsumerGroupTopicPartitions

        request = [ConsumerGroupTopicPartitions(self._p(group))]
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                result = self._admin.list_consumer_group_offsets(request, require_stable=True)[
                    self._p(group)
                ].result(self.timeout)
            except ck.KafkaException as e:
                err = e.args[0]
                if err.code() in (ck.KafkaError.GROUP_ID_NOT_FOUND,):
                    return {}
                raise LogError(
                    f"could not read the offsets of group {group!r}: {_kafka_error(err)}"
                ) from None
            unstable = [
                p
                for p in result.topic_partitions or []
                if p.error is not None and p.error.code() == ck.KafkaError.UNSTABLE_OFFSET_COMMIT
            ]
            if not unstable:
                break
            if time.monotonic() >= deadline:
                raise LogError(
                    f"the offsets of group {group!r} are still being committed: "
                    f"{_kafka_error(unstable[0].error)}"
                )
            time.sleep(0.005)  # a committed transaction's offsets are on their way in
        out: dict[TopicPartition, int] = {}
        for part in result.topic_partitions or []:
            name = self._unp(part.topic)
            if name is None or part.offset < 0 or (topic is not None and name != topic):
                continue
            out[TopicPartition(name, part.partition)] = part.offset
        return out

    def delete_records(self, topic: str, before: Mapping[int, int]) -> None:
        self._check_open()
        parts = [ck.TopicPartition(self._p(topic), p, o) for p, o in before.items()]
        try:
            for future in self._admin.delete_records(
                parts, operation_timeout=self.timeout
            ).values():
                future.result()
        except ck.KafkaException as e:
            raise LogError(
                f"Kafka refused to delete records of {topic!r}: {_kafka_error(e.args[0])}"
            ) from None

    def list_groups(self) -> list[str]:
        self._check_open()
        result = self._admin.list_consumer_groups().result(self.timeout)
        names = (self._unp(g.group_id) for g in result.valid)
        return sorted(
            n for n in names if n and not n.startswith(("_hispeed_reader", "_hispeed_standalone_"))
        )

    def transaction(self, owner: str | None = None, guarantee: str | None = None) -> Transaction:
        """A Kafka transaction of `owner`'s transactional producer (one per owner, made on
        first use). With processing.guarantee at_least_once (this log's, or `guarantee`):
        appends, then offsets, each acknowledged, but not atomic together."""
        self._check_open()
        if guarantee is not None and guarantee not in GUARANTEES:
            raise ConfigError(
                f"processing.guarantee cannot be {guarantee!r}: use exactly_once or at_least_once"
            )
        if (guarantee or self.guarantee) == "at_least_once":
            return _AtLeastOnce(self)
        name = owner or "default"
        with self._txn_lock:
            producer = self._txn.get(name)
            if producer is None or producer.fatal:
                producer = _TxnProducer(self, f"{self._txn_stem}-{name}")
                self._txn[name] = producer
        return KafkaTransaction(self, producer)

    def consumer(
        self,
        topics: Sequence[str] | str,
        *,
        group: str | None = None,
        auto_offset_reset: str = "latest",
    ) -> Consumer:
        self._check_open()
        consumer = KafkaConsumer(self, topics, group=group, auto_offset_reset=auto_offset_reset)
        self._consumers.add(consumer)
        return consumer

    def _check_open(self) -> None:
        if self._closed:
            raise LogError("this log is closed")

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        with self._data:
            self._data.notify_all()
        for consumer in list(self._consumers):
            consumer.close()
        for txn in list(self._txn.values()):
            txn.close()
        self._txn.clear()
        for committer in self._committers.values():
            committer.close()
        self._committers.clear()
        self._admin = None  # its threads end when it is collected (it has no close)
        if self._producer is not None:
            self._producer.flush(self.timeout)
            self._producer.close()
            self._producer = None
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None


class _Acks:
    """Delivery reports of one append (one topic). An idempotent producer delivers each
    partition's records in the order they were produced, and reports them in that order: each
    partition's offsets, as they arrive, belong to its rows in order (no callback per row)."""

    def __init__(self, target: np.ndarray) -> None:
        self.target = target
        #: deliveries to come (a transaction's bulk append reports only each partition's
        #: first and last record, and never reads this)
        self.pending = len(target)
        self.errors: list[str] = []
        self.by_partition: dict[tuple[str, int], list[int]] = {}

    def done(self, err: Any, msg: Any) -> None:
        self.pending -= 1
        if err is not None:
            self.errors.append(_kafka_error(err))
            return
        key = (msg.topic(), msg.partition())
        offsets = self.by_partition.get(key)
        if offsets is None:
            self.by_partition[key] = [msg.offset()]
        else:
            offsets.append(msg.offset())

    @property
    def offsets(self) -> np.ndarray:
        """Each row's offset, in the batch's order (-1 where it was not written)."""
        out = np.full(len(self.target), -1, np.int64)
        for (_, partition), offsets in self.by_partition.items():
            rows = np.flatnonzero(self.target == partition)
            if len(rows) == len(offsets):
                out[rows] = offsets
        return out

    @property
    def ranges(self) -> dict[tuple[str, int], tuple[int, int]]:
        return {key: (min(o), max(o) + 1) for key, o in self.by_partition.items()}


class _TxnProducer:
    """One owner's transactional producer; one transaction at a time."""

    def __init__(self, log_: KafkaLog, transactional_id: str) -> None:
        self.log = log_
        self.lock = threading.Lock()
        self.fatal = False
        self.producer = ck.Producer(
            {
                **log_._base,
                "client.id": "hispeed",
                "allow.auto.create.topics": False,
                "transactional.id": transactional_id,
                "transaction.timeout.ms": log_.transaction_timeout_ms,
                "enable.idempotence": True,
                "acks": "all",
                "linger.ms": 2,
                "batch.num.messages": 10_000,
                "queue.buffering.max.messages": 1_000_000,
            }
        )
        try:
            self.producer.init_transactions(log_.timeout)
        except ck.KafkaException as e:
            raise TransactionError(
                f"Kafka refused transactions for {transactional_id!r}: {_kafka_error(e.args[0])}"
            ) from None

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing is best effort: the broker may be gone
            self.producer.flush(1.0)
            self.producer.close()


class KafkaTransaction(Transaction):
    def __init__(self, log_: KafkaLog, producer: _TxnProducer) -> None:
        self.log = log_
        self.owner = producer
        self.producer = producer.producer
        self.acks: list[_Acks] = []
        self.sent: dict[str, set[TopicPartition]] = {}  # the offsets' partitions, by group
        self.begun = False
        self.done = False
        self.state = "open"  # then committed, aborted or failed
        producer.lock.acquire()

    def _check(self) -> None:
        if self.done:
            raise TransactionError(f"this transaction is already {self.state}")

    def _begin(self) -> None:
        self._check()
        if not self.begun:
            self._call(self.producer.begin_transaction)
            self.begun = True

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except ck.KafkaException as e:
            err = e.args[0]
            if err.fatal():
                self.owner.fatal = True
                self._release("failed")
                raise TransactionError(
                    f"this worker's transactions were fenced or failed for good "
                    f"({_kafka_error(err)}): another worker has taken its partitions over"
                ) from None
            if getattr(err, "txn_requires_abort", lambda: False)():
                self.abort()
            else:
                self._release("failed")
            raise TransactionError(f"Kafka transaction failed: {_kafka_error(err)}") from None

    def append(self, topic: str, records: Any, *, partition: int | None = None) -> None:
        self._check()
        batch, target = self.log._route(topic, records, partition)
        if batch.num_rows == 0:
            return
        self._begin()
        acks = _Acks(target)
        self.acks.append(acks)
        try:
            self.log._produce(self.producer, topic, batch, target, acks, bulk=True)
        except TransactionError:
            self.abort()  # part of the batch is in: none of the transaction may commit
            raise

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        if not offsets:
            return
        self._begin()
        parts = [self.log._tp(tp, o) for tp, o in offsets.items()]
        metadata = self.log.group_metadata(group)
        self._call(self.producer.send_offsets_to_transaction, parts, metadata, self.log.timeout)
        self.sent.setdefault(group, set()).update(offsets)

    def commit(self) -> dict[TopicPartition, tuple[int, int]]:
        self._check()
        if self.begun:
            self._call(self.producer.commit_transaction, self.log.timeout)
        self._release("committed")
        ranges: dict[TopicPartition, tuple[int, int]] = {}
        for acks in self.acks:
            if acks.errors:
                raise TransactionError(f"Kafka refused records: {acks.errors[0]}")
            for (topic, p), (first, end) in acks.ranges.items():
                name = self.log._unp(topic) or topic
                tp = TopicPartition(name, p)
                have = ranges.get(tp, (first, end))
                ranges[tp] = (min(have[0], first), max(have[1], end))
        self._await_visible(ranges)
        if self.acks:
            self.log._notify()
        return ranges

    def _await_visible(self, ranges: Mapping[TopicPartition, tuple[int, int]]) -> None:
        """Kafka confirms a commit before it writes the commit markers that make the records
        readable (read_committed): wait for each partition's last stable offset to pass them,
        so that a read after commit() sees them, as on the embedded log. A transaction left
        open by another writer holds that offset back until it ends, at most its timeout.
        The group offsets likewise: a group that has no others yet shows them a moment later."""
        deadline = time.monotonic() + self.log.transaction_timeout_ms / 1000 + 1
        for tp, (_, end) in ranges.items():
            while self.log.offsets(*tp)[1] < end and time.monotonic() < deadline:
                time.sleep(0.001)
        for group, partitions in self.sent.items():
            shown = self.log._shown_offsets.setdefault(group, set())
            if partitions <= shown:
                continue  # shown before: a read now waits while the broker says "unstable"
            with contextlib.suppress(LogError):  # committed all the same: only slow to show
                while time.monotonic() < deadline:
                    shown |= set(self.log.committed_offsets(group)) & partitions
                    if partitions <= shown:
                        break
                    time.sleep(0.001)

    def abort(self) -> None:
        if self.done:
            return
        try:
            if self.begun:
                self.producer.abort_transaction(self.log.timeout)
        except ck.KafkaException as e:
            if e.args[0].fatal():
                self.owner.fatal = True
        finally:
            self._release("aborted")

    def _release(self, state: str) -> None:
        if not self.done:
            self.done = True
            self.state = state
            self.owner.lock.release()


class _AtLeastOnce(Transaction):
    """processing.guarantee = at_least_once: the appends, acknowledged, then the offsets."""

    def __init__(self, log_: KafkaLog) -> None:
        self.log = log_
        self.appends: list[tuple[str, Any, int | None]] = []
        self.offsets: list[tuple[str, Mapping[TopicPartition, int]]] = []

    def append(self, topic: str, records: Any, *, partition: int | None = None) -> None:
        self.appends.append((topic, records, partition))

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        self.offsets.append((group, dict(offsets)))

    def commit(self) -> dict[TopicPartition, tuple[int, int]]:
        ranges: dict[TopicPartition, tuple[int, int]] = {}
        for topic, records, partition in self.appends:
            result = self.log.append(topic, records, partition=partition)
            for p, o in result.pairs():
                tp = TopicPartition(topic, p)
                first, end = ranges.get(tp, (o, o + 1))
                ranges[tp] = (min(first, o), max(end, o + 1))
        for group, offsets in self.offsets:
            self.log.commit_offsets(group, offsets)
        return ranges

    def abort(self) -> None:
        self.appends.clear()
        self.offsets.clear()


def messages_to_batches(
    msgs: list[Any], name: Any = None
) -> tuple[list[tuple[TopicPartition, pa.RecordBatch]], list[tuple[TopicPartition, int]]]:
    """Message objects to one Arrow batch (RECORD_SCHEMA) per run of one partition, and the
    partitions whose end was reached (with the end offset). Raises on a real error."""
    if not msgs:
        return [], []
    message = ck.Message
    errors = list(map(message.error, msgs))
    eof: list[tuple[TopicPartition, int]] = []
    if any(e is not None for e in errors):  # not list.count: KafkaError == None raises
        kept = []
        for m, e in zip(msgs, errors, strict=True):
            if e is None:
                kept.append(m)
            elif e.code() == ck.KafkaError._PARTITION_EOF:
                topic = (name(m.topic()) if name is not None else None) or m.topic()
                eof.append((TopicPartition(topic, m.partition()), m.offset()))
            elif e.fatal() or e.code() in (
                ck.KafkaError.UNKNOWN_TOPIC_OR_PART,
                ck.KafkaError._UNKNOWN_TOPIC,
                ck.KafkaError.TOPIC_AUTHORIZATION_FAILED,
            ):
                raise LogError(f"reading from Kafka failed: {_kafka_error(e)}")
            else:
                log.warning("Kafka consumer: %s", _kafka_error(e))
        msgs = kept
        if not msgs:
            return [], eof
    partitions = np.fromiter(map(message.partition, msgs), np.int64, len(msgs))
    topics = list(map(message.topic, msgs))
    first_topic = topics[0]
    if topics.count(first_topic) == len(topics):
        names = [first_topic]
        topic_of = np.zeros(len(msgs), np.int64)
    else:
        index: dict[str, int] = {}
        topic_of = np.fromiter((index.setdefault(t, len(index)) for t in topics), np.int64)
        names = list(index)
    offsets = pa.array(np.fromiter(map(message.offset, msgs), np.int64, len(msgs)))
    # (type, timestamp) pairs: the second of each, without a Python-level loop
    stamps = map(operator.itemgetter(1), map(message.timestamp, msgs))
    stamp_values = np.fromiter(stamps, np.int64, len(msgs))
    keys = pa.array(list(map(message.key, msgs)), pa.binary())
    values = pa.array(list(map(message.value, msgs)), pa.binary())
    raw_headers = list(map(message.headers, msgs))
    sparse = (
        [(i, h) for i, h in enumerate(raw_headers) if h is not None]
        if raw_headers.count(None) != len(raw_headers)
        else []
    )
    headers, stamp_values = headers_column(len(msgs), sparse, stamp_values, ZERO_TIMESTAMP_HEADER)
    whole = pa.RecordBatch.from_arrays(
        [offsets, pa.array(stamp_values), keys, values, headers], schema=RECORD_SCHEMA
    )
    logical = [(name(t) if name is not None else None) or t for t in names]
    return by_partition(whole, logical, topic_of, partitions), eof


class KafkaConsumer(Consumer):
    """Reads topics `read_committed`, alone (assigned every partition) or in a consumer group
    (subscribed: Kafka's range assignment shares the partitions among the members)."""

    def __init__(
        self,
        log_: KafkaLog,
        topics: Sequence[str] | str,
        *,
        group: str | None,
        auto_offset_reset: str = "latest",
    ) -> None:
        check_reset(auto_offset_reset)
        self.log = log_
        self.group = group
        self.closed = False
        self._reset = auto_offset_reset
        self._pattern, self._names = parse_topics(topics)
        # "latest" means from now on: a topic a pattern finds later is read whole
        self._existing = set(log_.list_topics(internal=True)) if self._pattern else set()
        if self._pattern is None:
            for name in self._names:
                log_._partition_count(name)  # fails clearly for an unknown topic
        group_id = (
            log_._p(group) if group else f"{log_.prefix}_hispeed_standalone_{uuid.uuid4().hex}"
        )
        config = log_._consumer_config(group_id, auto_offset_reset)
        if self._pattern is not None:  # a new topic of the pattern is found within 1 s, not 5 min
            config["topic.metadata.refresh.interval.ms"] = 1000
        self._c = ck.Consumer(config)
        #: records in bulk, without a message object each (None: through message objects)
        self._native = (
            NativeFetcher(self._c, ZERO_TIMESTAMP_HEADER)
            if native_extension() is not None
            else None
        )
        self._positions: dict[TopicPartition, int] = {}
        self._assigned: list[TopicPartition] = []
        #: fetched, not handed out yet (positions move as poll hands batches out)
        self._pending: list[PolledBatch] = []
        #: ends of partitions reached, applied to positions once their batches are handed out
        self._eof: dict[TopicPartition, int] = {}
        self._at_end: set[TopicPartition] = set()
        self._lock = threading.RLock()
        self._assigned_once = False
        self._last_refresh = 0.0
        #: called with the partitions gained and lost at each rebalance
        self.on_assign: list[Any] = []
        self.on_revoke: list[Any] = []
        if group is None:
            self._refresh_standalone()
        else:
            physical = (
                ["^" + re.escape(log_.prefix) + self._pattern.pattern[1:]]
                if self._pattern is not None
                else [log_._p(n) for n in self._names]
            )
            self._c.subscribe(physical, on_assign=self._assigned_cb, on_revoke=self._revoked_cb)

    # -- assignment -------------------------------------------------------------------------

    def _topics_now(self) -> list[str]:
        if self._pattern is None:
            return list(self._names)
        return [t for t in self.log.list_topics() if self._pattern.match(t)]

    def _refresh_standalone(self) -> None:
        """Assign every partition of the topics (the pattern's, as they are now)."""
        self._last_refresh = time.monotonic()
        wanted = [
            TopicPartition(t, p)
            for t in self._topics_now()
            for p in range(self.log._partition_count(t))
        ]
        if wanted == self._assigned and self._assigned_once:
            return
        for tp in wanted:
            if tp not in self._positions:
                new_topic = self._pattern is not None and tp.topic not in self._existing
                self._positions[tp] = self._start(tp, new_topic)
        self._assigned = wanted
        self._assigned_once = True
        self._pending, self._eof = [], {}  # fetched again from the positions handed out
        self._assign(self._c, {tp: self._positions[tp] for tp in wanted})

    def _start(self, tp: TopicPartition, from_start: bool = False) -> int:
        start, end = self.log.offsets(*tp)
        return start if self._reset == "earliest" or from_start else end

    def _assigned_cb(self, consumer: Any, partitions: list[Any]) -> None:
        if self.closed:
            return
        tps = [TopicPartition(self.log._unp(p.topic) or p.topic, p.partition) for p in partitions]
        committed: dict[TopicPartition, int] = {}
        if partitions:
            for p in consumer.committed(partitions, timeout=self.log.timeout):
                if p.offset >= 0:
                    committed[TopicPartition(self.log._unp(p.topic) or p.topic, p.partition)] = (
                        p.offset
                    )
        positions = {}
        for tp in tps:
            if tp in committed:
                positions[tp] = committed[tp]
            else:
                new_topic = self._pattern is not None and tp.topic not in self._existing
                positions[tp] = self._start(tp, new_topic)
        self._positions = positions
        self._assigned = tps
        self._at_end = set()
        self._assigned_once = True
        self._assign(consumer, {tp: positions[tp] for tp in tps})
        for listener in self.on_assign:
            listener(list(tps))

    def _assign(self, consumer: Any, positions: Mapping[TopicPartition, int]) -> None:
        """Fetch these partitions from these offsets (their records routed to the native
        fetcher first, when there is one: librdkafka leaves them where they were routed)."""
        parts = [self.log._tp(tp, offset) for tp, offset in positions.items()]
        if self._native is not None:
            self._native.forward((p.topic, p.partition) for p in parts)
        consumer.assign(parts)

    def _reassign(self) -> None:
        """Assign every partition again where it stands (what was fetched and not handed out
        is fetched again)."""
        self._pending, self._eof = [], {}
        self._assign(self._c, {tp: self._positions[tp] for tp in self._assigned})

    def _revoked_cb(self, consumer: Any, partitions: list[Any]) -> None:
        lost = list(self._assigned)
        for listener in self.on_revoke:
            listener(lost)
        self._pending = []
        self._eof = {}
        self._positions = {}
        self._assigned = []
        consumer.unassign()

    def _wait_for_assignment(self) -> None:
        """Poll until the group gives this member its partitions. A rebalance waits for every
        member to poll, so the group's other members in this process poll too."""
        deadline = time.monotonic() + self.log.timeout
        while not self._assigned_once and time.monotonic() < deadline:
            self._fetch(0.1, 10_000)
            for other in list(self.log._consumers):
                if other is not self and other.group == self.group and not other.closed:
                    other._drive()
        if not self._assigned_once:
            raise LogError(
                f"group {self.group!r} gave this consumer no partitions within "
                f"{self.log.timeout:.0f} s"
            )

    # -- reading ----------------------------------------------------------------------------

    def _drive(self) -> None:
        """Take part in a rebalance (callbacks run in polls), unless polling elsewhere now."""
        if self._lock.acquire(blocking=False):
            try:
                if not self.closed:
                    self._fetch(0, 10_000)
            finally:
                self._lock.release()

    def _fetch(self, timeout: float, max_records: int) -> None:
        """Fetch into the pending batches, waiting up to `timeout` s for the first message only
        (librdkafka's consume waits for all `max_records`, or the whole timeout)."""
        if self._native is None:
            batches, eof = fetch_batches(self._c, max_records, timeout, self.log._unp)
        else:
            # the consumer queue first: rebalances, errors and callbacks (and the records of
            # any partition not routed to the native fetcher); the wait is in slices, so a
            # rebalance is served within one
            batches, eof = fetch_batches(self._c, max_records, 0.0, self.log._unp)
            if not batches:
                try:
                    more, ends = self._native.fetch(
                        max_records, min(timeout, _NATIVE_WAIT), self.log._unp
                    )
                except Exception:
                    self._reassign()  # what librdkafka handed over is gone: fetch it again
                    raise
                batches, eof = more, eof + ends
        for tp, batch in batches:
            if tp in self._positions:  # else from before a rebalance that took it away
                self._pending.append(PolledBatch(tp, batch))
        for tp, offset in eof:
            if tp in self._positions:
                self._eof[tp] = offset

    def _hand_out(self, budget: int) -> list[PolledBatch]:
        """Up to `budget` records of the pending batches; positions move past what is handed
        out, and to a partition's end once nothing of it is pending."""
        out: list[PolledBatch] = []
        rest: list[PolledBatch] = []
        for polled in self._pending:
            tp, batch = polled.partition, polled.batch
            if budget <= 0:
                rest.append(polled)
                continue
            if batch.num_rows > budget:
                rest.append(PolledBatch(tp, batch.slice(budget)))
                batch = batch.slice(0, budget)
            out.append(PolledBatch(tp, batch))
            budget -= batch.num_rows
            self._positions[tp] = batch.column(0)[batch.num_rows - 1].as_py() + 1
            self._at_end.discard(tp)
        self._pending = rest
        waiting = {polled.partition for polled in rest}
        for tp in [tp for tp in self._eof if tp not in waiting]:
            offset = self._eof.pop(tp)
            if tp in self._positions:
                self._positions[tp] = max(self._positions[tp], offset)
                self._at_end.add(tp)
        return out

    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[PolledBatch]:
        self._check()
        budget = max_records if max_records is not None else 100_000
        with self._lock:
            stale = time.monotonic() - self._last_refresh > 1.0
            if self.group is None and self._pattern is not None and stale:
                self._refresh_standalone()
            deadline = time.monotonic() + timeout
            while True:
                if not self._pending:
                    try:
                        self._fetch(max(0.0, deadline - time.monotonic()), budget)
                    except ck.KafkaException as e:
                        raise LogError(
                            f"reading from Kafka failed: {_kafka_error(e.args[0])}"
                        ) from None
                out = self._hand_out(budget)
                if out or time.monotonic() >= deadline:
                    return out

    def caught_up(self) -> bool:
        """Whether every assigned partition has been read to its last stable offset."""
        with self._lock:
            if self.group is not None and not self._assigned_once:
                return False
            for tp in self._assigned:
                if self._positions.get(tp, 0) < self.log.offsets(*tp)[1]:
                    return False
            return not self._pending

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        self._check()
        if self.group is None:
            raise LogError("a consumer without a group has nowhere to commit offsets")
        chosen = dict(self._positions if offsets is None else offsets)
        try:
            self.commit_raw([self.log._tp(tp, o) for tp, o in chosen.items()])
        except ck.KafkaException as e:
            raise LogError(
                f"Kafka refused the offsets of group {self.group!r}: {_kafka_error(e.args[0])}"
            ) from None

    def commit_raw(self, parts: list[Any]) -> None:
        with self._lock:
            self._c.commit(offsets=parts, asynchronous=False)

    def group_metadata(self) -> Any:
        return self._c.consumer_group_metadata()

    def assignment(self) -> list[TopicPartition]:
        self._check()
        with self._lock:
            if self.group is not None and not self._assigned_once:
                self._wait_for_assignment()
            return list(self._assigned)

    @property
    def assigned_once(self) -> bool:
        """Whether the group has given this consumer its partitions (maybe none) yet."""
        return self._assigned_once

    def current_assignment(self) -> list[TopicPartition]:
        """The partitions assigned now, without waiting for a first assignment."""
        with self._lock:
            return list(self._assigned)

    def position(self, tp: TopicPartition) -> int:
        self.assignment()
        try:
            return self._positions[tp]
        except KeyError:
            raise LogError(f"{tp.topic}[{tp.partition}] is not assigned to this consumer") from None

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.assignment()
        with self._lock:
            if tp not in self._positions:
                raise LogError(f"{tp.topic}[{tp.partition}] is not assigned to this consumer")
            self._positions[tp] = offset
            self._at_end.discard(tp)
            self._eof.pop(tp, None)
            self._pending = [p for p in self._pending if p.partition != tp]
            try:
                self._c.seek(self.log._tp(tp, offset))
            except ck.KafkaException:
                self._reassign()  # not fetching yet

    def _check(self) -> None:
        if self.closed:
            raise LogError("this consumer is closed")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            with self._lock:
                if self._native is not None:
                    # first: librdkafka's destroy (in the consumer's close) waits for its queues
                    self._native.close()
                try:
                    self._c.close()
                except Exception as e:  # leaving the group is best effort
                    log.debug("closing a Kafka consumer: %s", e)

"""The Kafka backend of the Log interface, on confluent-kafka (librdkafka).

Every topic lives in Apache Kafka. Records come out as the same Arrow batches as from the
embedded log (`kafka_client.py` reads the client's message objects into them).

- Keys go to partitions by murmur2, as Kafka's Java clients and the embedded log do, so a
  topic moves between backends and between hispeed and other clients without re-keying.
- A transaction is a Kafka transaction of a transactional producer kept per owner (a query,
  a connector); its input offsets go in with `send_offsets_to_transaction` and the group
  metadata of the owner's consumer, so a worker that lost its partitions is fenced
  (`kafka_transaction.py`).
- Every consumer reads `read_committed` (`kafka_consumer.py`).
- `prefix` puts every topic and group name of this log under a namespace: tests and the
  conformance runner share one broker that way.
"""

from __future__ import annotations

import contextlib
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
    LogUnavailableError,
    OffsetOutOfRangeError,
    TopicExistsError,
    TransactionError,
    UnknownTopicError,
)
from hispeed.log._native import extension as native_extension
from hispeed.log.base import (
    _KNOWN_CONFIGS,
    RECORD_SCHEMA,
    AppendResult,
    AppendSignal,
    Consumer,
    Log,
    PartitionInfo,
    TopicConfig,
    TopicInfo,
    TopicPartition,
    Transaction,
    to_append_batch,
    validate_topic_name,
)
from hispeed.log.kafka_client import (
    DEFAULT_TIMEOUT,
    LIBRDKAFKA_LOGGER,
    ZERO_TIMESTAMP_HEADER,
    AdminClient,
    ConfigResource,
    NewTopic,
    ck,
    fetch_batches,
    kafka_error,
)
from hispeed.log.kafka_consumer import KafkaConsumer
from hispeed.log.kafka_transaction import Acks, AtLeastOnce, KafkaTransaction, TxnProducer
from hispeed.log.murmur2 import partitions_for_keys

GUARANTEES = ("exactly_once", "exactly_once_v2", "at_least_once")
#: errors a new topic gives for a moment, until every broker knows its leaders
_SETTLING = ("NOT_LEADER_FOR_PARTITION", "LEADER_NOT_AVAILABLE", "NOT_LEADER_OR_FOLLOWER")
#: librdkafka's errors for a broker it cannot reach (not flagged retriable, yet they pass once
#: the broker is back): raised as LogUnavailableError, which callers retry
_AWAY = ("_TRANSPORT", "_ALL_BROKERS_DOWN", "_TIMED_OUT")

__all__ = ["GUARANTEES", "ZERO_TIMESTAMP_HEADER", "KafkaLog"]


def _bytes_upto(batch: pa.RecordBatch) -> np.ndarray:
    """Each record's running total of key and value bytes."""
    sizes = [pc.fill_null(pc.binary_length(batch.column(c)), 0) for c in (2, 3)]
    return np.cumsum(sizes[0].to_numpy() + sizes[1].to_numpy())


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
        timeout: float = DEFAULT_TIMEOUT,
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
        self._base: dict[str, Any] = {
            "bootstrap.servers": bootstrap,
            # librdkafka's own lines through Python's logging, not straight to stderr
            "logger": LIBRDKAFKA_LOGGER,
            **(config or {}),
        }
        # topics are created explicitly: asking a broker with auto.create.topics.enable (its
        # default) about a topic that does not exist must not create it
        self._admin: Any = self._new_admin()
        self._producer: Any = None
        self._producer_lock = threading.Lock()
        self._txn: dict[str, TxnProducer] = {}
        self._txn_lock = threading.Lock()
        self._reader: Any = None
        self._reader_lock = threading.RLock()
        self._meta: dict[str, tuple[int, TopicConfig]] = {}
        self._deleted: set[str] = set()
        self._round_robin = 0
        self.consumers: weakref.WeakSet[KafkaConsumer] = weakref.WeakSet()
        self._committers: dict[str, Any] = {}
        #: per group, the partitions whose committed offsets a read has seen: a group's first
        #: offsets show a moment after their transaction commits, later ones at once
        self.shown_offsets: dict[str, set[TopicPartition]] = {}
        self._data = threading.Condition()
        self._appends = 0
        self._closed = False
        try:
            self._admin.list_topics(timeout=min(timeout, 10.0))
        except ck.KafkaException as e:
            raise LogError(f"cannot reach Kafka at {bootstrap}: {kafka_error(e.args[0])}") from None

    def _new_admin(self) -> Any:
        return AdminClient(
            {**self._base, "client.id": "hispeed-admin", "allow.auto.create.topics": False}
        )

    def _renew_admin(self) -> None:
        """A new admin client in place of one whose group requests no longer answer: after a
        broker restart librdkafka can keep a group coordinator it has dropped and wait for it
        forever (librdkafka #5456, #5511). The old one is let go on a thread of its own (its
        destruction may wait for that request)."""
        old, self._admin = self._admin, self._new_admin()
        held = [old]
        del old
        threading.Thread(target=held.clear, name="hispeed-admin-retired", daemon=True).start()

    # -- names --------------------------------------------------------------------------

    def physical(self, name: str) -> str:
        """The name in Kafka of this log's topic or group `name` (prefix and app id put in)."""
        if name.startswith("_hispeed_"):
            name = self._own + name[len("_hispeed_") :]
        return self.prefix + name

    def logical(self, name: str) -> str | None:
        """This log's name for Kafka's topic or group `name`; None if it is not this log's."""
        if not name.startswith(self.prefix):
            return None
        name = name[len(self.prefix) :]
        if name.startswith(self._own):
            return "_hispeed_" + name[len(self._own) :]
        if name.startswith("_hispeed"):
            return None  # another application's
        return name

    def kafka_partition(self, tp: TopicPartition, offset: int | None = None) -> Any:
        """confluent-kafka's TopicPartition for `tp` (at `offset`, if given)."""
        if offset is None:
            return ck.TopicPartition(self.physical(tp.topic), tp.partition)
        return ck.TopicPartition(self.physical(tp.topic), tp.partition, offset)

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
            new = NewTopic(self.physical(name), num_partitions=count, config=kafka_config)
            future = self._admin.create_topics([new], operation_timeout=self.timeout)[
                self.physical(name)
            ]
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
                raise LogError(f"Kafka refused to create {name!r}: {kafka_error(err)}") from None
        self._deleted.discard(name)
        self._meta[name] = (count, cfg)
        self._wait_for_metadata(name, count)
        return self.describe_topic(name)

    def _wait_for_metadata(self, name: str, count: int) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            md = self._topics(self.physical(name)).get(self.physical(name))
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
        self.partition_count(name)  # fails clearly for an unknown topic
        future = self._admin.delete_topics([self.physical(name)], operation_timeout=self.timeout)
        try:
            future[self.physical(name)].result()
        except ck.KafkaException as e:
            raise LogError(f"Kafka refused to delete {name!r}: {kafka_error(e.args[0])}") from None
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

    def _topics(self, topic: str | None = None) -> dict[str, Any]:
        """The cluster's topics (or the one named), from the broker's metadata; while the broker
        cannot be reached, LogUnavailableError (not librdkafka's KafkaException)."""
        try:
            return dict(self._admin.list_topics(topic, timeout=self.timeout).topics)
        except ck.KafkaException as e:
            raise LogUnavailableError(
                f"cannot read Kafka's topics at {self.bootstrap}: {kafka_error(e.args[0])}"
            ) from None

    def list_topics(self, *, internal: bool = False) -> list[str]:
        self._check_open()
        topics = self._topics()
        names = (self.logical(t) for t in topics)
        return sorted(n for n in names if n and (internal or not n.startswith("__")))

    def partition_count(self, name: str) -> int:
        """How many partitions topic `name` has (UnknownTopicError if it does not exist)."""
        cached = self._meta.get(name)
        if cached is not None:
            return cached[0]
        md = self._topics(self.physical(name)).get(self.physical(name))
        if md is None or md.error is not None or not md.partitions:
            raise UnknownTopicError(f"topic {name!r} does not exist")
        count = len(md.partitions)
        self._meta[name] = (count, self._describe_config(name))
        return count

    def _config(self, name: str) -> TopicConfig:
        self.partition_count(name)
        return self._meta[name][1]

    def _describe_config(self, name: str) -> TopicConfig:
        resource = ConfigResource("topic", self.physical(name))
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
        count = self.partition_count(name)
        parts = []
        for p in range(count):
            start, end = self.offsets(name, p)
            parts.append(PartitionInfo(p, start, end, 0, 0))
        return TopicInfo(name, parts, self._config(name), internal=name.startswith("__"))

    # -- appending ----------------------------------------------------------------------

    def route(
        self, topic: str, records: Any, partition: int | None
    ) -> tuple[pa.RecordBatch, np.ndarray]:
        """Normalize records and decide each one's partition, as the embedded log does."""
        self._check_open()
        count = self.partition_count(topic)
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

    def produce(
        self,
        producer: Any,
        topic: str,
        batch: pa.RecordBatch,
        target: np.ndarray,
        acks: Acks,
        *,
        bulk: bool = False,
    ) -> None:
        """Hand the batch's records to the producer, each to its partition in `target`.

        Each record's delivery reaches `acks`, unless `bulk`: then (a transaction's records,
        whose failure fails the transaction) only each partition's first and last record
        report, which is what a transaction's offset ranges need, and the records between
        them go through the native extension without a Python call each (when it is built,
        and the batch has no headers and no timestamp 0)."""
        physical = self.physical(topic)
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
        acks: Acks,
    ) -> None:
        """`produce` of a transaction's batch: each partition's first record, then the middle
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
        batch, target = self.route(topic, records, partition)
        n = batch.num_rows
        acks = Acks(target)
        if n == 0:
            return AppendResult(target, acks.offsets)
        producer = self._plain_producer()
        self.produce(producer, topic, batch, target, acks)
        deadline = time.monotonic() + self.timeout
        while acks.pending and time.monotonic() < deadline:
            producer.flush(min(1.0, max(0.0, deadline - time.monotonic())))
        if acks.pending:
            raise LogError(f"Kafka did not acknowledge {acks.pending} of {n} records to {topic!r}")
        if acks.errors:
            raise LogError(
                f"Kafka refused {len(acks.errors)} of {n} records to {topic!r}: {acks.errors[0]}"
            )
        self.notify_append()
        return AppendResult(target, acks.offsets)

    # -- reading ------------------------------------------------------------------------

    def _reader_consumer(self) -> Any:
        if self._reader is None:
            config = self.consumer_config(f"{self.prefix}_hispeed_reader")
            # a read wants what is there: the broker need not wait for more before answering
            # that the end is reached (a transaction's marker after the last record costs a
            # fetch that finds nothing)
            config["fetch.wait.max.ms"] = 1
            self._reader = ck.Consumer(config)
        return self._reader

    def consumer_config(self, group: str, reset: str = "earliest") -> dict[str, Any]:
        """librdkafka settings of a read_committed consumer of Kafka's group `group`."""
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
        count = self.partition_count(topic)
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
            reader.assign([self.kafka_partition(tp, offset)])
            try:
                position = offset
                idle_until = time.monotonic() + self.timeout
                while budget > 0 and byte_budget > 0 and position < end:
                    batches, eof = fetch_batches(reader, min(budget, 100_000), 0.2, self.logical)
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
                        self.kafka_partition(TopicPartition(topic, partition)),
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
                count = self.partition_count(topic)  # "does not exist", for an unknown topic
                if 0 <= partition < count:  # a broker restarting: its metadata not loaded yet
                    raise LogUnavailableError(
                        f"could not read the offsets of {topic}[{partition}]: {kafka_error(err)}"
                    )
                raise LogError(
                    f"topic {topic!r} has partitions 0 to {count - 1}; there is no {partition}"
                )
            # retriable (the broker away, its leader not back yet): the caller may ask again
            raise (LogUnavailableError if settling or err.name() in _AWAY else LogError)(
                f"could not read the offsets of {topic}[{partition}]: {kafka_error(err)}"
            )

    # -- groups -------------------------------------------------------------------------

    def _live_consumer(self, group: str) -> KafkaConsumer | None:
        for consumer in list(self.consumers):
            if consumer.group == group and not consumer.closed:
                return consumer
        return None

    def _committer(self, group: str) -> Any:
        """A consumer of the group that never joins it: commits (and group metadata) for a
        group with no live member in this process."""
        committer = self._committers.get(group)
        if committer is None:
            committer = ck.Consumer(self.consumer_config(self.physical(group)))
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
        parts = [self.kafka_partition(tp, o) for tp, o in offsets.items()]
        live = self._live_consumer(group)
        try:
            if live is not None:
                live.commit_raw(parts)
            else:
                self._committer(group).commit(offsets=parts, asynchronous=False)
        except ck.KafkaException as e:
            raise LogError(
                f"Kafka refused the offsets of group {group!r}: {kafka_error(e.args[0])}"
            ) from None

    def committed_offsets(self, group: str, topic: str | None = None) -> dict[TopicPartition, int]:
        self._check_open()
        from confluent_kafka import ConsumerGroupTopicPartitions

        request = [ConsumerGroupTopicPartitions(self.physical(group))]
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                result = self._admin.list_consumer_group_offsets(request, require_stable=True)[
                    self.physical(group)
                ].result(self.timeout)
            except TimeoutError:  # no answer: the broker away, or librdkafka stuck (see there)
                self._renew_admin()
                raise LogUnavailableError(
                    f"Kafka did not answer for the offsets of group {group!r} within "
                    f"{self.timeout:.0f} s"
                ) from None
            except ck.KafkaException as e:
                err = e.args[0]
                if err.code() in (ck.KafkaError.GROUP_ID_NOT_FOUND,):
                    return {}
                # the broker away (restarting): the caller may ask again
                raise (LogUnavailableError if err.retriable() or err.name() in _AWAY else LogError)(
                    f"could not read the offsets of group {group!r}: {kafka_error(err)}"
                ) from None
            unstable = [
                p
                for p in result.topic_partitions or []
                if p.error is not None and p.error.code() == ck.KafkaError.UNSTABLE_OFFSET_COMMIT
            ]
            if not unstable:
                break
            if time.monotonic() >= deadline:  # a transaction open until it times out
                raise LogUnavailableError(
                    f"the offsets of group {group!r} are still being committed: "
                    f"{kafka_error(unstable[0].error)}"
                )
            time.sleep(0.005)  # a committed transaction's offsets are on their way in
        out: dict[TopicPartition, int] = {}
        for part in result.topic_partitions or []:
            name = self.logical(part.topic)
            if name is None or part.offset < 0 or (topic is not None and name != topic):
                continue
            out[TopicPartition(name, part.partition)] = part.offset
        return out

    def delete_records(self, topic: str, before: Mapping[int, int]) -> None:
        self._check_open()
        parts = [ck.TopicPartition(self.physical(topic), p, o) for p, o in before.items()]
        try:
            for future in self._admin.delete_records(
                parts, operation_timeout=self.timeout
            ).values():
                future.result()
        except ck.KafkaException as e:
            raise LogError(
                f"Kafka refused to delete records of {topic!r}: {kafka_error(e.args[0])}"
            ) from None

    def list_groups(self) -> list[str]:
        self._check_open()
        result = self._admin.list_consumer_groups().result(self.timeout)
        names = (self.logical(g.group_id) for g in result.valid)
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
            return AtLeastOnce(self)
        name = owner or "default"
        with self._txn_lock:
            producer = self._txn.get(name)
            if producer is None or producer.fatal:
                producer = TxnProducer(self, f"{self._txn_stem}-{name}")
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
        self.consumers.add(consumer)
        return consumer

    def _check_open(self) -> None:
        if self._closed:
            raise LogError("this log is closed")

    def close(self) -> None:
        if self._closed:
            return
        self.close_committer()  # its queued appends go in first
        self._closed = True
        with self._data:
            self._data.notify_all()
        for consumer in list(self.consumers):
            consumer.close()
        for txn in list(self._txn.values()):
            txn.close()
        self._txn.clear()
        for committer in self._committers.values():
            committer.close()
        self._committers.clear()
        self._admin = None  # its threads end when it is collected (it has no close)
        if self._producer is not None:
            if self._producer.flush(self.timeout):
                # never delivered (the broker away): dropped, or close() would wait for them
                # (message.timeout.ms, 5 minutes); their appends were never acknowledged
                self._producer.purge()
            self._producer.close()
            self._producer = None
        with self._reader_lock:
            if self._reader is not None:
                self._reader.close()
                self._reader = None

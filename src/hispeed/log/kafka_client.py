"""confluent-kafka (librdkafka), imported once for the Kafka backend, and the reading of its
message objects into the log's Arrow batches.

The only per-record Python of a Kafka read is the client's own message objects, read column by
column with the garbage collector paused (a batch of message objects holds no cycles, and
collecting while tens of thousands are alive costs more than reading them). The native
fetcher (`_native.py`) makes the same batches without the message objects, where it is built.
"""

from __future__ import annotations

import logging
import operator
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from hispeed.errors import LogError
from hispeed.gc_pause import gc_paused
from hispeed.log._native import by_partition, headers_column
from hispeed.log.base import RECORD_SCHEMA, TopicPartition

ck: Any
AdminClient: Any
ConfigResource: Any
NewTopic: Any
try:
    import confluent_kafka as ck
    from confluent_kafka.admin import (  # type: ignore[attr-defined]
        AdminClient,
        ConfigResource,
        NewTopic,
    )
except ImportError:  # pragma: no cover - the `kafka` extra is part of every install we test
    ck = AdminClient = ConfigResource = NewTopic = None

log = logging.getLogger(__name__)

#: how long a Kafka call may take (seconds), unless the log is given another timeout
DEFAULT_TIMEOUT = 30.0
#: librdkafka cannot write a record timestamp of 0 (it means "now" there): such a record
#: carries this header, which hispeed's reads turn back into timestamp 0 and drop
ZERO_TIMESTAMP_HEADER = "hispeed.timestamp.zero"


#: where librdkafka's own log lines go (never straight to the terminal): every Kafka client
#: of hispeed is given `LIBRDKAFKA_LOGGER` as confluent-kafka's `logger` option
librdkafka_log = logging.getLogger("hispeed.kafka.librdkafka")

#: librdkafka's facilities of connection troubles it retries by itself (a broker restarting,
#: one bootstrap server of several down): a warning, since nothing failed yet; a read or write
#: that does fail raises hispeed's own error
RETRIED_FACILITIES = frozenset({"FAIL", "DISCONNECT", "BROKERFAIL", "REQTMOUT", "CONNECT"})


class LibrdkafkaLogger:
    """confluent-kafka's `logger` option: it calls `log(level, "%s [%s] %s", facility,
    client, message)` with librdkafka's syslog level already made a `logging` level, when the
    client is polled. This passes each line to `librdkafka_log`, errors that librdkafka
    retries by itself as warnings: at most one line per facility and client every `interval` s
    (a broker that is down makes every client of it say so several times a second), the
    next one saying how many were left out."""

    def __init__(self, interval: float = 30.0, clock: Callable[[], float] = time.monotonic):
        self.interval = interval
        self.clock = clock
        #: (facility, client) -> (when its last line went out, lines left out since)
        self.quiet: dict[tuple[str, str], tuple[float, int]] = {}
        self._lock = threading.Lock()

    def log(self, level: int, msg: str, *args: Any) -> None:
        """One librdkafka log line, at a level that says what it costs."""
        facility = str(args[0]) if args else ""
        if facility in RETRIED_FACILITIES and level >= logging.WARNING:
            level = logging.WARNING
            now = self.clock()
            key = (facility, str(args[1]) if len(args) > 1 else "")  # per client
            with self._lock:
                last, left_out = self.quiet.get(key, (None, 0))
                if last is not None and now - last < self.interval:
                    self.quiet[key] = (last, left_out + 1)
                    return
                if len(self.quiet) > 1000:  # clients come and go: forget the quiet ones
                    self.quiet = {k: v for k, v in self.quiet.items() if now - v[0] < self.interval}
                self.quiet[key] = (now, 0)
            if left_out:
                msg += f" ({left_out} more {facility} lines in the last {self.interval:.0f} s)"
        librdkafka_log.log(level, "librdkafka " + msg, *args)


LIBRDKAFKA_LOGGER = LibrdkafkaLogger()


def kafka_error(err: Any) -> str:
    """The text of a KafkaError (or of anything else raised in its place)."""
    return err.str() if hasattr(err, "str") else str(err)


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
        with gc_paused:  # no collections while message objects (no cycles) are alive
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
                raise LogError(f"reading from Kafka failed: {kafka_error(e)}")
            else:
                log.warning("Kafka consumer: %s", kafka_error(e))
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

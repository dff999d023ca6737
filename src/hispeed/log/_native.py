"""A Kafka consumer's records into Arrow batches without a Python object per record.

`_rdbulk` (C, `_rdbulk.c`) takes a consumer's fetched records from librdkafka in bulk and
copies them into contiguous buffers; here they become `RECORD_SCHEMA` batches, one per run of
a partition, exactly as `kafka_client.messages_to_batches` makes them from confluent-kafka's
message objects. It is used when the extension was built and drives the very librdkafka
confluent-kafka loaded; otherwise (or with `HISPEED_NATIVE=0`) reads go through the message objects.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import pyarrow as pa

from hispeed.errors import LogError
from hispeed.log.base import RECORD_SCHEMA, TopicPartition

log = logging.getLogger(__name__)

#: librdkafka's error codes that end a read (the others are logged and the read goes on)
_PARTITION_EOF = -191
_FATAL = -150
_UNKNOWN_TOPIC = -188
_UNKNOWN_TOPIC_OR_PART = 3
_TOPIC_AUTHORIZATION_FAILED = 29
_ENDS_A_READ = (_FATAL, _UNKNOWN_TOPIC, _UNKNOWN_TOPIC_OR_PART, _TOPIC_AUTHORIZATION_FAILED)

_HEADERS_TYPE = RECORD_SCHEMA.field("headers").type


def _librdkafka_path() -> str | None:
    """The file of the librdkafka this process loaded (confluent-kafka's own, when it brings
    one), from the process's memory map."""
    import confluent_kafka  # noqa: F401  (loads cimpl, and with it librdkafka)

    paths: list[str] = []
    try:
        with open("/proc/self/maps") as maps:
            for line in maps:
                path = line.rstrip("\n").partition("/")[2]
                if "librdkafka" in path:
                    full = "/" + path
                    if full not in paths:
                        paths.append(full)
    except OSError:
        return None
    bundled = [p for p in paths if "confluent_kafka" in p]
    chosen = bundled or paths
    return chosen[0] if len(chosen) == 1 else None


@functools.cache
def extension() -> Any:
    """The `_rdbulk` module bound to the loaded librdkafka, or None when it cannot be used:
    not built, switched off, or a librdkafka other than confluent-kafka's."""
    if os.environ.get("HISPEED_NATIVE", "1") == "0":
        return None
    try:
        from hispeed.log import _rdbulk  # type: ignore[attr-defined]
    except ImportError:
        log.info("hispeed.log._rdbulk is not built: Kafka reads go through message objects")
        return None
    import confluent_kafka as ck

    path = _librdkafka_path()
    if path is None:
        log.info("librdkafka's file was not found: Kafka reads go through message objects")
        return None
    try:
        version = _rdbulk.load(path)
    except ImportError as e:
        log.info("%s: Kafka reads go through message objects", e)
        return None
    if version != ck.libversion()[0]:
        log.info("librdkafka %s at %s is not confluent-kafka's %s", version, path, ck.libversion())
        return None
    return _rdbulk


def _binary(n: int, offsets: bytes, data: bytes, valid: bytes | None, nulls: int) -> pa.Array:
    return pa.Array.from_buffers(
        pa.binary(),
        n,
        [
            pa.py_buffer(valid) if valid is not None else None,
            pa.py_buffer(offsets),
            pa.py_buffer(data),
        ],
        null_count=nulls,
    )


def headers_column(
    n: int,
    sparse: Iterable[tuple[int, list[tuple[str, bytes | None]]]],
    stamps: np.ndarray,
    zero_header: str,
) -> tuple[pa.Array, np.ndarray]:
    """The headers column of `n` records read from Kafka, from the (row, [(name, value)])
    of those that have headers; and their timestamps, where a record marked with
    `zero_header` (a write of timestamp 0) has 0 again and loses the mark."""
    headers: list[Any] | None = None
    for row, pairs in sparse:
        if headers is None:
            headers = [None] * n
        if any(k == zero_header for k, _ in pairs):
            if not stamps.flags.writeable:
                stamps = stamps.copy()
            stamps[row] = 0
            pairs = [(k, v) for k, v in pairs if k != zero_header]
        headers[row] = [{"key": k, "value": v} for k, v in pairs] or None
    if headers is None:
        return pa.nulls(n, _HEADERS_TYPE), stamps
    return pa.array(headers, _HEADERS_TYPE), stamps


def by_partition(
    whole: pa.RecordBatch, topics: list[str], topic_of: np.ndarray, partitions: np.ndarray
) -> list[tuple[TopicPartition, pa.RecordBatch]]:
    """`whole` cut into its runs of one partition: row i is of topic `topics[topic_of[i]]`
    and partition `partitions[i]`."""
    codes = topic_of.astype(np.int64) * 1_000_000 + partitions if len(topics) > 1 else partitions
    cuts = [0, *(np.flatnonzero(np.diff(codes)) + 1).tolist(), whole.num_rows]
    return [
        (TopicPartition(topics[int(topic_of[a])], int(partitions[a])), whole.slice(a, b - a))
        for a, b in itertools.pairwise(cuts)
    ]


class NativeFetcher:
    """The records of a confluent-kafka consumer's forwarded partitions, in bulk."""

    def __init__(self, consumer: Any, zero_header: str) -> None:
        import confluent_kafka as ck

        ext = extension()
        if ext is None:
            raise LogError("hispeed.log._rdbulk is not available")
        if not isinstance(consumer, ck.Consumer):  # the extension reads its handle's struct
            raise TypeError(f"a confluent_kafka.Consumer, not {type(consumer).__name__}")
        self._f = ext.Fetcher(consumer)
        self._zero_header = zero_header

    def forward(self, partitions: Iterable[tuple[str, int]]) -> None:
        """Route these partitions' records here: call it before they are assigned."""
        for topic, partition in partitions:
            self._f.forward(topic, partition)

    def fetch(
        self, max_records: int, timeout: float, name: Callable[[str], str | None] | None = None
    ) -> tuple[list[tuple[TopicPartition, pa.RecordBatch]], list[tuple[TopicPartition, int]]]:
        """Up to `max_records` records, waiting up to `timeout` s for the first; as
        `messages_to_batches` gives them (batches per partition run, partitions ended)."""
        got = self._f.fetch(max_records, max(0, round(timeout * 1000)))
        if got is None:
            return [], []
        n, topics, topic_index, partitions, offsets, stamps = got[:6]
        keys = _binary(n, *got[6:10])
        values = _binary(n, *got[10:14])
        raw_headers, errors = got[14:]
        logical = [(name(t) if name is not None else None) or t for t in topics]
        eof: list[tuple[TopicPartition, int]] = []
        for topic, partition, offset, code, text in errors:
            if code == _PARTITION_EOF:
                tp = TopicPartition((name(topic) if name is not None else None) or topic, partition)
                eof.append((tp, offset))
            elif code in _ENDS_A_READ:
                raise LogError(f"reading from Kafka failed: {text}")
            else:
                log.warning("Kafka consumer: %s", text)
        if n == 0:
            return [], eof
        stamp_values = np.frombuffer(stamps, np.int64)
        headers, stamp_values = headers_column(n, raw_headers, stamp_values, self._zero_header)
        whole = pa.RecordBatch.from_arrays(
            [
                pa.Array.from_buffers(pa.int64(), n, [None, pa.py_buffer(offsets)]),
                pa.array(stamp_values),
                keys,
                values,
                headers,
            ],
            schema=RECORD_SCHEMA,
        )
        which = np.frombuffer(topic_index, np.int32)
        return by_partition(whole, logical, which, np.frombuffer(partitions, np.int32)), eof

    def close(self) -> None:
        self._f.close()

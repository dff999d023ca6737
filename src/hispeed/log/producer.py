"""A producer in confluent-kafka's shape: `produce()` one record at a time, sent in batches.

    >>> from hispeed.log.producer import Producer
    >>> with Producer(log, {"linger.ms": 5}) as producer:
    ...     for reading in readings:
    ...         producer.produce("readings", value=reading, key=device)
    ...     producer.flush()          # (leaving the block flushes too)

`produce()` only queues the record; a background thread appends what is queued once the
oldest record has waited `linger_ms` or `batch_size` records wait, as one append per topic
(Arrow columns built once per batch, no per-record Arrow or frame work). Delivery reports
(`on_delivery(err, msg)`, confluent-kafka's signature, `msg` answering `topic()`,
`partition()`, `offset()`, `key()`, `value()`, `timestamp()`, `headers()`, `error()`) are
served by `poll()` and `flush()` in the caller's thread, as confluent-kafka serves them.

Where it differs from confluent-kafka: the records go to a hispeed `Log` (embedded or Kafka);
`batch_size` counts records (confluent-kafka's `batch.num.messages`); a full queue
(`max_buffered`) makes `produce()` wait for room instead of raising `BufferError`; records
that fail without an `on_delivery` to tell are not dropped silently: `flush()` raises a
`ProducerError` saying how many and why.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Protocol, Self

import numpy as np
import pyarrow as pa

from hispeed.errors import ConfigError, LogError
from hispeed.log.records import APPEND_SCHEMA, HEADERS_TYPE, AppendResult, now_ms

log = logging.getLogger(__name__)

#: confluent-kafka's TIMESTAMP_CREATE_TIME: what `DeliveredMessage.timestamp()` says
TIMESTAMP_CREATE_TIME = 1
DeliveryCallback = Callable[[BaseException | None, "DeliveredMessage"], Any]

_SETTINGS = {
    "linger.ms": "linger_ms",
    "linger_ms": "linger_ms",
    "queue.buffering.max.ms": "linger_ms",
    "batch.num.messages": "batch_size",
    "batch_size": "batch_size",
    "queue.buffering.max.messages": "max_buffered",
    "max_buffered": "max_buffered",
}
#: what confluent-kafka configs may carry that means nothing here (a Log is given instead)
_IGNORED = {"bootstrap.servers", "client.id", "acks", "enable.idempotence", "compression.type"}


class ProducerError(LogError):
    """Records that could not be appended and had no `on_delivery` to be told."""


class Appender(Protocol):
    """What a producer appends through: a log's `append`."""

    def append(self, topic: str, records: Any, *, partition: int | None = None) -> AppendResult:
        """Append a batch; returns where each record landed."""
        ...


class DeliveredMessage:
    """A delivered (or failed) record, as confluent-kafka's `Message` shows one."""

    __slots__ = (
        "_error",
        "_headers",
        "_key",
        "_offset",
        "_partition",
        "_timestamp",
        "_topic",
        "_value",
    )

    def __init__(
        self,
        topic: str,
        partition: int,
        offset: int,
        key: Any,
        value: Any,
        timestamp: int,
        headers: Any,
        error: BaseException | None,
    ) -> None:
        self._topic, self._partition, self._offset = topic, partition, offset
        self._key, self._value, self._timestamp = key, value, timestamp
        self._headers, self._error = headers, error

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        """The partition it went to (-1 when it failed before one was chosen)."""
        return self._partition

    def offset(self) -> int:
        """Its offset (-1 when it failed)."""
        return self._offset

    def key(self) -> Any:
        return self._key

    def value(self) -> Any:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        """(TIMESTAMP_CREATE_TIME, ms), as confluent-kafka gives it."""
        return TIMESTAMP_CREATE_TIME, self._timestamp

    def headers(self) -> Any:
        return self._headers

    def error(self) -> BaseException | None:
        return self._error

    def __len__(self) -> int:
        return 0 if self._value is None else len(self._value)

    def __repr__(self) -> str:
        return f"DeliveredMessage({self._topic}[{self._partition}]@{self._offset})"


@dataclass(slots=True)
class _Extra:
    """A queued record's value when it has more than a key and a value to say."""

    value: Any
    partition: int | None
    timestamp: int
    headers: Any
    on_delivery: DeliveryCallback | None


class _Queue:
    """One topic's queued records: values and keys in two lists (a record's value goes in
    before its key, so the keys say how many records are whole)."""

    __slots__ = ("extras", "keys", "values")

    def __init__(self) -> None:
        self.values: list[Any] = []
        self.keys: list[Any] = []
        self.extras = 0  # records queued as _Extra (counted under the producer's lock)


class Producer:
    """Batches records in the background into a `Log`; see the module's docstring."""

    def __init__(
        self,
        log_: Appender,
        config: Mapping[str, Any] | None = None,
        *,
        linger_ms: float | None = None,
        batch_size: int = 10_000,
        max_buffered: int = 1_000_000,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        settings: dict[str, Any] = {
            "linger_ms": linger_ms if linger_ms is not None else getattr(log_, "linger_ms", 5.0),
            "batch_size": batch_size,
            "max_buffered": max_buffered,
        }
        for name, value in (config or {}).items():
            if name in _IGNORED:
                continue
            if name not in _SETTINGS:
                known = ", ".join(sorted(_SETTINGS))
                raise ConfigError(f"unknown producer setting {name!r}; known: {known}")
            settings[_SETTINGS[name]] = value
        try:
            self.linger_s = float(settings["linger_ms"]) / 1000
            self.batch_size = int(settings["batch_size"])
            self.max_buffered = int(settings["max_buffered"])
        except (TypeError, ValueError):
            raise ConfigError(f"producer settings must be numbers: {settings}") from None
        if self.linger_s < 0 or self.batch_size < 1 or self.max_buffered < self.batch_size:
            raise ConfigError(
                "linger_ms cannot be negative, batch_size must be at least 1 and max_buffered "
                f"at least batch_size: {settings}"
            )
        self._log = log_
        self._clock = clock
        self._queues: dict[str, _Queue] = {}
        self._lock = threading.Lock()  # records with extras, and taking records
        self._cond = threading.Condition(threading.Lock())  # the sender's progress
        self._wake = threading.Event()
        self._in_flight = 0
        self._flushing = 0
        self._closing = False
        self._closed = False
        self._reports: list[tuple[DeliveryCallback, BaseException | None, DeliveredMessage]] = []
        self._failures: list[BaseException] = []
        self._failed = 0
        #: records appended and batches sent (what tests and the benchmark look at)
        self.delivered = 0
        self.batches = 0
        self._thread = threading.Thread(target=self._run, name="hispeed-producer", daemon=True)
        self._thread.start()

    # -- producing ----------------------------------------------------------------------------

    def produce(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int = -1,
        on_delivery: DeliveryCallback | None = None,
        timestamp: int = 0,
        headers: Any = None,
        callback: DeliveryCallback | None = None,
    ) -> None:
        """Queue one record (`value` and `key`: bytes, str or None; a None value is a
        tombstone). `partition` -1 lets the log's partitioner choose (murmur2 of the key, as
        Kafka's); `timestamp` 0 means now (ms); `headers` a list of (name, value) or a dict.
        `on_delivery(err, msg)` (or `callback`) is called from `poll()` or `flush()`."""
        if self._closed:
            raise LogError("this producer is closed")
        queue = self._queues.get(topic)
        if queue is None or partition != -1 or timestamp or headers or on_delivery or callback:
            queue = self._produce_extra(
                topic, value, key, partition, on_delivery or callback, timestamp, headers
            )
        else:
            # The common case, without a lock: list appends are atomic, and the sender takes
            # only records whose key is in (see _take).
            queue.values.append(value)
            queue.keys.append(key)
        queued = len(queue.keys)
        if queued == 1 or queued == self.batch_size:
            self._wake.set()  # the linger starts, or a batch is full
        elif queued >= self.max_buffered:
            self._wait_for_room(queue)

    def _produce_extra(
        self,
        topic: str,
        value: Any,
        key: Any,
        partition: int,
        on_delivery: DeliveryCallback | None,
        timestamp: int,
        headers: Any,
    ) -> _Queue:
        if isinstance(headers, Mapping):
            headers = list(headers.items())
        chosen = None if partition is None or partition < 0 else int(partition)
        extra = _Extra(value, chosen, int(timestamp or 0), headers, on_delivery)
        with self._lock:
            queue = self._queues.get(topic)
            if queue is None:
                queue = self._queues[topic] = _Queue()
            queue.values.append(extra)
            queue.keys.append(key)
            queue.extras += 1
        return queue

    def _queued(self) -> int:
        return sum(len(q.keys) for q in list(self._queues.values()))

    def _wait_for_room(self, queue: _Queue) -> None:
        self._wake.set()
        with self._cond:
            self._cond.wait_for(lambda: len(queue.keys) < self.max_buffered or self._closing)

    def poll(self, timeout: float = 0) -> int:
        """Serve delivery reports (call `on_delivery` of each delivered or failed record);
        waits up to `timeout` s for one when there is none. Returns how many were served."""
        with self._cond:
            if not self._reports and timeout:
                self._cond.wait_for(lambda: bool(self._reports), timeout)
            reports, self._reports = self._reports, []
        for callback, error, message in reports:
            callback(error, message)
        return len(reports)

    def flush(self, timeout: float | None = None) -> int:
        """Send everything queued now (not waiting out the linger), wait until it is appended
        (or `timeout` s pass), serve the delivery reports; returns how many records are still
        queued or in flight (0: all done). Raises `ProducerError` for records that failed and
        had no `on_delivery`."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            self._flushing += 1
        try:
            self._wake.set()
            with self._cond:
                while self._queued() or self._in_flight:
                    left = None if deadline is None else deadline - time.monotonic()
                    if left is not None and left <= 0:
                        break
                    self._cond.wait(left if left is not None else 0.5)
        finally:
            with self._cond:
                self._flushing -= 1
        self.poll()
        self._raise_failures()
        return len(self)

    def __len__(self) -> int:
        """Records queued or in flight, and delivery reports not served yet."""
        return self._queued() + self._in_flight + len(self._reports)

    def close(self) -> None:
        """Flush, then stop the background thread; `produce` raises afterwards."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            with self._cond:
                self._closing = True
                self._cond.notify_all()
            self._wake.set()
            self._thread.join()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def _raise_failures(self) -> None:
        with self._cond:
            failures, self._failures = self._failures, []
            failed, self._failed = self._failed, 0
        if failures:
            raise ProducerError(
                f"{failed} record(s) could not be appended (and had no on_delivery): {failures[0]}"
            ) from failures[0]

    # -- the sending thread -------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self._wake.clear()
            if not self._queued():
                if self._closing:
                    return
                self._wake.wait()
                continue
            deadline = time.monotonic() + self.linger_s
            while self._queued() < self.batch_size and not self._flushing and not self._closing:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._wake.wait(left)
                self._wake.clear()
            try:
                self._send_all()
            except BaseException:  # keep sending: each failure went to its records
                log.exception("the producer's sender failed")

    def _send_all(self) -> None:
        for topic in list(self._queues):
            taken = self._take(topic)
            if taken is None:
                continue
            values, keys, extras = taken
            n = len(keys)
            try:
                self._send(topic, values, keys, extras)
            finally:
                with self._cond:
                    self._in_flight -= n
                    self._cond.notify_all()

    def _take(self, topic: str) -> tuple[list[Any], list[Any], bool] | None:
        """The records of `topic` whose key is in (so their value is too), out of its queue."""
        queue = self._queues[topic]
        with self._lock:
            n = len(queue.keys)
            if not n:
                return None
            values = queue.values[:n]
            keys = queue.keys[:n]
            with self._cond:  # in flight before it leaves the queue: flush() sees it all along
                self._in_flight += n
                self._cond.notify_all()
            del queue.values[:n]
            del queue.keys[:n]
            extras = queue.extras > 0
            queue.extras = 0
        return values, keys, extras

    def _send(self, topic: str, values: list[Any], keys: list[Any], extras: bool) -> None:
        now = self._clock()
        if not extras:
            self._append(topic, None, values, keys, None, None, None, now)
            return
        # records with a partition of their own go apart, in order within each partition
        groups: dict[int | None, list[int]] = {}
        for i, v in enumerate(values):
            p = v.partition if type(v) is _Extra else None
            groups.setdefault(p, []).append(i)
        for partition, rows in groups.items():
            vals: list[Any] = []
            ks: list[Any] = []
            stamps: list[int] = []
            headers: list[Any] = []
            callbacks: list[DeliveryCallback | None] = []
            for i in rows:
                v = values[i]
                ks.append(keys[i])
                if type(v) is _Extra:
                    vals.append(v.value)
                    stamps.append(v.timestamp or now)
                    headers.append(v.headers)
                    callbacks.append(v.on_delivery)
                else:
                    vals.append(v)
                    stamps.append(now)
                    headers.append(None)
                    callbacks.append(None)
            self._append(topic, partition, vals, ks, stamps, headers, callbacks, now)

    def _append(
        self,
        topic: str,
        partition: int | None,
        values: list[Any],
        keys: list[Any],
        stamps: list[int] | None,
        headers: list[Any] | None,
        callbacks: list[DeliveryCallback | None] | None,
        now: int,
    ) -> None:
        n = len(values)
        try:
            batch = _batch(values, keys, stamps, headers, now)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError):
            self._append_checked(topic, partition, values, keys, stamps, headers, callbacks, now)
            return
        try:
            result = self._log.append(topic, batch, partition=partition)
        except Exception as e:
            self._report(topic, values, keys, stamps, headers, callbacks, now, None, e)
            return
        self.delivered += n
        self.batches += 1
        if callbacks is not None and any(callbacks):
            self._report(topic, values, keys, stamps, headers, callbacks, now, result, None)

    def _append_checked(
        self,
        topic: str,
        partition: int | None,
        values: list[Any],
        keys: list[Any],
        stamps: list[int] | None,
        headers: list[Any] | None,
        callbacks: list[DeliveryCallback | None] | None,
        now: int,
    ) -> None:
        """A batch with records Arrow refuses: those fail alone, the others are appended."""
        good: list[int] = []
        for i in range(len(values)):
            try:
                _batch(
                    values[i : i + 1],
                    keys[i : i + 1],
                    None if stamps is None else stamps[i : i + 1],
                    None if headers is None else headers[i : i + 1],
                    now,
                )
                good.append(i)
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as e:
                error = LogError(f"record {i} of a batch to {topic!r} cannot be stored: {e}")
                self._report(
                    topic,
                    values[i : i + 1],
                    keys[i : i + 1],
                    None if stamps is None else stamps[i : i + 1],
                    None if headers is None else headers[i : i + 1],
                    None if callbacks is None else callbacks[i : i + 1],
                    now,
                    None,
                    error,
                )

        def pick(column: list[Any] | None) -> Any:
            return None if column is None else [column[i] for i in good]

        if good:
            self._append(
                topic,
                partition,
                pick(values),
                pick(keys),
                pick(stamps),
                pick(headers),
                pick(callbacks),
                now,
            )

    def _report(
        self,
        topic: str,
        values: list[Any],
        keys: list[Any],
        stamps: list[int] | None,
        headers: list[Any] | None,
        callbacks: list[DeliveryCallback | None] | None,
        now: int,
        result: AppendResult | None,
        error: BaseException | None,
    ) -> None:
        reports = []
        untold = 0
        for i in range(len(values)):
            callback = None if callbacks is None else callbacks[i]
            if callback is None:
                untold += 1
                continue
            partition = -1 if result is None else int(result.partitions[i])
            offset = -1 if result is None else int(result.offsets[i])
            message = DeliveredMessage(
                topic,
                partition,
                offset,
                keys[i],
                values[i],
                now if stamps is None else stamps[i],
                None if headers is None else headers[i],
                error,
            )
            reports.append((callback, error, message))
        with self._cond:
            self._reports += reports
            if error is not None and untold:
                self._failed += untold
                self._failures.append(error)
            self._cond.notify_all()


def _batch(
    values: list[Any],
    keys: list[Any],
    stamps: list[int] | None,
    headers: list[Any] | None,
    now: int,
) -> pa.RecordBatch:
    """The records as one batch of APPEND_SCHEMA, each column built at once."""
    n = len(values)
    if headers is None or all(h is None for h in headers):
        header_column = pa.nulls(n, HEADERS_TYPE)
    else:
        header_column = pa.array(
            [
                None if hs is None else [{"key": k, "value": _to_bytes(v)} for k, v in hs]
                for hs in headers
            ],
            HEADERS_TYPE,
        )
    return pa.RecordBatch.from_arrays(
        [
            pa.array(np.full(n, now, np.int64)) if stamps is None else pa.array(stamps, pa.int64()),
            pa.array(keys, pa.binary()),
            pa.array(values, pa.binary()),
            header_column,
        ],
        schema=APPEND_SCHEMA,
    )


def _to_bytes(value: Any) -> bytes | None:
    return value.encode() if isinstance(value, str) else value

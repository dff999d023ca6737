"""The Log interface: topics of partitions of offset-numbered records, groups and transactions.

A backend (embedded segment files, or Apache Kafka) implements `Log`. Records go in as an
Arrow batch or a list of `Record`s and come out as Arrow record batches with the columns of
`RECORD_SCHEMA`: offset, timestamp (ms), key, value, headers. A null value is a tombstone.
"""

from __future__ import annotations

import itertools
import re
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, NamedTuple, Self

import pyarrow as pa

from hispeed.errors import ConfigError, LogError
from hispeed.log.committer import GroupCommitter
from hispeed.log.records import APPEND_SCHEMA as APPEND_SCHEMA
from hispeed.log.records import HEADERS_TYPE as HEADERS_TYPE
from hispeed.log.records import RECORD_SCHEMA as RECORD_SCHEMA
from hispeed.log.records import AppendResult as AppendResult
from hispeed.log.records import Record as Record
from hispeed.log.records import now_ms as now_ms
from hispeed.log.records import to_append_batch as to_append_batch

_TOPIC_NAME = re.compile(r"^[A-Za-z0-9._-]{1,249}$")


class TopicPartition(NamedTuple):
    topic: str
    partition: int


_KNOWN_CONFIGS = {
    "cleanup.policy": "delete, compact, or compact,delete",
    "retention.ms": "milliseconds a record is kept (-1: forever)",
    "retention.bytes": "bytes a partition keeps (-1: no limit)",
    "segment.bytes": "bytes after which a new segment file starts",
    "segment.ms": "milliseconds after which a new segment file starts",
    "compression.type": "none, lz4 or zstd",
    "delete.retention.ms": "milliseconds a tombstone survives compaction",
    "index.interval.bytes": "bytes between sparse index entries",
}


@dataclass(frozen=True)
class TopicConfig:
    """A topic's settings, named as Kafka names them."""

    cleanup_policy: str = "delete"
    retention_ms: int = 7 * 24 * 3600 * 1000
    retention_bytes: int = -1
    segment_bytes: int = 64 * 1024 * 1024
    segment_ms: int = 7 * 24 * 3600 * 1000
    compression_type: str = "none"
    delete_retention_ms: int = 24 * 3600 * 1000
    index_interval_bytes: int = 4096

    @classmethod
    def from_dict(cls, values: Mapping[str, Any] | None) -> TopicConfig:
        """Build from Kafka-style names (`retention.ms`), checking names and values."""
        kwargs: dict[str, Any] = {}
        for name, raw in (values or {}).items():
            if name not in _KNOWN_CONFIGS:
                known = ", ".join(sorted(_KNOWN_CONFIGS))
                raise ConfigError(f"unknown topic config {name!r}; known configs: {known}")
            attr = name.replace(".", "_")
            if name == "cleanup.policy":
                policy = ",".join(sorted(p.strip() for p in str(raw).split(",")))
                if policy not in ("compact", "delete", "compact,delete"):
                    raise ConfigError(
                        f"cleanup.policy cannot be {raw!r}: use delete, compact or compact,delete"
                    )
                kwargs[attr] = policy
            elif name == "compression.type":
                comp = str(raw).strip().lower()
                if comp not in ("none", "lz4", "zstd"):
                    raise ConfigError(
                        f"compression.type cannot be {raw!r}: hispeed compresses with none, "
                        "lz4 or zstd (Arrow IPC buffer compression)"
                    )
                kwargs[attr] = comp
            else:
                try:
                    kwargs[attr] = int(raw)
                except (TypeError, ValueError):
                    raise ConfigError(
                        f"topic config {name} must be a whole number ({_KNOWN_CONFIGS[name]}), "
                        f"not {raw!r}"
                    ) from None
        cfg = cls(**kwargs)
        if cfg.segment_bytes < 64:
            raise ConfigError(f"segment.bytes must be at least 64, not {cfg.segment_bytes}")
        if cfg.segment_ms < 1 or cfg.index_interval_bytes < 0:
            raise ConfigError("segment.ms must be positive and index.interval.bytes not negative")
        return cfg

    def to_dict(self, only: Iterable[str] | None = None) -> dict[str, Any]:
        """The settings by Kafka's names (`only`: just these names)."""
        names = _KNOWN_CONFIGS if only is None else [n for n in _KNOWN_CONFIGS if n in only]
        return {name: getattr(self, name.replace(".", "_")) for name in names}

    @property
    def compression(self) -> str | None:
        return None if self.compression_type == "none" else self.compression_type

    @property
    def compacts(self) -> bool:
        return "compact" in self.cleanup_policy

    @property
    def deletes(self) -> bool:
        return "delete" in self.cleanup_policy


@dataclass(frozen=True)
class PartitionInfo:
    partition: int
    start_offset: int
    end_offset: int
    size_bytes: int
    segments: int


@dataclass(frozen=True)
class TopicInfo:
    name: str
    partitions: list[PartitionInfo]
    config: TopicConfig
    internal: bool = False

    @property
    def records(self) -> int:
        """Offsets held (after compaction, more than the records left)."""
        return sum(p.end_offset - p.start_offset for p in self.partitions)


def validate_topic_name(name: str) -> None:
    if not _TOPIC_NAME.match(name) or name in (".", ".."):
        raise LogError(
            f"invalid topic name {name!r}: use 1 to 249 of the characters A-Z a-z 0-9 . _ -"
        )


class Transaction(ABC):
    """Appends and offset commits that become visible together, or not at all.

    Use as a context manager: it commits when the block ends normally and aborts on an
    exception. Offsets of the appended records are known only after `commit()`.
    """

    @abstractmethod
    def append(self, topic: str, records: Any, *, partition: int | None = None) -> None: ...

    @abstractmethod
    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None: ...

    @abstractmethod
    def commit(self) -> dict[TopicPartition, tuple[int, int]]:
        """Make everything visible; returns each partition's (first offset, end offset)."""

    @abstractmethod
    def abort(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is None:
            self.commit()
        else:
            self.abort()


@dataclass
class PolledBatch:
    partition: TopicPartition
    batch: pa.RecordBatch


@dataclass
class ConsumerOptions:
    group: str | None = None
    auto_offset_reset: str = "latest"  # "earliest" or "latest", as Kafka
    max_records: int = 100_000
    extra: dict[str, Any] = field(default_factory=dict)


class Consumer(ABC):
    """Reads topics as a member of a consumer group (or alone, with group None)."""

    @abstractmethod
    def poll(self, timeout: float = 1.0, max_records: int | None = None) -> list[PolledBatch]:
        """Batches from the assigned partitions; waits up to `timeout` s when there are none."""

    @abstractmethod
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit the given offsets, or the current positions (the next offset to read)."""

    @abstractmethod
    def caught_up(self) -> bool:
        """Whether every assigned partition has been read to its end (nothing left now)."""

    @abstractmethod
    def assignment(self) -> list[TopicPartition]: ...

    def behind(self, tp: TopicPartition) -> bool:
        """Whether `tp` has records after this consumer's position that it has not handed
        out yet, or may have as far as it knows (Kafka Streams' "fetched lag" above 0, or not
        known yet): a task that orders its inputs by time waits for them. False by default:
        a consumer that cannot tell never holds a task up."""
        return False

    def current_assignment(self) -> list[TopicPartition]:
        """The partitions assigned now, never waiting for a group to hand them out (a backend
        whose groups rebalance in the background says what it has so far)."""
        return self.assignment()

    @property
    def assigned_once(self) -> bool:
        """Whether the group has given this consumer its partitions (maybe none) yet."""
        return True

    @abstractmethod
    def position(self, tp: TopicPartition) -> int: ...

    @abstractmethod
    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def check_reset(auto_offset_reset: str) -> None:
    if auto_offset_reset not in ("earliest", "latest"):
        raise ConfigError(
            f"auto_offset_reset cannot be {auto_offset_reset!r}: use earliest or latest"
        )


def parse_topics(topics: Sequence[str] | str) -> tuple[re.Pattern[str] | None, list[str]]:
    """What a consumer subscribes to: one regular expression (a string starting with ^),
    or topic names."""
    if isinstance(topics, str) and topics.startswith("^"):
        try:
            return re.compile(topics), []
        except re.error as e:
            raise ConfigError(
                f"topic pattern {topics!r} is not a regular expression: {e}"
            ) from None
    return None, [topics] if isinstance(topics, str) else list(topics)


class AppendSignal:
    """`wait()` for a backend that marks this process's appends in `_appends`, under the
    condition `_data` (set `_closed` and notify it to wake every waiter for good).

    An append costs no lock and no wake-up while nobody waits: it stores a fresh ticket in
    `_appends` (`itertools.count` hands each out once, atomically), then takes the lock and
    notifies only if `_waiting` says a reader waits. No wake-up is lost: a reader counts itself
    in `_waiting` under the lock before it checks `_appends`, so an appender that read
    `_waiting` as 0 stored its ticket before that check, and one that saw a reader takes the
    lock, which the reader holds until it sleeps in `wait`, and wakes it."""

    _data: threading.Condition
    _appends: int
    _closed: bool
    #: readers inside `wait` / `wait_for_append` (changed only under `_data`)
    _waiting: int = 0
    #: unique append tickets: a stale store from a slow appender can never equal the value a
    #: reader saw after it, so it still reads as "changed"
    _tickets: ClassVar[itertools.count[int]] = itertools.count(1)

    def notify_append(self) -> None:
        """Mark an append of this process and wake the waiters, if any (the backend calls it
        after the records are visible to readers)."""
        self._appends = next(self._tickets)
        if self._waiting:
            with self._data:
                self._data.notify_all()

    def _wait_change(self, seen: int, timeout: float) -> None:
        with self._data:
            self._waiting += 1
            try:
                self._data.wait_for(lambda: self._appends != seen or self._closed, timeout)
            finally:
                self._waiting -= 1

    def wait(self, timeout: float) -> bool:
        seen = self._appends
        self._wait_change(seen, timeout)
        return self._appends != seen

    @property
    def appends(self) -> int:
        """A mark that changes with every append of this process: read it before looking for
        records, then `wait_for_append` on it, so an append in between is not missed."""
        return self._appends

    def wait_for_append(self, seen: int, timeout: float) -> bool:
        """Block until the append mark is no longer `seen`, the log closes or `timeout` s
        pass; False once the log is closed (nothing more will arrive)."""
        self._wait_change(seen, timeout)
        return not self._closed


class Log(ABC):
    """A durable partitioned log. Backends: `EmbeddedLog` (segment files), `KafkaLog`."""

    #: other processes write to it too (Kafka): consumers must poll to see their records, and
    #: the catalog's command topic may hold statements another worker ran
    shared: bool = False
    #: milliseconds the group committer gathers appends before writing them together (the
    #: `log_linger_ms` setting; Kafka's producer `linger.ms`); set it before the first
    #: `append_async` / `append_future`
    linger_ms: float = 2.0
    _group_commit: GroupCommitter | None = None
    _group_commit_lock = threading.Lock()

    def append_future(
        self, topic: str, records: Any, *, partition: int | None = None
    ) -> Future[AppendResult]:
        """Append through the group committer, from any thread; returns at once.

        The records (what `append` takes) wait up to `linger_ms` for other callers' appends
        and are written with them: one frame per partition, the fsync policy applied once per
        group. The future gives this call's own `AppendResult` (partitions and offsets in
        input order), or raises what the append raised for these records. Many callers of one
        record each: this is the path that makes them cheap (see `hispeed.log.committer`).

            >>> futures = [log.append_future("t", [(b"k", b"v")]) for _ in range(100)]
            >>> [f.result().offsets[0] for f in futures]
        """
        return self.group_committer().append_future(topic, records, partition=partition)

    async def append_async(
        self, topic: str, records: Any, *, partition: int | None = None
    ) -> AppendResult:
        """`append_future` for asyncio code: await it in a request or message handler; the
        event loop goes on while the group is gathered and written.

            >>> result = await log.append_async("readings", [{"key": b"d1", "value": b"{}"}])
            >>> result.pairs()   # [(partition, offset)] of this call's records
        """
        return await self.group_committer().append_async(topic, records, partition=partition)

    def group_committer(self) -> GroupCommitter:
        """This log's group committer (started on first use, stopped by `close`)."""
        committer = self._group_commit
        if committer is None:
            with self._group_commit_lock:
                committer = self._group_commit
                if committer is None:
                    committer = self._group_commit = GroupCommitter(self, self.linger_ms)
        return committer

    def close_committer(self) -> None:
        """Write what the group committer holds and stop it (a backend's `close` calls this
        before closing anything the appends need)."""
        with self._group_commit_lock:
            committer = self._group_commit
        if committer is not None:
            committer.close()

    @abstractmethod
    def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        exist_ok: bool = False,
    ) -> TopicInfo: ...

    @abstractmethod
    def delete_topic(self, name: str) -> None: ...

    @abstractmethod
    def list_topics(self, *, internal: bool = False) -> list[str]: ...

    @abstractmethod
    def describe_topic(self, name: str) -> TopicInfo: ...

    @abstractmethod
    def append(self, topic: str, records: Any, *, partition: int | None = None) -> AppendResult:
        """Append a batch; returns where each record landed once it is acknowledged.

        With no `partition`, keyed records go where Kafka's default partitioner puts them
        (murmur2 of the key) and a batch's null-keyed records go together to one partition,
        taking turns between partitions from batch to batch.
        """

    def append_one(
        self, topic: str, key: bytes | None, value: bytes | None, timestamp: int | None = None
    ) -> tuple[int, int]:
        """Append one record (no headers) as `append` does; returns (partition, offset) once
        it is acknowledged. A backend may do it with less work than `append` of a batch of
        one (the embedded log writes its frame with no Arrow on the way): `Engine.insert`'s
        path."""
        record = {"key": key, "value": value, "timestamp": timestamp}
        result = self.append(topic, [record])
        return int(result.partitions[0]), int(result.offsets[0])

    @abstractmethod
    def read(
        self,
        topic: str,
        partition: int,
        offset: int,
        *,
        max_records: int | None = None,
        max_bytes: int | None = None,
    ) -> list[pa.RecordBatch]:
        """Record batches of one partition from `offset` on (RECORD_SCHEMA)."""

    @abstractmethod
    def offsets(self, topic: str, partition: int) -> tuple[int, int]:
        """(log start offset, end offset): the first offset held and the next one to be written."""

    @abstractmethod
    def wait(self, timeout: float) -> bool:
        """Block until something is appended anywhere or `timeout` s pass; True if appended."""

    @abstractmethod
    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None: ...

    @abstractmethod
    def committed_offsets(
        self, group: str, topic: str | None = None
    ) -> dict[TopicPartition, int]: ...

    @abstractmethod
    def list_groups(self) -> list[str]: ...

    def delete_records(self, topic: str, before: Mapping[int, int]) -> None:
        """Let go of the records of `topic` before these offsets (partition -> offset), as
        Kafka's DeleteRecords: what every reader of an internal topic is done with. A backend
        may keep them until its retention takes them (the embedded log does)."""
        return None

    @abstractmethod
    def transaction(self, owner: str | None = None) -> Transaction:
        """A transaction; `owner` names who writes it (a query, a connector), so a backend
        that keeps a transactional producer per writer (Kafka) can fence an older one."""

    @abstractmethod
    def consumer(
        self,
        topics: Sequence[str] | str,
        *,
        group: str | None = None,
        auto_offset_reset: str = "latest",
    ) -> Consumer:
        """A consumer of `topics` (names, or one regular expression string starting with ^)."""

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read_table(self, topic: str, partition: int, offset: int = 0) -> pa.Table:
        """Everything from `offset` to the end of one partition as one table."""
        return pa.Table.from_batches(self.read(topic, partition, offset), schema=RECORD_SCHEMA)

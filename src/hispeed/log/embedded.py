"""The embedded log: topics as directories of partitions of segment files, in one process.

Durability follows the fsync policy (see `FsyncPolicy`); a second process cannot open the
same data directory; recovery truncates a torn tail (an append a crash cut short) but never a
complete frame: a damaged one stays in place, its offsets are never given again, reads that
reach it raise `CorruptLogError` naming topic, partition, file, byte and offsets, and
`repair_topic` (`hispeed topic repair`) sets it aside. Retention and compaction run on a
background thread without blocking appends.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import struct
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import crc32c
import msgspec
import numpy as np
import pyarrow as pa

from hispeed.errors import (
    ConfigError,
    CorruptLogError,
    DataDirLockedError,
    InvalidRecordError,
    LogError,
    TopicExistsError,
    TransactionError,
    UnknownTopicError,
)
from hispeed.log._consumer import EmbeddedConsumer, GroupCoordinator
from hispeed.log._partition import Partition, Repaired
from hispeed.log._segment import COMPACT_MAX_RECORDS, HEADER_SIZE, encode_frame
from hispeed.log.base import (
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
    now_ms,
    to_append_batch,
    validate_topic_name,
)
from hispeed.log.murmur2 import partition_for_key, partitions_for_keys

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
LOCK_FILE = "LOCK"
WAL_FILE = "txn.wal"
_WAL_HEADER = struct.Struct("<4sII")
_WAL_MAGIC = b"HTX1"
_WAL_LIMIT = 16 * 1024 * 1024


@dataclass(frozen=True)
class FsyncPolicy:
    """When appended data is forced to disk. What each promises:

    - ``always``: an append returns after fsync; an acknowledged record survives a crash
      of the process or of the machine (power loss).
    - ``<N>ms`` (an interval): a background thread fsyncs at most N ms after an append;
      an acknowledged record survives a process crash (it is in the OS page cache), and a
      machine crash loses at most the last N ms.
    - ``never``: the OS writes back when it likes; survives a process crash, a machine
      crash may lose any records not yet written back (tens of seconds on Linux).
    """

    mode: str  # "always" | "interval" | "never"
    interval_ms: int = 0

    @classmethod
    def parse(cls, text: str) -> FsyncPolicy:
        value = text.strip().lower()
        if value in ("always", "never"):
            return cls(value)
        match = re.fullmatch(r"(\d+)\s*(ms|s)?", value)
        if match:
            n = int(match.group(1)) * (1000 if match.group(2) == "s" else 1)
            if n > 0:
                return cls("interval", n)
        raise ConfigError(
            f"fsync policy cannot be {text!r}: use 'always', 'never' or an interval "
            "such as '1000ms'"
        )

    def __str__(self) -> str:
        return f"{self.interval_ms}ms" if self.mode == "interval" else self.mode


class EmbeddedLog(AppendSignal, Log):
    """The log kept in `data_dir/log`, for one process at a time."""

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        fsync: str | FsyncPolicy = "1000ms",
        default_partitions: int = 1,
        cleaner_interval_s: float | None = 30.0,
        clock: Callable[[], int] = now_ms,
        topic_defaults: Mapping[str, Any] | None = None,
        linger_ms: float = 2.0,
    ) -> None:
        """`topic_defaults`: the server-wide topic settings (Kafka's `log.retention.bytes`...,
        named as a topic's: `retention.bytes`) for every setting a topic does not set itself;
        they apply to existing topics too, as a Kafka broker's defaults do. `linger_ms`: how
        long the group committer (`append_async`, `append_future`) gathers appends."""
        self.data_dir = Path(data_dir)
        TopicConfig.from_dict(topic_defaults)  # a bad default fails here, not at first create
        self.topic_defaults = dict(topic_defaults or {})
        self.root = self.data_dir / "log"
        self.fsync_policy = fsync if isinstance(fsync, FsyncPolicy) else FsyncPolicy.parse(fsync)
        self.default_partitions = default_partitions
        self.linger_ms = linger_ms
        self.clock = clock
        self.root.joinpath("topics").mkdir(parents=True, exist_ok=True)
        self._lock_fd = _lock_directory(self.data_dir)
        self._meta_lock = threading.RLock()
        self._wal_lock = threading.Lock()
        self._data = threading.Condition()
        self._appends = 0
        self._closed = False
        self._round_robin = 0
        self._topics: dict[str, _Topic] = {}
        self._offsets: dict[str, dict[TopicPartition, int]] = {}
        self._wal_dirty: set[Partition] = set()
        self._crash_hook: Callable[[str], None] | None = None  # tests: simulate a crash here
        self._reported_damage: set[tuple[str, int]] = set()  # said once, not every pass
        self.coordinator = GroupCoordinator(self)
        try:
            for path in sorted(self.root.joinpath("topics").iterdir()):
                if path.is_dir() and (path / "topic.json").exists():
                    self._topics[path.name] = _Topic.open(path, clock, self.topic_defaults)
            if OFFSETS_TOPIC not in self._topics:
                self._create(OFFSETS_TOPIC, 1, {"cleanup.policy": "compact"})
            self._recover_wal()
            self._load_offsets()
        except BaseException:
            self._release()
            raise
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        if self.fsync_policy.mode == "interval":
            self._start_thread(self._flush_loop, "hispeed-log-flusher")
        if cleaner_interval_s:
            self._cleaner_interval = cleaner_interval_s
            self._start_thread(self._clean_loop, "hispeed-log-cleaner")

    # -- topics -------------------------------------------------------------------------

    def create_topic(
        self,
        name: str,
        partitions: int | None = None,
        config: Mapping[str, Any] | None = None,
        *,
        exist_ok: bool = False,
    ) -> TopicInfo:
        validate_topic_name(name)
        with self._meta_lock:
            if name in self._topics:
                if exist_ok:
                    return self.describe_topic(name)
                raise TopicExistsError(f"topic {name!r} already exists")
            self._create(name, partitions or self.default_partitions, config)
        self.coordinator.topics_changed()
        return self.describe_topic(name)

    def _create(self, name: str, partitions: int, config: Mapping[str, Any] | None) -> None:
        if partitions < 1 or partitions > 10_000:
            raise ConfigError(f"a topic has 1 to 10000 partitions, not {partitions}")
        overrides = dict(config or {})
        cfg = TopicConfig.from_dict({**self.topic_defaults, **overrides})
        path = self.root / "topics" / name
        tmp = path.with_name(name + ".creating")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        (tmp / "topic.json").write_text(
            json.dumps(
                {
                    "name": name,
                    "partitions": partitions,
                    "config": cfg.to_dict(),
                    # what the topic set itself: the server's defaults may change later
                    "overrides": TopicConfig.from_dict(overrides).to_dict(only=overrides),
                }
            )
        )
        os.replace(tmp, path)
        self._topics[name] = _Topic.open(path, self.clock, self.topic_defaults)

    def delete_topic(self, name: str) -> None:
        if name == OFFSETS_TOPIC:
            raise LogError(f"{OFFSETS_TOPIC} is internal and cannot be deleted")
        with self._meta_lock:
            topic = self._topic(name)
            del self._topics[name]
            for part in topic.partitions:
                part.close()
            doomed = topic.path.with_name(f"{name}.deleted-{time.time_ns()}")
            os.replace(topic.path, doomed)
            shutil.rmtree(doomed, ignore_errors=True)
        self.coordinator.topics_changed()

    def list_topics(self, *, internal: bool = False) -> list[str]:
        with self._meta_lock:
            return sorted(n for n in self._topics if internal or not n.startswith("__"))

    def describe_topic(self, name: str) -> TopicInfo:
        topic = self._topic(name)
        return TopicInfo(
            name=name,
            partitions=[
                PartitionInfo(
                    p.index,
                    p.start_offset,
                    p.visible_end,
                    sum(s.size for s in p.segments),
                    len(p.segments),
                )
                for p in topic.partitions
            ],
            config=topic.config,
            internal=name.startswith("__"),
        )

    def _topic(self, name: str) -> _Topic:
        try:
            return self._topics[name]
        except KeyError:
            raise UnknownTopicError(f"topic {name!r} does not exist") from None

    def partition(self, topic: str, partition: int) -> Partition:
        parts = self._topic(topic).partitions
        if not 0 <= partition < len(parts):
            raise LogError(
                f"topic {topic!r} has partitions 0 to {len(parts) - 1}; there is no {partition}"
            )
        return parts[partition]

    # -- appending ----------------------------------------------------------------------

    def _split(
        self, topic: str, records: Any, partition: int | None
    ) -> tuple[pa.RecordBatch, list[tuple[Partition, np.ndarray | None]]]:
        """Normalize records and decide each one's partition: [(partition, row indices)]."""
        self._check_open()
        t = self._topic(topic)
        batch = to_append_batch(records, self.clock())
        if t.config.compacts and batch.column(1).null_count:
            raise InvalidRecordError(
                f"topic {topic!r} is compacted, so every record needs a key; "
                f"{batch.column(1).null_count} of {batch.num_rows} have none"
            )
        if partition is not None:
            return batch, [(self.partition(topic, partition), None)]
        n_parts = len(t.partitions)
        if n_parts == 1:
            return batch, [(t.partitions[0], None)]
        target = partitions_for_keys(batch.column(1), n_parts)
        if batch.column(1).null_count:
            self._round_robin = (self._round_robin + 1) % n_parts
            target[target < 0] = self._round_robin
        order = np.argsort(target, kind="stable")
        bounds = np.searchsorted(target[order], np.arange(n_parts + 1))
        return batch, [
            (t.partitions[p], order[bounds[p] : bounds[p + 1]])
            for p in range(n_parts)
            if bounds[p + 1] > bounds[p]
        ]

    def append(self, topic: str, records: Any, *, partition: int | None = None) -> AppendResult:
        batch, parts = self._split(topic, records, partition)
        n = batch.num_rows
        out_parts = np.empty(n, np.int32)
        out_offsets = np.empty(n, np.int64)
        if n == 0:
            return AppendResult(out_parts, out_offsets)
        for part, rows in parts:
            piece = batch if rows is None else batch.take(pa.array(rows))
            with part.lock:
                base = part.append(piece)
                if self.fsync_policy.mode == "always":
                    part.fsync()
                part.visible_end = part.end_offset
            if rows is None:
                out_parts[:] = part.index
                out_offsets[:] = np.arange(base, base + n)
            else:
                out_parts[rows] = part.index
                out_offsets[rows] = np.arange(base, base + len(rows))
        self.notify_append()
        return AppendResult(out_parts, out_offsets)

    def append_pairs(
        self,
        topic: str,
        pairs: Sequence[tuple[bytes | None, bytes | None]],
        partition: int | None = None,
    ) -> tuple[list[int], list[int]]:
        """`append` of (key, value) pairs stamped now: each record's partition and offset, as
        lists. The same checks, places and frame bytes as `append`; a few records of bytes
        bound for one partition (the server's gathered one-record requests) go without the
        Arrow batch, numpy offsets and frame encoder `append` builds, the rest through it."""
        self._check_open()
        t = self._topic(topic)
        n = len(pairs)
        parts = t.partitions
        keys = [k for k, _ in pairs]
        values = [v for _, v in pairs]
        if (
            n == 0
            or n > COMPACT_MAX_RECORDS
            or (partition is None and len(parts) > 1)
            or not all(k is None or type(k) is bytes for k in keys)
            or not all(v is None or type(v) is bytes for v in values)
        ):
            result = self.append(topic, pairs, partition=partition)
            return result.partitions.tolist(), result.offsets.tolist()
        if t.config.compacts and None in keys:
            raise InvalidRecordError(
                f"topic {topic!r} is compacted, so every record needs a key; "
                f"{keys.count(None)} of {n} have none"
            )
        part = parts[0] if partition is None else self.partition(topic, partition)
        base = self._append_lists(part, keys, values, self.clock())
        return [part.index] * n, list(range(base, base + n))

    def _append_lists(
        self, part: Partition, keys: list[bytes | None], values: list[bytes | None], stamp: int
    ) -> int:
        """Records of one timestamp written to `part` and made visible; the first offset."""
        with part.lock:
            base = part.append_lists(keys, values, stamp)
            if self.fsync_policy.mode == "always":
                part.fsync()
            part.visible_end = part.end_offset
        self.notify_append()
        return base

    def append_one(
        self, topic: str, key: bytes | None, value: bytes | None, timestamp: int | None = None
    ) -> tuple[int, int]:
        # The same checks, partition and frame bytes as `append` of one record, without the
        # Arrow batch, the numpy offsets and the frame encoder `append` builds for a batch.
        self._check_open()
        t = self._topic(topic)
        if key is None and t.config.compacts:
            raise InvalidRecordError(
                f"topic {topic!r} is compacted, so every record needs a key; 1 of 1 have none"
            )
        if (key is not None and type(key) is not bytes) or (
            value is not None and type(value) is not bytes
        ):
            raise InvalidRecordError(
                f"record keys and values are bytes, not {type(key).__name__} and "
                f"{type(value).__name__}"
            )
        parts = t.partitions
        if len(parts) == 1:
            part = parts[0]
        elif key is None:
            self._round_robin = (self._round_robin + 1) % len(parts)
            part = parts[self._round_robin]
        else:
            part = parts[partition_for_key(key, len(parts))]
        stamp = self.clock() if timestamp is None else timestamp
        return part.index, self._append_lists(part, [key], [value], stamp)

    # -- reading ------------------------------------------------------------------------

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
        return self.partition(topic, partition).read(offset, max_records, max_bytes)

    def offsets(self, topic: str, partition: int) -> tuple[int, int]:
        part = self.partition(topic, partition)
        return part.start_offset, part.visible_end

    def delete_records_before(self, topic: str, partition: int, offset: int) -> None:
        self.partition(topic, partition).delete_records_before(offset)

    # -- groups -------------------------------------------------------------------------

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        with self.transaction() as txn:
            txn.commit_offsets(group, offsets)

    def committed_offsets(self, group: str, topic: str | None = None) -> dict[TopicPartition, int]:
        with self._meta_lock:
            committed = self._offsets.get(group, {})
            return {tp: o for tp, o in committed.items() if topic is None or tp.topic == topic}

    def list_groups(self) -> list[str]:
        with self._meta_lock:
            return sorted(set(self._offsets) | set(self.coordinator.groups()))

    def consumer(
        self,
        topics: Sequence[str] | str,
        *,
        group: str | None = None,
        auto_offset_reset: str = "latest",
    ) -> Consumer:
        return EmbeddedConsumer(self, topics, group=group, auto_offset_reset=auto_offset_reset)

    def _load_offsets(self) -> None:
        for batch in self.read(OFFSETS_TOPIC, 0, self.offsets(OFFSETS_TOPIC, 0)[0]):
            for key, value in zip(
                batch.column(2).to_pylist(), batch.column(3).to_pylist(), strict=True
            ):
                self._apply_offset_record(key, value)

    def _apply_offset_record(self, key: bytes, value: bytes | None) -> None:
        group, topic, partition = msgspec.json.decode(key)
        tp = TopicPartition(topic, partition)
        if value is None:
            self._offsets.get(group, {}).pop(tp, None)
        else:
            self._offsets.setdefault(group, {})[tp] = msgspec.json.decode(value)["offset"]

    # -- transactions -------------------------------------------------------------------

    def transaction(self, owner: str | None = None) -> Transaction:
        self._check_open()
        return EmbeddedTransaction(self)

    def _commit(
        self, pieces: list[tuple[TopicPartition, pa.RecordBatch]]
    ) -> dict[TopicPartition, tuple[int, int]]:
        """Write a transaction: WAL entry first, then the partitions, then make it visible."""
        merged: dict[TopicPartition, list[pa.RecordBatch]] = {}
        for tp, batch in pieces:
            if batch.num_rows:
                merged.setdefault(tp, []).append(batch)
        if not merged:
            return {}
        order = sorted(merged)
        parts = {tp: self.partition(*tp) for tp in order}
        with self._wal_lock, contextlib.ExitStack() as stack:
            for tp in order:
                stack.enter_context(parts[tp].lock)
            frames: list[tuple[TopicPartition, int, int, bytes, pa.Buffer | bytes]] = []
            for tp in order:
                part = parts[tp]
                batch = pa.concat_batches(merged[tp])
                base, n = part.end_offset, batch.num_rows
                offsets = pa.array(np.arange(base, base + n, dtype=np.int64))
                full = pa.RecordBatch.from_arrays([offsets, *batch.columns], schema=RECORD_SCHEMA)
                header, payload = encode_frame(full, part.config.compression)
                frames.append((tp, base, base + n, header, payload))
            self._write_wal(frames)
            self._crash("after-wal")
            for tp, _base, end, header, payload in frames:
                parts[tp].write_frame(header, payload, end)
                self._wal_dirty.add(parts[tp])
                self._crash("after-first-part")
            if self.fsync_policy.mode == "always":
                for tp in order:
                    parts[tp].fsync()
            with self._meta_lock:
                for batch in merged.get(TopicPartition(OFFSETS_TOPIC, 0), []):
                    for key, value in zip(
                        batch.column(1).to_pylist(), batch.column(2).to_pylist(), strict=True
                    ):
                        self._apply_offset_record(key, value)
            with self._meta_lock:  # one moment for every part: readers see all or none
                for tp, _base, end, _h, _p in frames:
                    parts[tp].visible_end = end
            self._maybe_truncate_wal()
        self.notify_append()
        return {tp: (base, end) for tp, base, end, _h, _p in frames}

    def _write_wal(
        self, frames: list[tuple[TopicPartition, int, int, bytes, pa.Buffer | bytes]]
    ) -> None:
        meta = msgspec.json.encode(
            [[tp.topic, tp.partition, base, end, len(h) + len(p)] for tp, base, end, h, p in frames]
        )
        body: list[Any] = [struct.pack("<I", len(meta)), meta]
        for _tp, _b, _e, h, p in frames:
            body += [h, p]
        crc = 0
        for chunk in body:
            crc = crc32c.crc32c(chunk, value=crc)
        length = sum(len(c) if not isinstance(c, pa.Buffer) else c.size for c in body)
        fd = os.open(self.root / WAL_FILE, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.writev(fd, [_WAL_HEADER.pack(_WAL_MAGIC, length, crc), *body])
            if self.fsync_policy.mode != "never":
                os.fsync(fd)
        finally:
            os.close(fd)

    def _maybe_truncate_wal(self, force: bool = False) -> None:
        path = self.root / WAL_FILE
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            return
        if size < _WAL_LIMIT and not force:
            return
        for part in self._wal_dirty:
            part.fsync()
        self._wal_dirty.clear()
        with open(path, "r+b") as f:
            f.truncate(0)
            os.fsync(f.fileno())

    def _recover_wal(self) -> None:
        """Apply committed transactions whose parts did not all reach their partitions."""
        path = self.root / WAL_FILE
        if not path.exists():
            return
        raw = path.read_bytes()
        position, applied = 0, 0
        while position + _WAL_HEADER.size <= len(raw):
            magic, length, crc = _WAL_HEADER.unpack_from(raw, position)
            start = position + _WAL_HEADER.size
            body = raw[start : start + length]
            if magic != _WAL_MAGIC or len(body) < length or crc32c.crc32c(body) != crc:
                break  # a transaction whose commit record never finished: it did not happen
            (meta_len,) = struct.unpack_from("<I", body)
            meta = msgspec.json.decode(body[4 : 4 + meta_len])
            at = 4 + meta_len
            for topic, index, _base, end, size in meta:
                frame = body[at : at + size]
                at += size
                if topic not in self._topics:
                    continue  # deleted since
                part = self.partition(topic, index)
                if part.end_offset < end:
                    part.write_frame(frame[:HEADER_SIZE], frame[HEADER_SIZE:], end)
                    part.visible_end = end
                    applied += 1
            position = start + length
        if applied:
            log.info("recovered %d transaction parts from %s", applied, path)
        for topic in self._topics.values():
            for part in topic.partitions:
                part.fsync()
        path.unlink()

    def _crash(self, point: str) -> None:
        if self._crash_hook is not None:
            self._crash_hook(point)

    # -- maintenance --------------------------------------------------------------------

    def run_maintenance(self) -> dict[str, int]:
        """One pass of retention and compaction over every partition (the cleaner's work)."""
        removed_segments = removed_records = 0
        with self._meta_lock:
            topics = list(self._topics.values())
        for topic in topics:
            for part in topic.partitions:
                removed_segments += part.apply_retention()
                if part.needs_compaction():
                    try:
                        removed_records += part.compact()
                    except CorruptLogError as e:  # that partition waits for a repair; not the rest
                        self._report_once(e)
        return {"segments_deleted": removed_segments, "records_compacted": removed_records}

    def _report_once(self, e: CorruptLogError) -> None:
        key = (e.path, e.position)
        if key not in self._reported_damage:
            self._reported_damage.add(key)
            log.error("compaction skips %s[%s]: %s", e.topic, e.partition, e)

    def roll(self, topic: str) -> None:
        """Start new active segments (so that everything before can be compacted or expire)."""
        for part in self._topic(topic).partitions:
            part.roll()

    def flush(self) -> None:
        """fsync every partition with unsynced appends."""
        with self._meta_lock:
            topics = list(self._topics.values())
        for topic in topics:
            for part in topic.partitions:
                part.fsync()

    def verify(self) -> int:
        """Read and check every frame of every segment; returns the records found."""
        total = 0
        with self._meta_lock:
            topics = list(self._topics.values())
        for topic in topics:
            for part in topic.partitions:
                segments = list(part.segments)
                for i, seg in enumerate(segments):
                    upper = segments[i + 1].base_offset if i + 1 < len(segments) else None
                    try:
                        total += seg.verify(upper)
                    except CorruptLogError as e:
                        raise e.located(part.topic, part.index) from None
        return total

    def repair_topic(self, name: str, *, dry_run: bool = False) -> list[Repaired]:
        """Check every frame of a topic; set damaged bytes aside in quarantine files.

        Returns each damaged run of bytes with the offsets it held (lost). Afterwards reads
        go past those offsets; the partitions' end offsets stay, so none is given twice.
        """
        return [r for part in self._topic(name).partitions for r in part.repair(dry_run)]

    def _start_thread(self, target: Callable[[], None], name: str) -> None:
        thread = threading.Thread(target=target, name=name, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _flush_loop(self) -> None:
        interval = self.fsync_policy.interval_ms / 1000
        while not self._stop.wait(interval):
            try:
                self.flush()
            except Exception:  # keep flushing the other partitions next time
                log.exception("background fsync failed")

    def _clean_loop(self) -> None:
        while not self._stop.wait(self._cleaner_interval):
            try:
                self.run_maintenance()
            except Exception:
                log.exception("retention or compaction failed; will try again")

    # -- closing ------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LogError("the log is closed")

    def close(self) -> None:
        if self._closed:
            return
        self.close_committer()  # its queued appends go in first
        self._stop.set()
        for thread in self._threads:
            thread.join()
        with self._data:
            self._closed = True
            self._data.notify_all()
        self.coordinator.close()
        with self._meta_lock:
            for topic in self._topics.values():
                for part in topic.partitions:
                    part.close()
            self._topics.clear()
        self._release()

    def _release(self) -> None:
        if self._lock_fd >= 0:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = -1


class EmbeddedTransaction(Transaction):
    def __init__(self, log: EmbeddedLog) -> None:
        self._log = log
        self._pieces: list[tuple[TopicPartition, pa.RecordBatch]] = []
        self._state = "open"

    def _check(self) -> None:
        if self._state != "open":
            raise TransactionError(f"this transaction is already {self._state}")

    def append(self, topic: str, records: Any, *, partition: int | None = None) -> None:
        self._check()
        batch, parts = self._log._split(topic, records, partition)
        for part, rows in parts:
            piece = batch if rows is None else batch.take(pa.array(rows))
            self._pieces.append((TopicPartition(topic, part.index), piece))

    def commit_offsets(self, group: str, offsets: Mapping[TopicPartition, int]) -> None:
        self._check()
        if not offsets:
            return
        records = [
            {
                "key": msgspec.json.encode([group, tp[0], tp[1]]),
                "value": msgspec.json.encode({"offset": int(off)}),
            }
            for tp, off in offsets.items()
        ]
        self.append(OFFSETS_TOPIC, records, partition=0)

    def commit(self) -> dict[TopicPartition, tuple[int, int]]:
        self._check()
        self._state = "committed"
        result = self._log._commit(self._pieces)
        self._pieces = []
        return result

    def abort(self) -> None:
        if self._state == "open":
            self._state = "aborted"
            self._pieces = []


class _Topic:
    def __init__(self, path: Path, config: TopicConfig, partitions: list[Partition]) -> None:
        self.path = path
        self.config = config
        self.partitions = partitions

    @classmethod
    def open(
        cls, path: Path, clock: Callable[[], int], defaults: Mapping[str, Any] | None = None
    ) -> _Topic:
        meta = json.loads((path / "topic.json").read_text())
        overrides = meta.get("overrides")
        if overrides is None:  # written before overrides were kept: what differs from Kafka's
            builtin = TopicConfig().to_dict()
            overrides = {k: v for k, v in meta["config"].items() if builtin.get(k) != v}
        config = TopicConfig.from_dict({**(defaults or {}), **overrides})
        parts = [
            Partition(path / str(i), meta["name"], i, config, clock)
            for i in range(meta["partitions"])
        ]
        return cls(path, config, parts)


def _lock_directory(data_dir: Path) -> int:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise DataDirLockedError(
            f"data directory {data_dir} is in use by another hispeed process (pid {holder}); "
            "stop that process or choose another directory with --data-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd

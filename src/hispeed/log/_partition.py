"""One partition of the embedded log: its segments, appends, reads, retention and compaction."""

from __future__ import annotations

import bisect
import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.errors import CorruptLogError, OffsetOutOfRangeError
from hispeed.log._segment import Damage, Segment, encode_frame, encode_lists
from hispeed.log.base import RECORD_SCHEMA, TopicConfig

log = logging.getLogger(__name__)

START_FILE = "log-start-offset"
QUARANTINE_LOG = "quarantine.jsonl"


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


class Partition:
    """Segments of one partition. Appends and segment-list changes hold `lock`; reads do not."""

    def __init__(
        self,
        directory: Path,
        topic: str,
        index: int,
        config: TopicConfig,
        clock: Callable[[], int] = _now_ms,
    ) -> None:
        self.directory = directory
        self.topic = topic
        self.index = index
        self.config = config
        self.clock = clock
        self.lock = threading.RLock()
        self.dirty = False  # appended since the last fsync
        directory.mkdir(parents=True, exist_ok=True)
        paths = sorted(directory.glob("*.seg"))
        for leftover in [*directory.glob("*.cleaned"), *directory.glob("*.repairing")]:
            leftover.unlink()  # a compaction or repair that did not finish: originals intact
        self.segments: list[Segment] = [
            Segment.open(
                p, active=(i == len(paths) - 1), index_interval=config.index_interval_bytes
            )
            for i, p in enumerate(paths)
        ]
        start_path = directory / START_FILE
        self.start_offset = int(start_path.read_text()) if start_path.exists() else 0
        if not self.segments:
            self.segments.append(
                Segment.create(directory, self.start_offset, config.index_interval_bytes)
            )
        self._bases = [s.base_offset for s in self.segments]
        self._active_created_ms = clock()
        self._report_damage()
        self.end_offset = max(self.segments[-1].next_offset, self.start_offset)
        #: the end offset readers may see; transactions raise it once all their parts are written
        self.visible_end = self.end_offset
        self.cleaned_through = -1  # closed segments up to this base offset are compacted

    def _report_damage(self) -> None:
        """Say what opening found damaged, and keep appends away from it.

        A damaged active segment is sealed and a new one starts after every offset the damage
        may hold, so those offsets are never given again (a reader past them goes on; one that
        reaches them gets the error until `hispeed topic repair` sets the bytes aside).
        """
        for i, seg in enumerate(self.segments):
            upper = self.segments[i + 1].base_offset if i + 1 < len(self.segments) else None
            for damage in seg.damages.values():
                bounded = damage.bounded(upper)
                log.error(
                    "%s",
                    CorruptLogError(
                        str(seg.path),
                        bounded.position,
                        f"{bounded.reason}; {bounded.end - bounded.position} damaged bytes kept "
                        "in place, and appends go on after those offsets",
                        bounded.first_offset,
                        last_offset=bounded.last_offset,
                        topic=self.topic,
                        partition=self.index,
                    ),
                )
        if self.active.damaged:
            self.active.seal()
            seg = Segment.create(
                self.directory, self.active.next_offset, self.config.index_interval_bytes
            )
            self.segments.append(seg)
            self._bases.append(seg.base_offset)

    # -- writing ------------------------------------------------------------------------

    @property
    def active(self) -> Segment:
        return self.segments[-1]

    def append(self, batch: pa.RecordBatch, at: int | None = None) -> int:
        """Append records (RECORD_SCHEMA without `offset`); returns the first offset given.

        `at` places the batch at a later offset (a transaction replayed after lost writes).
        Call with `lock` held when the caller must see the offsets before others append.
        """
        with self.lock:
            base = self.end_offset if at is None else max(at, self.end_offset)
            n = batch.num_rows
            offsets = pa.array(np.arange(base, base + n, dtype=np.int64))
            full = pa.RecordBatch.from_arrays([offsets, *batch.columns], schema=RECORD_SCHEMA)
            header, payload = encode_frame(full, self.config.compression)
            self.write_frame(header, payload, base + n)
            return base

    def append_one(self, key: bytes | None, value: bytes | None, timestamp: int) -> int:
        """Append one record (what `append` writes for a one-record batch, byte for byte,
        with no Arrow on the way); returns its offset."""
        return self.append_lists([key], [value], timestamp)

    def append_lists(
        self, keys: list[bytes | None], values: list[bytes | None], timestamp: int
    ) -> int:
        """Append records of one timestamp and no headers (what `append` writes for such a
        batch of at most COMPACT_MAX_RECORDS, byte for byte, with no Arrow on the way);
        returns the first offset given."""
        n = len(keys)
        with self.lock:
            base = self.end_offset
            last = base + n - 1
            frame = encode_lists(keys, values, base, timestamp)
            self._maybe_roll(len(frame))
            self.segments[-1].append_frame(frame, base, last, timestamp)
            self.end_offset = last + 1
            self.dirty = True
            return base

    def write_frame(self, header: bytes, payload: bytes | pa.Buffer, end: int) -> None:
        """Write an encoded frame ending at `end` (exclusive), rolling the segment first if due."""
        with self.lock:
            self._maybe_roll(len(header) + len(payload))
            self.active.append(header, payload)
            self.end_offset = end
            self.dirty = True

    def _maybe_roll(self, incoming: int) -> None:
        seg = self.active
        if seg.size == 0:
            return
        too_big = seg.size + incoming > self.config.segment_bytes
        too_old = self.clock() - self._active_created_ms >= self.config.segment_ms
        if too_big or too_old:
            self.roll()

    def roll(self) -> None:
        """Seal the active segment and start a new one at the end offset (no-op when empty)."""
        with self.lock:
            if self.active.size == 0:
                return
            self.active.seal()
            seg = Segment.create(self.directory, self.end_offset, self.config.index_interval_bytes)
            self.segments.append(seg)
            self._bases.append(seg.base_offset)
            self._active_created_ms = self.clock()

    def fsync(self) -> None:
        with self.lock:
            if self.dirty:
                self.active.fsync()
                self.dirty = False

    def close(self) -> None:
        with self.lock:
            self.fsync()
            for seg in self.segments:
                seg.close()

    # -- reading ------------------------------------------------------------------------

    def read(
        self, offset: int, max_records: int | None = None, max_bytes: int | None = None
    ) -> list[pa.RecordBatch]:
        """Batches of records with offsets >= `offset`, up to the visible end and the limits.

        At least one record is returned when one exists, whatever `max_bytes` says. A read
        that reaches damage raises `CorruptLogError`, except a bounded one (with a limit) that
        has records before the damage: it returns those, and the next read raises.
        """
        end = self.visible_end
        start = self.start_offset
        if offset < start or offset > end:
            raise OffsetOutOfRangeError(
                f"offset {offset} is out of range for {self.topic}[{self.index}]: "
                f"it holds offsets {start} to {end - 1}"
                if end > start
                else f"offset {offset} is out of range for {self.topic}[{self.index}]: "
                f"it is empty, and the next offset is {end}",
                start,
                end,
            )
        out: list[pa.RecordBatch] = []
        remaining = max_records if max_records is not None else 1 << 62
        budget = max_bytes if max_bytes is not None else 1 << 62
        try:
            for batch, frame_bytes in self._frames(offset, end, max_records):
                if batch.num_rows > remaining:
                    batch = batch.slice(0, remaining)
                out.append(batch)
                remaining -= batch.num_rows
                budget -= frame_bytes
                if remaining <= 0 or budget <= 0:
                    break  # before the generator reads another frame
        except CorruptLogError:
            if not out or (max_records is None and max_bytes is None):
                raise  # a read of everything must not look complete
            # a bounded read may be short: the records before the damage are good, and the
            # next read, from it, raises
        return out

    def iter_batches(self, offset: int) -> Iterator[pa.RecordBatch]:
        """Every batch from `offset` to the visible end, one frame at a time."""
        for batch, _ in self._frames(offset, self.visible_end):
            yield batch

    def _frames(
        self, offset: int, end: int, max_records: int | None = None
    ) -> Iterator[tuple[pa.RecordBatch, int]]:
        """(batch, frame bytes) of the records with offsets in [offset, end), in order (runs
        of small frames come as one batch of at most about `max_records`)."""
        segments = self.segments  # a snapshot: compaction swaps the list, never edits it
        i = max(bisect.bisect_right([s.base_offset for s in segments], offset) - 1, 0)
        position = offset
        for j in range(i, len(segments)):
            seg = segments[j]
            upper = segments[j + 1].base_offset if j + 1 < len(segments) else None
            try:
                for header, batch in seg.batches(position, seg.size, upper, max_records):
                    if header.base >= end:
                        return
                    offsets = batch.column(0)
                    lo = 0 if header.base >= position else _first_at_least(offsets, position)
                    hi = batch.num_rows if header.last < end else _first_at_least(offsets, end)
                    if hi > lo:
                        if (lo, hi) != (0, batch.num_rows):
                            batch = batch.slice(lo, hi - lo)
                        yield batch, header.length
                    position = header.last + 1
            except CorruptLogError as e:
                raise e.located(self.topic, self.index) from None

    # -- retention and compaction -------------------------------------------------------

    def apply_retention(self) -> int:
        """Delete whole closed segments past retention.ms or retention.bytes; returns how many."""
        cfg = self.config
        if not cfg.deletes:
            return 0
        now = self.clock()
        removed = 0
        with self.lock:
            while len(self.segments) > 1:
                oldest = self.segments[0]
                total = sum(s.size for s in self.segments)
                expired = (
                    cfg.retention_ms >= 0 and 0 <= oldest.max_timestamp < now - cfg.retention_ms
                )
                too_big = cfg.retention_bytes >= 0 and total - oldest.size >= cfg.retention_bytes
                if not (expired or too_big):
                    break
                nxt = self.segments[1].base_offset
                self._set_start(nxt)
                self.segments = self.segments[1:]
                self._bases = self._bases[1:]
                oldest.delete()
                removed += 1
        return removed

    def delete_records_before(self, offset: int) -> None:
        """Advance the log start offset (as Kafka's DeleteRecords); whole segments below it go."""
        with self.lock:
            offset = min(offset, self.end_offset)
            if offset <= self.start_offset:
                return
            self._set_start(offset)
            while len(self.segments) > 1 and self.segments[1].base_offset <= offset:
                self.segments[0].delete()
                self.segments = self.segments[1:]
                self._bases = self._bases[1:]

    def _set_start(self, offset: int) -> None:
        self.start_offset = offset
        tmp = self.directory / (START_FILE + ".tmp")
        tmp.write_text(str(offset))
        os.replace(tmp, self.directory / START_FILE)

    def compact(self) -> int:
        """Keep only the newest record per key in closed segments; returns records removed.

        Tombstones are dropped once older than delete.retention.ms. The active segment is never
        touched, so appends go on while this runs; only the final swap takes the lock.
        """
        cfg = self.config
        if not cfg.compacts:
            return 0
        with self.lock:
            closed = self.segments[:-1]
            active_base = self.active.base_offset
        if not closed:
            return 0
        latest_set = self._latest_offsets(max(self.start_offset, closed[0].base_offset))
        horizon = self.clock() - cfg.delete_retention_ms
        removed = 0
        replacements: dict[int, Segment | None] = {}
        for k, seg in enumerate(closed):
            if seg.base_offset >= active_base:
                break
            upper = closed[k + 1].base_offset if k + 1 < len(closed) else active_base
            tmp_path = seg.path.with_suffix(".cleaned")
            kept_any = False
            changed = False
            with open(tmp_path, "wb") as out, _removed_on_error(tmp_path):
                for _header, batch in seg.batches(-1, upper=upper):
                    keep = pc.is_in(batch.column(0), value_set=latest_set)
                    tomb = pc.and_(pc.is_null(batch.column(3)), pc.less(batch.column(1), horizon))
                    keep = pc.and_(keep, pc.invert(tomb))
                    kept = batch.filter(keep)
                    if kept.num_rows != batch.num_rows:
                        changed = True
                        removed += batch.num_rows - kept.num_rows
                    if kept.num_rows:
                        kept_any = True
                        h, p = encode_frame(kept, cfg.compression)
                        out.write(h)
                        out.write(p)
                out.flush()
                os.fsync(out.fileno())
            if not changed:
                tmp_path.unlink()
                continue
            if not kept_any:
                tmp_path.unlink()
                replacements[seg.base_offset] = None
                continue
            replacements[seg.base_offset] = _swap_in(seg, tmp_path)
        if replacements:
            with self.lock:
                new_list: list[Segment] = []
                for seg in self.segments:
                    if seg.base_offset in replacements and seg is not self.active:
                        repl = replacements[seg.base_offset]
                        if repl is not None:
                            new_list.append(repl)
                        else:
                            seg.delete()
                    else:
                        new_list.append(seg)
                self.segments = new_list
                self._bases = [s.base_offset for s in new_list]
        self.cleaned_through = active_base
        return removed

    # -- repair -------------------------------------------------------------------------

    def repair(self, dry_run: bool = False) -> list[Repaired]:
        """Check every frame of every segment; move damaged bytes into quarantine files.

        Returns what was (or, with dry_run, would be) set aside, with the offsets lost. The
        partition's end offset never goes down: when the damage was at the very end, a new
        segment starts after it, so no offset is given twice. Each repair is also appended
        to `quarantine.jsonl` in the partition's directory.
        """
        out: list[Repaired] = []
        with self.lock:
            end = self.end_offset
            segments = list(self.segments)
            for i, seg in enumerate(segments):
                upper = segments[i + 1].base_offset if i + 1 < len(segments) else None
                damages = seg.find_damage(upper, restore=not dry_run)
                if not damages:
                    continue
                repaired = [self._repaired(seg, d) for d in damages]
                out += repaired
                if dry_run:
                    continue
                good = seg.rewrite_without(damages)
                with open(self.directory / QUARANTINE_LOG, "a") as f:
                    for r in repaired:
                        f.write(json.dumps(r.as_json()) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                active = seg is self.active
                seg.close()
                seg.index_path.unlink(missing_ok=True)  # rebuilt for the new file on open
                os.replace(good, seg.path)
                fresh = Segment.open(seg.path, active=active, index_interval=seg.index_interval)
                self.segments = [fresh if s is seg else s for s in self.segments]
            if not dry_run and out and self.active.next_offset < end:
                self.active.seal()  # its last frames went: keep their offsets given
                seg = Segment.create(self.directory, end, self.config.index_interval_bytes)
                self.segments = [*self.segments, seg]
            self._bases = [s.base_offset for s in self.segments]
            self.end_offset = max(end, self.active.next_offset)
            self.visible_end = self.end_offset
        return out

    def _repaired(self, seg: Segment, damage: Damage) -> Repaired:
        assert damage.last_offset is not None
        return Repaired(
            topic=self.topic,
            partition=self.index,
            segment=str(seg.path),
            position=damage.position,
            bytes=damage.end - damage.position,
            first_offset=damage.first_offset,
            last_offset=damage.last_offset,
            exact=damage.exact,
            reason=damage.reason,
            quarantine=str(seg.quarantine_path(damage)),
        )

    def _latest_offsets(self, offset: int) -> pa.Array:
        """The newest offset of every key from `offset` to the end, in memory of O(keys)."""
        partial: list[pa.Table] = []

        def reduce(tables: list[pa.Table]) -> pa.Table:
            merged = pa.concat_tables(tables)
            return (
                merged.group_by("key")
                .aggregate([("offset", "max")])
                .rename_columns(["key", "offset"])
            )

        for batch in self.iter_batches(offset):
            partial.append(reduce([pa.table({"key": batch.column(2), "offset": batch.column(0)})]))
            if len(partial) >= 64:
                partial = [reduce(partial)]
        if not partial:
            return pa.array([], pa.int64())
        return reduce(partial).column("offset").combine_chunks()

    def needs_compaction(self) -> bool:
        return (
            self.config.compacts
            and len(self.segments) > 1
            and (self.segments[-2].base_offset >= self.cleaned_through)
        )


@dataclass(frozen=True)
class Repaired:
    """Damaged bytes `hispeed topic repair` set aside, and the offsets they held."""

    topic: str
    partition: int
    segment: str
    position: int
    bytes: int
    first_offset: int
    last_offset: int  # lost: first_offset to last_offset, both included
    exact: bool  # False: the frame's own offsets were unreadable; this is an upper bound
    reason: str
    quarantine: str

    @property
    def offsets_lost(self) -> int:
        """How many offsets the damage held (records, unless compaction had left gaps)."""
        return max(self.last_offset - self.first_offset + 1, 0)

    def as_json(self) -> dict[str, object]:
        """The fields as one JSON object (a line of `quarantine.jsonl`)."""
        return {**asdict(self), "offsets_lost": self.offsets_lost}


@contextlib.contextmanager
def _removed_on_error(path: Path) -> Iterator[None]:
    """Remove a half-written file when what writes it fails (a damaged frame, say)."""
    try:
        yield
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _swap_in(old: Segment, cleaned: Path) -> Segment:
    """Replace a closed segment's file with its compacted copy, atomically by rename."""
    index = old.index_path
    index.unlink(missing_ok=True)  # rebuilt for the new file on open
    # Readers holding `old` go on reading its descriptor, which still sees the old inode;
    # it is closed when the last of them lets go of it.
    os.replace(cleaned, old.path)
    return Segment.open(old.path, active=False, index_interval=old.index_interval)


def _first_at_least(offsets: pa.Array, value: int) -> int:
    arr = offsets.to_numpy(zero_copy_only=False)
    return int(np.searchsorted(arr, value, side="left"))

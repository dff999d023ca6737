"""A one-step stream-table join a whole run of polled slices at a time.

A join's inputs are handed out in timestamp order as slices (runtime/ordering.py): with the
stream's and the table's records interleaved in time, most slices hold a record or two, and
decoding, joining, projecting and encoding each slice on its own cost far more than its
records (Nexmark q3 and q20 ran at 12-16 K events per CPU-second that way). This module takes
a run of consecutive slices at once: each input partition's records in it are decoded in one
go (`decode_run`), and each stream record joins the table as it stood at the record's place
in the run: the last change of its key earlier in the run, else the key's row from before the
run. That is what processing the slices one by one gives (a stream record sees exactly the
table changes processed before it), computed with a sort instead of a loop.

The state is the table's current rows as Arrow columns, one row per key, looked up with a
hash (`pc.index_in`) instead of a dict lookup per record. The changelog holds one entry per
changed key, the row as a dict of its fields (None once deleted): the entries
ops/join_stream_table.py's `StreamTableJoin` writes, so state committed by either restores
into the other.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.registry import EvalContext
from hispeed.log.base import PolledBatch, TopicPartition
from hispeed.ops.decode import SourceDecoder
from hispeed.ops.join_steps import joined_batch
from hispeed.plan.model import JoinStep, field_name

#: join key types whose values Arrow hashes as Python's dict would (no NaN or -0.0)
_INTEGERS = ("INTEGER", "BIGINT")
_KEY_FAMILIES = (_INTEGERS, ("STRING",))
#: chunks of the table's columns after which they are made one again
_MAX_CHUNKS = 16


def supported(steps: list[JoinStep], topics: list[str], windowed: bool) -> bool:
    """Whether a join runs on this path: one stream-table step of two different topics,
    neither windowed, both keys INTEGER or BIGINT, or both STRING."""
    if len(steps) != 1 or len(set(topics)) != 2 or windowed:
        return False
    step = steps[0]
    if step.left_kind != "STREAM" or step.right_kind != "TABLE":
        return False
    left, right = step.left_key.type, step.right_key.type
    if left is None or right is None:
        return False
    return any(left.name in f and right.name in f for f in _KEY_FAMILIES)


@dataclass
class SideRun:
    """One side's records of a run: the decoded frame, its tombstones, and each row's place
    in the run's processing order."""

    frame: pa.RecordBatch
    tombstones: np.ndarray
    places: np.ndarray


@dataclass
class _Decoded:
    first: int
    last: int
    offsets: np.ndarray  # each row's ROWOFFSET
    frame: pa.RecordBatch
    tombstones: np.ndarray
    errors: list[dict[str, Any]]


class DecodeCache:
    """Each side's decoders, keeping the last frame decoded per side and partition: the task
    decodes a partition's queued records to order them by their TIMESTAMP column
    (runtime/task.py `_times`), then takes them in slices; a slice inside the frame decoded
    last is cut from it instead of being decoded again."""

    def __init__(self, decoders: list[SourceDecoder]) -> None:
        self.decoders = decoders
        self.last: dict[tuple[int, TopicPartition], _Decoded] = {}

    def decode(
        self, side: int, item: PolledBatch, errors: list[dict[str, Any]]
    ) -> tuple[pa.RecordBatch, np.ndarray]:
        """`SourceDecoder.decode` of side `side` (the errors of the slice's rows only)."""
        return self.decode_slices(side, item.partition, [item.batch], errors)

    def decode_slices(
        self,
        side: int,
        tp: TopicPartition,
        batches: list[pa.RecordBatch],
        errors: list[dict[str, Any]],
    ) -> tuple[pa.RecordBatch, np.ndarray]:
        """`decode` of consecutive slices of one partition, as one frame."""
        batches = [b for b in batches if b.num_rows]
        if not batches:
            return self.decoders[side].decode(PolledBatch(tp, pa.record_batch({})), errors)
        first = batches[0].column(0)[0].as_py()
        last = batches[-1].column(0)[batches[-1].num_rows - 1].as_py()
        done = self.last.get((side, tp))
        if done is None or first < done.first or last > done.last:
            raw = batches[0] if len(batches) == 1 else pa.concat_batches(batches)
            mine: list[dict[str, Any]] = []
            frame, tombstones = self.decoders[side].decode(PolledBatch(tp, raw), mine)
            read = frame.column(field_name(self.decoders[side].label, "ROWOFFSET"))
            done = _Decoded(
                first,
                last,
                np.asarray(read.to_numpy(zero_copy_only=False), np.int64),
                frame,
                np.asarray(tombstones, bool),
                mine,
            )
            self.last[(side, tp)] = done
        lo = int(np.searchsorted(done.offsets, first))
        hi = int(np.searchsorted(done.offsets, last, side="right"))
        # offset 0 is an offset: no truthiness test (it dropped the first record's error)
        errors += [e for e in done.errors if _within(e.get("offset"), first, last)]
        if lo == 0 and hi == len(done.offsets):
            return done.frame, done.tombstones
        return done.frame.slice(lo, hi - lo), done.tombstones[lo:hi]


def decode_run(
    decoders: DecodeCache,
    topics: dict[str, list[int]],
    items: list[PolledBatch],
    errors: list[dict[str, Any]],
) -> dict[int, SideRun]:
    """Each side's records of the slices `items` (in processing order), decoded a partition
    at a time; sides without records are left out."""
    parts: dict[TopicPartition, list[tuple[pa.RecordBatch, int]]] = {}
    for j, item in enumerate(items):
        parts.setdefault(item.partition, []).append((item.batch, j))
    runs: dict[int, list[SideRun]] = {}
    for tp, slices in parts.items():
        # a row's place: its slice's number in the run, then its offset in the slice (only
        # the order of places counts)
        firsts = np.array([b.column(0)[0].as_py() for b, _ in slices], np.int64)
        numbers = np.array([j for _, j in slices], np.int64)
        for side in topics.get(tp.topic, []):
            frame, tombstones = decoders.decode_slices(side, tp, [b for b, _ in slices], errors)
            label = decoders.decoders[side].label
            read = np.asarray(
                frame.column(field_name(label, "ROWOFFSET")).to_numpy(zero_copy_only=False),
                np.int64,
            )
            which = np.searchsorted(firsts, read, side="right") - 1
            where = (numbers[which] << 32) + (read - firsts[which])
            runs.setdefault(side, []).append(SideRun(frame, np.asarray(tombstones, bool), where))
    out: dict[int, SideRun] = {}
    for side, pieces in runs.items():
        if len(pieces) == 1:
            out[side] = pieces[0]
            continue
        places = np.concatenate([p.places for p in pieces])
        order = np.argsort(places, kind="stable")
        frame = pa.Table.from_batches([p.frame for p in pieces]).combine_chunks()
        out[side] = SideRun(
            frame.take(pa.array(order)).to_batches()[0]
            if frame.num_rows
            else pa.RecordBatch.from_pylist([], schema=frame.schema),
            np.concatenate([p.tombstones for p in pieces])[order],
            places[order],
        )
    return out


class LookupJoin:
    """The table's rows as columns and the matching of stream records (see the module doc)."""

    def __init__(
        self,
        step: JoinStep,
        labels: list[str],
        fields: list[list[str]],
        types: dict[str, pa.DataType],
        key_type: pa.DataType,
    ) -> None:
        self.step = step
        self.labels = labels
        self.fields = fields
        self.types = types
        self.key_type = key_type
        self.schema = pa.schema([(f, types[f]) for f in fields[1]])
        #: the table's keys (unique) and their rows, in the same order
        self.keys: pa.Array = pa.array([], key_type)
        self.rows: pa.Table = self.schema.empty_table()
        #: restored changelog entries not yet made columns
        self.restored: dict[Any, dict[str, Any] | None] = {}
        #: key -> its row as a dict (None: deleted) since the last checkpoint
        self.changed: dict[Any, dict[str, Any] | None] = {}

    def process_run(self, sides: dict[int, SideRun], st: list[int]) -> pa.RecordBatch | None:
        """The joined rows of a run (None if it had no stream records): each stream record
        with the table as it stood at the record's place; the table's changes kept."""
        self._materialize()
        for side, run in sides.items():
            stamps = run.frame.column(field_name(self.labels[side], "ROWTIME"))
            if len(stamps):
                st[0] = max(st[0], pc.max(stamps).as_py() or 0)
        table = sides.get(1)
        stream = sides.get(0)
        changes = self._changes(table) if table is not None else None
        out = self._join(stream, changes) if stream is not None else None
        if changes is not None:
            self._apply(changes)
        return out

    # -- matching ---------------------------------------------------------------------------

    def _changes(self, table: SideRun) -> _Changes:
        """The run's table changes with a key, in processing order."""
        frame = table.frame
        keys = self.step.right_key(frame, EvalContext()).cast(self.key_type)
        valid = np.asarray(keys.is_valid().to_numpy(zero_copy_only=False), bool)
        rows = pa.Table.from_arrays(
            [_typed(frame.column(f), self.types[f]) for f in self.fields[1]], schema=self.schema
        )
        if not valid.all():
            mask = pa.array(valid)
            keys, rows = keys.filter(mask), rows.filter(mask)
        return _Changes(keys, rows, table.tombstones[valid], table.places[valid])

    def _join(self, stream: SideRun, changes: _Changes | None) -> pa.RecordBatch:
        frame = stream.frame
        keys = self.step.left_key(frame, EvalContext()).cast(self.key_type)
        places = stream.places
        if keys.null_count:  # a NULL key joins nothing
            mask = keys.is_valid()
            frame, keys, places = (
                frame.filter(mask),
                keys.filter(mask),
                places[mask.to_numpy(zero_copy_only=False)],
            )
        # each record's row: in the table as it was before the run ...
        found = pc.index_in(keys, value_set=self.keys)
        slots = np.asarray(found.fill_null(-1).to_numpy(zero_copy_only=False), np.int64)
        source = self.rows
        if changes is not None and len(changes.keys):
            # ... unless the run changed its key before it: then that change's row (or none)
            latest = _latest_change(keys, places, changes.keys, changes.places)
            changed = latest >= 0
            gone = changes.deleted[np.where(changed, latest, 0)] & changed
            slots = np.where(changed, latest + len(self.keys), slots)
            slots[gone] = -1
            source = pa.concat_tables([self.rows, changes.rows])
        if self.step.kind == "INNER":
            keep = slots >= 0
            if not keep.all():
                mask = pa.array(keep)
                frame, keys, slots = frame.filter(mask), keys.filter(mask), slots[keep]
        found_rows = slots >= 0
        take = pa.array(np.where(found_rows, slots, 0), mask=~found_rows)
        label = self.labels[0]
        arrays = [frame.column(f) for f in self.fields[0]]
        names = [*self.fields[0], *self.fields[1]]
        for f in self.fields[1]:
            col = source.column(f)
            arrays.append(
                col.take(take).combine_chunks() if len(source) else pa.nulls(len(slots), col.type)
            )
        return joined_batch(arrays, names, frame, label, keys)

    # -- state ------------------------------------------------------------------------------

    def _apply(self, changes: _Changes) -> None:
        """Keep each changed key's last change: its row, or none if it was deleted."""
        if not len(changes.keys):
            return
        codes = _codes(changes.keys)
        # the last change of each key: the first of each in reverse order
        _, first = np.unique(codes[::-1], return_index=True)
        last = np.sort(len(codes) - 1 - first)
        keys = changes.keys.take(pa.array(last))
        deleted = changes.deleted[last]
        rows = changes.rows.take(pa.array(last))
        stale = pc.is_in(self.keys, value_set=keys)
        if stale.true_count:
            kept = pc.invert(stale)
            self.keys, self.rows = self.keys.filter(kept), self.rows.filter(kept)
        live = pa.array(~deleted)
        self.keys = pa.concat_arrays([self.keys, keys.filter(live)])
        self.rows = pa.concat_tables([self.rows, rows.filter(live)])
        if self.rows.column(0).num_chunks > _MAX_CHUNKS if self.rows.num_columns else False:
            self.rows = self.rows.combine_chunks()
        for k, row, gone in zip(keys.to_pylist(), rows.to_pylist(), deleted.tolist(), strict=True):
            self.changed[k] = None if gone else row

    def _materialize(self) -> None:
        """Make the restored changelog entries the table's columns."""
        if not self.restored:
            return
        entries = {k: v for k, v in self.restored.items() if v is not None}
        self.restored = {}
        keys = pa.array(list(entries), self.key_type)
        rows = pa.Table.from_pylist(
            [{f: row.get(f) for f in self.fields[1]} for row in entries.values()],
            schema=self.schema,
        )
        stale = pc.is_in(self.keys, value_set=keys)
        kept = pc.invert(stale)
        self.keys = pa.concat_arrays([self.keys.filter(kept), keys])
        self.rows = pa.concat_tables([self.rows.filter(kept), rows]).combine_chunks()

    def state(self) -> dict[Any, Any]:
        """The changed keys' rows (None: deleted) since the last call, for the changelog."""
        changed = self.changed
        self.changed = {}
        return changed

    def restore(self, name: Any, value: Any) -> None:
        """Take back one changelog entry (a key and its row, or None)."""
        self.restored[name] = value


@dataclass
class _Changes:
    keys: pa.Array
    rows: pa.Table
    deleted: np.ndarray
    places: np.ndarray


def _typed(column: pa.Array, t: pa.DataType) -> pa.Array:
    return column if column.type == t else column.cast(t)


def _codes(keys: pa.Array) -> np.ndarray:
    """A small integer per distinct key."""
    encoded = pc.dictionary_encode(keys)
    return np.asarray(encoded.indices.to_numpy(zero_copy_only=False), np.int64)


def _latest_change(
    keys: pa.Array, places: np.ndarray, change_keys: pa.Array, change_places: np.ndarray
) -> np.ndarray:
    """For each stream record (`keys`, `places`): the index of its key's last change at an
    earlier place (-1: none), the changes being in place order."""
    n, m = len(change_keys), len(keys)
    codes = _codes(pa.concat_arrays([change_keys, keys]))
    where = np.concatenate([change_places, places])
    is_change = np.zeros(n + m, bool)
    is_change[:n] = True
    # by key, then place; a change and a record never share a place
    order = np.lexsort((where, codes))
    ordinal = np.where(is_change[order], np.arange(n + m), -1)
    last = np.maximum.accumulate(ordinal)  # the latest change so far, in sorted order
    has = last >= 0
    last_c = np.where(has, last, 0)
    same = has & (codes[order][last_c] == codes[order])
    result_sorted = np.where(same, order[last_c], -1)  # an index among the changes
    result = np.empty(n + m, np.int64)
    result[order] = result_sorted
    return result[n:]


__all__ = ["DecodeCache", "LookupJoin", "SideRun", "decode_run", "supported"]


def _within(offset: int | None, first: int, last: int) -> bool:
    return offset is not None and first <= offset <= last

"""A stream-stream join a run of slices at a time: the fast path for the common shape.

`ops/join.py` walks records one by one through any join. For a query that is one
stream-stream join of two different streams, keyed by a BIGINT, INTEGER or STRING
expression, without GRACE PERIOD (INNER, LEFT, RIGHT or FULL) or an INNER join with one, this
module gives the same rows with columns. The task hands both sides out in timestamp order as
slices (runtime/ordering.py); a run of them is taken at once (`process_run`, decoded by
ops/join_lookup.py's `decode_run`): each record joins the other side's records kept before the
run and those placed before it in the run (one hash join, Polars, filtered to the window and
to what is still kept when the record comes: above its side's newest time less the window and
grace), and the records that come later join it in turn, so each pair is sent once, by the
later record, at its place. A record's matches come in the other side's time order (ties:
arrival order); an unmatched record of an outer side is sent at once, joined to NULLs
(ksqlDB's semantics without GRACE PERIOD; with one, an outer join's unmatched rows wait for
their window to close: ops/join_stream_stream.py's work).

Each side's records of a run are one chunk of state and one changelog entry; a chunk is
forgotten (and deleted from the changelog) once all its records are past retention, so the
state is bounded by the window and grace. An inner join with GRACE PERIOD that ran on the
record path before takes over its committed state (`restore`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from hispeed.functions.registry import EvalContext
from hispeed.ops.decode import frame_headers, headers_field
from hispeed.ops.join_lookup import SideRun
from hispeed.ops.join_steps import LEGACY_GRACE_MS, kept_for_ms
from hispeed.plan.model import LABEL, PSEUDO_COLUMNS, ROWKEY, JoinStep, field_name

_KEY_TYPES = ("INTEGER", "BIGINT", "STRING")


def supported(steps: list[JoinStep], labels: list[str], topics: list[str]) -> bool:
    """Whether a join runs on this path: one stream-stream step of two different topics, on a
    BIGINT, INTEGER or STRING key, without GRACE PERIOD or an inner join (with a GRACE
    PERIOD an outer join's unmatched rows wait for their window: the record path's work)."""
    if len(steps) != 1 or len(set(topics)) != 2:
        return False
    step = steps[0]
    key = step.left_key.type
    return (
        step.window is None
        and step.left_kind == "STREAM"
        and step.right_kind == "STREAM"
        and (step.grace_ms is None or step.kind == "INNER")
        and key is not None
        and key.name in _KEY_TYPES
    )


@dataclass
class _Run:
    """One side's records of a run, with a key: frame, keys, times, places in the run."""

    frame: pa.RecordBatch
    keys: pa.Array
    stamps: np.ndarray
    places: np.ndarray
    seqs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))


@dataclass
class _Chunk:
    id: int
    rows: pa.RecordBatch  # the side's fields
    keys: pa.Array
    stamps: np.ndarray
    seqs: np.ndarray  # arrival order across both sides


class ColumnarStreamJoin:
    """The state and the matching of a one-step stream-stream join (see the module doc)."""

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
        grace = LEGACY_GRACE_MS if step.grace_ms is None else step.grace_ms
        self.retention = kept_for_ms(step, grace)
        self.outer = [step.kind in ("LEFT", "FULL"), step.kind in ("RIGHT", "FULL")]
        self.chunks: list[list[_Chunk]] = [[], []]
        self.newest = [0, 0]
        self.seq = 0
        self.next_chunk = 0
        self.changed: dict[Any, Any] = {}

    def _rows(
        self,
        side: int,
        frame: pa.RecordBatch,
        keys: pa.Array,
        stamps: np.ndarray,
        other: list[pa.RecordBatch],
        this_i: np.ndarray,
        other_g: np.ndarray,
        other_ts: np.ndarray,
    ) -> pa.RecordBatch:
        """`other`: the other side's rows, in pieces, that `other_g` numbers (-1: none)."""
        # the common case: every record of the batch joined once, in order (no copy)
        whole = len(this_i) == frame.num_rows and _sorted(this_i)
        mine = pa.array(this_i)
        found = other_g >= 0

        def pick(column: pa.Array) -> pa.Array:
            return column if whole else column.take(mine)

        columns: dict[str, pa.Array] = {}
        for f in self.fields[side]:
            columns[f] = pick(frame.column(f))
        schema = pa.schema([(f, self.types[f]) for f in self.fields[1 - side]])
        theirs = _take_rows(other, other_g, schema)
        for f in self.fields[1 - side]:
            columns[f] = theirs.column(f).combine_chunks()
        label = self.labels[side]
        times = np.maximum(stamps[this_i], np.where(found, other_ts, 0))
        names = [*self.fields[0], *self.fields[1]]
        arrays = [columns[f] for f in names]
        own = {
            "ROWTIME": pa.array(times, pa.int64()),
            "ROWPARTITION": pick(frame.column(field_name(label, "ROWPARTITION"))),
            "ROWOFFSET": pick(frame.column(field_name(label, "ROWOFFSET"))),
        }
        for name in PSEUDO_COLUMNS:
            arrays.append(own[name])
            names.append(field_name(LABEL, name))
        arrays.append(pick(keys))
        names.append(field_name(LABEL, ROWKEY))
        headers = frame_headers(frame, label)
        if headers is not None:  # a joined row carries the headers of this side's record
            arrays.append(pick(headers))
            names.append(headers_field(LABEL))
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _keep(
        self,
        side: int,
        frame: pa.RecordBatch,
        keys: pa.Array,
        stamps: np.ndarray,
        seqs: np.ndarray | None = None,
    ) -> None:
        """Add the batch to its side's state (`seqs`: its records' arrival numbers, if not
        the next ones in order); forget chunks past retention."""
        n = len(stamps)
        if n:
            rows = pa.RecordBatch.from_arrays(
                [frame.column(f) for f in self.fields[side]], names=self.fields[side]
            )
            rows, keys = _compact(rows), _compact(keys)
            if seqs is None:
                seqs = np.arange(self.seq, self.seq + n, dtype=np.int64)
                self.seq += n
            chunk = _Chunk(self.next_chunk, rows, keys, stamps, seqs)
            self.next_chunk += 1
            self.newest[side] = max(self.newest[side], int(stamps.max()))
            self.chunks[side].append(chunk)
            self.changed[("C", side, chunk.id)] = (rows, keys, stamps, seqs)
        for s in (0, 1):
            horizon = self.newest[s] - self.retention
            for c in [c for c in self.chunks[s] if c.stamps.max() <= horizon]:
                self.chunks[s].remove(c)
                self.changed[("C", s, c.id)] = None

    # -- runs of both sides -------------------------------------------------------------------

    def process_run(self, sides: dict[int, SideRun], st: list[int]) -> pa.RecordBatch | None:
        """The joined rows of a run of slices of both sides (ops/join_lookup.py's
        `decode_run`), as processing the slices one by one gives them: each record joins
        the other side's records kept before the run and those earlier in the run, as far
        as they are visible at its place; its rows come at its place."""
        runs: dict[int, _Run] = {}
        for side, run in sides.items():
            runs[side] = self._prepared(side, run, st)
        if not runs:
            return None
        # arrival numbers, in the run's order across both sides
        places = np.concatenate([r.places for r in runs.values()])
        seqs = np.empty(len(places), np.int64)
        seqs[np.argsort(places, kind="stable")] = np.arange(self.seq, self.seq + len(places))
        start = 0
        for r in runs.values():
            r.seqs = seqs[start : start + len(r.places)]
            start += len(r.places)
        pieces = [self._run_side(side, runs) for side in runs]
        batches = [b for b, _ in pieces if b.num_rows]
        for side, r in runs.items():
            self._keep(side, r.frame, r.keys, r.stamps, r.seqs)
        self.seq += len(places)
        if not batches:
            return None
        if len(batches) == 1:
            return batches[0]  # one side's rows: in order already
        batch = _concat(batches)
        order = np.lexsort(tuple(np.concatenate([o[i] for _, o in pieces]) for i in (2, 1, 0)))
        return batch.take(pa.array(order))

    def _prepared(self, side: int, run: SideRun, st: list[int]) -> _Run:
        label = self.labels[side]
        frame, places = run.frame, run.places
        stamps = np.asarray(
            frame.column(field_name(label, "ROWTIME")).to_numpy(zero_copy_only=False), np.int64
        )
        if len(stamps):
            st[0] = max(st[0], int(stamps.max()))
        keys = (self.step.left_key if side == 0 else self.step.right_key)(frame, EvalContext())
        if keys.null_count:  # a NULL key joins nothing and is not kept
            valid = keys.is_valid()
            mask = np.asarray(valid.to_numpy(zero_copy_only=False), bool)
            frame, keys, stamps, places = (
                frame.filter(valid),
                keys.filter(valid),
                stamps[mask],
                places[mask],
            )
        return _Run(frame, keys.cast(self.key_type), stamps, places)

    def _run_side(
        self, side: int, runs: dict[int, _Run]
    ) -> tuple[pa.RecordBatch, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The rows side `side`'s records of the run send, and their order keys (place,
        the other record's time, its arrival number)."""
        me, other = runs[side], runs.get(1 - side)
        step = self.step
        before, after = (
            (step.before_ms, step.after_ms) if side == 0 else (step.after_ms, step.before_ms)
        )
        # the newest time of the other side when each record is processed
        newest = np.full(len(me.places), self.newest[1 - side], np.int64)
        if other is not None and len(other.places):
            seen = np.searchsorted(other.places, me.places)
            running = np.maximum.accumulate(other.stamps)
            newest = np.where(
                seen > 0, np.maximum(newest, running[np.maximum(seen - 1, 0)]), newest
            )
        chunks = self.chunks[1 - side]
        kept = sum(len(c.stamps) for c in chunks)
        empty = np.zeros(0, np.int64)
        o_keys = [c.keys for c in chunks]
        o_stamps, o_seqs, o_places = [c.stamps for c in chunks], [c.seqs for c in chunks], []
        o_places.append(np.full(kept, -1, np.int64))
        if other is not None:
            o_keys.append(other.keys)
            o_stamps.append(other.stamps)
            o_seqs.append(other.seqs)
            o_places.append(other.places)
        import polars as pl  # 0.2 s to import: only for queries with this join

        this_i = other_g = other_ts = other_s = empty
        if len(me.places) and o_keys and sum(len(k) for k in o_keys):
            mine = pl.DataFrame(
                {
                    "k": pl.from_arrow(me.keys),
                    "t": me.stamps,
                    "p": me.places,
                    "v": newest - self.retention,
                    "i": np.arange(len(me.places), dtype=np.int64),
                }
            )
            theirs = pl.DataFrame(
                {
                    "k": pl.from_arrow(pa.concat_arrays(o_keys)),
                    "ot": np.concatenate(o_stamps),
                    "s": np.concatenate(o_seqs),
                    "op": np.concatenate(o_places),
                    "g": np.arange(sum(len(x) for x in o_stamps), dtype=np.int64),
                }
            )
            lo = pl.max_horizontal(pl.col("t") - before, pl.lit(0))
            joined = (
                mine.join(theirs, on="k", how="inner")
                .filter(
                    (pl.col("op") < pl.col("p"))
                    & (pl.col("ot") >= lo)
                    & (pl.col("ot") <= pl.col("t") + after)
                    & (pl.col("ot") > pl.col("v"))
                )
                .sort(["i", "ot", "s"])
            )
            this_i = joined["i"].to_numpy().astype(np.int64)
            other_g = joined["g"].to_numpy().astype(np.int64)
            other_ts = joined["ot"].to_numpy().astype(np.int64)
            other_s = joined["s"].to_numpy().astype(np.int64)
        if self.outer[side]:
            alone = np.setdiff1d(np.arange(len(me.places)), this_i)
            if len(alone):
                minus = np.full(len(alone), -1, np.int64)
                this_i = np.concatenate((this_i, alone))
                other_g, other_ts, other_s = (
                    np.concatenate((a, minus)) for a in (other_g, other_ts, other_s)
                )
                # each record's rows together, in order
                order = np.argsort(this_i, kind="stable")
                this_i, other_g, other_ts, other_s = (
                    a[order] for a in (this_i, other_g, other_ts, other_s)
                )
        parts = [c.rows for c in chunks]
        if other is not None:
            parts.append(
                pa.RecordBatch.from_arrays(
                    [_typed(other.frame.column(f), self.types[f]) for f in self.fields[1 - side]],
                    names=self.fields[1 - side],
                )
            )
        batch = self._rows(side, me.frame, me.keys, me.stamps, parts, this_i, other_g, other_ts)
        return batch, (me.places[this_i], other_ts, other_s)

    # -- state ------------------------------------------------------------------------------

    def state(self) -> dict[Any, Any]:
        changed = self.changed
        changed[("seq",)] = (self.seq, self.newest, self.next_chunk)
        self.changed = {}
        return changed

    def restore(self, name: Any, value: Any) -> None:
        if name == ("seq",):
            if len(value) == 2:  # the record path's (ops/join_stream_stream.py)
                self.seq, self.newest = value
            else:
                self.seq, self.newest, self.next_chunk = value
            return
        if name[0] != "C":
            self._restore_record_path(name, value)
            return
        _, side, chunk_id = name
        rows, keys, stamps, seqs = value
        self.chunks[side].append(_Chunk(chunk_id, rows, keys, stamps, seqs))
        self.chunks[side].sort(key=lambda c: c.id)

    def _restore_record_path(self, name: Any, value: Any) -> None:
        """Take over an entry of the record path's state (an inner join with GRACE PERIOD
        committed before it ran here): a key's kept records become a chunk (numbered below
        zero, before this path's own), and the old entry is deleted at the next commit."""
        self.changed[name] = None
        if value is None or name[0] == "P":  # outer rows waiting: none in an inner join
            return
        side, key = name
        schema = pa.schema([(f, self.types[f]) for f in self.fields[side]])
        rows = pa.RecordBatch.from_pylist(
            [{f: row.get(f) for f in self.fields[side]} for _, _, row in value], schema=schema
        )
        keys = pa.array([key] * len(value), self.key_type)
        stamps = np.array([ts for ts, _, _ in value], np.int64)
        seqs = np.array([seq for _, seq, _ in value], np.int64)
        chunk_id = -1 - sum(1 for s in (0, 1) for c in self.chunks[s] if c.id < 0)
        self.chunks[side].insert(0, _Chunk(chunk_id, rows, keys, stamps, seqs))
        self.changed[("C", side, chunk_id)] = (rows, keys, stamps, seqs)


def _take_rows(parts: list[pa.RecordBatch], rows: np.ndarray, schema: pa.Schema) -> pa.Table:
    """The rows numbered `rows` (-1: a row of nulls) across the pieces `parts`, reading only
    the pieces they are in (the kept side is many pieces, the rows a batch joins few)."""
    found = rows >= 0
    if not found.any():
        return pa.table({f.name: pa.nulls(len(rows), f.type) for f in schema}, schema=schema)
    sizes = np.array([p.num_rows for p in parts], np.int64)
    ends = np.cumsum(sizes)
    at = np.where(found, rows, 0)
    which = np.searchsorted(ends, at, side="right")
    local = at - (ends[which] - sizes[which])
    which = np.where(found, which, -1)
    # each piece's rows taken from it alone, then put in the asked order
    order = np.argsort(which, kind="stable")
    bounds = np.searchsorted(which[order], np.arange(-1, len(parts) + 1))
    taken = [
        pa.Table.from_batches(
            [parts[c].take(pa.array(local[order[bounds[c + 1] : bounds[c + 2]]]))], schema=schema
        )
        for c in range(len(parts))
        if bounds[c + 2] > bounds[c + 1]
    ]
    nulls = int(bounds[1] - bounds[0])
    if nulls:
        taken.insert(0, pa.table({f.name: pa.nulls(nulls, f.type) for f in schema}, schema=schema))
    table = pa.concat_tables(taken).combine_chunks()
    back = np.empty(len(rows), np.int64)
    back[order] = np.arange(len(rows))
    return table if _sorted(order) else table.take(pa.array(back))


def _compact(data: Any) -> Any:
    """A batch or array that is a small part of larger buffers (a slice or filter of a
    decoded batch) copied into its own: kept as it is, it holds the whole batch in memory,
    and its changelog entry pickles the whole buffers (q9's auctions: 10 times their size)."""
    if data.get_total_buffer_size() <= 2 * data.nbytes + 4096:
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.concat_batches([data])
    return pa.concat_arrays([data])


def _sorted(order: np.ndarray) -> bool:
    """Whether `order` is 0, 1, 2, ... (the rows as they are)."""
    return bool(order[0] == 0 and np.all(order[1:] == order[:-1] + 1)) if len(order) else True


def _typed(column: pa.Array, t: pa.DataType) -> pa.Array:
    return column if column.type == t else column.cast(t)


def _concat(batches: list[pa.RecordBatch]) -> pa.RecordBatch:
    """Batches of joined rows as one, the hidden headers column in all or none."""
    if len(batches) == 1:
        return batches[0]
    name = headers_field(LABEL)
    if any(b.schema.get_field_index(name) >= 0 for b in batches):
        batches = [
            b
            if b.schema.get_field_index(name) >= 0
            else b.append_column(name, pa.nulls(b.num_rows, frame_headers_type(batches, name)))
            for b in batches
        ]
    return pa.concat_batches(batches)


def frame_headers_type(batches: list[pa.RecordBatch], name: str) -> pa.DataType:
    """The type of the headers column the batches that have one have."""
    return next(b.schema.field(name).type for b in batches if b.schema.get_field_index(name) >= 0)


__all__ = ["ColumnarStreamJoin", "supported"]

"""A stream-stream join a whole batch at a time: the fast path for the common shape.

`ops/join.py` walks records one by one through any join. For a query that is one
stream-stream join of two different streams, keyed by a BIGINT, INTEGER or STRING
expression, without GRACE PERIOD (INNER, LEFT, RIGHT or FULL), this module gives the same
rows with columns: each side's records are kept as Arrow chunks, and a batch from one side is
matched against the other side's chunks with one hash join (Polars) and filtered to the
window. A batch of one side never sees its own records, so record-at-a-time order holds:
each record's matches come in the other side's time order (ties: arrival order), and an
unmatched record of an outer side is sent at once, joined to NULLs (ksqlDB's semantics
without GRACE PERIOD).

Each batch's records are one chunk of state and one changelog entry; a chunk is forgotten
(and deleted from the changelog) once all its records are past retention.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from hispeed.ops.decode import frame_headers, headers_field
from hispeed.ops.join_steps import LEGACY_GRACE_MS
from hispeed.plan.model import LABEL, PSEUDO_COLUMNS, ROWKEY, JoinStep, field_name

_KEY_TYPES = ("INTEGER", "BIGINT", "STRING")


def supported(steps: list[JoinStep], labels: list[str], topics: list[str]) -> bool:
    """Whether a join runs on this path: one stream-stream step without GRACE PERIOD, of two
    different topics, on a BIGINT, INTEGER or STRING key."""
    if len(steps) != 1 or len(set(topics)) != 2:
        return False
    step = steps[0]
    key = step.left_key.type
    return (
        step.left_kind == "STREAM"
        and step.right_kind == "STREAM"
        and step.grace_ms is None
        and key is not None
        and key.name in _KEY_TYPES
    )


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
        self.retention = step.before_ms + step.after_ms + LEGACY_GRACE_MS
        self.outer = [step.kind in ("LEFT", "FULL"), step.kind in ("RIGHT", "FULL")]
        self.chunks: list[list[_Chunk]] = [[], []]
        self.newest = [0, 0]
        self.seq = 0
        self.next_chunk = 0
        self.changed: dict[Any, Any] = {}

    def process(self, side: int, frame: pa.RecordBatch, keys: pa.Array, st: list[int]) -> Any:
        """The joined rows of one side's batch (fields of both sides and `$J.*`)."""
        label = self.labels[side]
        stamps = np.asarray(
            frame.column(field_name(label, "ROWTIME")).to_numpy(zero_copy_only=False), np.int64
        )
        if len(stamps):
            st[0] = max(st[0], int(stamps.max()))
        if keys.null_count:  # a NULL key joins nothing and is not kept
            valid = keys.is_valid()
            frame, keys, stamps = frame.filter(valid), keys.filter(valid), stamps[valid]
        keys = keys.cast(self.key_type)
        n = len(stamps)
        this_i, other_g, other_ts = self._match(side, keys, stamps)
        other = pa.Table.from_batches(
            [c.rows for c in self.chunks[1 - side]],
            schema=pa.schema([(f, self.types[f]) for f in self.fields[1 - side]]),
        )
        if self.outer[side]:
            alone = np.setdiff1d(np.arange(n), this_i)
            if len(alone):
                this_i = np.concatenate((this_i, alone))
                other_g = np.concatenate((other_g, np.full(len(alone), -1)))
                other_ts = np.concatenate((other_ts, np.full(len(alone), -1)))
                order = np.argsort(this_i, kind="stable")  # each record's rows together
                this_i, other_g, other_ts = this_i[order], other_g[order], other_ts[order]
        out = self._rows(side, frame, keys, stamps, other, this_i, other_g, other_ts)
        self._keep(side, frame, keys, stamps)
        return out

    def _match(
        self, side: int, keys: pa.Array, stamps: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row in the batch, row in the other side's table, its time) of every match, in
        batch order, then the other side's time and arrival order."""
        empty = np.zeros(0, np.int64)
        chunks = self.chunks[1 - side]
        if not chunks or not len(stamps):
            return empty, empty, empty
        step = self.step
        before, after = (
            (step.before_ms, step.after_ms) if side == 0 else (step.after_ms, step.before_ms)
        )
        visible = self.newest[1 - side] - self.retention
        # Polars takes 0.2 s to import: only a query with a stream-stream join pays for it,
        # not every start of hispeed (the engine imports this module through ops/join.py)
        import polars as pl

        batch = pl.DataFrame(
            {
                "k": pl.from_arrow(keys),
                "t": stamps,
                "i": np.arange(len(stamps), dtype=np.int64),
            }
        )
        other = pl.DataFrame(
            {
                "k": pl.from_arrow(pa.concat_arrays([c.keys for c in chunks])),
                "ot": np.concatenate([c.stamps for c in chunks]),
                "s": np.concatenate([c.seqs for c in chunks]),
                "g": np.arange(sum(len(c.stamps) for c in chunks), dtype=np.int64),
            }
        )
        lo = pl.max_horizontal(pl.col("t") - before, pl.lit(0))
        joined = (
            batch.join(other, on="k", how="inner")
            .filter(
                (pl.col("ot") >= lo)
                & (pl.col("ot") <= pl.col("t") + after)
                & (pl.col("ot") > visible)
            )
            .sort(["i", "ot", "s"])
        )
        return (
            joined["i"].to_numpy().astype(np.int64),
            joined["g"].to_numpy().astype(np.int64),
            joined["ot"].to_numpy().astype(np.int64),
        )

    def _rows(
        self,
        side: int,
        frame: pa.RecordBatch,
        keys: pa.Array,
        stamps: np.ndarray,
        other: pa.Table,
        this_i: np.ndarray,
        other_g: np.ndarray,
        other_ts: np.ndarray,
    ) -> pa.RecordBatch:
        mine = pa.array(this_i)
        found = other_g >= 0
        theirs = pa.array(np.where(found, other_g, 0), mask=~found)
        columns: dict[str, pa.Array] = {}
        for f in self.fields[side]:
            columns[f] = frame.column(f).take(mine)
        for f in self.fields[1 - side]:
            col = other.column(f)
            columns[f] = (
                col.take(theirs).combine_chunks()
                if len(other)
                else pa.nulls(len(this_i), self.types[f])
            )
        label = self.labels[side]
        times = np.maximum(stamps[this_i], np.where(found, other_ts, 0))
        names = [*self.fields[0], *self.fields[1]]
        arrays = [columns[f] for f in names]
        own = {
            "ROWTIME": pa.array(times, pa.int64()),
            "ROWPARTITION": frame.column(field_name(label, "ROWPARTITION")).take(mine),
            "ROWOFFSET": frame.column(field_name(label, "ROWOFFSET")).take(mine),
        }
        for name in PSEUDO_COLUMNS:
            arrays.append(own[name])
            names.append(field_name(LABEL, name))
        arrays.append(keys.take(mine))
        names.append(field_name(LABEL, ROWKEY))
        headers = frame_headers(frame, label)
        if headers is not None:  # a joined row carries the headers of this side's record
            arrays.append(headers.take(mine))
            names.append(headers_field(LABEL))
        return pa.RecordBatch.from_arrays(arrays, names=names)

    def _keep(self, side: int, frame: pa.RecordBatch, keys: pa.Array, stamps: np.ndarray) -> None:
        """Add the batch to its side's state; forget chunks past retention."""
        n = len(stamps)
        if n:
            rows = pa.RecordBatch.from_arrays(
                [frame.column(f) for f in self.fields[side]], names=self.fields[side]
            )
            seqs = np.arange(self.seq, self.seq + n, dtype=np.int64)
            chunk = _Chunk(self.next_chunk, rows, keys, stamps, seqs)
            self.next_chunk += 1
            self.seq += n
            self.newest[side] = max(self.newest[side], int(stamps.max()))
            self.chunks[side].append(chunk)
            self.changed[("C", side, chunk.id)] = (rows, keys, stamps, seqs)
        for s in (0, 1):
            horizon = self.newest[s] - self.retention
            for c in [c for c in self.chunks[s] if c.stamps.max() <= horizon]:
                self.chunks[s].remove(c)
                self.changed[("C", s, c.id)] = None

    # -- state ------------------------------------------------------------------------------

    def state(self) -> dict[Any, Any]:
        changed = self.changed
        changed[("seq",)] = (self.seq, self.newest, self.next_chunk)
        self.changed = {}
        return changed

    def restore(self, name: Any, value: Any) -> None:
        if name == ("seq",):
            self.seq, self.newest, self.next_chunk = value
            return
        _, side, chunk_id = name
        rows, keys, stamps, seqs = value
        self.chunks[side].append(_Chunk(chunk_id, rows, keys, stamps, seqs))
        self.chunks[side].sort(key=lambda c: c.id)


__all__ = ["ColumnarStreamJoin", "supported"]

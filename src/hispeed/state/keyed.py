"""GROUP BY state without a window, as dense columns: a slot per key, found by hash.

The vectorized path (ops/vectorized.py) keeps an unwindowed GROUP BY's states here: the keys
in a `KeyIndex` (state/keys.py), each aggregate state's arrays indexed by the key's slot. A
batch finds its keys' slots with vectorized hash lookups and reads and writes their states
with numpy indexing, so its cost does not grow with the number of keys; a key costs its bytes
and their offset, its share of the hash table (8 bytes a position, at most 60% of them used)
and its states' arrays (about 65 bytes for COUNT and SUM over short strings).

The changelog (in the query's compacted changelog topic, under the kind "V" as the windowed
store's): each checkpoint writes one delta record, ("V", None, "d", seq) -> the batch's new
keys, the slots that changed and their states, and rewrites the next few chunks of slots in
turn, ("V", None, chunk) -> ("keyed", seq, slots a chunk, keys, states), half as many
slots as the batch changed. A delta is deleted once every chunk has been rewritten after it,
so the changelog stays within about three times the state, and a batch writes in proportion
to what it changed, never the whole state at once (no pause, no transient copy of it). A
restore takes each chunk as written, then applies the deltas in order to the slots whose
chunk is older. The windowed store's chunk records of a query without a window (the
layout before this store) restore too, and are rewritten as a whole at the next checkpoint.

Past the memory budget (`budget`), the arrays move to files mapped into memory (`Arena.spill`)
and their pages are released after each checkpoint: state larger than RAM then works, at the
cost of page faults.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa

from hispeed.state.columns import CHANGELOG_KIND, StateLayout
from hispeed.state.keys import GROWTH, Arena, KeyIndex

IntArray = np.ndarray[Any, Any]

#: slots per chunk record
CHUNK_SLOTS = 1 << 14
_DELTA = "d"
_MARK = "keyed"


class KeyedStateStore:
    """Keys (no window) to aggregate states, as dense columns; see the module docstring."""

    #: no window: the only block is under None
    size = None

    def __init__(
        self,
        layouts: Sequence[StateLayout],
        key_types: Sequence[pa.DataType],
        *,
        budget: int | None = None,
        spill_dir: str | os.PathLike[str] | None = None,
    ) -> None:
        """`key_types`: the GROUP BY columns' Arrow types; `budget`: the bytes past which
        the state spills to files in `spill_dir` (None: never)."""
        self.layouts = list(layouts)
        self.key_types = list(key_types)
        self.dtypes = [np.dtype(d) for layout in self.layouts for d in layout.dtypes]
        self.fills = [v for layout in self.layouts for v in layout.fill()]
        self.budget = budget
        self.arena = Arena(spill_dir)
        self.index = KeyIndex(self.key_types, self.arena)
        self.states = [self.arena.empty(16, d) for d in self.dtypes]
        #: slots per chunk record (tests make it small)
        self.chunk_slots = CHUNK_SLOTS
        #: slots of chunks rewritten per slot a batch changes (0: none, deltas only)
        self.rewrite_factor = 0.5
        self._seq = 0  # the next delta's number
        self._deltas: list[int] = []  # live delta records, in order
        #: the delta each chunk record was written with (-1: none written)
        self._chunk_seq: list[int] = []
        self._cursor = 0  # the next chunk to rewrite
        self._credit = 0.0  # slots of chunks due to be rewritten
        self._stale: set[Any] = set()  # records of the old layout, deleted at the next write
        self._dirty: list[IntArray] = []
        self._written = 0  # slots [0, _written) are in the changelog
        self._rewrite = False
        self._pending: list[tuple[Any, Any]] = []

    # -- a batch's keys ---------------------------------------------------------------------

    def __len__(self) -> int:
        return self.index.count

    def slots(self, columns: Sequence[pa.Array]) -> IntArray:
        """The slot of each of these distinct keys (the GROUP BY columns' values); new keys
        get the next slots, kept only when `put` stores their states."""
        self._settle()
        return self.index.find(columns)

    def priors(
        self, start: int | None, gids: IntArray
    ) -> tuple[IntArray, np.ndarray, list[np.ndarray]]:
        """For slots of one batch: (slot, whether it has a state, each state array); a new
        key's state is the aggregates' initial one."""
        self._settle()
        found = gids < self.index.count
        arrays = []
        for k, (dtype, fill) in enumerate(zip(self.dtypes, self.fills, strict=True)):
            if found.all():
                arrays.append(self.states[k][gids])
                continue
            values = np.full(len(gids), fill, dtype)
            values[found] = self.states[k][gids[found]]
            arrays.append(values)
        return gids, found, arrays

    def put(
        self,
        start: int | None,
        gids: IntArray,
        pos: IntArray,
        found: np.ndarray,
        arrays: Sequence[np.ndarray],
    ) -> None:
        """Store the states of these slots after a batch (their new keys kept)."""
        self.index.commit()
        self._reserve(self.index.count)
        for column, values in zip(self.states, arrays, strict=True):
            column[gids] = values
        self._dirty.append(gids)
        self._check_budget()

    def evict(self, horizon: int) -> None:
        """No window: nothing ever closes."""

    def _reserve(self, n: int) -> None:
        if n > len(self.states[0] if self.states else ()):
            size = int(n * GROWTH) + 16
            self.states = [self.arena.resize(a, size) for a in self.states]

    def _check_budget(self) -> None:
        if self.budget is None or self.arena.spilled or self.capacity() <= self.budget:
            return
        self.index.set_arrays(self.arena.spill(self.index.arrays()))
        self.states = self.arena.spill(self.states)

    # -- size -------------------------------------------------------------------------------

    def nbytes(self) -> int:
        """The bytes the state takes (keys, hashes, hash table, states; in use)."""
        return self.index.nbytes() + len(self) * sum(int(d.itemsize) for d in self.dtypes)

    def capacity(self) -> int:
        """The bytes the state has reserved."""
        return self.index.capacity() + sum(int(a.nbytes) for a in self.states)

    @property
    def spilled(self) -> bool:
        """Whether the state's arrays live in files."""
        return self.arena.spilled

    # -- lookups for pull queries -----------------------------------------------------------

    def lookup(self, columns: Sequence[pa.Array]) -> tuple[np.ndarray, list[np.ndarray]]:
        """Which of these distinct keys are held, and the held ones' state arrays."""
        self._settle()
        if not len(self):
            held = np.zeros(len(columns[0]) if columns else 0, bool)
            return held, [np.zeros(0, d) for d in self.dtypes]
        found = self.index.find(columns, add=False)
        held = found >= 0
        return held, [a[found[held]] for a in self.states]

    # -- the changelog ----------------------------------------------------------------------

    def checkpoint(self, changelog: dict[bytes, bytes | None]) -> None:
        """Write this batch's changes (a delta record) and rewrite the chunks due."""
        self._settle()
        for name in self._stale:
            changelog[pickle.dumps(name)] = None
        self._stale.clear()
        count = len(self)
        if self._rewrite:
            self._rewrite_all(changelog)
        elif self._dirty or count != self._written:
            # one batch's slots are distinct; several batches' may repeat
            slots = (
                self._dirty[0]
                if len(self._dirty) == 1
                else np.unique(np.concatenate([*self._dirty, np.zeros(0, np.int64)]))
            )
            first = self._written
            new = np.arange(first, count, dtype=np.int64)
            states = [a[slots] for a in self.states]
            value = (first, self.index.keys(new), slots.astype(np.int32), states)
            changelog[self._delta_name(self._seq)] = pickle.dumps(value, protocol=5)
            self._deltas.append(self._seq)
            self._credit += self.rewrite_factor * len(slots)
            self._rewrite_some(changelog)
        else:
            return
        self._seq += 1
        self._dirty.clear()
        self._written = count
        if self.arena.spilled:
            self.arena.release()

    @staticmethod
    def _delta_name(seq: int) -> bytes:
        return pickle.dumps((CHANGELOG_KIND, None, _DELTA, seq))

    def _chunk_count(self) -> int:
        return (len(self) + self.chunk_slots - 1) // self.chunk_slots

    def _write_chunk(self, changelog: dict[bytes, bytes | None], c: int) -> None:
        step = self.chunk_slots
        part = np.arange(c * step, min(len(self), (c + 1) * step), dtype=np.int64)
        keys = self.index.keys(part)
        value = (_MARK, self._seq, step, keys, [a[part] for a in self.states])
        changelog[pickle.dumps((CHANGELOG_KIND, None, c))] = pickle.dumps(value, protocol=5)
        while len(self._chunk_seq) <= c:
            self._chunk_seq.append(-1)
        self._chunk_seq[c] = self._seq

    def _rewrite_some(self, changelog: dict[bytes, bytes | None]) -> None:
        """Rewrite the next chunks in turn, as many slots as the credit allows; delete the
        deltas every chunk has been rewritten after."""
        chunks = self._chunk_count()
        if not chunks:
            return
        budget = min(self._credit, float(len(self)))
        done = 0
        while done < chunks and budget >= min(self.chunk_slots, len(self)):
            c = self._cursor % chunks
            self._write_chunk(changelog, c)
            budget -= self.chunk_slots
            self._credit -= self.chunk_slots
            self._cursor = c + 1
            done += 1
        self._credit = max(self._credit, 0.0)
        held = self._chunk_seq[:chunks] + [-1] * (chunks - len(self._chunk_seq))
        covered = min(held)
        while self._deltas and self._deltas[0] <= covered:
            changelog[self._delta_name(self._deltas.pop(0))] = None

    def _rewrite_all(self, changelog: dict[bytes, bytes | None]) -> None:
        """Every slot as chunk records; the deltas and extra chunks deleted."""
        chunks = self._chunk_count()
        for c in range(chunks):
            self._write_chunk(changelog, c)
        for c in range(chunks, len(self._chunk_seq)):
            changelog[pickle.dumps((CHANGELOG_KIND, None, c))] = None
        del self._chunk_seq[chunks:]
        for seq in self._deltas:
            changelog[self._delta_name(seq)] = None
        self._deltas.clear()
        self._credit = 0.0
        self._cursor = 0
        self._rewrite = False

    def restore(self, name: Any, value: Any) -> None:
        """Take one record of the changelog back (applied, in order, before the store is
        next used)."""
        self._pending.append((name, value))

    def _settle(self) -> None:
        """Apply the restored records: each chunk as written, then the deltas in order to
        the slots whose chunk was written before them."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        chunks: dict[int, Any] = {}
        old: list[tuple[Any, Any]] = []
        deltas: list[tuple[int, Any]] = []
        for name, value in pending:
            if len(name) == 4 and name[2] == _DELTA:
                deltas.append((name[3], value))
            elif isinstance(value, tuple) and len(value) == 5 and value[0] == _MARK:
                chunks[name[2]] = value
            else:
                old.append((name, value))
        deltas.sort(key=lambda e: e[0])
        # chunks are as wide as their writer made them
        step = self.chunk_slots = next((v[2] for v in chunks.values()), self.chunk_slots)
        if chunks and old:
            raise ValueError("a changelog holds chunks of both the keyed and the windowed layout")
        # the keys, in slot order: from the chunks and the deltas' new keys
        pieces = [(c * step, value[3]) for c, value in chunks.items()]
        pieces += [(first, keys) for _, (first, keys, _, _) in deltas]
        for start, keys in sorted(pieces, key=lambda e: e[0]):
            n = len(keys[0]) if keys else 0
            count = len(self)
            if not n or start + n <= count:
                continue
            if start > count:
                raise ValueError(f"the changelog holds no key for slot {count}")
            self.index.append([k.slice(count - start) for k in keys])
        self._reserve(len(self))
        self._fill(0, len(self))
        chunk_seq = np.full(max(chunks, default=-1) + 1, -1, np.int64)
        for c, (_, seq, _, _, states) in chunks.items():
            chunk_seq[c] = seq
            a = c * step
            for column, values in zip(self.states, states, strict=True):
                column[a : a + len(values)] = values
        for seq, (_, _, slots, states) in deltas:
            of = slots // step
            newer = of >= len(chunk_seq)
            newer[~newer] = chunk_seq[of[~newer]] < seq
            for column, values in zip(self.states, states, strict=True):
                column[slots[newer]] = values[newer]
        for name, (groups, arrays) in old:  # the windowed store's layout: rewritten below
            self._append(self._columns_of(groups), arrays)
            self._stale.add(name)
            self._rewrite = True
        self._chunk_seq = chunk_seq.tolist()
        self._deltas = [seq for seq, _ in deltas]
        self._seq = max([*self._chunk_seq, *self._deltas, -1]) + 1
        self._written = len(self)
        self._dirty.clear()
        self._check_budget()

    def _append(self, keys: Sequence[pa.Array], states: Sequence[np.ndarray]) -> None:
        first = len(self)
        self.index.append(keys)
        self._reserve(len(self))
        for column, values, dtype in zip(self.states, states, self.dtypes, strict=True):
            column[first : len(self)] = np.asarray(values).astype(dtype, copy=False)

    def _fill(self, a: int, b: int) -> None:
        for column, fill in zip(self.states, self.fills, strict=True):
            column[a:b] = fill

    def _columns_of(self, groups: Sequence[tuple[Any, ...]]) -> list[pa.Array]:
        return [pa.array([g[i] for g in groups], t) for i, t in enumerate(self.key_types)]

    # -- the reference path's form ----------------------------------------------------------

    def to_dict(self) -> dict[tuple[Any, Any], list[Any]]:
        """The states as `Aggregator.states` holds them: (group, None) -> list of states."""
        self._settle()
        n = len(self)
        slots = np.arange(n, dtype=np.int64)
        per_call: list[list[Any]] = []
        k = 0
        for layout in self.layouts:
            width = len(layout.dtypes)
            per_call.append(layout.to_python([a[:n] for a in self.states[k : k + width]]))
            k += width
        states = map(list, zip(*per_call, strict=True)) if per_call else ([] for _ in range(n))
        tuples = self.index.tuples(slots)
        return {(t, None): s for t, s in zip(tuples, states, strict=True)}

    def take_dict(self) -> dict[tuple[Any, Any], list[Any]]:
        """Hand the states over in the reference's form, leaving the store empty."""
        states = self.to_dict()
        self._clear()
        return states

    def load_dict(self, states: dict[tuple[Any, Any], list[Any]]) -> bool:
        """Replace the store's content by these states (all written at the next checkpoint).

        False, with nothing changed, if some state does not fit the columns.
        """
        self._settle()
        entries = [(group, state) for (group, _), state in states.items()]
        calls = list(zip(*(state for _, state in entries), strict=True))
        arrays: list[np.ndarray] = []
        if entries:
            for j, layout in enumerate(self.layouts):
                columns = layout.from_python(calls[j])
                if columns is None:
                    return False
                arrays += columns
        self._clear()
        if entries:
            self._append(self._columns_of([g for g, _ in entries]), arrays)
        self._rewrite = True
        return True

    def _clear(self) -> None:
        """Empty the store; the next checkpoint deletes its records."""
        self.index = KeyIndex(self.key_types, self.arena)
        self.states = [self.arena.empty(16, d) for d in self.dtypes]
        self._dirty.clear()
        self._written = 0
        self._rewrite = True


__all__ = ["KeyedStateStore"]

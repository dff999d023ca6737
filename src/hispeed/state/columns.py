"""GROUP BY state as numpy columns, for the vectorized path (ops/vectorized.py): a window
store (state/stores.py) whose entries are (group, window start) -> the aggregates' states.

The reference path keeps a dict from (group tuple, window) to a list of Python states; this
store keeps the same states as columns. Each window start has a block (a query without a
window has one, under None) whose entries are sorted by group id, so a batch finds its keys'
slots with one `searchsorted` per window, and a window that closes is dropped whole. Group
tuples get dense ids once; ids no longer used are renumbered away as windows close.

The changelog is written per chunk: the entries of one window whose group ids shared the same
high bits when they were created (`chunk_bits`). A checkpoint rewrites each chunk that changed
as one record, ("V", window start, chunk) -> (group tuples, one array per state column), so a
batch writes a few hundred records instead of one pickle per changed key, and log compaction
still keeps one record per chunk. An entry keeps its chunk for life (restores included), so a
chunk's record always holds every live entry of it.
"""

from __future__ import annotations

import pickle
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

IntArray = np.ndarray[Any, Any]  # int64, by convention

CHANGELOG_KIND = "V"


class StateLayout(ABC):
    """How one aggregate call's states are kept: their arrays, and the reference's form."""

    #: the dtype of each of the state's arrays
    dtypes: tuple[Any, ...] = ()

    @abstractmethod
    def fill(self) -> tuple[Any, ...]:
        """Each array's value for a key that has no state yet."""

    @abstractmethod
    def to_python(self, arrays: Sequence[np.ndarray]) -> list[Any]:
        """The states as the aggregate's own `add` builds them (the reference path's)."""

    @abstractmethod
    def from_python(self, states: Sequence[Any]) -> list[np.ndarray] | None:
        """The arrays holding `states`, or None if some state does not fit them."""


class _Block:
    """One window's entries, sorted by group id; `seqs`: the order the entries came in (as
    the reference path's dict holds them: its EMIT FINAL outputs a window's groups so)."""

    __slots__ = ("arrays", "chunks", "gids", "seqs")

    def __init__(
        self, gids: IntArray, chunks: IntArray, arrays: list[np.ndarray], seqs: IntArray
    ) -> None:
        self.gids = gids
        self.chunks = chunks
        self.arrays = arrays
        self.seqs = seqs


class ColumnarStateStore:
    """(group, window) -> aggregate states, as columns; see the module docstring."""

    def __init__(self, layouts: Sequence[StateLayout], size: int | None) -> None:
        self.layouts = list(layouts)
        #: group ids per changelog chunk: 2 ** chunk_bits
        self.chunk_bits = 8
        #: unused group ids tolerated beyond twice the entries before they are renumbered away
        self.spare_groups = 1024
        #: the window size (None: no window; the only block's start is None)
        self.size = size
        self.dtypes = [d for layout in self.layouts for d in layout.dtypes]
        self.fills = [v for layout in self.layouts for v in layout.fill()]
        self.group_index: dict[tuple[Any, ...], int] = {}
        self.groups: list[tuple[Any, ...]] = []
        #: for groups of one integer column: the known values, sorted, and their ids
        self._int_keys: IntArray | None = None
        self._int_ids: IntArray = np.zeros(0, np.int64)
        self.blocks: dict[int | None, _Block] = {}
        self._dirty: dict[int | None, list[IntArray]] = {}
        self._tombstones: set[tuple[int | None, int]] = set()
        self._rewrite = False  # every chunk is written at the next checkpoint
        self._renumber_due = False
        self._pending: list[tuple[int | None, int, list[tuple[Any, ...]], list[np.ndarray]]] = []
        #: the next entry's place in the order entries came in (`_Block.seqs`)
        self._seq = 0

    # -- groups -----------------------------------------------------------------------------

    def ids(self, tuples: Sequence[tuple[Any, ...]]) -> IntArray:
        """The id of each of these distinct group tuples (new ones get the next ids)."""
        index = self.group_index
        get = index.get
        out = np.fromiter((get(t, -1) for t in tuples), np.int64, len(tuples))
        new = np.flatnonzero(out < 0)
        if len(new):
            base = len(self.groups)
            added = [tuples[i] for i in new.tolist()]
            index.update(zip(added, range(base, base + len(added)), strict=True))
            self.groups += added
            out[new] = np.arange(base, base + len(added), dtype=np.int64)
            self._int_keys = None
        return out

    def int_ids(self, values: IntArray) -> IntArray:
        """`ids` of groups of one integer column, given as distinct values: found in a sorted
        table of the known values, without a Python object per value."""
        if self._int_keys is None:
            known = np.array([g[0] for g in self.groups], np.int64)
            order = np.argsort(known, kind="stable")
            self._int_keys, self._int_ids = known[order], order.astype(np.int64)
        keys, ids = self._int_keys, self._int_ids
        out = np.full(len(values), -1, np.int64)
        if len(keys):
            pos = np.minimum(np.searchsorted(keys, values), len(keys) - 1)
            found = keys[pos] == values
            out[found] = ids[pos[found]]
        new = np.flatnonzero(out < 0)
        if len(new):
            fresh = values[new]
            base = len(self.groups)
            added_ids = np.arange(base, base + len(new), dtype=np.int64)
            added = [(v,) for v in fresh.tolist()]
            self.group_index.update(zip(added, added_ids.tolist(), strict=True))
            self.groups += added
            out[new] = added_ids
            order = np.argsort(fresh)
            where = np.searchsorted(keys, fresh[order])
            self._int_keys = np.insert(keys, where, fresh[order])
            self._int_ids = np.insert(ids, where, added_ids[order])
        return out

    # -- a batch's keys ---------------------------------------------------------------------

    def priors(
        self, start: int | None, gids: IntArray
    ) -> tuple[IntArray, np.ndarray, list[np.ndarray]]:
        """For sorted distinct group ids of one window: (slot, found, each state array)."""
        self._settle()
        n = len(gids)
        block = self.blocks.get(start)
        if block is None or not len(block.gids):
            pos = np.zeros(n, np.int64)
            found = np.zeros(n, bool)
        else:
            pos = np.searchsorted(block.gids, gids)
            found = block.gids[np.minimum(pos, len(block.gids) - 1)] == gids
        arrays = []
        for k, (dtype, fill) in enumerate(zip(self.dtypes, self.fills, strict=True)):
            values = np.full(n, fill, dtype)
            if block is not None and found.any():
                values[found] = block.arrays[k][pos[found]]
            arrays.append(values)
        return pos, found, arrays

    def _seqs(self, ranks: IntArray) -> IntArray:
        """Places after every entry so far, in the order of `ranks`."""
        seqs: IntArray = self._seq + ranks
        if len(ranks):
            self._seq = int(seqs.max()) + 1
        return seqs

    def put(
        self,
        start: int | None,
        gids: IntArray,
        pos: IntArray,
        found: np.ndarray,
        arrays: Sequence[np.ndarray],
        firsts: IntArray | None = None,
    ) -> None:
        """Store the states of these keys (as `priors` located them) after a batch; `firsts`:
        each key's first event in the batch (new keys come in in that order)."""
        block = self.blocks.get(start)
        new = ~found
        created = gids[new] >> self.chunk_bits
        ranks = firsts[new] if firsts is not None else np.arange(int(new.sum()), dtype=np.int64)
        seqs = self._seqs(np.asarray(ranks, np.int64))
        if block is None:
            self.blocks[start] = _Block(gids.copy(), created, [np.array(a) for a in arrays], seqs)
            self._dirty.setdefault(start, []).append(created)
            return
        at = pos[found]
        changed = block.chunks[at]
        for column, values in zip(block.arrays, arrays, strict=True):
            column[at] = values[found]
        if len(created):
            where = pos[new]
            block.gids = np.insert(block.gids, where, gids[new])
            block.chunks = np.insert(block.chunks, where, created)
            block.seqs = np.insert(block.seqs, where, seqs)
            block.arrays = [
                np.insert(column, where, values[new])
                for column, values in zip(block.arrays, arrays, strict=True)
            ]
        self._dirty.setdefault(start, []).append(np.concatenate((changed, created)))

    def evict(self, horizon: int) -> None:
        """Drop the windows that end before `horizon` (they can no longer change)."""
        size = self.size
        if size is None:
            return
        closed = [s for s in self.blocks if s is not None and s + size < horizon]
        for start in closed:
            block = self.blocks.pop(start)
            self._tombstones.update((start, c) for c in np.unique(block.chunks).tolist())
            self._dirty.pop(start, None)
        # renumbered at the checkpoint: this batch's changes still name groups by their ids
        self._renumber_due |= bool(closed)

    def close(self, until: int) -> list[tuple[int, IntArray, list[np.ndarray]]]:
        """Take out the windows that end at or before `until` (EMIT FINAL: their final rows
        are output now), in order of their ends: (start, group ids, state arrays) each. Their
        chunks are deleted from the changelog at the next checkpoint."""
        self._settle()
        size = self.size
        if size is None:
            return []
        closing = sorted(s for s in self.blocks if s is not None and s + size <= until)
        taken = []
        for start in closing:
            block = self.blocks.pop(start)
            self._tombstones.update((start, c) for c in np.unique(block.chunks).tolist())
            self._dirty.pop(start, None)
            came = np.argsort(block.seqs, kind="stable")
            taken.append((start, block.gids[came], [a[came] for a in block.arrays]))
        self._renumber_due |= bool(closing)
        return taken

    def _renumber(self) -> None:
        """Forget the groups no window holds; ids keep their order, so blocks stay sorted."""
        blocks = self.blocks.values()
        live = np.unique(np.concatenate([b.gids for b in blocks] + [np.zeros(0, np.int64)]))
        self.groups = [self.groups[g] for g in live.tolist()]
        self._int_keys = None
        self.group_index = {t: i for i, t in enumerate(self.groups)}
        for block in self.blocks.values():
            block.gids = np.searchsorted(live, block.gids).astype(np.int64)

    # -- the changelog ----------------------------------------------------------------------

    def checkpoint(self, changelog: dict[bytes, bytes | None]) -> None:
        """Write the chunks that changed since the last checkpoint (and delete closed ones)."""
        self._settle()
        for start, chunk in self._tombstones:
            changelog[pickle.dumps((CHANGELOG_KIND, start, chunk))] = None
        self._tombstones.clear()
        if self._rewrite:
            self._dirty = {s: [b.chunks] for s, b in self.blocks.items()}
            self._rewrite = False
        groups = self.groups
        for start, parts in self._dirty.items():
            block = self.blocks[start]
            wanted = np.unique(np.concatenate(parts))
            rows = np.flatnonzero(np.isin(block.chunks, wanted))
            rows = rows[np.argsort(block.chunks[rows], kind="stable")]
            chunks = block.chunks[rows]
            cuts = np.flatnonzero(chunks[1:] != chunks[:-1]) + 1
            for part in np.split(rows, cuts):
                chunk = int(block.chunks[part[0]])
                value = (
                    [groups[g] for g in block.gids[part].tolist()],
                    [column[part] for column in block.arrays],
                )
                changelog[pickle.dumps((CHANGELOG_KIND, start, chunk))] = pickle.dumps(
                    value, protocol=5
                )
        self._dirty.clear()
        entries = sum(len(b.gids) for b in self.blocks.values())
        if self._renumber_due and len(self.groups) > self.spare_groups + 2 * entries:
            self._renumber()
        self._renumber_due = False

    def restore(self, name: Any, value: Any) -> None:
        """Take one chunk record of the changelog back, `name` its key ("V", window start,
        chunk) (applied before the store is next used)."""
        _, start, chunk = name
        groups, arrays = value
        self._pending.append((start, chunk, groups, arrays))

    def _settle(self) -> None:
        """Build the blocks of the restored chunks, all at once."""
        if not self._pending:
            return
        by_start: dict[int | None, list[Any]] = {}
        for start, chunk, groups, arrays in self._pending:
            by_start.setdefault(start, []).append((chunk, groups, arrays))
        self._pending.clear()
        for start, parts in by_start.items():
            tuples = [t for _, groups, _ in parts for t in groups]
            gids = self.ids(tuples)
            chunks = np.concatenate([np.full(len(g), c, np.int64) for c, g, _ in parts])
            arrays = [
                np.concatenate([a[k] for _, _, a in parts]).astype(dtype)
                for k, dtype in enumerate(self.dtypes)
            ]
            seqs = self._seqs(np.arange(len(gids), dtype=np.int64))
            block = self.blocks.get(start)
            if block is not None:  # not expected: chunks are restored into an empty store
                gids = np.concatenate((block.gids, gids))
                chunks = np.concatenate((block.chunks, chunks))
                arrays = [np.concatenate(p) for p in zip(block.arrays, arrays, strict=True)]
                seqs = np.concatenate((block.seqs, seqs))
            order = np.argsort(gids, kind="stable")
            self.blocks[start] = _Block(
                gids[order], chunks[order], [a[order] for a in arrays], seqs[order]
            )

    # -- the reference path's form ----------------------------------------------------------

    def to_dict(self) -> dict[tuple[Any, Any], list[Any]]:
        """The states as `Aggregator.states` holds them: (group, window) -> list of states."""
        self._settle()
        out: dict[tuple[Any, Any], list[Any]] = {}
        groups = self.groups
        for start, block in sorted(self.blocks.items(), key=lambda item: _order(item[0])):
            window = None if start is None or self.size is None else (start, start + self.size)
            came = np.argsort(block.seqs, kind="stable")  # in the order the entries came in
            block_arrays = [a[came] for a in block.arrays]
            per_call: list[list[Any]] = []
            k = 0
            for layout in self.layouts:
                width = len(layout.dtypes)
                per_call.append(layout.to_python(block_arrays[k : k + width]))
                k += width
            states = (
                map(list, zip(*per_call, strict=True))
                if per_call
                else ([] for _ in range(len(block.gids)))
            )
            for g, state in zip(block.gids[came].tolist(), states, strict=True):
                out[(groups[g], window)] = state
        return out

    def take_dict(self) -> dict[tuple[Any, Any], list[Any]]:
        """Hand the states over in the reference's form, leaving the store empty."""
        states = self.to_dict()
        for start, block in self.blocks.items():
            self._tombstones.update((start, c) for c in np.unique(block.chunks).tolist())
        self.blocks.clear()
        self._dirty.clear()
        return states

    def load_dict(self, states: dict[tuple[Any, Any], list[Any]]) -> bool:
        """Replace the store's content by these states (all written at the next checkpoint).

        False, with nothing changed, if some state does not fit the columns.
        """
        self._settle()
        by_start: dict[int | None, list[tuple[tuple[Any, ...], list[Any]]]] = {}
        for (group, window), state in states.items():
            by_start.setdefault(None if window is None else window[0], []).append((group, state))
        blocks: dict[int | None, _Block] = {}
        for start, entries in by_start.items():
            calls = list(zip(*(state for _, state in entries), strict=True))
            arrays: list[np.ndarray] = []
            for j, layout in enumerate(self.layouts):
                columns = layout.from_python(calls[j])
                if columns is None:
                    return False
                arrays += columns
            gids = self.ids([group for group, _ in entries])
            seqs = self._seqs(np.arange(len(gids), dtype=np.int64))  # the dict's order
            order = np.argsort(gids, kind="stable")
            gids = gids[order]
            blocks[start] = _Block(
                gids, gids >> self.chunk_bits, [a[order] for a in arrays], seqs[order]
            )
        for start, block in self.blocks.items():
            self._tombstones.update((start, c) for c in np.unique(block.chunks).tolist())
        self.blocks = blocks
        self._dirty.clear()
        self._rewrite = True
        return True


def _order(start: int | None) -> int:
    return -1 if start is None else start


__all__ = ["CHANGELOG_KIND", "ColumnarStateStore", "StateLayout"]

"""Group keys as columns, found by a vectorized hash table: a slot per distinct key.

A GROUP BY over a million keys cannot afford a Python tuple and a dict entry per key (about
250 bytes each, and a Python step per event to find them). `KeyIndex` keeps the keys as
columns (integers as int64, booleans as bytes, strings as one byte buffer with offsets) and
finds a batch's distinct keys with an open-addressing hash table held in one numpy array: each
key's 64-bit hash (Polars' vectorized hash; several columns are combined) places it, each
position holds a slot and the high 32 bits of its key's hash, and double hashing (a step per
key from its hash's high bits, so probe runs stay short) advances the whole batch at once, one
numpy step per probe. Keys that reach a position of the same hash bits are then compared
themselves, all at once, so two keys whose hashes collide are still told apart: a lookup is
exact.

Arrays come from an `Arena`, which keeps them in memory or, once the state passes its memory
budget, in files mapped into memory (`spill`): the same code then runs on state larger than
RAM, the operating system paging it in and out.
"""

from __future__ import annotations

import mmap
import os
import tempfile
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

IntArray = np.ndarray[Any, Any]  # int64, by convention

#: the largest share of the hash table's positions in use before it doubles
MAX_LOAD = 0.6
#: how much an array of slots grows when it is full (1.5: at most a third unused)
GROWTH = 1.5
_MIX = np.uint64(0x9E3779B97F4A7C15)
_LOW = 0xFFFFFFFF


class Arena:
    """Where a store's arrays live: in memory, or (once `spill` is called) in files of a
    directory mapped into memory, which the operating system pages out as it needs to."""

    def __init__(self, spill_dir: str | os.PathLike[str] | None = None) -> None:
        #: the directory for spilled arrays (None: the system's temporary directory)
        self.spill_dir = spill_dir
        self.spilled = False
        #: the mappings of spilled arrays (by the array's data address), to release pages
        self._maps: dict[int, mmap.mmap] = {}

    def empty(self, n: int, dtype: Any) -> np.ndarray:
        """A new array of `n` items (uninitialized)."""
        dtype = np.dtype(dtype)
        if not self.spilled:
            return np.empty(n, dtype)
        base = None if self.spill_dir is None else str(self.spill_dir)
        if base is not None:
            os.makedirs(base, exist_ok=True)
        fd, path = tempfile.mkstemp(prefix="hispeed-state-", dir=base)
        try:
            os.unlink(path)  # the mapping keeps the file; nothing is left behind on exit
            size = max(n * dtype.itemsize, 1)
            os.ftruncate(fd, size)
            mapped = mmap.mmap(fd, size)
        finally:
            os.close(fd)
        array = np.frombuffer(mapped, dtype, count=n)
        self._maps[array.ctypes.data] = mapped
        return array

    def resize(self, array: np.ndarray, n: int) -> np.ndarray:
        """`array`'s items in an array of `n` items (copied; the rest uninitialized)."""
        out = self.empty(n, array.dtype)
        keep = min(n, len(array))
        out[:keep] = array[:keep]
        self.forget(array)
        return out

    def forget(self, array: np.ndarray) -> None:
        """Stop tracking a spilled array's mapping (it is unmapped once no view is left)."""
        self._maps.pop(array.ctypes.data, None)

    def mapped_bytes(self) -> int:
        """The bytes of the arrays in files."""
        return sum(len(m) for m in self._maps.values())

    def spill(self, arrays: Sequence[np.ndarray]) -> list[np.ndarray]:
        """From now on arrays live in files: these arrays moved there."""
        self.spilled = True
        return [self.resize(a, len(a)) for a in arrays]

    def release(self) -> None:
        """Drop the spilled arrays' pages from this process's memory: they stay in the files
        (and the page cache), and come back when next touched."""
        for mapped in self._maps.values():
            mapped.madvise(mmap.MADV_DONTNEED)


def _hash(columns: Sequence[pa.Array]) -> np.ndarray:
    """Each row's 64-bit hash (uint64) over the normalized key columns."""
    out: np.ndarray | None = None
    for column in columns:
        h = pl.Series(column).hash(seed=0).to_numpy().astype(np.uint64, copy=False)
        out = h if out is None else (out * _MIX) ^ h
    assert out is not None
    return out


def _high(hashes: np.ndarray) -> IntArray:
    """The high 32 bits of each hash, as int64."""
    out: IntArray = (hashes >> np.uint64(32)).astype(np.int64)
    return out


def _steps(hashes: np.ndarray, mask: int) -> IntArray:
    """Each key's probe step: odd, so that it visits every position of a table whose size is
    a power of two."""
    out: IntArray = ((hashes >> np.uint64(32)).astype(np.int64) | 1) & mask
    return out


class KeyColumn:
    """One key column's values by slot: integers, booleans or strings."""

    def __init__(self, arrow_type: pa.DataType, arena: Arena) -> None:
        self.arena = arena
        self.type = arrow_type
        self.string = pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type)
        self.count = 0
        if self.string:
            self.offsets = arena.empty(16, np.int64)
            self.offsets[0] = 0
            self.data = arena.empty(256, np.uint8)
        else:
            self.values = arena.empty(16, np.uint8 if pa.types.is_boolean(arrow_type) else np.int64)

    def arrays(self) -> list[np.ndarray]:
        """The arrays this column holds (to spill them)."""
        return [self.offsets, self.data] if self.string else [self.values]

    def set_arrays(self, arrays: list[np.ndarray]) -> None:
        if self.string:
            self.offsets, self.data = arrays
        else:
            (self.values,) = arrays

    @staticmethod
    def normalize(values: pa.Array) -> pa.Array:
        """The form keys are hashed and compared in: int64, bool or large_string."""
        if pa.types.is_integer(values.type):
            return values.cast(pa.int64())
        if pa.types.is_string(values.type):
            return values.cast(pa.large_string())
        return values

    def append(self, values: pa.Array) -> None:
        """Add the keys of new slots (normalized, no nulls)."""
        n = len(values)
        end = self.count + n
        if self.string:
            offsets = np.frombuffer(values.buffers()[1], np.int64)[
                values.offset : values.offset + n + 1
            ]
            first = int(offsets[0])
            length = int(offsets[-1]) - first
            used = int(self.offsets[self.count])
            if end + 1 > len(self.offsets):
                self.offsets = self.arena.resize(self.offsets, int((end + 1) * GROWTH) + 16)
            if used + length > len(self.data):
                self.data = self.arena.resize(self.data, int((used + length) * GROWTH) + 256)
            self.offsets[self.count + 1 : end + 1] = offsets[1:] - first + used
            if length:
                raw = np.frombuffer(values.buffers()[2], np.uint8)
                self.data[used : used + length] = raw[first : first + length]
        else:
            if end > len(self.values):
                self.values = self.arena.resize(self.values, int(end * GROWTH) + 16)
            raw = values.to_numpy(zero_copy_only=False)
            self.values[self.count : end] = raw
        self.count = end

    def view(self) -> pa.Array:
        """Every slot's key, as an Arrow array over the column's own memory."""
        n = self.count
        if self.string:
            end = int(self.offsets[n])
            return pa.LargeStringArray.from_buffers(
                n, pa.py_buffer(self.offsets[: n + 1]), pa.py_buffer(self.data[:end])
            )
        if pa.types.is_boolean(self.type):
            return pa.array(self.values[:n].astype(bool), pa.bool_())
        return pa.array(self.values[:n], pa.int64())

    def take(self, slots: IntArray) -> pa.Array:
        """The keys of these slots (normalized form)."""
        if self.string:
            return self.view().take(pa.array(slots))
        if pa.types.is_boolean(self.type):
            return pa.array(self.values[slots].astype(bool), pa.bool_())
        return pa.array(self.values[slots], pa.int64())

    def equal(self, slots: IntArray, values: pa.Array) -> np.ndarray:
        """Whether the key of each slot equals each of `values` (normalized)."""
        if self.string:
            same = pc.equal(self.take(slots), values)
            return np.asarray(same.to_numpy(zero_copy_only=False), bool)
        stored = self.values[slots]
        given = values.to_numpy(zero_copy_only=False)
        return np.asarray(stored == given.astype(stored.dtype), bool)

    def nbytes(self) -> int:
        """The bytes the column's keys take (used, not reserved)."""
        if self.string:
            return 8 * (self.count + 1) + int(self.offsets[self.count])
        return self.count * self.values.itemsize

    def capacity(self) -> int:
        """The bytes the column has reserved."""
        return sum(a.nbytes for a in self.arrays())


class KeyIndex:
    """Distinct keys (tuples of one or more columns) to dense slots 0, 1, 2, ...

    `find` gives the slots of a batch's distinct keys, new ones the next slots (staged until
    `commit`); slots never change while the index lives.
    """

    def __init__(
        self,
        types: Sequence[pa.DataType],
        arena: Arena,
        hasher: Callable[[Sequence[pa.Array]], np.ndarray] = _hash,
    ) -> None:
        self.arena = arena
        self.columns = [KeyColumn(t, arena) for t in types]
        #: the hash function (tests give a poor one to make keys collide)
        self.hasher = hasher
        self.count = 0
        #: positions of the open-addressing table: -1, or a slot (low 32 bits) with its key's
        #: hash's high 32 bits, so a probe reads one array at random, not a second for the
        #: hash (slots stay below 2**31, so no entry is -1)
        self.table = arena.empty(64, np.int64)
        self.table[:] = -1
        #: new keys of the last `find`, until `commit` (columns, hashes)
        #: and the empty position each one's probe ended at (where it goes, unless another
        #: takes it first)
        self._staged: tuple[list[pa.Array], np.ndarray, IntArray, int] | None = None

    # -- lookups ----------------------------------------------------------------------------

    def find(self, columns: Sequence[pa.Array], *, add: bool = True) -> IntArray:
        """The slot of each of these distinct keys; keys not yet held get the next slots
        (`count`, `count + 1`, ...), held back until `commit` (with `add` False, they stay
        out and the last `find`'s new keys stay staged)."""
        columns = [KeyColumn.normalize(c) for c in columns]
        n = len(columns[0]) if columns else 0
        hashes = self.hasher(columns) if n else np.zeros(0, np.uint64)
        out = np.full(n, -1, np.int64)
        table = self.table
        mask = len(table) - 1
        pos = (hashes & np.uint64(mask)).astype(np.int64)
        step = _steps(hashes, mask)
        high = _high(hashes)
        active = np.arange(n)
        while len(active):
            # probe by hash alone: each key to the first slot of the same hash, or none
            while len(active):
                candidate = table[pos[active]]
                occupied = candidate != -1
                same_hash = occupied & ((candidate >> 32) & _LOW == high[active])
                out[active[same_hash]] = candidate[same_hash] & _LOW
                going = active[occupied & ~same_hash]
                pos[going] = (pos[going] + step[going]) & mask
                active = going
            # then compare the keys themselves, all at once: a key that only shares its
            # hash with the slot's (a collision) probes on from there
            rows = np.flatnonzero(out >= 0)
            whole = len(rows) == n
            equal = np.ones(len(rows), bool)
            for column, values in zip(self.columns, columns, strict=True):
                given = values if whole else values.take(pa.array(rows))
                equal &= column.equal(out[rows], given)
            active = rows[~equal]
            out[active] = -1
            pos[active] = (pos[active] + step[active]) & mask
        new = np.flatnonzero(out < 0)
        if not add:
            return out
        if len(new):
            out[new] = np.arange(self.count, self.count + len(new), dtype=np.int64)
            picked = pa.array(new)
            self._staged = ([c.take(picked) for c in columns], hashes[new], pos[new], len(table))
        else:
            self._staged = None
        return out

    def commit(self) -> int:
        """Keep the keys the last `find` staged; how many there were."""
        staged, self._staged = self._staged, None
        if staged is None:
            return 0
        columns, hashes, ends, size = staged
        self.append(columns, hashes, ends if size == len(self.table) else None)
        return len(hashes)

    def append(
        self,
        columns: Sequence[pa.Array],
        hashes: np.ndarray | None = None,
        starts: IntArray | None = None,
    ) -> None:
        """Add keys known to be new (normalized) as the next slots; `starts`: where in the
        table each one's probe may start (its home position by default)."""
        columns = [KeyColumn.normalize(c) for c in columns]
        n = len(columns[0]) if columns else 0
        if not n:
            return
        if hashes is None:
            hashes = self.hasher(columns)
        base = self.count
        end = base + n
        if end >= 1 << 31:
            raise OverflowError("a GROUP BY state holds at most 2**31 - 1 keys")
        for column, values in zip(self.columns, columns, strict=True):
            column.append(values)
        self.count = end
        if end > MAX_LOAD * len(self.table):
            self._rehash()
        else:
            self._place(np.arange(base, end, dtype=np.int64), hashes, starts)

    def _rehash(self) -> None:
        """Double the table (or more) and place every slot again (their keys hashed again:
        the index keeps no hash per slot beyond the table's high bits)."""
        size = len(self.table)
        while self.count > MAX_LOAD * size:
            size *= 2
        self.arena.forget(self.table)
        self.table = self.arena.empty(size, np.int64)
        self.table[:] = -1
        hashes = self.hasher([c.view() for c in self.columns])
        self._place(np.arange(self.count, dtype=np.int64), hashes)

    def _place(self, slots: IntArray, hashes: np.ndarray, starts: IntArray | None = None) -> None:
        """Put slots (of keys with these hashes) in the table, each at the first free
        position of its probe sequence (from `starts`, positions on it known to come before
        the free ones)."""
        table = self.table
        mask = len(table) - 1
        pos = (hashes & np.uint64(mask)).astype(np.int64) if starts is None else starts.copy()
        step = _steps(hashes, mask)
        entries = (_high(hashes) << 32) | slots
        while len(entries):
            free = table[pos] == -1
            table[pos[free]] = entries[free]  # of entries meeting at one position, one wins
            won = np.zeros(len(entries), bool)
            won[free] = table[pos[free]] == entries[free]
            lost = ~won
            entries, step = entries[lost], step[lost]
            pos = (pos[lost] + step) & mask

    # -- reading ----------------------------------------------------------------------------

    def keys(self, slots: IntArray) -> list[pa.Array]:
        """Each column's keys of these slots (normalized form)."""
        return [c.take(slots) for c in self.columns]

    def tuples(self, slots: IntArray) -> list[tuple[Any, ...]]:
        """The keys of these slots as Python tuples (the reference path's form)."""
        values = [c.take(slots).to_pylist() for c in self.columns]
        if len(values) == 1:
            return [(v,) for v in values[0]]
        return list(zip(*values, strict=True))

    def arrays(self) -> list[np.ndarray]:
        """Every array of the index (to spill them)."""
        return [self.table] + [a for c in self.columns for a in c.arrays()]

    def set_arrays(self, arrays: list[np.ndarray]) -> None:
        self.table = arrays[0]
        k = 1
        for column in self.columns:
            width = len(column.arrays())
            column.set_arrays(arrays[k : k + width])
            k += width

    def nbytes(self) -> int:
        """Bytes of the keys and the table (in use)."""
        return int(self.table.nbytes) + sum(c.nbytes() for c in self.columns)

    def capacity(self) -> int:
        """Bytes the index has reserved."""
        return int(self.table.nbytes) + sum(c.capacity() for c in self.columns)


__all__ = ["Arena", "KeyColumn", "KeyIndex"]

"""The changelog of an aggregation's multisets of distinct values, as chunks of what changed.

A DISTINCT call's state (`COUNT(DISTINCT bidder)`, functions/aggregate_modifiers.py) is a
Counter of its group's values. Written whole to the changelog with each change of its group,
a batch would cost as much as the sets have grown to, not as much as it changed. So a stream
aggregation that only adds values (the by-group path, ops/aggregate_batch.py) writes its
sets as chunks instead: in the group's state record (`("S", state_key)`) each set's place
holds `Chunked(n)`, and the sets are the sums of the group's `n` chunk records
`("U", state_key, 0 .. n-1)`, each `{position: values}`. A batch writes one more chunk per
group it changed: the values each set added (a list, each occurrence once). When a group's
chunks hold more than twice its sets' distinct values (values added again and again) or
number `MAX_CHUNKS`, its sets are written whole again as chunk 0 (`{position: {value:
count}}`) and its other chunks deleted, so what the changelog holds stays proportional to
the sets and each value is written a bounded number of times.

The record layout is fixed: existing changelogs must restore. A state record written before
chunks (its sets whole, as Counters) restores as it was and is written as chunks from its
next change; a chunk no state record refers to (the group's sets were written whole since,
by a path that writes no chunks) is deleted at the next checkpoint. A state record that
refers to a chunk the changelog does not hold is refused with `ChunkMissingError`.
"""

from __future__ import annotations

import operator
import pickle
from collections import Counter
from collections.abc import Sequence
from itertools import repeat
from typing import Any

from hispeed.errors import HispeedError
from hispeed.state.stores import ChangelogChanges

#: the changelog kind of a group's chunks of sets: `("U", state_key, chunk_number)`
CHUNK_KIND = "U"
#: a group with this many chunks has its sets written whole again (bounds the records a
#: restore reads)
MAX_CHUNKS = 32
#: chunks may hold this many entries more than twice the sets' distinct values before the
#: sets are written whole again (small sets are not rewritten for a few repeats)
SLACK = 32


class Chunked:
    """In a state record, in place of a multiset: the set is the sum of its place in the
    group's chunk records 0 .. `chunks` - 1 (pickled by this class's path: keep it here).
    A record's sets share one (pickle writes it once)."""

    __slots__ = ("chunks",)

    def __init__(self, chunks: int) -> None:
        self.chunks = chunks

    def __reduce__(self) -> tuple[Any, ...]:
        return (Chunked, (self.chunks,))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Chunked) and other.chunks == self.chunks

    def __hash__(self) -> int:
        return hash(("Chunked", self.chunks))

    def __repr__(self) -> str:
        return f"Chunked({self.chunks})"


#: the markers of 0 .. MAX_CHUNKS chunks, shared by the records that hold them
_MARKERS = [Chunked(n) for n in range(MAX_CHUNKS + 1)]


class ChunkMissingError(HispeedError):
    """A state record refers to a chunk of distinct values the changelog does not hold."""


class MultisetChunks:
    """The chunks of the multisets at `positions` of each state (a list of aggregate
    states per state key): what the changelog holds of them, what was added since the last
    checkpoint, and the chunks read back at a restore until the states are assembled."""

    def __init__(self, positions: Sequence[int]) -> None:
        #: the places in a state list that hold multisets
        self.positions = list(positions)
        #: state key -> [its chunk records in the changelog, the entries they hold in all]
        self.chunks: dict[Any, list[int]] = {}
        #: state key -> {position: the values added since the last checkpoint, each
        #: occurrence once}
        self.added: dict[Any, dict[int, list[Any]]] = {}
        #: chunks read at a restore, until `assemble`: state key -> {n: chunk}
        self.pending: dict[Any, dict[int, dict[int, Any]]] = {}
        #: chunk records to delete at the next checkpoint: (state key, n)
        self.stale: set[tuple[Any, int]] = set()

    def note_added(self, key: Any, position: int, values: list[Any]) -> None:
        """Values a set took since the last checkpoint (every one must be noted)."""
        noted = self.added.setdefault(key, {})
        held = noted.get(position)
        if held is None:
            noted[position] = values
        else:
            noted[position] = held + values

    def restore(self, name: tuple[Any, ...], value: Any) -> None:
        """Take back a chunk record `("U", state_key, n)`."""
        _, key, number = name
        self.pending.setdefault(key, {})[number] = value

    def assemble(self, states: dict[Any, Any]) -> None:
        """Put the restored chunks together into the sets of `states` (whose records hold
        `Chunked` where a set is); chunks no record refers to are deleted at the next
        checkpoint."""
        pending, self.pending = self.pending, {}
        for key, state in states.items():
            if not isinstance(state, list):
                continue
            markers = [p for p in self.positions if isinstance(state[p], Chunked)]
            if not markers:
                continue
            count = state[markers[0]].chunks
            found = pending.pop(key, {})
            missing = [n for n in range(count) if n not in found]
            if missing:
                raise ChunkMissingError(
                    f"the changelog's state of group {key[0]!r} refers to chunk {missing[0]} "
                    "of its distinct values, which the changelog does not hold: the state "
                    "cannot be restored (was the changelog topic truncated?)"
                )
            sets: dict[int, Counter[Any]] = {p: Counter() for p in markers}
            size = 0
            for n in range(count):
                for position, values in found.pop(n).items():
                    sets[position].update(values)
                    size += len(values)
            for position, values in sets.items():
                state[position] = +values  # only the values still counted
            self.chunks[key] = [count, size]
            self.stale.update((key, n) for n in found)
        for key, found in pending.items():
            self.stale.update((key, n) for n in found)

    def flush_stale(self, changelog: ChangelogChanges) -> None:
        """Delete the chunk records no state refers to (found at a restore)."""
        for key, n in self.stale:
            changelog[pickle.dumps((CHUNK_KIND, key, n))] = None
        self.stale.clear()

    def encode(self, key: Any, state: list[Any] | None, changelog: ChangelogChanges) -> Any:
        """The record to write for `state` (None: the group is deleted): its sets as
        `Chunked`, their chunk written to `changelog` (the values the sets added, or the
        whole sets when the group has no chunks yet or too many). A group with chunks and
        nothing noted since the last checkpoint is taken as unchanged."""
        added = self.added.pop(key, None)
        if state is None:
            held = self.chunks.pop(key, None)
            for n in range(held[0] if held else 0):
                changelog[pickle.dumps((CHUNK_KIND, key, n))] = None
            return None
        size = sum(map(len, added.values())) if added is not None else 0
        whole = sum(len(state[p]) for p in self.positions)
        count = self._chunk(key, state, self.chunks.get(key), added, size, whole, changelog)
        return self._records([state], [count])[0]

    def encode_all(
        self,
        keys: list[Any],
        states: list[list[Any]],
        added: list[dict[int, list[Any]] | None],
        sizes: list[int],
        changelog: ChangelogChanges,
    ) -> list[list[Any]]:
        """`encode` of many groups' states at once (none deleted): `added[i]`, the values
        group `i`'s sets took since the last checkpoint (`{position: values}`, None:
        none), `sizes[i]` how many those are."""
        if self.added:  # values noted one by one (`note_added`) join these
            added, sizes = list(added), list(sizes)
            for i, key in enumerate(keys):
                noted = self.added.pop(key, None)
                if noted is not None:
                    merged = dict(added[i] or {})
                    for p, values in noted.items():
                        merged[p] = merged.get(p, []) + values
                    added[i], sizes[i] = merged, sizes[i] + sum(map(len, noted.values()))
        if not states:
            return []
        columns = list(zip(*states, strict=True))
        wholes = [0] * len(states)
        for p in self.positions:  # each group's distinct values in all
            wholes = list(map(operator.add, wholes, map(len, columns[p])))
        helds = list(map(self.chunks.get, keys))
        chunk, into = self._chunk, repeat(changelog)
        counts = list(map(chunk, keys, states, helds, added, sizes, wholes, into))
        return self._records(states, counts, columns)

    def _chunk(
        self,
        key: Any,
        state: list[Any],
        held: list[int] | None,
        added: dict[int, list[Any]] | None,
        size: int,
        whole: int,
        changelog: ChangelogChanges,
    ) -> int:
        """Write a group's chunk (`added`: what its sets took, `size` values; `held`: its
        chunks so far and their values, None: none; `whole`: its sets' distinct values);
        how many chunks it has after."""
        count = 0
        if held is not None:
            count = held[0]
            if added is None:
                return count
            if count < MAX_CHUNKS:
                size += held[1]
                if size <= 2 * whole + SLACK:
                    changelog[pickle.dumps((CHUNK_KIND, key, count))] = pickle.dumps(added)
                    held[0] = count + 1
                    held[1] = size
                    return count + 1
        # the whole sets as chunk 0; the others go
        sets = {p: dict(state[p]) for p in self.positions}
        changelog[pickle.dumps((CHUNK_KIND, key, 0))] = pickle.dumps(sets)
        for n in range(1, count):
            changelog[pickle.dumps((CHUNK_KIND, key, n))] = None
        self.chunks[key] = [1, sum(map(len, sets.values()))]
        return 1

    def _records(
        self, states: list[list[Any]], counts: list[int], columns: list[Any] | None = None
    ) -> list[list[Any]]:
        """The states' records: each set replaced by `Chunked` of its group's chunk count
        (`columns`: the states' as columns, if made already)."""
        columns = list(zip(*states, strict=True)) if columns is None else list(columns)
        markers = [_MARKERS[n] if n < len(_MARKERS) else Chunked(n) for n in counts]
        for p in self.positions:
            columns[p] = markers
        return list(map(list, zip(*columns, strict=True)))

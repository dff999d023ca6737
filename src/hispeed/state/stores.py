"""State stores: what a stateful operator keeps between batches, as Kafka Streams has them.

A store is read and written by its operator (`get`, `put`, `delete`, `range`) and is
changelogged: `checkpoint` writes what changed since the last checkpoint to the batch's
changelog changes (they commit with the outputs and the input offsets), and `restore` takes
back, one entry at a time, what a restart reads from the changelog (state/changelog.py). The
kinds:

- `KeyValueStore`: a key to a value (a table aggregation's source rows, HAVING's last verdicts).
- `WindowStore`: a (key, window) to a value; windows that end before a horizon are dropped
  (an aggregation's states per group and window).
- `SessionStore`: a key to its sessions (their [start, end]), each with its state.

Two implementations: `PickledStores`, the per-operator state under one-letter kinds as dicts
whose entries are pickled one by one to the changelog, and `ColumnarStateStore`
(state/columns.py), the vectorized aggregation's states as numpy columns. The record layout of
both stays as existing changelogs hold it: a store's name is the first item of each key it
writes.
"""

from __future__ import annotations

import pickle
from collections.abc import Callable, Iterable, Iterator
from itertools import repeat
from typing import Any, Protocol, TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: the changes of a batch to a changelog: key bytes -> value bytes (None: a deletion)
ChangelogChanges = dict[bytes, bytes | None]


class Restorable(Protocol):
    """What takes back the entries of a changelog: a store, or an operator for its stores."""

    def restore(self, name: Any, value: Any) -> None:
        """Take back one entry read from the changelog: `name` the unpickled key, a tuple
        whose first item is the store's kind; `value` the unpickled value."""
        ...


class ChangeloggedStore(Restorable, Protocol):
    """A store whose changes go to the query's changelog and come back from it."""

    def checkpoint(self, changelog: ChangelogChanges) -> None:
        """Write what changed since the last checkpoint to `changelog`."""
        ...


class KeyValueStore(Protocol[K, V]):
    """Keys to values: get, put, delete, and the entries of a key range."""

    def get(self, key: K, default: V | None = None) -> V | None:
        """The value of `key`, or `default`."""
        ...

    def put(self, key: K, value: V) -> None:
        """Set the value of `key` (marks it changed)."""
        ...

    def delete(self, key: K) -> V | None:
        """Remove `key` (marks it changed); its value, or None if it had none."""
        ...

    def range(self, low: K, high: K) -> Iterator[tuple[K, V]]:
        """The entries whose key is in [low, high], in key order."""
        ...


class WindowStore(Protocol):
    """(key, window) to a value; the windows of a key fetched by time, old windows evicted."""

    def fetch(self, key: Any, time_from: int, time_to: int) -> Iterator[tuple[Any, Any]]:
        """The (window, value) entries of `key` whose windows start in [time_from, time_to]."""
        ...

    def evict(self, horizon: int) -> None:
        """Drop the windows that end before `horizon` (they can no longer change)."""
        ...


class SessionStore(Protocol):
    """A key to its sessions, each a [start, end] with a value."""

    def find_sessions(self, key: Any, earliest_end: int, latest_start: int) -> list[list[int]]:
        """The sessions of `key` that end at or after `earliest_end` and start at or before
        `latest_start` (those a record at a time within the gap would join)."""
        ...


class KindStore(dict[Any, Any]):
    """A key-value store of one kind of `PickledStores`: a dict whose writes through `put`
    and `delete` mark the key changed for the next checkpoint. (An operator may also read it
    as the dict it is, and write it as one when it marks the key itself with `mark`.)"""

    __slots__ = ("dirty", "kind")

    def __init__(self, kind: str, dirty: set[tuple[str, Any]]) -> None:
        super().__init__()
        self.kind = kind
        self.dirty = dirty

    def put(self, key: Any, value: Any) -> None:
        """Set the value of `key` and mark it changed."""
        self[key] = value
        self.dirty.add((self.kind, key))

    def delete(self, key: Any) -> Any:
        """Remove `key` and mark it changed; its value, or None."""
        self.dirty.add((self.kind, key))
        return self.pop(key, None)

    def mark(self, key: Any) -> None:
        """Mark `key` changed (written to the changelog at the next checkpoint)."""
        self.dirty.add((self.kind, key))

    def range(self, low: Any, high: Any) -> Iterator[tuple[Any, Any]]:
        """The entries whose key is in [low, high], in key order."""
        for key in sorted(k for k in self if low <= k <= high):
            yield key, self[key]

    def fetch(self, key: Any, time_from: int, time_to: int) -> Iterator[tuple[Any, Any]]:
        """As a window store (keys `(key, (start, end))`): the (window, value) entries of
        `key` whose windows start in [time_from, time_to], in start order."""
        found = [
            (k[1], v)
            for k, v in self.items()
            if k[0] == key and k[1] is not None and time_from <= k[1][0] <= time_to
        ]
        yield from sorted(found, key=lambda e: e[0])

    def evict(self, horizon: int) -> None:
        """As a window store: drop (and mark) the windows that end before `horizon`."""
        for k in [k for k in self if k[1] is not None and k[1][1] < horizon]:
            self.delete(k)

    def find_sessions(self, key: Any, earliest_end: int, latest_start: int) -> list[list[int]]:
        """As a session index (key -> list of [start, end]): the sessions of `key` that end
        at or after `earliest_end` and start at or before `latest_start`."""
        return sorted(s for s in self.get(key, ()) if s[1] >= earliest_end and s[0] <= latest_start)


class PickledStores:
    """An operator's stores under one-letter kinds, each entry pickled on its own to the
    changelog as `pickle((kind, key)) -> pickle(value)` (None: deleted)."""

    def __init__(self, kinds: Iterable[str]) -> None:
        #: the (kind, key) of every entry changed since the last checkpoint
        self.dirty: set[tuple[str, Any]] = set()
        self.kinds: dict[str, KindStore] = {k: KindStore(k, self.dirty) for k in kinds}
        #: pickled changelog keys of live entries, so an entry changed every batch is not
        #: pickled again each time
        self._key_bytes: dict[Any, bytes] = {}
        #: kind -> what writes an entry's record instead of the value itself:
        #: `encode(key, value or None, changelog)` -> the value to pickle (it may write
        #: records of its own to `changelog`, as state/multisets.py's chunks)
        self.encoders: dict[str, Callable[[Any, Any, ChangelogChanges], Any]] = {}

    def __getitem__(self, kind: str) -> KindStore:
        return self.kinds[kind]

    def replace(self, kind: str, entries: dict[Any, Any]) -> KindStore:
        """Make `entries` the whole content of `kind` (changes nothing in the changelog:
        the caller marks what it must)."""
        store = KindStore(kind, self.dirty)
        store.update(entries)
        self.kinds[kind] = store
        return store

    def restore(self, name: Any, value: Any) -> None:
        """Take back one changelog entry `(kind, key) -> value` of a kind this holds."""
        store = self.kinds.get(name[0])
        if store is not None:
            store[name[1]] = value

    def write(
        self, kind: str, keys: list[Any], values: list[Any], changelog: ChangelogChanges
    ) -> None:
        """Write entries of `kind` (`keys[i]` -> `values[i]`) to `changelog` now, each value
        pickled as it is, no encoder (they are not marked changed: the caller writes them
        in place of that), all at once."""
        known = self._key_bytes
        named = list(zip(repeat(kind), keys))
        names: list[Any] = list(map(known.get, named))
        for i in [i for i, name in enumerate(names) if name is None]:
            names[i] = known[named[i]] = pickle.dumps(named[i])
        changelog.update(zip(names, map(pickle.dumps, values), strict=True))

    def checkpoint(self, changelog: ChangelogChanges) -> None:
        """Write every changed entry to `changelog` (a deleted one as None)."""
        names = self._key_bytes
        kinds = self.kinds
        encoders = self.encoders
        for key in self.dirty:
            value = kinds[key[0]].get(key[1])
            encode = encoders.get(key[0])
            if encode is not None:
                value = encode(key[1], value, changelog)
            name = names.get(key)
            if name is None:
                name = names[key] = pickle.dumps(key)
            if value is None:
                del names[key]  # a deleted state's key is not needed again soon
                changelog[name] = None
            else:
                changelog[name] = pickle.dumps(value)
        self.dirty.clear()

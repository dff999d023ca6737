"""A query's changelog: the compacted topic its state's changes go to, and restoring from it.

Every batch's state changes are written to the changelog in the transaction that commits the
batch's outputs and input offsets; a task that starts (or starts again after a failure) reads
the changelog back to the latest value of each key. The record layout is fixed (existing data
directories and Kafka changelogs must restore): each key is a pickled `(kind, ...)` tuple whose
first item names the store (see state/stores.py and state/columns.py), each value a pickle; the
stream time is the one key `STREAM_TIME_KEY`, its value the pickled {partition: time}.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterator, Mapping
from typing import Any

import pyarrow as pa

from hispeed.log.base import Log
from hispeed.state.stores import Restorable

#: the changelog key of the query's stream time (not a pickle: it sorts first)
STREAM_TIME_KEY = b"\x00stream-time"


def changelog_topic(query_id: str) -> str:
    """The compacted topic that holds a query's state."""
    return f"_hispeed_{query_id}_changelog"


def changelog_batch(changes: Mapping[bytes, bytes | None]) -> pa.RecordBatch:
    """A batch's state changes as the records to append (key and value columns; the log
    stamps them with its clock): built as two columns at once, where a list of pairs is
    turned into records one by one (a cost that grows with the state changed per batch)."""
    return pa.RecordBatch.from_arrays(
        [
            pa.array(list(changes.keys()), pa.binary()),
            pa.array(list(changes.values()), pa.binary()),
        ],
        names=["key", "value"],
    )


def read_latest(log: Log, topic: str, partition: int) -> dict[bytes, bytes | None]:
    """Each changelog key's latest value (None: deleted), reading the partition in full."""
    start, end = log.offsets(topic, partition)
    latest: dict[bytes, bytes | None] = {}
    for batch in log.read(topic, partition, start) if end > start else []:
        for k, v in zip(
            batch.column("key").to_pylist(), batch.column("value").to_pylist(), strict=True
        ):
            latest[k] = v
    return latest


def restored_entries(
    latest: dict[bytes, bytes | None],
) -> Iterator[tuple[Any, Any]]:
    """The live entries of a read changelog, unpickled: `(name, value)` with `name` the
    store's `(kind, ...)` tuple, or `(STREAM_TIME_KEY, {partition: time})`."""
    for k, v in latest.items():
        if v is None:
            continue
        if k == STREAM_TIME_KEY:
            yield STREAM_TIME_KEY, pickle.loads(v)
            continue
        yield pickle.loads(k), pickle.loads(v)


def write_stream_time(changelog: dict[bytes, bytes | None], stream_time: dict[int, int]) -> None:
    """Put the query's stream time in a batch's changelog changes."""
    changelog[STREAM_TIME_KEY] = pickle.dumps(stream_time)


def restore(
    log: Log, topic: str, partition: int, stores: Mapping[str | None, Restorable]
) -> dict[int, int]:
    """Read a changelog partition back into its stores; the stream time it holds.

    `stores`: the store that takes the entries of each kind (a key's first item); under None,
    the one that takes every other kind."""
    stream_time: dict[int, int] = {}
    fallback = stores.get(None)
    for name, value in restored_entries(read_latest(log, topic, partition)):
        if name == STREAM_TIME_KEY:
            stream_time = value
            continue
        store = stores.get(name[0], fallback)
        if store is not None:
            store.restore(name, value)
    return stream_time

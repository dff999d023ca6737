"""Helpers for testing a connector of your own (what `hispeed connector new` generates uses).

    from hispeed.testing.connectors import collect, sink_batch

    def test_my_sink_writes_a_row(tmp_path):
        sink = MySink("test", {"path": str(tmp_path / "out")})
        sink.start()
        sink.write(sink_batch([{"ID": "a", "X": 1}], keys=["a"]))
        ...

    def test_my_source_resumes_after_its_position():
        records = collect(MySource("test", {"limit": "3"}), 3)
        assert [r.position for r in records] == [0, 1, 2]

Connectors run in an Engine by name (`'connector.class'='my_sink'`) once their package is
installed; `hispeed.testing.wait.wait_for` waits there for what the connector's thread does.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from hispeed.connectors import SinkBatch, SourceBatch, SourceConnector, SourceRecord
from hispeed.testing.wait import wait_for


def sink_batch(
    rows: Sequence[Mapping[str, Any] | None],
    *,
    keys: Sequence[Any] | None = None,
    key_columns: Sequence[str] = (),
    topic: str = "test",
    partition: int = 0,
    first_offset: int = 0,
    timestamp: int = 1_700_000_000_000,
) -> SinkBatch:
    """A SinkBatch as the runner hands one to `write()`: `rows` by column name (None: a
    tombstone), offsets counting from `first_offset`, a millisecond apart from `timestamp`;
    keys None unless given."""
    n = len(rows)
    if keys is not None and len(keys) != n:
        raise ValueError(f"{len(keys)} keys for {n} rows")
    return SinkBatch(
        topic=topic,
        partition=partition,
        offsets=list(range(first_offset, first_offset + n)),
        timestamps=[timestamp + i for i in range(n)],
        keys=list(keys) if keys is not None else [None] * n,
        rows=[dict(r) if r is not None else None for r in rows],
        key_columns=list(key_columns),
    )


def collect(
    source: SourceConnector,
    count: int,
    *,
    position: Any = None,
    timeout: float = 10.0,
    poll_timeout: float = 0.1,
) -> list[SourceRecord]:
    """Start `source` at `position`, poll it until it has returned at least `count` records
    (fail after `timeout` seconds), stop it; every record it returned, in order (a
    `SourceBatch`'s records one by one, each with the batch's position)."""
    got: list[SourceRecord] = []
    source.start(position)
    try:
        deadline = time.monotonic() + timeout
        while len(got) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(got)} of {count} records within {timeout}s")
            for item in source.poll(poll_timeout):
                got.extend(_records(item) if isinstance(item, SourceBatch) else [item])
    finally:
        source.stop()
    return got


def _records(batch: SourceBatch) -> list[SourceRecord]:
    columns = batch.records.to_pydict()
    n = len(batch)
    keys = columns.get("key", [None] * n)
    stamps = columns.get("timestamp", [None] * n)
    return [
        SourceRecord(k, v, t, batch.position, batch.topic)
        for k, v, t in zip(keys, columns["value"], stamps, strict=True)
    ]


__all__ = ["collect", "sink_batch", "wait_for"]

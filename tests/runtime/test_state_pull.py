"""A GROUP BY table's pull lookups from the query's own state, and its state spilled to files.

Key lookups against a table a GROUP BY (no window) writes are answered from the query's state
(runtime/state_view.py) without reading the table's topic into a second copy; they must give
exactly the rows the topic gives. A query whose state passes its memory budget (arrays in
files) must write exactly the records one in memory writes, and both must restart to the
same state.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pytest

from hispeed.engine import Engine
from hispeed.runtime.pull import TableView

QUERIES = {
    "plain": (
        "CREATE TABLE t AS SELECT k, COUNT(*) AS c, SUM(v) AS s, AVG(d) AS a, MAX(v) AS m "
        "FROM s GROUP BY k;"
    ),
    "having": (
        "CREATE TABLE t AS SELECT k, COUNT(*) AS c, SUM(v) * 2 AS s2 FROM s "
        "GROUP BY k HAVING SUM(v) > 40;"
    ),
}
KEYS = [f"key-{i}" for i in range(400)]


def feed(engine: Engine, seed: int, batches: int = 6, size: int = 500) -> None:
    rng = np.random.default_rng(seed)
    encoder = msgspec.json.Encoder()
    for b in range(batches):
        ks = rng.integers(0, len(KEYS), size)
        vs = rng.integers(-20, 30, size)
        values = [
            encoder.encode({"K": KEYS[k], "V": int(v), "D": float(v) / 3})
            for k, v in zip(ks.tolist(), vs.tolist(), strict=True)
        ]
        engine.log.append(
            "s",
            pa.record_batch(
                {
                    "key": pa.nulls(size, pa.binary()),
                    "value": pa.array(values, pa.binary()),
                    "timestamp": pa.array(np.arange(size, dtype=np.int64) + 1000 * b + seed),
                }
            ),
            partition=0,
        )


def start(root: Path, query: str, properties: dict[str, Any] | None = None) -> Engine:
    engine = Engine(root, fsync="never", properties=properties)
    if not engine.tasks:
        engine.execute(
            "CREATE STREAM s (k STRING, v BIGINT, d DOUBLE) "
            "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
        )
        engine.execute(query)
    return engine


def sink_records(engine: Engine) -> list[tuple[Any, Any, Any]]:
    out = []
    for batch in engine.log.read("T", 0, 0):
        out += list(
            zip(
                batch.column("key").to_pylist(),
                batch.column("value").to_pylist(),
                batch.column("timestamp").to_pylist(),
                strict=True,
            )
        )
    return out


def lookups(engine: Engine) -> list[Any]:
    """Every key's row by pull query (the text form and the parsed one), and a missing key."""
    rows = [engine.query(f"SELECT * FROM t WHERE k = '{k}';") for k in KEYS[:60]]
    rows.append(engine.query("SELECT k, c FROM t WHERE k IN ('key-3', 'key-9', 'nokey');"))
    rows.append(engine.query("SELECT * FROM t WHERE k = 'nokey';"))
    return rows


def from_topic(engine: Engine) -> list[Any]:
    """The same lookups as the table's topic answers them (the view without the state)."""
    views = engine.runtime.views
    source = engine.catalog.sources["T"]
    view = views.views["T"] = TableView(engine.context, source)
    view.state = None
    views.lookups.clear()
    views.prepared.clear()
    try:
        return lookups(engine)
    finally:
        del views.views["T"]
        views.lookups.clear()
        views.prepared.clear()


def store_of(engine: Engine) -> Any:
    from hispeed.state.keyed import KeyedStateStore

    (task,) = engine.tasks.values()
    aggregator = getattr(task, "aggregator", None)
    assert aggregator is not None
    assert isinstance(aggregator.store, KeyedStateStore)
    return aggregator.store


@pytest.mark.parametrize("query", sorted(QUERIES))
def test_lookups_from_the_state_equal_the_topics_rows(tmp_path: Path, query: str) -> None:
    with start(tmp_path / "data", QUERIES[query]) as engine:
        feed(engine, 1)
        engine.drain()
        got = lookups(engine)
        # served from the query's state: the view read nothing of the topic
        assert engine.runtime.views.views["T"].rows == {}
        assert got == from_topic(engine)
        found = [bool(rows) for rows in got[:60]]
        assert any(found)
        assert all(found) == (query == "plain")  # HAVING leaves some keys out


def test_spilled_state_writes_what_state_in_memory_writes(tmp_path: Path) -> None:
    from hispeed.ops.aggregate import STATE_BUDGET, STATE_SPILL_DIR

    spill = tmp_path / "spill"
    budget = {STATE_BUDGET: 0, STATE_SPILL_DIR: str(spill)}
    query = QUERIES["plain"]
    with (
        start(tmp_path / "memory", query) as memory,
        start(tmp_path / "spilled", query, budget) as spilled,
    ):
        for seed in (1, 2):
            feed(memory, seed)
            feed(spilled, seed)
            memory.drain()
            spilled.drain()
        assert store_of(spilled).spilled
        assert not store_of(memory).spilled
        assert store_of(spilled).arena.mapped_bytes() >= store_of(spilled).nbytes()
        assert spill.is_dir()
        assert sink_records(spilled) == sink_records(memory)
        assert lookups(spilled) == lookups(memory)
        expected = store_of(memory).to_dict()
        assert store_of(spilled).to_dict() == expected
    # a restart restores each from its changelog, and both carry on alike
    with (
        start(tmp_path / "memory", query) as memory,
        start(tmp_path / "spilled", query, budget) as spilled,
    ):
        assert store_of(memory).to_dict() == store_of(spilled).to_dict() == expected
        feed(memory, 3)
        feed(spilled, 3)
        memory.drain()
        spilled.drain()
        assert sink_records(spilled) == sink_records(memory)
        assert lookups(spilled) == lookups(memory) == from_topic(memory)

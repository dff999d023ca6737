"""The keyed GROUP BY state (state/keys.py, state/keyed.py) against plain dictionaries.

The hash index must find every key exactly, colliding hashes included; the store's changelog
(deltas and snapshots, as compaction leaves them) must restore the same states; a store past
its memory budget (its arrays in files) must hold exactly what one in memory holds; and the
windowed store's records of an unwindowed query (the layout before) must restore.
"""

from __future__ import annotations

import pickle
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from hispeed.ops.aggregate_kernels import Kernel, kernel_for
from hispeed.state.columns import ColumnarStateStore
from hispeed.state.keyed import KeyedStateStore
from hispeed.state.keys import Arena, KeyIndex


def few_hashes(columns: Sequence[pa.Array]) -> np.ndarray:
    """A poor hash: four values, so most keys collide and probing must compare keys."""
    values = columns[0].to_pylist()
    return np.array([len(str(v)) % 4 for v in values], np.uint64)


@pytest.mark.parametrize("hasher", ["polars", "colliding"])
def test_the_index_finds_each_key_exactly(hasher: str) -> None:
    index = KeyIndex([pa.string(), pa.int64()], Arena())
    if hasher == "colliding":
        index.hasher = few_hashes
    expected: dict[tuple[str, int], int] = {}
    rng = np.random.default_rng(3)
    for _ in range(30):
        pairs = {(f"k{a}", int(b)) for a, b in rng.integers(0, 15, (40, 2)).tolist()}
        batch = sorted(pairs)
        columns = [pa.array([p[0] for p in batch]), pa.array([p[1] for p in batch], pa.int64())]
        slots = index.find(columns).tolist()
        known = [expected.get(p) for p in batch]
        new = [p for p, k in zip(batch, known, strict=True) if k is None]
        assert [s for s, k in zip(slots, known, strict=True) if k is not None] == [
            k for k in known if k is not None
        ]
        assert sorted(s for s, k in zip(slots, known, strict=True) if k is None) == list(
            range(len(expected), len(expected) + len(new))
        )
        if rng.random() < 0.8:  # else the batch is dropped, as a refused one is
            assert index.commit() == len(new)
            expected.update((p, s) for p, s in zip(batch, slots, strict=True) if p in new)
        assert index.count == len(expected)
    assert index.tuples(np.arange(index.count)) == sorted(expected, key=expected.__getitem__)


def kernels() -> list[Kernel]:
    """COUNT(*), SUM(BIGINT) and MAX of the row time, as a GROUP BY's state calls."""
    from hispeed.engine import Engine

    return [kernel_for(call) for call in _calls(Engine)]


def _calls(engine_class: Any) -> list[Any]:
    import tempfile

    with tempfile.TemporaryDirectory() as root, engine_class(root, fsync="never") as engine:
        engine.execute(
            "CREATE STREAM s (k STRING, v BIGINT) WITH (kafka_topic='s', format='JSON', "
            "partitions=1);"
        )
        (result,) = engine.execute(
            "CREATE TABLE t AS SELECT k, COUNT(*), SUM(v) FROM s GROUP BY k;"
        )
        agg = engine.tasks[str(result.query_id)].plan.aggregation
        assert agg is not None
        return list(agg.state_calls)


@pytest.fixture(scope="module")
def layouts() -> list[Kernel]:
    return kernels()


def run_batches(
    store: KeyedStateStore, batches: list[list[tuple[str, int, int]]]
) -> tuple[dict[Any, list[Any]], dict[bytes, bytes | None]]:
    """Add (key, value, time) events to COUNT/SUM/MAX states, batch by batch, checkpointing
    each into a compacted changelog; the states a dict computes and the changelog."""
    expected: dict[Any, list[Any]] = {}
    changelog: dict[bytes, bytes | None] = {}
    for batch in batches:
        distinct = sorted({k for k, _, _ in batch})
        slots = store.slots([pa.array(distinct)])
        pos, found, arrays = store.priors(None, slots)
        count, total, newest, seen = (a.copy() for a in arrays)
        at = {k: i for i, k in enumerate(distinct)}
        for key, value, stamp in batch:
            i = at[key]
            count[i] += 1
            total[i] += value
            newest[i] = max(newest[i], stamp) if seen[i] else stamp
            seen[i] = True
            state = expected.setdefault(((key,), None), [0, 0, None])
            state[0] += 1
            state[1] += value
            state[2] = stamp if state[2] is None else max(state[2], stamp)
        store.put(None, slots, pos, found, [count, total, newest, seen])
        out: dict[bytes, bytes | None] = {}
        store.checkpoint(out)
        changelog.update(out)
    return expected, changelog


def restored(layouts: list[Kernel], changelog: dict[bytes, bytes | None]) -> KeyedStateStore:
    store = KeyedStateStore(layouts, [pa.string()])
    for key, value in changelog.items():
        if value is not None:
            store.restore(pickle.loads(key), pickle.loads(value))
    return store


def random_batches(seed: int, n: int = 25) -> list[list[tuple[str, int, int]]]:
    rng = np.random.default_rng(seed)
    return [
        [
            (f"key-{k}", int(v), int(t))
            for k, v, t in zip(
                rng.integers(0, 300, 80),
                rng.integers(-5, 50, 80),
                rng.integers(0, 99, 80),
                strict=True,
            )
        ]
        for _ in range(n)
    ]


@pytest.mark.parametrize("rewrite_factor", [0.0, 0.5, 2.0])
def test_a_restore_from_deltas_and_chunks_is_exact(
    layouts: list[Kernel], rewrite_factor: float
) -> None:
    store = KeyedStateStore(layouts, [pa.string()])
    store.chunk_slots = 7
    store.rewrite_factor = rewrite_factor  # 0: deltas only
    expected, changelog = run_batches(store, random_batches(1))
    assert store.to_dict() == expected
    names = [pickle.loads(k) for k, v in changelog.items() if v is not None]
    deltas = [n for n in names if len(n) == 4]
    assert (len(deltas) == 25) == (rewrite_factor == 0)  # rewritten chunks retire deltas
    again = restored(layouts, changelog)
    assert again.to_dict() == expected
    # and it carries on from there: its next records restore too
    more, tail = run_batches(again, random_batches(2, 5))
    for (key, _), state in more.items():
        old = expected.get((key, None), [0, 0, None])
        expected[(key, None)] = [
            old[0] + state[0],
            old[1] + state[1],
            state[2] if old[2] is None else max(old[2], state[2]),
        ]
    assert again.to_dict() == expected
    changelog.update(tail)
    assert restored(layouts, changelog).to_dict() == expected


def test_spilled_state_equals_state_in_memory(layouts: list[Kernel], tmp_path: Any) -> None:
    batches = random_batches(4)
    memory = KeyedStateStore(layouts, [pa.string()])
    spilled = KeyedStateStore(layouts, [pa.string()], budget=0, spill_dir=tmp_path)
    expected, memory_log = run_batches(memory, batches)
    got, spilled_log = run_batches(spilled, batches)
    assert spilled.spilled
    assert not memory.spilled
    assert spilled.arena.mapped_bytes() >= spilled.nbytes()  # its arrays are in files
    assert got == expected
    assert spilled.to_dict() == memory.to_dict() == expected
    assert spilled_log == memory_log  # the same changelog, byte for byte
    held, states = spilled.lookup([pa.array(["key-7", "nope"])])
    assert held.tolist() == [True, False]
    assert [int(states[0][0]), int(states[1][0])] == expected[(("key-7",), None)][:2]


def test_the_windowed_stores_records_restore_and_are_rewritten(layouts: list[Kernel]) -> None:
    """An unwindowed query's changelog as ColumnarStateStore wrote it before this store."""
    old = ColumnarStateStore(layouts, None)
    old.chunk_bits = 2
    gids = old.ids([("a",), ("b",), ("c",), ("d",), ("e",)])
    arrays = [
        np.array([1, 2, 3, 4, 5]),
        np.array([10, 20, 30, 40, 50]),
        np.array([7, 8, 9, 10, 11]),
        np.ones(5, bool),
    ]
    pos, found, _ = old.priors(None, gids)
    old.put(None, gids, pos, found, arrays)
    changelog: dict[bytes, bytes | None] = {}
    old.checkpoint(changelog)
    expected = old.to_dict()
    store = restored(layouts, changelog)
    assert store.to_dict() == expected
    out: dict[bytes, bytes | None] = {}
    store.checkpoint(out)
    for key in changelog:  # every old record deleted or rewritten in the new form
        assert key in out
    changelog.update(out)
    assert restored(layouts, changelog).to_dict() == expected


def test_boolean_and_integer_keys_find_their_slots() -> None:
    index = KeyIndex([pa.bool_(), pa.int32()], Arena())
    batches = [
        [(True, 1), (False, 1), (True, -5)],
        [(False, 1), (True, 2), (True, 1), (False, -5)],
    ]
    seen: dict[tuple[bool, int], int] = {}
    for batch in batches:
        columns = [pa.array([b for b, _ in batch]), pa.array([i for _, i in batch], pa.int32())]
        slots = index.find(columns).tolist()
        index.commit()
        for key, slot in zip(batch, slots, strict=True):
            assert seen.setdefault(key, slot) == slot
    assert len(set(seen.values())) == len(seen) == 5
    assert index.tuples(np.arange(5)) == sorted(seen, key=seen.__getitem__)

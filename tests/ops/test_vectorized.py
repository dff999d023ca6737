"""The vectorized GROUP BY path against the per-record reference path in ops/aggregate.py.

Two persistent queries with the same SELECT run on one engine: one's Aggregator always takes
the reference path; the other's takes the fast path for the batches Hypothesis picks (the
reference path for the rest, or when the fast path refuses a batch), its state moving between
the two forms as `Aggregator.process` moves it. After every batch, both must have emitted the
same records and changes and hold the same state, and a new aggregator restored from either
one's changelog (as compaction leaves it) must hold that state too.
"""

from __future__ import annotations

import math
import os
import pickle
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hispeed.engine import Engine
from hispeed.log.base import PolledBatch, TopicPartition
from hispeed.ops.aggregate import Aggregator
from hispeed.ops.base import OperatorContext, Outputs
from hispeed.ops.changes import Change, Changes
from hispeed.ops.vectorized import FastPath, ReferenceState, VectorizedAggregator
from hispeed.ops.vectorized_sessions import SessionAggregator
from hispeed.plan.model import field_name
from hispeed.runtime.task import QueryTask
from hispeed.state.changelog import STREAM_TIME_KEY
from hispeed.state.keyed import KeyedStateStore

SOURCE = (
    "CREATE STREAM s (id INT KEY, g STRING, h INT, v BIGINT, d DOUBLE, i INT) "
    "WITH (kafka_topic='s', format='JSON', partitions=1);"
)
WINDOWS = {
    "none": "",
    "tumbling": "WINDOW TUMBLING (SIZE 10 MILLISECONDS, GRACE PERIOD 4 MILLISECONDS)",
    "hopping": (
        "WINDOW HOPPING (SIZE 10 MILLISECONDS, ADVANCE BY 3 MILLISECONDS, "
        "GRACE PERIOD 6 MILLISECONDS)"
    ),
    "session": "WINDOW SESSION (5 MILLISECONDS, GRACE PERIOD 4 MILLISECONDS)",
}
#: every supported aggregate, two group columns, WHERE and HAVING (ordinary values)
WIDE = (
    "SELECT g, h, COUNT(*) AS n, COUNT(d) AS nd, SUM(v) AS sv, SUM(d) AS sd, SUM(i) AS si, "
    "AVG(v) AS av, AVG(d) AS ad, AVG(i) AS ai, MIN(v) AS minv, MAX(v) AS maxv, "
    "MIN(d) AS mind, MAX(d) AS maxd, MIN(i) AS mini, MAX(i) AS maxi "
    "FROM s {window} WHERE i IS NULL OR i <> 0 GROUP BY g, h HAVING MAX(v) > -40 AND COUNT(*) <> 2;"
)
#: one INTEGER group column; sums of doubles that may be NaN or infinite, 32-bit wrapping
NARROW = (
    "SELECT h, COUNT(v) AS n, SUM(d) AS sd, AVG(d) AS ad, SUM(i) AS si, MAX(i) AS mx "
    "FROM s {window} GROUP BY h;"
)
#: one STRING group column; 64-bit wrapping and overflow, NaN and -0.0 in MIN and MAX
EDGES = (
    "SELECT g, SUM(v) AS sv, AVG(v) AS av, MIN(v) AS mn, MAX(d) AS mx, MIN(d) AS mnd "
    "FROM s {window} GROUP BY g;"
)
QUERIES = {"wide": WIDE, "narrow": NARROW, "edges": EDGES}

LABEL_COLUMNS = {
    "ID": pa.int32(),
    "G": pa.string(),
    "H": pa.int32(),
    "V": pa.int64(),
    "D": pa.float64(),
    "I": pa.int32(),
}

# -- the streams -----------------------------------------------------------------------------

small_ints = st.one_of(st.none(), st.integers(-50, 50))
ints64 = st.one_of(small_ints, st.sampled_from([2**63 - 1, -(2**63), 2**62, -(2**62) - 7]))
ints32 = st.one_of(st.none(), st.integers(-5, 5), st.sampled_from([2**31 - 1, -(2**31)]))
plain_doubles = st.one_of(st.none(), st.integers(-20, 20).map(lambda x: x / 4), st.just(0.1))
doubles = st.one_of(plain_doubles, st.floats(allow_nan=True, allow_infinity=True))
timestamps = st.integers(0, 40)  # in any order: some records are late


def records(query: str) -> st.SearchStrategy[tuple[Any, ...]]:
    """(g, h, v, d, i, timestamp); the wide query gets values its batches rarely refuse."""
    return st.tuples(
        st.sampled_from([None, "a", "b", "c"]),
        st.sampled_from([None, 1, 2, 3]),
        small_ints if query == "wide" else ints64,
        plain_doubles if query == "wide" else doubles,
        ints32,
        timestamps,
    )


@dataclass
class Step:
    rows: list[tuple[Any, ...]]
    fast: bool  # run the fast path on this batch (else the reference on both)
    advance_first: bool  # advance stream time to the batch's newest first, as QueryTask does


def in_time_order(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """The same records with their timestamps sorted (sessions' fast path needs each group's
    records in time order; out of order, the batch falls back to the reference)."""
    stamps = sorted(r[-1] for r in rows)
    return [(*r[:-1], t) for r, t in zip(rows, stamps, strict=True)]


def steps(query: str) -> st.SearchStrategy[list[Step]]:
    rows = st.lists(records(query), max_size=25)
    rows = st.one_of(rows, rows.map(in_time_order))
    batch = st.builds(Step, rows, st.booleans(), st.booleans())
    return st.lists(batch, min_size=1, max_size=4)


# -- the harness -----------------------------------------------------------------------------


@dataclass
class Pair:
    engine: Engine
    reference: QueryTask
    fast: QueryTask


@pytest.fixture(scope="module")
def pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Pair]]:
    engine = Engine(Path(tmp_path_factory.mktemp("vectorized")) / "data", fsync="never")
    engine.execute(SOURCE)
    out: dict[tuple[str, str], Pair] = {}
    for window_name, window in WINDOWS.items():
        for query_name, query in QUERIES.items():
            ids = []
            for side in ("ref", "fast"):
                name = f"{query_name}_{window_name}_{side}"
                (result,) = engine.execute(f"CREATE TABLE {name} AS " + query.format(window=window))
                ids.append(result.query_id)
            out[window_name, query_name] = Pair(
                engine, engine.tasks[str(ids[0])], engine.tasks[str(ids[1])]
            )
    yield out
    engine.close()


def make_frame(task: QueryTask, rows: list[tuple[Any, ...]], offset: int) -> pa.RecordBatch:
    label = task.plan.label
    columns = list(zip(*rows, strict=True)) if rows else [()] * 6
    arrays: dict[str, pa.Array] = {
        field_name(label, "ID"): pa.array(range(offset, offset + len(rows)), pa.int32())
    }
    for name, values in zip(["G", "H", "V", "D", "I"], columns[:5], strict=True):
        arrays[field_name(label, name)] = pa.array(list(values), LABEL_COLUMNS[name])
    arrays[field_name(label, "ROWTIME")] = pa.array(list(columns[5]), pa.int64())
    arrays[field_name(label, "ROWPARTITION")] = pa.array([0] * len(rows), pa.int32())
    arrays[field_name(label, "ROWOFFSET")] = pa.array(range(offset, offset + len(rows)), pa.int64())
    return pa.RecordBatch.from_pydict(arrays)


class Side:
    """One query's aggregator, recording the changes it emits on either path."""

    def __init__(self, task: QueryTask, coalesce: bool, *, reference: bool = False) -> None:
        task.stream_time.clear()
        self.reference = reference
        self.coalesce = coalesce
        self.task = task
        self.aggregator = fresh_aggregator(task, coalesce, reference=reference)
        task.aggregator = self.aggregator
        self.changes: list[Change] = []
        self.fast_batches = 0
        #: the changelog as compaction leaves it: the latest value of each key
        self.changelog: dict[bytes, bytes | None] = {}
        reference_emit = self.aggregator._emit

        def record_reference(changes: list[Change], out: Outputs) -> None:
            self.changes.extend(changes)
            reference_emit(changes, out)

        self.aggregator._emit = record_reference  # type: ignore[method-assign]
        fast = self.aggregator.vectorized
        if fast is not None:
            fast_emit = fast.emit
            fast_process = fast.process

            def record_fast(
                aggregator: ReferenceState,
                changes: Changes,
                out: Outputs,
                headers: pa.Array | None = None,
            ) -> None:
                self.changes.extend(changes.to_list())
                fast_emit(aggregator, changes, out, headers)

            def count_fast(*args: Any) -> bool:
                taken = fast_process(*args)
                self.fast_batches += taken
                return taken

            fast.emit = record_fast  # type: ignore[method-assign]
            fast.process = count_fast  # type: ignore[method-assign]

    def run(self, frame: pa.RecordBatch, step: Step, offset: int) -> Outputs:
        out = Outputs()
        item = PolledBatch(TopicPartition("s", 0), pa.record_batch({"offset": [offset]}))
        if step.advance_first and frame.num_rows:
            newest = int(np.max(frame.column(field_name(self.task.plan.label, "ROWTIME"))))
            self.task.stream_time[0] = max(self.task.stream_time.get(0, newest), newest)
        tombstones = np.zeros(frame.num_rows, bool)
        context = OperatorContext(self.task.id, item, out, self.task.stream_time)
        if self.reference or not step.fast:
            self.aggregator.process_records(frame, tombstones, context)
        else:  # the fast path, or the reference when it refuses the batch
            self.aggregator.process(frame, tombstones, context)
        self.changelog.update(out.changelog)
        return out

    def restored(self) -> Aggregator:
        """A new aggregator restored from the changelog, as `QueryTask` does after a restart."""
        aggregator = fresh_aggregator(self.task, self.coalesce, reference=self.reference)
        for key, value in self.changelog.items():
            if value is not None and key != STREAM_TIME_KEY:
                aggregator.restore(pickle.loads(key), pickle.loads(value))
        return aggregator


def fresh_aggregator(task: QueryTask, coalesce: bool, *, reference: bool) -> Aggregator:
    aggregator = Aggregator(task.plan, task.context.properties, task.emitter)
    # the reference coalesces as the fast path does (ksqlDB's record cache on or off)
    aggregator.per_record = not coalesce
    fast: FastPath | None = None
    if not reference:
        fast = VectorizedAggregator.build(task.plan, coalesce=coalesce)
        fast = fast or SessionAggregator(task.plan, coalesce=coalesce)
    aggregator.vectorized = fast
    aggregator.store = fast.store if isinstance(fast, VectorizedAggregator) else None
    aggregator.in_dict = aggregator._key_records = aggregator.store is None
    if isinstance(aggregator.store, KeyedStateStore):
        # chunks of two slots, so that streams this small meet chunk records and deltas
        aggregator.store.chunk_slots = 2
    elif aggregator.store is not None:
        # small changelog chunks and early renumbering, so that streams this small meet them
        aggregator.store.chunk_bits = 1
        aggregator.store.spare_groups = 2
    return aggregator


def states_of(aggregator: Aggregator) -> list[tuple[Any, Any]]:
    """The (group, window) states in key order, from whichever form holds them."""
    states = aggregator.states
    if not aggregator.in_dict:
        assert aggregator.store is not None
        assert not states
        states = aggregator.store.to_dict()
    return sorted(states.items(), key=repr)


def sessions_of(aggregator: Aggregator) -> list[tuple[Any, Any]]:
    """Each group's sessions, in order (a group without any may have an empty list or none)."""
    return sorted((g, sorted(s)) for g, s in aggregator.sessions.items() if s)


def same(a: Any, b: Any) -> bool:
    """Equal, NaN included, and of the same types (repr tells 0 from 0.0 and -0.0)."""
    return repr(a) == repr(b)


def records_of(out: Outputs) -> list[tuple[Any, Any, Any]]:
    keys = [k for a in out.keys for k in a.to_pylist()]
    values = [v for a in out.values for v in a.to_pylist()]
    stamps = [t for a in out.timestamps for t in a.to_pylist()]
    return list(zip(keys, values, stamps, strict=True))


def check(pair: Pair, plan: list[Step], coalesce: bool) -> None:
    reference = Side(pair.reference, coalesce, reference=True)
    fast = Side(pair.fast, coalesce)
    offset = 0
    for step in plan:
        ref_frame = make_frame(reference.task, step.rows, offset)
        fast_frame = make_frame(fast.task, step.rows, offset)
        before, fast_before = len(reference.changes), len(fast.changes)
        ref_out = reference.run(ref_frame, step, offset)
        fast_out = fast.run(fast_frame, step, offset)
        offset += len(step.rows)
        assert same(fast.changes[fast_before:], reference.changes[before:])
        assert same(records_of(fast_out), records_of(ref_out))
        expected = states_of(reference.aggregator)
        assert same(states_of(fast.aggregator), expected)
        assert sessions_of(fast.aggregator) == sessions_of(reference.aggregator)
        assert reference.aggregator.present == fast.aggregator.present
        assert reference.task.stream_time == fast.task.stream_time
        assert ref_out.errors == fast_out.errors
        assert pickle.loads(fast_out.changelog[STREAM_TIME_KEY]) == reference.task.stream_time
        # a restart from either changelog brings the same state back
        for side in (reference, fast):
            restored = side.restored()
            assert same(states_of(restored), expected)
            assert sessions_of(restored) == sessions_of(reference.aggregator)
            assert restored.present == reference.aggregator.present


# -- the properties --------------------------------------------------------------------------

SETTINGS = settings(
    max_examples=int(os.environ.get("HISPEED_HYPOTHESIS_EXAMPLES", "50")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("query", sorted(QUERIES))
@pytest.mark.parametrize("window", sorted(WINDOWS))
@SETTINGS
@given(data=st.data())
def test_per_record_changes_match_the_reference(
    pairs: dict[tuple[str, str], Pair], window: str, query: str, data: st.DataObject
) -> None:
    check(pairs[window, query], data.draw(steps(query)), coalesce=False)


@pytest.mark.parametrize("query", ["edges", "wide"])
@pytest.mark.parametrize("window", sorted(WINDOWS))
@SETTINGS
@given(data=st.data())
def test_coalesced_changes_match_the_reference(
    pairs: dict[tuple[str, str], Pair], window: str, query: str, data: st.DataObject
) -> None:
    check(pairs[window, query], data.draw(steps(query)), coalesce=True)


# -- examples --------------------------------------------------------------------------------


def test_the_fast_path_takes_ordinary_batches(pairs: dict[tuple[str, str], Pair]) -> None:
    side = Side(pairs["hopping", "wide"].fast, coalesce=False)
    rows = [("a", 1, 5, 0.5, 1, 3), ("b", 2, 7, 1.5, 2, 12), ("a", 1, 9, None, 3, 8)]
    out = side.run(make_frame(side.task, rows, 0), Step(rows, True, False), 0)
    assert side.fast_batches == 1
    assert len(records_of(out)) == len(side.changes) > 3  # each record is in several windows


def test_a_nan_reaching_min_takes_the_reference_path(
    pairs: dict[tuple[str, str], Pair],
) -> None:
    side = Side(pairs["none", "wide"].fast, coalesce=False)
    rows = [("a", 1, 5, 1.0, 1, 3), ("a", 1, 5, math.nan, 1, 4)]
    side.run(make_frame(side.task, rows, 0), Step(rows, True, False), 0)
    assert side.fast_batches == 0
    assert [c.results[12] for c in side.changes] == [1.0, 1.0]  # MIN(d): min() keeps the first


def test_accumulate_is_sequential_per_key() -> None:
    from hispeed.ops.aggregate_kernels import Segments

    rng = np.random.default_rng(1)
    keys = np.sort(rng.integers(0, 50, 5000))
    values = rng.random(5000) * 10.0 ** rng.integers(-5, 15, 5000)
    starts = np.flatnonzero(np.r_[True, np.diff(keys) != 0])
    lengths = np.diff(np.r_[starts, len(keys)])
    segments = Segments(starts, lengths, np.repeat(np.arange(len(starts)), lengths))
    init = rng.random(len(starts))
    got = segments.accumulate(np.add, values, init)
    for s, n, i0 in zip(starts.tolist(), lengths.tolist(), init.tolist(), strict=True):
        acc = i0
        for k in range(s, s + n):
            acc += float(values[k])
            assert got[k] == acc

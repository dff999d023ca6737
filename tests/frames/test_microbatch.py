"""Micro-batch triggers and Spark's output modes (docs/microbatch.md).

Each test of the output-mode table is one row of the table in docs/microbatch.md: a tumbling
window of 10 s with a grace of 5 s (Spark's watermark delay), fed in batches run by a
processing-time trigger on a controllable clock, and the sink topic's records read after each
batch and decoded here, independently of the engine (a KAFKA STRING key followed by the
window start as an 8-byte big-endian long, a JSON value).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hispeed import Trigger, col, window
from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError
from hispeed.runtime.trigger import TriggeredTask

SOURCE = (
    "CREATE STREAM ev (k STRING KEY, v INT) "
    "WITH (kafka_topic='ev', value_format='JSON', partitions=1);"
)


class Clock:
    """A clock the test moves (seconds)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "data", properties={"query.max.poll.records": 2})
    e.execute(SOURCE)
    yield e
    e.close()


def _task(engine: Engine, query_id: str) -> TriggeredTask:
    task = engine.runtime.tasks[query_id]
    assert isinstance(task, TriggeredTask)
    return task


def _decode(record: dict[str, Any]) -> tuple[str, int, int | None]:
    """(key, window start in s, N) of a windowed sink record; N None for a tombstone."""
    key: bytes = record["key"]
    (start,) = struct.unpack(">q", key[-8:])
    value = record["value"]
    return key[:-8].decode(), start // 1000, None if value is None else json.loads(value)["N"]


class Sink:
    """The sink topic's records, read in the pieces each batch appended."""

    def __init__(self, engine: Engine, topic: str) -> None:
        self.engine, self.topic, self.seen = engine, topic, 0

    def records(self) -> list[dict[str, Any]]:
        """The records appended since the last call."""
        end = self.engine.log.offsets(self.topic, 0)[1]
        batches = self.engine.log.read(self.topic, 0, self.seen, max_records=end - self.seen)
        self.seen = end
        return [r for b in batches for r in b.to_pylist() if r["offset"] < end]

    def new(self) -> list[tuple[str, int, int | None]]:
        """The windowed records appended since the last call, decoded."""
        return [_decode(r) for r in self.records()]


def _start(engine: Engine, output_mode: str) -> tuple[Clock, Sink]:
    stats = (
        engine.frame("ev")
        .group_by("k", window=window.tumbling("10s", grace="5s"))
        .agg(n=col("*").count())
    )
    qid = stats.to_table("stats", trigger=Trigger.processing_time("5s"), output_mode=output_mode)
    clock = Clock()
    _task(engine, qid).clock = clock
    return clock, Sink(engine, "STATS")


def _batch(engine: Engine, clock: Clock, *seconds: int) -> None:
    """Records of key a at these event times (s), then the next trigger's batch."""
    engine.insert_many("ev", [{"K": "a", "V": 1, "ROWTIME": s * 1000} for s in seconds])
    engine.drain()
    clock.now += 5.0
    engine.drain()


def _table(engine: Engine) -> list[tuple[int, int]]:
    rows = engine.query("SELECT * FROM stats WHERE k = 'a';")
    return sorted((r["WINDOWSTART"] // 1000, r["N"]) for r in rows)


# -- the output-mode table: one test per row ------------------------------------------------


def test_append_on_time(engine: Engine) -> None:
    clock, sink = _start(engine, "append")
    _batch(engine, clock, 1, 2)
    assert sink.new() == []  # the window is open: append says nothing yet
    _batch(engine, clock, 16)  # stream time 16 >= 10 + 5: [0, 10) is final
    assert sink.new() == [("a", 0, 2)]
    _batch(engine, clock, 17)
    assert sink.new() == []  # once only; [10, 20) still open


def test_append_late_within_watermark(engine: Engine) -> None:
    clock, sink = _start(engine, "append")
    _batch(engine, clock, 1, 12)
    _batch(engine, clock, 3)  # late (stream time 12) but before 10 + 5: counted
    assert sink.new() == []
    _batch(engine, clock, 20)
    assert sink.new() == [("a", 0, 2)]


def test_append_too_late(engine: Engine) -> None:
    clock, sink = _start(engine, "append")
    _batch(engine, clock, 1, 16)
    assert sink.new() == [("a", 0, 1)]
    _batch(engine, clock, 2)  # its window was output final already: dropped
    assert sink.new() == []
    _batch(engine, clock, 31)
    assert sink.new() == [("a", 10, 1)]  # and [0, 10) never again


def test_update_on_time(engine: Engine) -> None:
    clock, sink = _start(engine, "update")
    _batch(engine, clock, 1, 2)
    assert sink.new() == [("a", 0, 2)]  # two records, one changed row per trigger
    _batch(engine, clock, 16)
    assert sink.new() == [("a", 10, 1)]  # only what changed


def test_update_late_within_watermark(engine: Engine) -> None:
    clock, sink = _start(engine, "update")
    _batch(engine, clock, 1, 12)
    assert sorted(sink.new()) == [("a", 0, 1), ("a", 10, 1)]
    _batch(engine, clock, 3)
    assert sink.new() == [("a", 0, 2)]


def test_update_too_late(engine: Engine) -> None:
    clock, sink = _start(engine, "update")
    _batch(engine, clock, 1, 16)
    assert sorted(sink.new()) == [("a", 0, 1), ("a", 10, 1)]
    _batch(engine, clock, 2)
    assert sink.new() == []
    assert _table(engine) == [(0, 1), (10, 1)]


def test_complete_on_time(engine: Engine) -> None:
    clock, sink = _start(engine, "complete")
    _batch(engine, clock, 1, 2)
    assert _table(engine) == [(0, 2)]
    _batch(engine, clock, 16)
    assert _table(engine) == [(0, 2), (10, 1)]  # the whole result, old windows too
    assert sink.new() == [("a", 0, 2), ("a", 10, 1)]


def test_complete_late_within_watermark(engine: Engine) -> None:
    clock, sink = _start(engine, "complete")
    _batch(engine, clock, 1, 12)
    sink.new()
    _batch(engine, clock, 3)
    assert sink.new() == [("a", 0, 2)]
    assert _table(engine) == [(0, 2), (10, 1)]


def test_complete_too_late(engine: Engine) -> None:
    clock, sink = _start(engine, "complete")
    _batch(engine, clock, 1, 16)
    sink.new()
    _batch(engine, clock, 2)  # complete mode keeps every window: still counted
    assert sink.new() == [("a", 0, 2)]
    assert _table(engine) == [(0, 2), (10, 1)]


# -- triggers -------------------------------------------------------------------------------


def _counts(engine: Engine, trigger: Trigger) -> tuple[TriggeredTask, Sink]:
    stats = engine.frame("ev").group_by("k").agg(n=col("*").count())
    qid = stats.to_table("counts", trigger=trigger, output_mode="update")
    return _task(engine, qid), Sink(engine, "COUNTS")


def _values(sink: Sink) -> list[int]:
    """N of each new record of the unwindowed COUNTS (key a)."""
    records = sink.records()
    assert all(r["key"] == b"a" for r in records)
    return [json.loads(r["value"])["N"] for r in records]


def _insert(engine: Engine, n: int, first: int = 0) -> None:
    engine.insert_many("ev", [{"K": "a", "V": i, "ROWTIME": i} for i in range(first, first + n)])


def test_processing_time_runs_a_batch_per_interval(engine: Engine) -> None:
    task, sink = _counts(engine, Trigger.processing_time("5s"))
    clock = Clock()
    task.clock = clock
    _insert(engine, 5)
    engine.drain()  # the first batch is due at once: all 5, not the poll size of 2
    assert (task.batches, _values(sink)) == (1, [5])
    _insert(engine, 3, 5)
    clock.now += 4.9
    engine.drain()
    assert (task.batches, _values(sink)) == (1, [])  # not due yet: nothing read
    clock.now += 0.1
    engine.drain()
    assert (task.batches, _values(sink)) == (2, [8])
    clock.now += 5
    engine.drain()
    assert task.batches == 2  # nothing arrived: no empty batch


def test_processing_time_with_the_engine_loop(engine: Engine) -> None:
    """The background loop runs a real-clock trigger: records wait for its interval."""
    from hispeed.testing.wait import wait_for

    task, sink = _counts(engine, Trigger.processing_time("200ms"))
    engine.start()
    seen: list[int] = []
    for first in (0, 3):
        _insert(engine, 3, first)  # one append: a batch has all three or none
        want = first + 3
        wait_for(lambda want=want: seen.extend(_values(sink)) or (seen and seen[-1] == want), 30)
    assert (seen, task.batches) == ([3, 6], 2)


def test_available_now_processes_the_backlog_in_poll_sized_batches_then_stops(
    engine: Engine,
) -> None:
    _insert(engine, 5)
    task, sink = _counts(engine, Trigger.available_now())
    engine.drain()
    assert (task.batches, task.finished) == (3, True)  # max.poll.records = 2
    assert _values(sink) == [2, 4, 5]
    _insert(engine, 4, 5)
    engine.drain()
    assert (task.records_in, _values(sink)) == (5, [])  # stopped: what came after waits


def test_once_processes_the_backlog_in_one_batch_and_a_restart_reads_what_came_since(
    tmp_path: Path,
) -> None:
    engine = Engine(tmp_path / "data", properties={"query.max.poll.records": 2})
    engine.execute(SOURCE)
    _insert(engine, 5)
    task, sink = _counts(engine, Trigger.once())
    engine.drain()
    assert (task.batches, task.finished, _values(sink)) == (1, True, [5])
    _insert(engine, 3, 5)
    engine.drain()
    assert _values(sink) == []
    engine.close()
    engine = Engine(tmp_path / "data", properties={"query.max.poll.records": 2})
    try:
        (qid,) = engine.runtime.tasks
        engine.drain()
        again = Sink(engine, "COUNTS")
        again.seen = sink.seen
        assert (_task(engine, qid).batches, _values(again)) == (1, [8])
    finally:
        engine.close()


def test_sql_names_the_trigger(engine: Engine) -> None:
    (result,) = engine.execute(
        "CREATE TABLE c WITH (TRIGGER='once') AS SELECT k, COUNT(*) AS n FROM ev "
        "GROUP BY k EMIT CHANGES;"
    )
    assert _task(engine, result.query_id).trigger.kind == "ONCE"


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ("TRIGGER='sometimes'", "TRIGGER is one of CONTINUOUS, PROCESSING_TIME"),
        ("TRIGGER='processing_time'", "needs TRIGGER_INTERVAL"),
        ("TRIGGER='processing_time', TRIGGER_INTERVAL='0s'", "a duration above 0"),
        ("TRIGGER='once', TRIGGER_INTERVAL='5s'", "goes with TRIGGER='PROCESSING_TIME'"),
    ],
)
def test_a_wrong_trigger_is_said_with_its_place(engine: Engine, props: str, message: str) -> None:
    with pytest.raises(SqlError, match=message) as info:
        engine.execute(
            f"CREATE TABLE c WITH ({props}) AS SELECT k, COUNT(*) AS n FROM ev GROUP BY k;"
        )
    assert "line 1" in str(info.value).lower() or info.value.line == 1
    assert "C" not in engine.catalog.sources


def test_output_modes_refused_where_spark_refuses_them(engine: Engine) -> None:
    counts = engine.frame("ev").group_by("k").agg(n=col("*").count())
    for mode in ("append", "complete"):
        with pytest.raises(HispeedError, match="needs a windowed aggregation"):
            counts.to_table("c", output_mode=mode)
    with pytest.raises(HispeedError, match="output_mode= is one of"):
        counts.to_table("c", output_mode="upsert")
    with pytest.raises(HispeedError, match="not both"):
        counts.to_table("c", emit="final", output_mode="update")


def _state(engine: Engine, query_id: str) -> str:
    (row,) = [q for q in engine.execute("SHOW QUERIES;")[0].rows if q["id"] == query_id]
    assert engine.runtime.state(query_id)[0] == row["state"]
    return str(row["state"])


@pytest.mark.parametrize("trigger", [Trigger.once(), Trigger.available_now()])
def test_a_bounded_query_that_is_done_shows_as_finished(engine: Engine, trigger: Trigger) -> None:
    _insert(engine, 5)
    task, sink = _counts(engine, trigger)
    assert _state(engine, task.id) == "RUNNING"  # its backlog is not processed yet
    engine.drain()
    assert (task.finished, _values(sink)[-1]) == (True, 5)
    assert _state(engine, task.id) == "FINISHED"
    _insert(engine, 2, 5)
    engine.drain()
    assert _state(engine, task.id) == "FINISHED"  # what came after is not read


def test_a_continuous_query_stays_running(engine: Engine) -> None:
    _insert(engine, 5)
    task, _ = _counts(engine, Trigger.processing_time("1s"))
    engine.drain()
    assert (task.batches, _state(engine, task.id)) == (1, "RUNNING")


def test_insert_into_runs_with_a_trigger(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM copied (k STRING KEY, v INT) "
        "WITH (kafka_topic='copied', value_format='JSON', partitions=1);"
    )
    _insert(engine, 5)
    (result,) = engine.execute("INSERT INTO copied WITH (TRIGGER='ONCE') SELECT * FROM ev;")
    task = _task(engine, result.query_id)
    assert task.trigger.kind == "ONCE"
    engine.drain()
    _insert(engine, 3, 5)
    engine.drain()
    copied = Sink(engine, "copied").records()
    assert [json.loads(r["value"])["V"] for r in copied] == [0, 1, 2, 3, 4]  # the 3 wait
    assert (task.batches, _state(engine, task.id)) == (1, "FINISHED")
    with pytest.raises(SqlError, match="needs TRIGGER_INTERVAL"):
        engine.execute("INSERT INTO copied WITH (TRIGGER='PROCESSING_TIME') SELECT * FROM ev;")

"""`Engine.drain()`: until every query has caught up, whatever the backlog; bounded on demand."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from hispeed.engine import Engine

STREAM = (
    "CREATE STREAM s (id STRING KEY, x BIGINT) "
    "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
)
FINAL = (
    "CREATE TABLE t AS SELECT id, COUNT(*) AS n FROM s "
    "WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY id EMIT FINAL;"
)
RECORDS = 60_000  # six polls' worth
KEYS = 7


def backlog(engine: Engine) -> None:
    """RECORDS records, one a second of event time, over KEYS keys."""
    for first in range(0, RECORDS, 20_000):
        ids = range(first, first + 20_000)
        engine.log.append(
            "s",
            pa.record_batch(
                {
                    "key": pa.array([b"k%d" % (i % KEYS) for i in ids], pa.binary()),
                    "value": pa.array([b'{"X":1}'] * 20_000, pa.binary()),
                    "timestamp": pa.array([1_000 * i for i in ids], pa.int64()),
                }
            ),
            partition=0,
        )


def test_drain_catches_up_a_backlog_in_one_call(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(STREAM)
        (result,) = engine.execute(FINAL)
        backlog(engine)
        assert engine.drain() == RECORDS
        task = engine.tasks[str(result.query_id)]
        assert task.consumer.caught_up()
        # every 10 s window that stream time (59,999 s) has closed is output once per key:
        # all but the last
        out = engine.log.read_table("T", 0)
        assert out.num_rows == (RECORDS // 10 - 1) * KEYS
        assert engine.drain() == 0


def test_drain_bounded_by_a_timeout_returns_and_goes_on_later(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(STREAM)
        (result,) = engine.execute(FINAL)
        backlog(engine)
        task = engine.tasks[str(result.query_id)]
        first = engine.drain(timeout=0.0)  # one round: one poll
        assert 0 < first < RECORDS
        assert not task.consumer.caught_up()
        assert engine.drain(max_rounds=1) > 0
        rest = engine.drain()
        assert task.consumer.caught_up()
        assert task.records_in == RECORDS
        assert rest > 0

"""A query's poll size adapts: it doubles while polls come back full (a backlog, where each
batch's fixed costs are spread over more records) up to the largest size, and goes back to
the smallest once a poll is not full (caught up: small batches, low latency). Whatever sizes
the polls take, the query's changes are those it writes polling the smallest size each time,
at the bigger batches' boundaries, and its table ends the same.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pyarrow as pa
import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.runtime import task as task_module

QUERY = "CREATE TABLE t AS SELECT k, COUNT(*) AS c, SUM(v) AS s, AVG(d) AS a FROM s GROUP BY k;"


def start(root: Path) -> Engine:
    engine = Engine(root, fsync="never")
    engine.execute(
        "CREATE STREAM s (k STRING, v BIGINT, d DOUBLE) "
        "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
    )
    engine.execute(QUERY)
    return engine


def feed(engine: Engine, n: int, first: int = 0) -> None:
    encoder = msgspec.json.Encoder()
    values = [
        encoder.encode({"K": f"k{i % 37}", "V": i % 11, "D": i / 8})
        for i in range(first, first + n)
    ]
    engine.log.append(
        "s",
        pa.record_batch(
            {
                "key": pa.nulls(n, pa.binary()),
                "value": pa.array(values, pa.binary()),
                "timestamp": pa.array(list(range(first, first + n)), pa.int64()),
            }
        ),
        partition=0,
    )


def sink(engine: Engine) -> list[tuple[Any, Any, Any]]:
    table = engine.log.read_table("T", 0)
    return list(
        zip(
            table.column("key").to_pylist(),
            table.column("value").to_pylist(),
            table.column("timestamp").to_pylist(),
            strict=True,
        )
    )


def test_polls_grow_through_a_backlog_and_shrink_when_caught_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(task_module, "POLL_RECORDS", (10, 80))
    adaptive, fixed = start(tmp_path / "adaptive"), start(tmp_path / "fixed")
    try:
        for engine in (adaptive, fixed):
            feed(engine, 400)
        (task,) = adaptive.tasks.values()
        sizes = []
        while (got := task.poll()) > 0:
            sizes.append(got)
        assert sizes == [10, 20, 40, 80, 80, 80, 80, 10]
        assert task.poll_records == 10  # the last poll was not full: back to the smallest
        feed(adaptive, 15, first=400)
        assert task.poll() == 10  # a small input: small polls
        assert task.poll() == 5

        (reference,) = fixed.tasks.values()
        feed(fixed, 15, first=400)
        while reference.poll(max_records=10) > 0:
            pass
        assert reference.poll_records == 10  # a given size leaves the adaptive one alone
        got, want = sink(adaptive), sink(fixed)
        # a batch writes each of its keys' last change: every boundary of the adaptive polls
        # is one of the fixed polls', so its changes are some of theirs, in the same order
        rest = iter(want)
        assert all(change in rest for change in got)
        assert dict((k, v) for k, v, _ in got) == dict((k, v) for k, v, _ in want)
        assert len({k for k, _, _ in got}) == 37
        assert adaptive.query("SELECT * FROM t") == fixed.query("SELECT * FROM t")
    finally:
        adaptive.close()
        fixed.close()


def test_the_largest_poll_is_a_property(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_module, "POLL_RECORDS", (10, 80))
    with Engine(tmp_path / "d", fsync="never", properties={"query.max.poll.records": 25}) as e:
        e.execute(
            "CREATE STREAM s (k STRING, v BIGINT, d DOUBLE) "
            "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
        )
        e.execute(QUERY)
        feed(e, 100)
        (task,) = e.tasks.values()
        sizes = []
        while (got := task.poll()) > 0:
            sizes.append(got)
        assert sizes == [10, 20, 25, 25, 20]
        with pytest.raises(HispeedError, match=r"query.max.poll.records must be a whole number"):
            e.execute(
                "CREATE TABLE u AS SELECT k, COUNT(*) AS c FROM s GROUP BY k;",
                {"query.max.poll.records": "many"},
            )

"""Nexmark q12 and processing-time windows (`DESCRIPTOR(PROCTIME())`, past ksqlDB): a record's
window is the wall-clock time the query reads it, so the tests check what holds whatever the
machine's speed: every bid counted once, windows within the wall-clock span of the run, and
batches read in different seconds in different windows."""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from hispeed.bench.nexmark import outputs, run_query
from hispeed.demo.nexmark import Events, NexmarkGenerator, fill_log
from hispeed.engine import Engine
from hispeed.errors import SqlError
from hispeed.testing.wait import wait_for

#: this file's own DuckDB database (the process-wide default one is shared by every test)
DUCK = duckdb.connect()

EVENTS = 10_000


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.mark.slow
def test_q12_counts_each_bid_once_in_windows_of_processing_time(tmp_path: Path) -> None:
    events: Events = NexmarkGenerator(42).events(EVENTS)
    bid = events.bid  # noqa: F841 (duckdb)
    expected = dict(DUCK.sql("select bidder, count(*) from bid group by bidder").fetchall())
    with Engine(tmp_path / "data", properties={"query.max.poll.records": 1000}) as engine:
        fill_log(engine.log, EVENTS)
        before = _now_ms()
        run_query(engine, "q12")
        after = _now_ms()
        table = outputs(engine, "q12")
    final: dict[bytes, dict[str, int]] = {}
    for k, v in zip(
        table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
    ):
        final[k] = json.loads(v)
    got: Counter[int] = Counter()
    for key, value in final.items():
        # a windowed key: the JSON key (one column: the bidder itself), then the window's
        # start (8 bytes, as Kafka Streams writes it)
        start = int.from_bytes(key[-8:], "big")
        got[json.loads(key[:-8])] += value["BID_COUNT"]
        assert value["STARTTIME"] == start
        # the wall clock's 10-second windows while the query ran, not the bids' own times
        assert start % 10_000 == 0
        assert value["ENDTIME"] == start + 10_000
        assert before // 10_000 * 10_000 <= start <= after
    assert got == expected


def test_batches_read_in_different_seconds_fall_in_different_windows(tmp_path: Path) -> None:
    with Engine(tmp_path / "d") as e:
        e.execute(
            "CREATE STREAM s (k STRING KEY, v BIGINT, t BIGINT) WITH (kafka_topic='s', "
            "value_format='JSON', partitions=1, timestamp='t');"
        )
        e.execute(
            "CREATE TABLE c WITH (key_format='JSON') AS SELECT k, COUNT(*) AS n, "
            "window_start AS w FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(PROCTIME()), "
            "INTERVAL '1' SECOND)) GROUP BY k, window_start, window_end EMIT CHANGES;"
        )
        spans = []
        for count in (3, 2):
            # event times far in the past: they decide nothing here
            e.log.append(
                "s", [(b"a", json.dumps({"V": i, "T": 1000 + i}).encode()) for i in range(count)]
            )
            before = _now_ms()
            e.drain()
            after = _now_ms()
            spans.append((before // 1000 * 1000, after // 1000 * 1000))
            # the next batch is read in a later second of the wall clock
            second = after // 1000 * 1000
            wait_for(lambda second=second: _now_ms() // 1000 * 1000 > second, timeout=5)
        table = e.log.read_table("C", 0)
    final = {}
    for k, v in zip(
        table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
    ):
        final[k] = json.loads(v)
    windows = sorted((v["W"], v["N"]) for v in final.values())
    assert [n for _, n in windows] == [3, 2]
    for (start, _), (low, high) in zip(windows, spans, strict=True):
        assert low <= start <= high


def test_proctime_is_refused_where_a_column_is_meant(tmp_path: Path) -> None:
    with Engine(tmp_path / "d") as e:
        e.execute(
            "CREATE STREAM s (k STRING KEY, v BIGINT) WITH (kafka_topic='s', "
            "value_format='JSON', partitions=1);"
        )
        with pytest.raises(SqlError) as caught:
            e.execute(
                "CREATE TABLE c AS SELECT k, COUNT(*) AS n FROM TABLE(TUMBLE(TABLE s,\n"
                "  DESCRIPTOR(PROCTIME), INTERVAL '1' SECOND)) GROUP BY k, window_start, "
                "window_end;"
            )
    assert (caught.value.line, caught.value.column) == (2, 14)
    assert "or PROCTIME() for the processing time" in str(caught.value)

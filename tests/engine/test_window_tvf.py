"""Window table functions (TUMBLE, HOP, SESSION) run over Nexmark's bids, each query's output
compared with DuckDB's computation of Flink's semantics over the same rows (decoded with
`json`, not hispeed): one row per window and group once stream time passes the window's end."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pytest

from hispeed.bench.nexmark import examples_dir
from hispeed.demo.nexmark import NexmarkGenerator, fill_log
from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError

#: this file's own DuckDB database (the process-wide default one is shared by every test)
DUCK = duckdb.connect()

EVENTS = 5_000


@pytest.fixture(scope="module")
def bid() -> pa.Table:
    return NexmarkGenerator(42).events(EVENTS).bid


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Engine(tmp_path / "data") as engine:
        fill_log(engine.log, EVENTS)
        engine.execute((examples_dir() / "sources.sql").read_text())
        yield engine


@pytest.fixture
def declared(tmp_path: Path) -> Iterator[Engine]:
    """Nexmark's sources declared, over a few events."""
    with Engine(tmp_path / "data") as engine:
        fill_log(engine.log, 50)
        engine.execute((examples_dir() / "sources.sql").read_text())
        yield engine


def _vectorized(engine: Engine) -> bool:
    """Whether the newest query's aggregation ran on the vectorized path: its states are in
    the fast path's columns, not the reference path's per-key dictionary."""
    task = list(engine.tasks.values())[-1]
    aggregator = task.aggregator
    return aggregator is not None and aggregator.vectorized is not None and not aggregator.in_dict


def _outputs(engine: Engine, statement: str) -> list[dict[str, Any]]:
    """The values the statement's query writes, with its key's BIGINT (KAFKA format, before
    the window's bounds) as KEY."""
    result = engine.execute(statement)[-1]
    task = engine.tasks[str(result.query_id)]
    while not task.consumer.caught_up():
        engine.drain()
    engine.drain()
    name = statement.split()[2].upper()
    table = engine.log.read_table(name, 0)
    return [
        {**json.loads(v), "KEY": int.from_bytes(k[:8], "big", signed=True) if k else None}
        for k, v in zip(
            table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
        )
    ]


def _closed(bid: pa.Table, sql: str) -> set[tuple[Any, ...]]:
    """DuckDB's rows of `sql` whose window (its first two columns after the key: start, end)
    stream time, the newest bid's time, has passed."""
    now = max(bid.column("dateTime").to_pylist())
    return {r for r in DUCK.sql(sql).fetchall() if r[2] <= now}


def test_tumble_window_aggregation_matches_duckdb(engine: Engine, bid: pa.Table) -> None:
    got = _outputs(
        engine,
        "CREATE TABLE t AS SELECT auction, window_start, window_end, COUNT(*) AS n, "
        "MAX(price) AS top, SUM(price) AS total "
        "FROM TABLE(TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '20' MILLISECONDS)) "
        "GROUP BY window_start, window_end, auction;",
    )
    expected = _closed(
        bid,
        "select auction, dateTime // 20 * 20 as s, s + 20, count(*), max(price), "
        "sum(price) from bid group by all",
    )
    rows = [
        (r["KEY"], r["WINDOW_START"], r["WINDOW_END"], r["N"], r["TOP"], r["TOTAL"]) for r in got
    ]
    assert _vectorized(engine)
    # one row per window and auction (EMIT FINAL), every closed window
    assert len(rows) == len(set(rows))
    assert set(rows) == expected
    assert len(expected) > 100


def test_hop_window_aggregation_by_the_window_alone_matches_duckdb(
    engine: Engine, bid: pa.Table
) -> None:
    got = _outputs(
        engine,
        "CREATE TABLE h AS SELECT window_start, window_end, window_time, COUNT(*) AS n, "
        "MAX(price) AS top FROM HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' MILLISECOND, "
        "INTERVAL '30' MILLISECONDS) GROUP BY window_start, window_end;",
    )
    # each bid in the three windows that start in the 30 ms up to it, one each 10 ms
    expected = _closed(
        bid,
        "select 0, s, s + 30, s + 29, count(*), max(price) from (select price, "
        "unnest(range(dateTime // 10 * 10 - 20, dateTime // 10 * 10 + 1, 10)) "
        "as s from bid) group by all",
    )
    rows = {
        (0, r["WINDOW_START"], r["WINDOW_END"], r["WINDOW_TIME"], r["N"], r["TOP"]) for r in got
    }
    assert _vectorized(engine)
    assert len(got) == len(rows)
    assert rows == expected
    assert len(expected) > 10


def test_session_window_aggregation_matches_duckdb(engine: Engine, bid: pa.Table) -> None:
    got = _outputs(
        engine,
        "CREATE TABLE s AS SELECT bidder, window_start, window_end, COUNT(*) AS n "
        "FROM SESSION(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '10' MILLISECONDS) "
        "GROUP BY bidder, window_start, window_end;",
    )
    # Flink's session: a bid joins its bidder's session while less than the gap after its
    # last bid; the session ends a gap after its last bid
    expected = _closed(
        bid,
        "with marked as (select bidder, dateTime, case when dateTime - lag(dateTime) over "
        "(partition by bidder order by dateTime) < 10 then 0 else 1 end as new from bid), "
        "numbered as (select *, sum(new) over (partition by bidder order by dateTime "
        "rows unbounded preceding) as n from marked) "
        "select bidder, min(dateTime), max(dateTime) + 10, count(*) from numbered "
        "group by bidder, n",
    )
    rows = {(r["KEY"], r["WINDOW_START"], r["WINDOW_END"], r["N"]) for r in got}
    assert len(got) == len(rows)
    assert rows == expected
    assert any(n > 1 for *_, n in expected)


def test_tumble_without_aggregation_adds_each_rows_window(engine: Engine, bid: pa.Table) -> None:
    got = _outputs(
        engine,
        "CREATE STREAM w AS SELECT * FROM TUMBLE(TABLE bid, DESCRIPTOR(dateTime), "
        "INTERVAL '100' MILLISECOND, INTERVAL '30' MILLISECOND) WHERE price > 1000;",
    )
    expected = DUCK.sql(
        "select auction, bidder, price, dateTime, (dateTime - 30) // 100 * 100 + 30 "
        "as s, s + 100, s + 99 from bid where price > 1000"
    ).fetchall()
    rows = [
        (
            r["AUCTION"],
            r["BIDDER"],
            r["PRICE"],
            r["DATETIME"],
            r["WINDOW_START"],
            r["WINDOW_END"],
            r["WINDOW_TIME"],
        )
        for r in got
    ]
    assert sorted(rows) == sorted(expected)


@pytest.mark.parametrize(
    ("call", "windows", "per_row"),
    [
        # Flink's HOP: the windows [offset + k * slide, + size) that hold the row's time, 3
        # or 4 a row here
        (
            "HOP(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '30' MILLISECOND, "
            "INTERVAL '100' MILLISECOND, INTERVAL '7' MILLISECOND)",
            "select auction, dateTime, s, s + 100, s + 99 from (select auction, dateTime, "
            "unnest(range((dateTime - 7) // 30 * 30 + 7 - 90, dateTime + 1, 30)) as s "
            "from bid) where s <= dateTime and dateTime < s + 100",
            3,
        ),
        # Flink's CUMULATE: windows from each 100 ms start, ending every 25 ms up to 100 ms;
        # a row is in those that end after it
        (
            "CUMULATE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '25' MILLISECOND, "
            "INTERVAL '100' MILLISECOND)",
            "select auction, dateTime, dateTime // 100 * 100 as s, e, e - 1 from (select *, "
            "unnest(range(dateTime // 100 * 100 + 25, dateTime // 100 * 100 + 101, 25)) as e "
            "from bid) where e > dateTime",
            1,
        ),
    ],
)
def test_hop_and_cumulate_without_aggregation_give_a_row_per_window(
    engine: Engine, bid: pa.Table, call: str, windows: str, per_row: int
) -> None:
    got = _outputs(
        engine,
        "CREATE STREAM rw AS SELECT auction, dateTime, window_start, window_end, window_time "
        f"FROM {call};",
    )
    rows = [
        (r["AUCTION"], r["DATETIME"], r["WINDOW_START"], r["WINDOW_END"], r["WINDOW_TIME"])
        for r in got
    ]
    assert sorted(rows) == sorted(DUCK.sql(windows).fetchall())
    assert len(rows) > per_row * bid.num_rows


def test_the_descriptor_column_is_the_event_time(engine: Engine) -> None:
    # bids' record time is their dateTime; windowing another column windows by it instead
    engine.execute(
        "CREATE STREAM later AS SELECT auction, price, dateTime + 86400000 AS tomorrow FROM bid;"
    )
    got = _outputs(
        engine,
        "CREATE TABLE d AS SELECT window_start, COUNT(*) AS n FROM TUMBLE(TABLE later, "
        "DESCRIPTOR(tomorrow), INTERVAL '1' DAY) GROUP BY window_start, window_end "
        "EMIT CHANGES;",
    )
    bids = NexmarkGenerator(42).events(EVENTS).bid
    day = min(bids.column("dateTime").to_pylist()) // 86_400_000 * 86_400_000
    assert {r["WINDOW_START"] for r in got} == {day + 86_400_000}


@pytest.mark.parametrize(
    ("statement", "place", "words"),
    [
        (
            "SELECT COUNT(*) FROM TUMBLE(TABLE bid,\n DESCRIPTOR(channel), INTERVAL '1' SECOND) "
            "GROUP BY window_start, window_end;",
            (2, 13),
            "DESCRIPTOR(CHANNEL) must name a column of event time, a TIMESTAMP or a BIGINT of "
            "epoch milliseconds; CHANNEL is STRING",
        ),
        (
            "SELECT COUNT(*) FROM TUMBLE(TABLE bid, DESCRIPTOR(nope), INTERVAL '1' SECOND) "
            "GROUP BY window_start, window_end;",
            (1, 51),
            "DESCRIPTOR(NOPE) names no column of BID",
        ),
        (
            "SELECT auction, COUNT(*) FROM TUMBLE(TABLE bid, DESCRIPTOR(dateTime), "
            "INTERVAL '1' SECOND) GROUP BY auction, window_start;",
            (1, 101),
            "groups by window_start and window_end (GROUP BY window_start, window_end, ...); "
            "window_end is missing",
        ),
        (
            "SELECT COUNT(*) FROM TUMBLE(TABLE person, DESCRIPTOR(dateTime), INTERVAL '1' "
            "SECOND) GROUP BY window_start, window_end;",
            (1, 35),
            "TUMBLE windows a stream; PERSON is a table",
        ),
    ],
)
def test_mistakes_are_refused_at_their_place(
    declared: Engine, statement: str, place: tuple[int, int], words: str
) -> None:
    kind = "STREAM" if "GROUP BY" not in statement else "TABLE"
    with pytest.raises(SqlError) as err:
        declared.execute(f"CREATE {kind} e AS\n{statement}")
    assert (err.value.line - 1, err.value.column) == place
    assert words in str(err.value)


def test_a_pull_query_over_a_window_function_says_how_to_push(declared: Engine) -> None:
    with pytest.raises(HispeedError, match="add EMIT FINAL"):
        declared.execute(
            "SELECT COUNT(*) FROM TUMBLE(TABLE bid, DESCRIPTOR(dateTime), INTERVAL '1' SECOND) "
            "GROUP BY window_start, window_end;"
        )


def test_windows_close_once_with_late_rows_dropped_and_none_lost_to_a_jump(
    declared: Engine,
) -> None:
    declared.execute(
        "CREATE STREAM s (k BIGINT, t BIGINT) WITH (kafka_topic='s', value_format='JSON', "
        "partitions=1);"
    )
    # 11000 closes [0, 10000); 2000 is then late; 41000 jumps 3 windows past [10000, 20000),
    # which is output all the same (ksqlDB's EMIT FINAL store would have dropped it)
    for t in (1000, 3000, 11000, 2000, 41000):
        declared.execute(f"INSERT INTO s (k, t) VALUES (1, {t});")
    got = _outputs(
        declared,
        "CREATE TABLE c AS SELECT k, window_start, window_end, COUNT(*) AS n "
        "FROM TUMBLE(TABLE s, DESCRIPTOR(t), INTERVAL '10' SECOND) "
        "GROUP BY window_start, window_end, k;",
    )
    assert [(r["KEY"], r["WINDOW_START"], r["WINDOW_END"], r["N"]) for r in got] == [
        (1, 0, 10000, 2),
        (1, 10000, 20000, 1),
    ]


def test_a_timestamp_descriptor_gives_timestamp_window_columns(declared: Engine) -> None:
    declared.execute(
        "CREATE STREAM ts_s (k BIGINT, ts TIMESTAMP) WITH (kafka_topic='ts_s', "
        "value_format='JSON', partitions=1);"
    )
    for t in ("2026-01-01T00:00:01", "2026-01-01T00:00:03", "2026-01-01T00:00:12"):
        declared.execute(f"INSERT INTO ts_s (k, ts) VALUES (1, '{t}');")
    got = _outputs(
        declared,
        "CREATE TABLE tc AS SELECT k, window_start, window_end, window_time, COUNT(*) AS n "
        "FROM TUMBLE(TABLE ts_s, DESCRIPTOR(ts), INTERVAL '10' SECOND) "
        "GROUP BY window_start, window_end, k;",
    )
    sink = declared.catalog.sources["TC"]
    assert {sink.column(n).type.name for n in ("WINDOW_START", "WINDOW_END", "WINDOW_TIME")} == {
        "TIMESTAMP"
    }
    start = 1_767_225_600_000  # 2026-01-01T00:00:00Z, as JSON writes a TIMESTAMP
    assert [(r["WINDOW_START"], r["WINDOW_END"], r["WINDOW_TIME"], r["N"]) for r in got] == [
        (start, start + 10_000, start + 9_999, 2)
    ]

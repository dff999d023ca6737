"""A window table function's windows close on the watermark over the input's partitions, as
Flink's: the least of each partition's newest event time, so a partition that runs ahead
never closes a window another partition still has rows for. A 2-partition stream whose
partition 0 runs a few windows ahead of partition 1, through TUMBLE, HOP and CUMULATE window
aggregation, window Top-N and a window join, across a restart, checked against DuckDB's
computation of those rules; and the idle timeout (`table.exec.source.idle-timeout`), decided
by an injected clock, never by waiting."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.ops.watermark import IDLE_TIMEOUT_PROPERTY
from hispeed.testing.windows import TVF_CALLS, kept_windows_sql, watermark_sql

STREAM = (
    "CREATE STREAM s (id STRING KEY, g STRING, v BIGINT, t BIGINT) WITH "
    "(kafka_topic='s', partitions=2, value_format='JSON', timestamp='t');"
)
#: the stream joined with `s`
OTHER = (
    "CREATE STREAM o (id STRING KEY, w BIGINT, t BIGINT) WITH "
    "(kafka_topic='o', partitions=2, value_format='JSON', timestamp='t');"
)
#: an idle timeout far longer than any test runs: a partition holds the watermark back
NEVER_IDLE = {IDLE_TIMEOUT_PROPERTY: 3_600_000}

Batch = tuple[str, int, list[dict[str, Any]]]


def _feed(topics: tuple[tuple[str, int], ...] = (("s", 0), ("s", 1))) -> list[Batch]:
    """Batches of one partition at a time (so rows are read in the order given): each
    partition's times mostly rising, some rows up to 150 ms early; partition 0 of `s` runs
    300 ms ahead of the others, so the newest time of all closes windows they still fill."""
    rng = random.Random(11)
    clocks = {tp: 1000 + (300 if tp == ("s", 0) else 0) for tp in topics}
    batches = []
    for b in range(200):
        topic, partition = topics[rng.randrange(len(topics))]
        rows = []
        for i in range(rng.randrange(1, 5)):
            clocks[topic, partition] += rng.randrange(12)
            back = rng.randrange(150) if rng.random() < 0.2 else 0
            rows.append(
                {
                    "ID": f"{topic}{partition}.{b}.{i}",
                    "G": f"g{rng.randrange(3)}",
                    "V": rng.randrange(1000),
                    "W": rng.randrange(1000),
                    "T": clocks[topic, partition] - back,
                }
            )
        batches.append((topic, partition, rows))
    return batches


def _append(engine: Engine, topic: str, partition: int, rows: list[dict[str, Any]]) -> None:
    records = [(r["G"].encode(), json.dumps(r).encode()) for r in rows]
    engine.log.append(topic, records, partition=partition)
    engine.drain()


def _records(engine: Engine, sink: str) -> list[dict[str, Any]]:
    """The sink's records, of both its partitions (a window's key decides its partition)."""
    return [r for p in (0, 1) for r in engine.log.read_table(sink, p).to_pylist()]


def _ends(engine: Engine) -> list[tuple[int, int]]:
    """Each window `c` has written: its end and its count, by end."""
    values = [json.loads(r["value"]) for r in _records(engine, "C")]
    return sorted((v["WINDOW_END"], v["N"]) for v in values)


def _run(tmp_path: Path, streams: str, query: str, batches: list[Batch], sink: str) -> Any:
    """The sink's records after the batches, the first half before a restart; and how many
    were written before it."""
    half = len(batches) // 2
    with Engine(tmp_path / "data", properties=NEVER_IDLE) as engine:
        engine.execute(streams)
        engine.execute(query)
        for topic, partition, rows in batches[:half]:
            _append(engine, topic, partition, rows)
        first = len(_records(engine, sink))
    with Engine(tmp_path / "data", properties=NEVER_IDLE) as engine:
        for topic, partition, rows in batches[half:]:
            _append(engine, topic, partition, rows)
        return _records(engine, sink), first


def _table(batches: list[Batch]) -> duckdb.DuckDBPyConnection:
    """DuckDB table `s` of the rows in the order they are read, with their partition."""
    con = duckdb.connect()
    con.execute(
        "create table s (pos int, part varchar, g varchar, v bigint, w bigint, t bigint, "
        "id varchar)"
    )
    rows = [(f"{topic}{p}", r) for topic, p, part in batches for r in part]
    con.executemany(
        "insert into s values (?, ?, ?, ?, ?, ?, ?)",
        [(i, p, r["G"], r["V"], r["W"], r["T"], r["G"]) for i, (p, r) in enumerate(rows)],
    )
    return con


@pytest.mark.parametrize("kind", ["TUMBLE", "HOP", "CUMULATE"])
def test_window_aggregation_closes_on_the_least_partition_time(tmp_path: Path, kind: str) -> None:
    batches = _feed()
    query = (
        "CREATE TABLE c AS SELECT window_start, window_end, g, SUM(v) AS total, COUNT(*) AS n "
        f"FROM TABLE({TVF_CALLS[kind].format(s='s')}) GROUP BY window_start, window_end, g;"
    )
    table, first = _run(tmp_path, STREAM, query, batches, "C")
    window_bytes = 16 if kind == "CUMULATE" else 8  # CUMULATE's key holds end and start
    got = []
    for r in table:
        value = json.loads(r["value"])
        group = r["key"][:-window_bytes].decode()
        got.append((group, value["WINDOW_START"], value["WINDOW_END"], value["TOTAL"], value["N"]))
    expected = (
        _table(batches)
        .execute(
            f"""
            with {kept_windows_sql(kind, "s", "part")}
            select g, ws, we, sum(v), count(*) from kept
            where we <= {watermark_sql("s", "part")}
            group by g, ws, we
            """
        )
        .fetchall()
    )
    assert len(expected) > 30
    assert len(got) == len(set(got))  # each window and group once, when it closed
    assert sorted(got) == sorted(expected)
    assert 0 < first < len(table)


def test_window_top_n_closes_on_the_least_partition_time(tmp_path: Path) -> None:
    batches = _feed()
    query = (
        "CREATE TABLE w WITH (key_format='JSON') AS SELECT * FROM ("
        "SELECT window_start, window_end, g, v, t, ROW_NUMBER() OVER (PARTITION BY "
        "window_start, window_end, g ORDER BY v DESC) AS rn "
        f"FROM TABLE({TVF_CALLS['TUMBLE'].format(s='s')})) WHERE rn <= 2;"
    )
    table, first = _run(tmp_path, STREAM, query, batches, "W")
    got = []
    for r in table:
        row = {**json.loads(r["key"]), **json.loads(r["value"])}
        got.append(
            (row["WINDOW_START"], row["WINDOW_END"], row["G"], row["V"], row["T"], row["RN"])
        )
    expected = (
        _table(batches)
        .execute(
            f"""
            with {kept_windows_sql("TUMBLE", "s", "part")},
            ranked as (
              select ws, we, g, v, t,
                     row_number() over (partition by ws, we, g order by v desc, pos) as rn
              from kept)
            select ws, we, g, v, t, rn from ranked
            where rn <= 2 and we <= {watermark_sql("s", "part")}
            """
        )
        .fetchall()
    )
    assert len(expected) > 30
    assert sorted(got) == sorted(expected)
    assert 0 < first < len(table)


def test_window_join_closes_on_the_least_time_of_both_inputs_partitions(tmp_path: Path) -> None:
    batches = _feed((("s", 0), ("s", 1), ("o", 0), ("o", 1)))
    left, right = (TVF_CALLS["TUMBLE"].format(s=s) for s in ("s", "o"))
    query = (
        "CREATE STREAM j AS SELECT L.id AS id, L.v, R.w, L.window_start AS ws, "
        f"L.window_end AS we FROM (SELECT * FROM TABLE({left})) L JOIN "
        f"(SELECT * FROM TABLE({right})) R "
        "ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.id = R.id;"
    )
    # both streams' key is the G of their rows (`_append` keys every record by it)
    table, first = _run(tmp_path, STREAM + OTHER, query, batches, "J")
    got = []
    for r in table:
        value = json.loads(r["value"])
        got.append((r["key"].decode(), value["V"], value["W"], value["WS"], value["WE"]))
    expected = (
        _table(batches)
        .execute(
            f"""
            with {kept_windows_sql("TUMBLE", "s", "part")},
            l as (select * from kept where part in ('s0', 's1')),
            r as (select * from kept where part in ('o0', 'o1'))
            select l.id, l.v, r.w, l.ws, l.we
            from l join r on l.ws = r.ws and l.we = r.we and l.id = r.id
            where l.we <= {watermark_sql("s", "part")}
            """
        )
        .fetchall()
    )
    assert len(expected) > 30
    assert sorted(got) == sorted(expected)
    assert 0 < first < len(table)


def _one(tmp_path: Path, properties: dict[str, Any]) -> tuple[Engine, Any]:
    engine = Engine(tmp_path / "data", properties=properties)
    engine.execute(STREAM)
    result = engine.execute(
        "CREATE TABLE c AS SELECT window_start, window_end, COUNT(*) AS n "
        f"FROM TABLE({TVF_CALLS['TUMBLE'].format(s='s')}) GROUP BY window_start, window_end;"
    )
    return engine, engine.tasks[str(result[-1].query_id)]


def _row(t: int) -> list[dict[str, Any]]:
    return [{"ID": "x", "G": "a", "V": 1, "W": 0, "T": t}]


def test_a_partition_that_reads_nothing_holds_the_watermark_until_it_is_idle(
    tmp_path: Path,
) -> None:
    now = [0.0]
    engine, task = _one(tmp_path, {IDLE_TIMEOUT_PROPERTY: 5000})
    with engine:
        assert task.idle is not None
        task.idle.clock = lambda: now[0]  # milliseconds, as the test decides
        _append(engine, "s", 0, _row(1000))
        _append(engine, "s", 0, _row(1250))
        assert _ends(engine) == []  # partition 1 has read nothing: it holds the watermark
        now[0] = 4999.0
        _append(engine, "s", 0, _row(1260))
        assert _ends(engine) == []  # not idle for the timeout yet
        now[0] = 5000.0
        _append(engine, "s", 0, _row(1270))  # partition 1 is idle: partition 0 alone counts
        assert _ends(engine) == [(1100, 1)]
        # partition 1 reads again: it holds the watermark back again (from 1270: it never
        # goes back), and its row for a closed window is late
        _append(engine, "s", 1, _row(1050) + _row(1280))
        _append(engine, "s", 0, _row(1500))
        assert _ends(engine) == [(1100, 1)]
        _append(engine, "s", 1, _row(1400))
        assert _ends(engine) == [(1100, 1), (1300, 4)]


def test_an_idle_timeout_of_zero_never_lets_a_partition_go(tmp_path: Path) -> None:
    now = [0.0]
    engine, task = _one(tmp_path, {IDLE_TIMEOUT_PROPERTY: "0"})
    with engine:
        task.idle.clock = lambda: now[0]
        _append(engine, "s", 0, _row(1000))
        now[0] = 1e12
        _append(engine, "s", 0, _row(5000))
        assert _ends(engine) == []
        _append(engine, "s", 1, _row(4000))
        assert _ends(engine) == [(1100, 1)]


def test_a_bad_idle_timeout_is_refused_naming_the_setting(tmp_path: Path) -> None:
    # at once (not by each later window query), as tests/engine/test_idle_timeout_duration.py
    with pytest.raises(HispeedError, match=IDLE_TIMEOUT_PROPERTY):
        Engine(tmp_path / "data", properties={IDLE_TIMEOUT_PROPERTY: "soon"})
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        with pytest.raises(HispeedError, match=IDLE_TIMEOUT_PROPERTY):
            engine.execute(
                "CREATE TABLE c AS SELECT window_start, window_end, COUNT(*) AS n FROM "
                f"TABLE({TVF_CALLS['TUMBLE'].format(s='s')}) GROUP BY window_start, window_end;",
                properties={IDLE_TIMEOUT_PROPERTY: "soon"},
            )


@pytest.mark.parametrize("aggregated", [True, False])
def test_sessions_close_on_the_least_partition_time(tmp_path: Path, aggregated: bool) -> None:
    session = "SESSION(TABLE s, DESCRIPTOR(t), INTERVAL '100' MILLISECONDS)"
    query = (
        "CREATE TABLE c AS SELECT window_start, window_end, COUNT(*) AS n "
        f"FROM TABLE({session}) GROUP BY window_start, window_end;"
        if aggregated
        else f"CREATE STREAM c AS SELECT id, window_start, window_end FROM TABLE({session});"
    )
    with Engine(tmp_path / "data", properties=NEVER_IDLE) as engine:
        engine.execute(STREAM)
        engine.execute(query)
        _append(engine, "s", 0, _row(1000))
        _append(engine, "s", 1, _row(1010))
        _append(engine, "s", 0, _row(5000))  # partition 1 is still at 1010: the session is open
        _append(engine, "s", 1, _row(1050))  # so this row joins it
        assert _records(engine, "C") == []
        _append(engine, "s", 1, _row(6000))  # the watermark is 5000: the session closes
        values = [json.loads(r["value"]) for r in _records(engine, "C")]
    windows = [(v["WINDOW_START"], v["WINDOW_END"]) for v in values]
    if aggregated:
        assert [(*w, v["N"]) for w, v in zip(windows, values, strict=True)] == [(1000, 1150, 3)]
    else:
        assert windows == [(1000, 1150)] * 3

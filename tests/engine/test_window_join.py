"""Flink's window join of two window table functions' rows (TUMBLE), INNER, LEFT, RIGHT and
FULL: each window's pairs of one key, and an outer join's unmatched rows, written once when
the watermark (the least of both sides' newest times) reaches the window's end; a row whose
window has closed when it arrives is late and dropped. Checked against DuckDB's computation
of those rules over the same rows (out of order and late ones among them), decoded with
`json`, across batches and a restart."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError
from hispeed.testing.windows import TVF_CALLS, kept_windows_sql, watermark_sql

SIZE = 100
STREAMS = (
    "CREATE STREAM l (id STRING KEY, v BIGINT, t BIGINT) WITH "
    "(kafka_topic='l', partitions=1, value_format='JSON', timestamp='t');"
    "CREATE STREAM r (id STRING KEY, w BIGINT, t BIGINT) WITH "
    "(kafka_topic='r', partitions=1, value_format='JSON', timestamp='t');"
)
SIDES = (
    f"(SELECT * FROM TABLE(TUMBLE(TABLE l, DESCRIPTOR(t), INTERVAL '{SIZE}' MILLISECONDS))) L "
    "{kind} JOIN "
    f"(SELECT * FROM TABLE(TUMBLE(TABLE r, DESCRIPTOR(t), INTERVAL '{SIZE}' MILLISECONDS))) R "
    "ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.id = R.id"
)


def _sides(tvf: str, kind: str) -> str:
    """The window join of `tvf`'s rows (a key of TVF_CALLS) of both streams."""
    left, right = (TVF_CALLS[tvf].format(s=s) for s in ("l", "r"))
    return (
        f"(SELECT * FROM TABLE({left})) L {kind} JOIN (SELECT * FROM TABLE({right})) R "
        "ON L.window_start = R.window_start AND L.window_end = R.window_end AND L.id = R.id"
    )


def _feed() -> list[tuple[str, list[dict[str, Any]]]]:
    """Batches of one side at a time (so the order rows are read in is the order given):
    times mostly rising, some rows up to 150 ms early (out of order, and some late)."""
    rng = random.Random(3)
    batches = []
    clock = 1000
    for b in range(80):
        side = "l" if rng.random() < 0.5 else "r"
        rows = []
        for i in range(rng.randrange(1, 5)):
            clock += rng.randrange(12)
            back = rng.randrange(150) if rng.random() < 0.2 else 0
            row = {"ID": f"k{rng.randrange(4)}", "T": clock - back, "N": f"{side}{b}.{i}"}
            row["V" if side == "l" else "W"] = rng.randrange(1000)
            rows.append(row)
        batches.append((side, rows))
    return batches


def _append(engine: Engine, side: str, rows: list[dict[str, Any]]) -> None:
    engine.log.append(side, [(r["ID"].encode(), json.dumps(r).encode()) for r in rows])
    engine.drain()


def _expected(batches: list[tuple[str, list[dict[str, Any]]]], kind: str, tvf: str) -> list[Any]:
    """DuckDB's window join under Flink's rules: a row counts in a window unless the
    watermark (the least of the two sides' newest times read before it) had reached the
    window's end; a window is output once the watermark reaches its end."""
    con = duckdb.connect()
    con.execute("create table s (pos int, side varchar, id varchar, x bigint, t bigint)")
    rows = [(r, side) for side, part in batches for r in part]
    con.executemany(
        "insert into s values (?, ?, ?, ?, ?)",
        [(i, side, r["ID"], r.get("V", r.get("W")), r["T"]) for i, (r, side) in enumerate(rows)],
    )
    join = {"INNER": "join", "LEFT": "left join", "RIGHT": "right join", "FULL": "full join"}
    return con.execute(
        f"""
        with {kept_windows_sql(tvf, "s", "side")},
        l as (select * from kept where side = 'l'),
        r as (select * from kept where side = 'r')
        select coalesce(l.id, r.id), l.x, r.x, coalesce(l.ws, r.ws), coalesce(l.we, r.we)
        from l {join[kind]} r on l.ws = r.ws and l.we = r.we and l.id = r.id
        where coalesce(l.we, r.we) <= {watermark_sql("s", "side")}
        """
    ).fetchall()


@pytest.mark.parametrize(
    ("tvf", "kind"),
    [
        ("TUMBLE", "INNER"),
        ("TUMBLE", "LEFT"),
        ("TUMBLE", "RIGHT"),
        ("TUMBLE", "FULL"),
        ("HOP", "INNER"),
        ("HOP", "FULL"),
        ("CUMULATE", "LEFT"),
        ("CUMULATE", "FULL"),
    ],
)
def test_window_join_matches_duckdb_across_a_restart(tmp_path: Path, tvf: str, kind: str) -> None:
    batches = _feed()
    # the result's key as ksqlDB's joins have it: the left id, the right's for RIGHT, and
    # for FULL the synthetic ROWKEY (either side's)
    key = {"INNER": "L.id", "LEFT": "L.id", "RIGHT": "R.id", "FULL": "ROWKEY"}[kind]
    query = (
        f"CREATE STREAM j AS SELECT {key} AS id, L.v, R.w, "
        "COALESCE(L.window_start, R.window_start) AS ws, "
        "COALESCE(L.window_end, R.window_end) AS we "
        f"FROM {_sides(tvf, '' if kind == 'INNER' else kind)};"
    )
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAMS)
        engine.execute(query)
        for side, rows in batches[:40]:
            _append(engine, side, rows)
        first = engine.log.read_table("J", 0).to_pylist()
    with Engine(tmp_path / "data") as engine:  # the open windows come back from the changelog
        for side, rows in batches[40:]:
            _append(engine, side, rows)
        table = engine.log.read_table("J", 0).to_pylist()
    got = []
    for r in table:
        value = json.loads(r["value"])
        got.append((r["key"].decode(), value["V"], value["W"], value["WS"], value["WE"]))
    expected = _expected(batches, kind, tvf)
    assert len(expected) > 20
    assert sorted(got, key=repr) == sorted(expected, key=repr)
    assert 0 < len(first) < len(table)


def test_nothing_is_written_before_the_window_closes(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAMS)
        engine.execute(
            "CREATE STREAM j AS SELECT ROWKEY AS id, L.v, R.w FROM "
            + SIDES.format(kind="FULL")
            + ";"
        )
        _append(engine, "l", [{"ID": "a", "V": 1, "T": 10}])
        _append(engine, "r", [{"ID": "a", "W": 2, "T": 99}])
        _append(engine, "r", [{"ID": "b", "W": 3, "T": 50}])
        assert engine.log.read_table("J", 0).num_rows == 0
        # the left side reaches 100, the right is still at 99: the watermark (the least) too
        _append(engine, "l", [{"ID": "c", "V": 4, "T": 100}])
        assert engine.log.read_table("J", 0).num_rows == 0
        # both reach 100: [0, 100) is joined; a row for it after that is late
        _append(engine, "r", [{"ID": "d", "W": 6, "T": 100}])
        _append(engine, "l", [{"ID": "b", "V": 5, "T": 60}])
        out = [
            (r["key"].decode(), json.loads(r["value"]), r["timestamp"])
            for r in engine.log.read_table("J", 0).to_pylist()
        ]
    assert out == [
        ("a", {"V": 1, "W": 2}, 99),
        ("b", {"V": None, "W": 3}, 50),
    ]


@pytest.mark.parametrize(
    ("on", "at", "says"),
    [
        ("L.window_start = R.window_start AND L.id = R.id", "L.window_start", "window_end"),
        (
            "L.window_start = R.window_start AND L.window_end = R.window_end",
            "L.window_start",
            "also joins on a key",
        ),
    ],
)
def test_a_window_join_without_its_conditions_is_refused_at_its_place(
    tmp_path: Path, on: str, at: str, says: str
) -> None:
    query = SIDES.format(kind="").split(" ON ")[0] + " ON " + on
    statement = f"CREATE STREAM j AS SELECT L.id, L.v, R.w FROM {query};"
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAMS)
        with pytest.raises(SqlError) as caught:
            engine.execute(statement)
    assert says in str(caught.value)
    assert (caught.value.line, caught.value.column) == (1, statement.index(at) + 1)


def test_windows_of_other_kinds_or_sizes_are_refused(tmp_path: Path) -> None:
    hop = SIDES.replace(
        "TUMBLE(TABLE r, DESCRIPTOR(t), INTERVAL '100' MILLISECONDS)",
        "HOP(TABLE r, DESCRIPTOR(t), INTERVAL '50' MILLISECONDS, INTERVAL '100' MILLISECONDS)",
    ).format(kind="")
    session = SIDES.replace(
        "TUMBLE(TABLE r, DESCRIPTOR(t), INTERVAL '100' MILLISECONDS)",
        "SESSION(TABLE r, DESCRIPTOR(t), INTERVAL '100' MILLISECONDS)",
    ).format(kind="")
    other = SIDES.replace(
        "TABLE r, DESCRIPTOR(t), INTERVAL '100'", "TABLE r, DESCRIPTOR(t), INTERVAL '200'"
    ).format(kind="")
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAMS)
        for relation, says in (
            (hop, "the same TUMBLE"),
            (other, "the same TUMBLE"),
            (session, "the same TUMBLE"),  # a TUMBLE side and a SESSION side
        ):
            statement = f"CREATE STREAM j AS SELECT L.id, L.v, R.w FROM {relation};"
            with pytest.raises(SqlError) as caught:
                engine.execute(statement)
            assert says in str(caught.value)
            assert caught.value.line == 1

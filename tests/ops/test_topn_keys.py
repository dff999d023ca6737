"""The key of a Top-N or deduplication result: deduplication (rn = 1) is keyed by its PARTITION
BY columns alone, as Flink's unique key is, so the default KAFKA key format holds it with the
rank selected (`SELECT *`); a key of several columns that KAFKA cannot hold is refused at the
query's place, saying what to write, with no internal text."""

from __future__ import annotations

import json
import random
from pathlib import Path

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError

STREAM = (
    "CREATE STREAM s (k STRING KEY, g STRING, v BIGINT, t BIGINT) WITH "
    "(kafka_topic='s', partitions=1, value_format='JSON', timestamp='t');"
)


@pytest.mark.parametrize("direction", ["ASC", "DESC"])
def test_dedup_selecting_the_rank_is_keyed_by_the_partition(tmp_path: Path, direction: str) -> None:
    rng = random.Random(5)
    rows = [
        {"K": f"k{i}", "G": f"g{rng.randrange(5)}", "V": i, "T": 1000 + rng.randrange(500)}
        for i in range(200)
    ]
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        engine.execute(
            "CREATE TABLE d AS SELECT * FROM (SELECT g, v, t, ROW_NUMBER() OVER (PARTITION BY g "
            f"ORDER BY t {direction}) AS rn FROM s) WHERE rn = 1;"
        )
        for start in range(0, len(rows), 17):
            part = rows[start : start + 17]
            engine.log.append("s", [(r["K"].encode(), json.dumps(r).encode()) for r in part])
            engine.drain()
        table = engine.log.read_table("D", 0).to_pylist()
    latest = {}
    for r in table:
        # the KAFKA key format: the one key column's bytes, here the partition's G
        latest[r["key"].decode()] = json.loads(r["value"])
    got = {(g, v["V"], v["T"], v["RN"]) for g, v in latest.items()}
    con = duckdb.connect()
    con.execute("create table s (pos int, g varchar, v bigint, t bigint)")
    con.executemany(
        "insert into s values (?, ?, ?, ?)",
        [(i, r["G"], r["V"], r["T"]) for i, r in enumerate(rows)],
    )
    # ties in t go to the row that came first, either way (as Flink's deduplication)
    expected = con.execute(
        "select g, v, t, rn from (select *, row_number() over (partition by g order by t "
        f"{direction}, pos) as rn from s) where rn = 1"
    ).fetchall()
    assert len(expected) == 5
    assert got == set(expected)


def test_a_top_n_key_the_kafka_format_cannot_hold_is_refused_at_its_place(
    tmp_path: Path,
) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(STREAM)
        for query in (
            "SELECT * FROM (SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g ORDER BY v) AS rn "
            "FROM s) WHERE rn <= 2",
            "SELECT * FROM (SELECT g, v, ROW_NUMBER() OVER (PARTITION BY g, v ORDER BY v) AS rn "
            "FROM s) WHERE rn = 1",
        ):
            with pytest.raises(SqlError) as caught:
                engine.execute(f"CREATE TABLE x AS\n  {query};")
            assert (caught.value.line, caught.value.column) == (2, 3)
            message = str(caught.value)
            assert "key_format='JSON'" in message
            assert "Persistence" not in message
            assert "{" not in message
        # named, the format that holds several columns runs it
        engine.execute(
            "CREATE TABLE y WITH (key_format='JSON') AS SELECT * FROM (SELECT g, v, ROW_NUMBER() "
            "OVER (PARTITION BY g ORDER BY v) AS rn FROM s) WHERE rn <= 2;"
        )
        assert engine.catalog.get("Y").key_format == "JSON"

"""`Engine.insert_many`: rows, an Arrow table, a Polars or pandas DataFrame into a stream in
one append, each giving the records `insert` gives row by row; and `Engine.producer()`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError

STREAM = (
    "CREATE STREAM readings (id STRING KEY, x DOUBLE, n INT, tags ARRAY<STRING>) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=3);"
)
ROWS: list[dict[str, Any]] = [
    {"ID": f"d{i % 7}", "X": i / 4, "N": i, "TAGS": ["a", f"t{i}"], "ROWTIME": 1000 + i}
    for i in range(50)
] + [{"ID": None, "X": None, "N": None, "TAGS": None, "ROWTIME": 5000}]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "data", fsync="never")
    e.execute(STREAM)
    yield e
    e.close()


def records(engine: Engine) -> list[list[tuple[Any, Any, int]]]:
    """(key, value, timestamp) by partition, in offset order."""
    out = []
    for p in range(3):
        t = engine.log.read_table("readings", p)
        out.append(
            list(
                zip(
                    t.column("key").to_pylist(),
                    t.column("value").to_pylist(),
                    t.column("timestamp").to_pylist(),
                    strict=True,
                )
            )
        )
    return out


def inserted_one_by_one(tmp_path: Path) -> list[list[tuple[Any, Any, int]]]:
    with Engine(tmp_path / "reference", fsync="never") as e:
        e.execute(STREAM)
        for row in ROWS:
            values = {k: v for k, v in row.items() if k != "ROWTIME"}
            e.insert("readings", values, timestamp=row["ROWTIME"])
        return records(e)


def lower(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k.lower(): v for k, v in r.items()} for r in rows]


KINDS = {
    "rows": lambda: ROWS,
    "lower-case rows": lambda: lower(ROWS),
    "arrow": lambda: pa.Table.from_pylist(lower(ROWS)),
    "arrow batch": lambda: pa.RecordBatch.from_pylist(ROWS),
    "polars": lambda: pl.DataFrame(lower(ROWS)),
    "pandas": lambda: pd.DataFrame(ROWS),
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_insert_many_gives_what_insert_gives(engine: Engine, tmp_path: Path, kind: str) -> None:
    result = engine.insert_many("readings", KINDS[kind]())
    assert len(result) == len(ROWS)
    assert records(engine) == inserted_one_by_one(tmp_path)
    assert engine.log.describe_topic("readings").records == len(ROWS)
    # each record is where the result says
    for i, (p, offset) in enumerate(result.pairs()):
        assert records(engine)[p][offset][2] == ROWS[i]["ROWTIME"]


def test_a_value_that_does_not_fit_names_its_row_and_inserts_nothing(engine: Engine) -> None:
    rows = [{"ID": "a", "N": 1}, {"ID": "b", "N": "two"}]
    with pytest.raises(HispeedError, match=r"row 1: READINGS.N is INTEGER: 'two' does not fit"):
        engine.insert_many("readings", rows)
    frame = pl.DataFrame({"id": ["a"], "n": ["x"]})
    with pytest.raises(HispeedError, match=r"READINGS\.N is INTEGER: column 'n' of type"):
        engine.insert_many("readings", frame)
    with pytest.raises(HispeedError, match="many rows"):
        engine.insert_many("readings", {"ID": "a"})
    assert engine.log.describe_topic("readings").records == 0


def test_inserted_rows_are_queried(engine: Engine) -> None:
    engine.execute("CREATE TABLE totals AS SELECT id, SUM(n) AS total FROM readings GROUP BY id;")
    engine.insert_many("readings", pl.DataFrame({"id": ["a", "b", "a"], "n": [1, 2, 3]}))
    engine.drain()
    got = {r["ID"]: r["TOTAL"] for r in engine.query("SELECT * FROM totals")}
    assert got == {"a": 4, "b": 2}


def test_engine_producer_feeds_a_stream(engine: Engine) -> None:
    engine.execute("CREATE TABLE counts AS SELECT id, COUNT(*) AS c FROM readings GROUP BY id;")
    delivered = []
    with engine.producer({"linger.ms": 1}) as producer:
        for i in range(300):
            producer.produce(
                "readings",
                value=f'{{"X": {i}, "N": {i}}}',
                key=f"k{i % 3}",
                on_delivery=lambda err, msg: delivered.append(err),
            )
    assert delivered == [None] * 300
    engine.drain()
    got = {r["ID"]: r["C"] for r in engine.query("SELECT * FROM counts")}
    assert got == {"k0": 100, "k1": 100, "k2": 100}

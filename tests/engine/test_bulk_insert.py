"""`Engine.insert_many`: rows, an Arrow table, a Polars or pandas DataFrame into a stream in
one append, each giving the records `insert` gives row by row; and `Engine.producer()`."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.statements import inserts
from tests.conftest import wait_for

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


@pytest.fixture
def gathering(tmp_path: Path) -> Iterator[Engine]:
    """An engine whose `insert` gathers rows for 5 ms."""
    e = Engine(tmp_path / "gathering", fsync="never", insert_linger_ms=5)
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
    """The rows through the one-row path (`inserts.insert`: each row encoded and appended
    alone, as `Engine.insert` did before it gathered rows)."""
    with Engine(tmp_path / "reference", fsync="never") as e:
        e.execute(STREAM)
        for row in ROWS:
            values = {k: v for k, v in row.items() if k != "ROWTIME"}
            inserts.insert(e.catalog, e.log, "readings", values, timestamp=row["ROWTIME"])
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


# -- Engine.insert: single rows gathered ----------------------------------------------------


def frames(engine: Engine, topic: str) -> int:
    return sum(
        len(list(seg.frames_from(-1)))
        for p in range(len(engine.log.describe_topic(topic).partitions))
        for seg in engine.log.partition(topic, p).segments  # type: ignore[attr-defined]
    )


def test_inserted_rows_go_in_together_as_insert_many_puts_them(
    gathering: Engine, tmp_path: Path
) -> None:
    for row in ROWS:
        gathering.insert(
            "readings", {k: v for k, v in row.items() if k != "ROWTIME"}, row["ROWTIME"]
        )
    gathering.flush()
    assert records(gathering) == inserted_one_by_one(tmp_path)
    assert frames(gathering, "readings") <= 3 * 2  # not one frame a row


def test_a_row_that_does_not_fit_is_refused_at_once(gathering: Engine) -> None:
    gathering.insert("readings", {"ID": "a", "N": 1})
    with pytest.raises(HispeedError, match=r"READINGS\.N is INTEGER: 'two' does not fit"):
        gathering.insert("readings", {"ID": "b", "N": "two"})
    with pytest.raises(HispeedError, match="does not exist"):
        gathering.insert("nope", {"ID": "b"})
    gathering.flush()
    assert gathering.log.describe_topic("readings").records == 1


def test_rows_reach_the_log_within_the_linger_without_a_flush(gathering: Engine) -> None:
    for i in range(100):
        gathering.insert("readings", {"ID": "a", "N": i})
    wait_for(lambda: gathering.log.describe_topic("readings").records == 100, timeout=30)


def test_rows_from_many_threads_all_go_in_each_threads_in_order(gathering: Engine) -> None:
    def run(t: int) -> None:
        for i in range(500):
            gathering.insert("readings", {"ID": f"t{t}", "N": i})

    threads = [threading.Thread(target=run, args=(t,)) for t in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    gathering.flush()
    seen: dict[str, list[int]] = {}
    for part in records(gathering):
        for key, value, _ts in part:
            seen.setdefault(key.decode(), []).append(json.loads(value)["N"])
    assert seen == {f"t{t}": list(range(500)) for t in range(4)}


def test_close_puts_the_last_rows_in(tmp_path: Path) -> None:
    with Engine(tmp_path / "d", fsync="never", insert_linger_ms=60_000) as e:
        e.execute(STREAM)
        e.insert("readings", {"ID": "last", "N": 7})
    with Engine(tmp_path / "d", fsync="never") as e:
        assert (
            e.log.read_table("readings", 0).num_rows
            + sum(e.log.read_table("readings", p).num_rows for p in (1, 2))
            == 1
        )


def test_a_failed_append_is_raised_by_the_next_flush(gathering: Engine) -> None:
    gathering.insert("readings", {"ID": "a", "N": 1})
    gathering.log.delete_topic("readings")  # the rows have nowhere to go
    with pytest.raises(HispeedError, match="1 row\\(s\\) inserted into READINGS could not be"):
        gathering.flush()
    gathering.flush()  # said once


def test_by_default_an_inserted_row_is_in_the_log_when_insert_returns(
    engine: Engine, tmp_path: Path
) -> None:
    engine.insert("readings", {"ID": "a", "N": 1})
    assert engine.log.describe_topic("readings").records == 1
    with pytest.raises(HispeedError, match="insert_linger_ms cannot be negative"):
        Engine(tmp_path / "other", insert_linger_ms=-1)


# -- Engine.insert by default: each row written alone, without Arrow ------------------------

PLAIN_STREAM = (
    "CREATE STREAM plain (id {key} KEY, x DOUBLE, n INT, b BOOLEAN, s STRING) "
    "WITH (kafka_topic='plain', key_format='{key_format}', value_format='JSON', "
    "partitions=3);"
)
PLAIN_ROWS: list[dict[str, Any]] = [
    {"X": i / 4, "N": i, "B": i % 2 == 0, "S": f'text {i} "q" ✓'} for i in range(30)
] + [
    {"X": None, "N": None, "B": None, "S": None},
    {"X": float("nan"), "N": -(1 << 31), "B": True, "S": ""},
    {"X": 1e12, "N": 7},  # columns left out are null
    {"X": 3, "N": 8},  # an int for a DOUBLE: Arrow's path takes it
]


@pytest.mark.parametrize(("key", "key_format"), [("STRING", "KAFKA"), ("BIGINT", "JSON")])
def test_insert_writes_what_the_one_row_path_writes(
    tmp_path: Path, key: str, key_format: str
) -> None:
    """Default `Engine.insert` (no gathering) against `inserts.insert` (Arrow arrays per row)
    on the same rows: the same records, partitions and offsets order."""
    keys = [f"d{i % 7}" if key == "STRING" else i % 7 for i in range(len(PLAIN_ROWS))]
    keys[3] = None
    statement = PLAIN_STREAM.format(key=key, key_format=key_format)
    got, want = [], []
    for out, one_by_one in ((got, False), (want, True)):
        with Engine(tmp_path / f"e{len(got)}{len(want)}{one_by_one}", fsync="never") as e:
            e.execute(statement)
            for i, (k, row) in enumerate(zip(keys, PLAIN_ROWS, strict=True)):
                if one_by_one:
                    inserts.insert(e.catalog, e.log, "plain", {"ID": k, **row}, 1000 + i)
                else:
                    e.insert("plain", {"ID": k, **row}, 1000 + i)
            out += [e.log.read_table("plain", p).drop_columns("offset") for p in range(3)]
    assert [t.to_pylist() for t in got] == [t.to_pylist() for t in want]
    assert sum(t.num_rows for t in got) == len(PLAIN_ROWS)


def test_an_inserted_row_is_in_the_log_and_queried_when_insert_returns(engine: Engine) -> None:
    engine.execute(PLAIN_STREAM.format(key="STRING", key_format="KAFKA"))
    engine.execute("CREATE TABLE sums AS SELECT id, SUM(n) AS total FROM plain GROUP BY id;")
    for i in range(10):
        engine.insert("plain", {"ID": "a", "N": i})
        assert engine.log.describe_topic("plain").records == i + 1  # no flush, no wait
    engine.drain()
    assert engine.query("SELECT * FROM sums WHERE id = 'a'") == [{"ID": "a", "TOTAL": 45}]
    assert engine.query("SELECT n FROM plain WHERE n = 9") == [{"N": 9}]


def test_a_bad_row_is_refused_at_once_by_default(engine: Engine) -> None:
    engine.execute(PLAIN_STREAM.format(key="STRING", key_format="KAFKA"))
    with pytest.raises(HispeedError, match=r"PLAIN\.N is INTEGER: 'two' does not fit"):
        engine.insert("plain", {"ID": "b", "N": "two"})
    with pytest.raises(HispeedError, match=r"PLAIN\.N is INTEGER: 4294967296 does not fit"):
        engine.insert("plain", {"ID": "b", "N": 1 << 32})
    with pytest.raises(HispeedError, match="does not exist"):
        engine.insert("nope", {"ID": "b"})
    assert engine.log.describe_topic("plain").records == 0

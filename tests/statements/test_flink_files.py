"""Flink's filesystem tables read as bounded sources, and the processing-time temporal join
that looks a stream up in one (Nexmark q13's shape; docs/sql.md, "Flink SQL's DDL"). The
expected rows are DuckDB's, reading the same CSV file itself."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import duckdb
import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError

ORDERS = (
    "CREATE TABLE orders (id BIGINT, code VARCHAR) WITH ('connector' = 'kafka', "
    "'topic' = 'orders', 'format' = 'json', 'partitions' = '1');"
    "CREATE TABLE named (id BIGINT, code VARCHAR, name VARCHAR, rank INT) "
    "WITH ('connector' = 'blackhole');"
)
#: rates by code: the key is the second column; 'b' comes twice (its last line wins), one
#: name holds the delimiter in quotes
LINES = ['1,a,"Alpha, Inc",10', "2,b,Beta,20", "3,c,Gamma,30", "4,b,Beta two,40"]
CODES = ["a", "b", "c", "d", "b", "a"]


def _declare(engine: Engine, path: Path, options: str) -> None:
    engine.execute(
        ORDERS + "CREATE TABLE codes (n INT, code VARCHAR, name VARCHAR, rank INT, "
        f"PRIMARY KEY (code) NOT ENFORCED) WITH ({options.format(path=path)});"
    )


def _orders(engine: Engine, start: int) -> None:
    for i, code in enumerate(CODES, start):
        engine.execute(f"INSERT INTO orders (id, code) VALUES ({i}, '{code}');")


def _named(engine: Engine) -> Counter[tuple[object, ...]]:
    """The sink's rows: the join's key (the code, KAFKA STRING) is the record's key."""
    table = engine.log.read_table("NAMED", 0)
    rows: Counter[tuple[object, ...]] = Counter()
    for k, v in zip(
        table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
    ):
        value = json.loads(v)
        rows[(value["ID"], k.decode(), value["NAME"], value["RANK"])] += 1
    return rows


def _expected(path: Path, ids: range) -> Counter[tuple[object, ...]]:
    con = duckdb.connect()
    con.execute("create table o (id bigint, code varchar)")
    con.executemany("insert into o values (?, ?)", [(i, CODES[i % len(CODES)]) for i in ids])
    rows = con.sql(
        f"with f as (select *, row_number() over () as line from read_csv('{path}', "
        "header = false, columns = {'n': 'INT', 'code': 'VARCHAR', 'name': 'VARCHAR', "
        "'rank': 'INT'})), latest as (select * from f qualify line = max(line) over "
        "(partition by code)) select o.id, o.code, latest.name, latest.rank from o "
        "join latest on o.code = latest.code"
    ).fetchall()
    return Counter(rows)


@pytest.mark.parametrize(
    "options",
    [
        "'connector' = 'filesystem', 'path' = 'file://{path}', 'format' = 'csv'",
        "'connector.type' = 'filesystem', 'connector.path' = '{path}', 'format.type' = 'csv'",
    ],
)
def test_a_view_with_proctime_looks_orders_up_in_the_file(tmp_path: Path, options: str) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("\n".join(LINES) + "\n")
    with Engine(tmp_path / "data") as engine:
        _declare(engine, path, options)
        _orders(engine, 0)
        engine.execute(
            "CREATE VIEW o_p AS SELECT *, PROCTIME() AS p FROM orders;"
            "INSERT INTO named SELECT O.id, O.code, C.name, C.rank FROM o_p AS O "
            "JOIN codes FOR SYSTEM_TIME AS OF O.p AS C ON O.code = C.code;"
        )
        engine.drain()
        # read once: orders after the query started find the same rows, whatever the file
        path.write_text("9,a,Changed,0\n")
        _orders(engine, len(CODES))
        engine.drain()
        got = _named(engine)
    path.write_text("\n".join(LINES) + "\n")
    assert got == _expected(path, range(2 * len(CODES)))
    assert len(got) > 0


def test_a_directory_is_its_files_in_name_order(tmp_path: Path) -> None:
    folder = tmp_path / "codes"
    folder.mkdir()
    (folder / "1.csv").write_text("\n".join(LINES[:2]) + "\n")
    (folder / "2.csv").write_text("\n".join(LINES[2:]) + "\n")
    (folder / ".hidden").write_text("not,a,csv,line\n")
    with Engine(tmp_path / "data") as engine:
        _declare(engine, folder, "'connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv'")
        _orders(engine, 0)
        engine.execute(
            "INSERT INTO named SELECT O.id, O.code, C.name, C.rank FROM (SELECT *, PROCTIME() "
            "AS p FROM orders) O JOIN codes FOR SYSTEM_TIME AS OF O.p AS C ON O.code = C.code;"
        )
        engine.drain()
        got = _named(engine)
    whole = tmp_path / "whole.csv"
    whole.write_text("\n".join(LINES) + "\n")
    assert got == _expected(whole, range(len(CODES)))


@pytest.mark.parametrize(
    ("options", "text", "message"),
    [
        ("'format' = 'json', 'path' = '{path}'", "1,a,x,1\n", "as 'csv' only, not 'json'"),
        ("'format' = 'csv', 'path' = '{path}.missing'", "", "no file"),
        ("'format' = 'csv', 'path' = 'hdfs://nn{path}'", "", "reads local files"),
        ("'format' = 'csv', 'path' = '{path}'", "1,a,x,1\n2,b,y,many\n", "line 2 of its file"),
        ("'format' = 'csv'", "", "names no 'path'"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused_at_its_table(
    tmp_path: Path, options: str, text: str, message: str
) -> None:
    path = tmp_path / "codes.csv"
    path.write_text(text)
    with Engine(tmp_path / "data") as engine:
        engine.execute(ORDERS)
        engine.execute(
            "CREATE TABLE codes (n INT, code VARCHAR, name VARCHAR, rank INT) WITH (\n"
            f"  'connector' = 'filesystem', {options.format(path=path)});"
        )
        with pytest.raises(SqlError, match=message) as caught:
            engine.execute(
                "INSERT INTO named SELECT O.id, O.code, C.name, C.rank FROM orders O "
                "JOIN codes C ON O.code = C.code;"
            )
        assert (caught.value.line, caught.value.column) == (1, 1)
        assert "CODES" not in engine.catalog.sources


def test_a_file_past_the_bound_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "codes.csv"
    path.write_text("\n".join(LINES) + "\n")
    with Engine(tmp_path / "data", properties={"flink.filesystem.max.bytes": 10}) as engine:
        _declare(engine, path, "'connector' = 'filesystem', 'path' = '{path}', 'format' = 'csv'")
        with pytest.raises(SqlError, match=r"flink\.filesystem\.max\.bytes"):
            engine.execute(
                "INSERT INTO named SELECT O.id, O.code, C.name, C.rank FROM orders O "
                "JOIN codes C ON O.code = C.code;"
            )

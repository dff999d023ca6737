"""The Python stream API's reading (pull and push queries), persistence across a restart,
its SQL text, and its errors."""

from __future__ import annotations

from pathlib import Path

import pytest

import hispeed
from hispeed import col, func, lit, window
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.frames.render import checked, expr_sql
from hispeed.sql import ast
from hispeed.sql.parser import parse_expression
from tests.frames.conftest import SOURCES, load, records


def test_collect_is_the_pull_query(engine: Engine) -> None:
    engine.frame("users").to_table("users_now")
    load(engine)
    engine.drain()
    frame = engine.frame("users_now").filter(col("country") == "jp").select("id", "name")
    want = engine.query("SELECT id, name FROM users_now WHERE country = 'jp';")
    assert frame.collect() == want
    assert {r["ID"] for r in want} == {"u2", "u4"}
    polars = frame.collect(format="polars")
    assert sorted(polars["NAME"].to_list()) == ["name-u4", "renamed"]
    # a stream's pull query: what it holds now
    slow = engine.frame("clicks").filter(col("ms") > 20).select("user_id", "ms")
    rows = engine.query("SELECT user_id, ms FROM clicks WHERE ms > 20;")
    assert rows
    assert slow.collect() == rows


def test_iterating_is_the_push_query(engine: Engine) -> None:
    load(engine)
    frame = engine.frame("clicks").filter(col("ms") > 20).select("user_id", "ms").limit(4)
    with engine.stream(
        "SELECT user_id, ms FROM clicks WHERE ms > 20 EMIT CHANGES LIMIT 4;", from_beginning=True
    ) as rows:
        want = list(rows)
    assert len(want) == 4
    assert list(frame) == want


def test_a_push_query_may_aggregate(engine: Engine) -> None:
    load(engine)
    frame = engine.frame("clicks").group_by("page").agg(n=col("*").count()).limit(3)
    with frame.stream(from_beginning=True) as rows:
        got = []
        for row in rows:
            got.append(row)
            engine.drain(max_rounds=1)
    assert len(got) == 3
    assert all(set(r) == {"PAGE", "N"} for r in got)


def test_python_queries_show_and_survive_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Engine(data, fsync="never") as engine:
        for sql in SOURCES:
            engine.execute(sql)
        query_id = (
            engine.frame("clicks")
            .filter(col("status") == 404)
            .group_by("user_id", window=window.tumbling("10s"))
            .agg(n=col("*").count())
            .to_table("not_found")
        )
        (shown,) = engine.execute("SHOW QUERIES;")[0].rows
        assert shown["id"] == query_id
        # what SHOW QUERIES shows is the query as SQL: readable, and what the restart replays
        assert shown["queryString"] == (
            "CREATE TABLE NOT_FOUND AS SELECT USER_ID, COUNT(*) AS N FROM CLICKS "
            "WINDOW TUMBLING (SIZE 10 SECONDS) WHERE (STATUS = 404) GROUP BY USER_ID "
            "EMIT CHANGES;"
        )
        load(engine)
        engine.drain()
        before = records(engine, "not_found")
        assert before
    with Engine(data, fsync="never") as engine:
        assert query_id in engine.catalog.queries
        assert engine.catalog.queries[query_id].state == "RUNNING"
        engine.insert("clicks", {"USER_ID": "u9", "STATUS": 404, "MS": 1.0}, timestamp=99_000)
        engine.drain()
        after = records(engine, "not_found")
        assert all(r in after for r in before)
        assert len(after) == len(before) + 1
        assert next(r for r in after if r not in before)[1].startswith(b"u9")


@pytest.mark.parametrize(
    "expr",
    [
        col("a") + 1,
        -col("a") * lit(-1.5),
        col("lower case") == lit("it's"),
        col("`mixedCase`").is_in([1, 2, 3]) & ~col("b").is_null(),
        col("s").field("f")[2].cast("ARRAY<STRING>"),
        func("transform", col("xs"), lit(1)),
        col("a").between(lit(1e-7), 2.5e20),
        col("select") % 3,
        lit(3_000_000_000) - lit(-2),
    ],
    ids=str,
)
def test_expressions_print_as_sql_that_parses_back_the_same(expr: hispeed.frames.Expr) -> None:
    assert parse_expression(expr_sql(expr.node)) == expr.node


def test_names_follow_sql_quoting() -> None:
    assert col("user_id").node == ast.ColumnRef("USER_ID")
    assert col("`user_id`").node == ast.ColumnRef("user_id")
    assert col("c.user_id").node == ast.ColumnRef("USER_ID", "C")
    assert col("with space").node == ast.ColumnRef("with space")


def test_a_statement_the_printer_cannot_write_back_is_refused() -> None:
    weird = ast.QueryStatement(
        ast.Select(
            (ast.AllColumns(),), ast.SourceRef("S"), where=ast.UnaryOp("-", ast.Literal(1, None))
        )
    )
    with pytest.raises(HispeedError, match="reads back the same"):
        checked(weird)


def test_mistakes_get_clear_errors(engine: Engine) -> None:
    clicks = engine.frame("clicks")
    with pytest.raises(HispeedError, match="no stream or table is named NOPE"):
        engine.frame("nope")
    with pytest.raises(HispeedError, match="truth value"):
        bool(col("a") == 1)
    with pytest.raises(HispeedError, match="made by explode"):
        clicks.explode("tags").filter(col("tags") == "t1")
    with pytest.raises(HispeedError, match="needs a name"):
        clicks.group_by("page").agg(col("ms").max())
    with pytest.raises(HispeedError, match="aggregated already"):
        clicks.group_by("page").agg(n=col("*").count()).group_by("n")
    with pytest.raises(HispeedError, match="join the sources first"):
        clicks.filter(col("ms") > 1).join(engine.frame("users"), col("user_id") == col("id"))
    with pytest.raises(HispeedError, match="duration"):
        window.tumbling("ten seconds")
    with pytest.raises(HispeedError, match="emit="):
        clicks.to_table("x", emit="sometimes")
    with pytest.raises(HispeedError, match="no limit"):
        clicks.limit(3).to_stream("x")
    # a mistake the planner finds reads as the same SQL statement's error
    with pytest.raises(HispeedError, match="NOT_A_COLUMN"):
        clicks.select("not_a_column").to_stream("x")
    assert "X" not in engine.catalog.sources

"""`.map` and `.map_batches`: a Python function in the plan, against the SQL that computes
the same; kept as a module reference across a restart; lambdas refused where they cannot be
kept."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from hispeed import col
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.ops import python_map
from hispeed.runtime.task import PROCESSING_LOG
from tests.frames.conftest import SOURCES, load, records, schema

SQL = "SELECT user_id, ms * 2 AS d, page FROM clicks WHERE status = 200"


def double_ok(row: dict[str, Any]) -> dict[str, Any] | None:
    """Per row: what SQL above computes (None drops the row, as WHERE does)."""
    if row["STATUS"] != 200:
        return None
    return {"D": row["MS"] * 2, "PAGE": row["PAGE"]}


def double_arrow(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Per batch, with Arrow kernels: the rows it keeps come with their keys and ROWTIME."""
    kept = batch.filter(pc.equal(batch.column("STATUS"), 200))
    return pa.record_batch(
        {
            "USER_ID": kept.column("USER_ID"),
            "ROWTIME": kept.column("ROWTIME"),
            "D": pc.multiply(kept.column("MS"), 2),
            "PAGE": kept.column("PAGE"),
        }
    )


def double_polars(df: pl.DataFrame) -> pl.DataFrame:
    """Per batch, with Polars: the same rows back, only the value columns."""
    return df.select((pl.col("MS") * 2).alias("D"), pl.col("PAGE"))


def shout(row: dict[str, Any]) -> dict[str, Any]:
    """Fails on one page, to show where a failing row goes."""
    if row["PAGE"] == "/p3":
        raise ValueError("no shouting on /p3")
    return {"PAGE": row["PAGE"].upper()}


SCHEMA = {"d": "DOUBLE", "page": "STRING"}


@pytest.mark.parametrize(
    "build",
    [
        lambda e: e.frame("clicks").map(double_ok, schema=SCHEMA),
        lambda e: e.frame("clicks").map_batches(double_arrow, schema=SCHEMA),
        lambda e: (
            e.frame("clicks")
            .filter(col("status") == 200)
            .map_batches(double_polars, schema=SCHEMA, polars=True)
        ),
    ],
    ids=["map", "map_batches_arrow", "map_batches_polars"],
)
def test_a_python_function_writes_what_sql_writes(engine: Engine, build: Any) -> None:
    engine.execute(f"CREATE STREAM by_sql AS {SQL} EMIT CHANGES;")
    frame = build(engine)
    frame.to_stream("by_python")
    load(engine)
    engine.drain()
    want = records(engine, "by_sql")
    assert want
    assert schema(engine, "by_python") == schema(engine, "by_sql")
    assert records(engine, "by_python") == want
    plan = frame.explain()
    assert "python: MAP" in plan
    assert "value: D DOUBLE, PAGE STRING" in plan


def test_a_mapped_query_survives_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Engine(data, fsync="never") as engine:
        for sql in SOURCES:
            engine.execute(sql)
        query_id = engine.frame("clicks").map(double_ok, schema=SCHEMA).to_stream("doubled")
        (shown,) = engine.execute("SHOW QUERIES;")[0].rows
        assert "PYTHON_FUNCTION='tests.frames.test_map:double_ok'" in shown["queryString"]
        load(engine)
        engine.drain()
        before = records(engine, "doubled")
    with Engine(data, fsync="never") as engine:
        assert engine.catalog.queries[query_id].state == "RUNNING"
        engine.insert(
            "clicks", {"USER_ID": "u9", "STATUS": 200, "MS": 4.0, "PAGE": "/x"}, timestamp=99_000
        )
        engine.insert(
            "clicks", {"USER_ID": "u9", "STATUS": 500, "MS": 4.0, "PAGE": "/x"}, timestamp=99_001
        )
        engine.drain()
        after = records(engine, "doubled")
    assert len(after) == len(before) + 1
    (new,) = [r for r in after if r not in before]
    assert new[1] == b"u9"
    assert new[2] == b'{"D":8.0,"PAGE":"/x"}'


def test_lambdas_and_closures_are_refused_for_persistent_queries(engine: Engine) -> None:
    def local(row: dict[str, Any]) -> dict[str, Any]:
        return row

    for fn in (lambda row: row, local):
        with pytest.raises(HispeedError, match="lambda or a closure"):
            engine.frame("clicks").map(fn).to_stream("nope")
    assert "NOPE" not in engine.catalog.sources
    # a push or pull query keeps nothing: a lambda is fine there
    load(engine)
    frame = engine.frame("clicks").select("user_id", "ms")
    mapped = frame.map(lambda r: {"MS": r["MS"] + 1}).limit(3)
    assert [r["MS"] for r in mapped] == [r["MS"] + 1 for r in frame.limit(3)]
    pulled = frame.map(lambda r: None if r["MS"] > 3 else {"MS": -r["MS"]}).collect()
    assert pulled
    assert all(r["MS"] <= 0 and set(r) == {"USER_ID", "MS"} for r in pulled)


def test_a_row_that_fails_goes_to_the_processing_log(engine: Engine) -> None:
    engine.frame("clicks").select("user_id", "page").map(shout).to_stream("loud")
    load(engine)
    engine.drain()
    pages = [r[2] for r in records(engine, "loud")]
    assert len(pages) == 100  # 120 clicks, 20 on /p3
    assert all(b"/P3" not in p and p.startswith(b'{"PAGE":"/P') for p in pages)
    logged = [
        r["value"]
        for batch in engine.log.read(PROCESSING_LOG, 0, 0)
        for r in batch.to_pylist()
        if b"no shouting on /p3" in (r["value"] or b"")
    ]
    assert len(logged) == 20


def test_map_mistakes_get_clear_errors(engine: Engine) -> None:
    clicks = engine.frame("clicks")
    with pytest.raises(HispeedError, match="cannot follow map"):
        clicks.map(double_ok).filter(col("ms") > 1)
    with pytest.raises(HispeedError, match="aggregation"):
        clicks.group_by("page").agg(n=col("*").count()).map(double_ok).to_table("t")
    with pytest.raises(HispeedError, match="schema="):
        clicks.map(double_ok, schema=["D"])
    with pytest.raises(HispeedError, match="module:function"):
        engine.execute(
            "CREATE STREAM bad WITH (PYTHON_FUNCTION='nocolon') AS SELECT * FROM clicks;"
        )
    with pytest.raises(HispeedError, match="could not be imported"):
        engine.execute(
            "CREATE STREAM bad WITH (PYTHON_FUNCTION='no_such_module:f') AS SELECT * FROM clicks;"
        )


def add_tag(row: dict[str, Any]) -> dict[str, Any]:
    """Changes a list value in place, and passes the rest on as it got them."""
    row["TAGS"].append("seen")
    return row


def test_values_changed_in_place_are_written_changed(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM by_sql AS SELECT user_id, status, ms, page, "
        "ARRAY_CONCAT(tags, ARRAY['seen']) AS tags FROM clicks EMIT CHANGES;"
    )
    engine.frame("clicks").map(add_tag).to_stream("by_python")
    load(engine)
    engine.drain()
    want = records(engine, "by_sql")
    assert want
    assert records(engine, "by_python") == want


def test_rows_dropped_and_failing_across_chunks(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`.map` works through a batch a chunk at a time: rows dropped or failing in later
    chunks than the first keep each row with its own key and time."""
    monkeypatch.setattr(python_map, "_CHUNK", 7)
    engine.execute(
        "CREATE STREAM by_sql AS SELECT user_id, ms * 2 AS d, page FROM clicks "
        "WHERE ms <= 20 EMIT CHANGES;"
    )
    engine.frame("clicks").map(double_small, schema=SCHEMA).to_stream("by_python")
    load(engine)
    engine.drain()
    want = records(engine, "by_sql")
    assert want
    assert records(engine, "by_python") == want


def double_small(row: dict[str, Any]) -> dict[str, Any] | None:
    """MS doubled, for MS up to 20 (the first larger one comes after a chunk of rows): a
    larger one is dropped, or raises."""
    if row["MS"] == 22.5:
        raise ValueError("not 22.5")
    if row["MS"] > 20:
        return None
    return {"D": row["MS"] * 2, "PAGE": row["PAGE"]}

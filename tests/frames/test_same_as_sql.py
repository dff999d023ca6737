"""Every operation of the Python stream API against the same pipeline written in SQL: both
run over the same inputs, and their sinks must hold the same records, byte for byte, in the
same order, with the same schema and the same plan."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pytest

from hispeed import col, func, lit, window
from hispeed.engine import Engine
from hispeed.frames import Frame
from tests.frames.conftest import load, records, schema


@dataclass
class Case:
    kind: str  # STREAM TABLE
    sql: str  # the SELECT, without EMIT
    frame: Callable[[Engine], Frame]
    emit: str = "changes"


TUMBLING_SQL = (
    "SELECT user_id, COUNT(*) AS n, MAX(ms) AS slow FROM clicks "
    "WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 1 SECONDS) WHERE status = 200 "
    "GROUP BY user_id"
)


def tumbling(e: Engine) -> Frame:
    """The issue's example: TUMBLING_SQL in Python."""
    return (
        e.frame("clicks")
        .filter(col("status") == 200)
        .group_by("user_id", window=window.tumbling("10s", grace="1s"))
        .agg(n=col("*").count(), slow=col("ms").max())
    )


CASES = {
    "select": Case(
        "STREAM",
        "SELECT user_id, page, ms * 2 AS double_ms FROM clicks",
        lambda e: e.frame("clicks").select("user_id", col("page"), double_ms=col("ms") * 2),
    ),
    "select_reorders": Case(
        "STREAM",
        "SELECT user_id, page, status FROM clicks",
        lambda e: e.frame("clicks").select("user_id", "page", "status"),
    ),
    "with_columns_adds": Case(
        "STREAM",
        "SELECT *, ms / 1000.0E0 AS seconds FROM clicks",
        lambda e: e.frame("clicks").with_columns(seconds=col("ms") / 1000.0),
    ),
    "with_columns_replaces": Case(
        "STREAM",
        "SELECT user_id, status, ms + 1 AS ms, page, tags FROM clicks",
        lambda e: e.frame("clicks").with_columns((col("ms") + 1).alias("ms")),
    ),
    "filter": Case(
        "STREAM",
        "SELECT * FROM clicks WHERE status = 200 AND ms > 3.5E0",
        lambda e: e.frame("clicks").filter((col("status") == 200) & (col("ms") > 3.5)),
    ),
    "filter_predicates": Case(
        "STREAM",
        "SELECT * FROM clicks WHERE page IN ('/p1', '/p2') OR (ms BETWEEN 3 AND 9 "
        "AND NOT page LIKE '%5' AND user_id IS NOT NULL)",
        lambda e: e.frame("clicks").filter(
            col("page").is_in(["/p1", "/p2"])
            | (col("ms").between(3, 9) & ~col("page").like("%5") & col("user_id").is_not_null())
        ),
    ),
    "filter_reads_selected": Case(
        "STREAM",
        "SELECT user_id, ms * 2 AS d, UCASE(page) AS p FROM clicks WHERE ms * 2 > 10",
        lambda e: (
            e.frame("clicks")
            .select("user_id", d=col("ms") * 2, p=func("ucase", col("page")))
            .filter(col("d") > 10)
        ),
    ),
    "explode": Case(
        "STREAM",
        "SELECT user_id, status, ms, page, EXPLODE(tags) AS tags FROM clicks",
        lambda e: e.frame("clicks").explode("tags"),
    ),
    "explode_alias_after_select": Case(
        "STREAM",
        "SELECT user_id, EXPLODE(tags) AS tag FROM clicks WHERE status = 200",
        lambda e: (
            e.frame("clicks")
            .filter(col("status") == 200)
            .select("user_id", "tags")
            .explode("tags", alias="tag")
        ),
    ),
    "group_by": Case(
        "TABLE",
        "SELECT user_id, COUNT(*) AS n, SUM(ms) AS total, AVG(ms) AS mean, MIN(ms) AS lo, "
        "MAX(ms) AS hi, COUNT(page) AS pages, COUNT_DISTINCT(page) AS distinct_pages "
        "FROM clicks GROUP BY user_id",
        lambda e: (
            e.frame("clicks")
            .group_by("user_id")
            .agg(
                n=col("*").count(),
                total=col("ms").sum(),
                mean=col("ms").avg(),
                lo=col("ms").min(),
                hi=col("ms").max(),
                pages=col("page").count(),
                distinct_pages=col("page").count_distinct(),
            )
        ),
    ),
    "group_by_collections": Case(
        "TABLE",
        "SELECT page, COLLECT_LIST(status) AS statuses, COLLECT_SET(user_id) AS users, "
        "HISTOGRAM(user_id) AS per_user, TOPK(ms, 3) AS top3, TOPKDISTINCT(status, 2) AS s2, "
        "LATEST_BY_OFFSET(ms) AS last_ms, EARLIEST_BY_OFFSET(ms) AS first_ms, "
        "STDDEV_SAMP(ms) AS sd FROM clicks GROUP BY page",
        lambda e: (
            e.frame("clicks")
            .group_by("page")
            .agg(
                statuses=col("status").collect_list(),
                users=col("user_id").collect_set(),
                per_user=col("user_id").histogram(),
                top3=col("ms").topk(3),
                s2=col("status").topk_distinct(2),
                last_ms=col("ms").latest_by_offset(),
                first_ms=col("ms").earliest_by_offset(),
                sd=col("ms").stddev_samp(),
            )
        ),
    ),
    "group_by_expression_having": Case(
        "TABLE",
        "SELECT status / 100 AS class, COUNT(*) AS n FROM clicks WHERE ms > 1 "
        "GROUP BY status / 100 HAVING COUNT(*) > 5",
        lambda e: (
            e.frame("clicks")
            .filter(col("ms") > 1)
            .group_by((col("status") / 100).alias("class"))
            .agg(n=col("*").count())
            .filter(col("n") > 5)
        ),
    ),
    "tumbling_changes": Case(
        "TABLE",
        TUMBLING_SQL,
        tumbling,
    ),
    "tumbling_final": Case(
        "TABLE",
        TUMBLING_SQL,
        tumbling,
        emit="final",
    ),
    "hopping": Case(
        "TABLE",
        "SELECT page, COUNT(*) AS n, WINDOWSTART AS ws FROM clicks "
        "WINDOW HOPPING (SIZE 20 SECONDS, ADVANCE BY 5 SECONDS, GRACE PERIOD 2 SECONDS) "
        "GROUP BY page",
        lambda e: (
            e.frame("clicks")
            .group_by("page", window=window.hopping("20s", "5s", grace="2s"))
            .agg(n=col("*").count(), ws=col("windowstart"))
        ),
    ),
    "hopping_final": Case(
        "TABLE",
        "SELECT page, SUM(ms) AS total FROM clicks "
        "WINDOW HOPPING (SIZE 20 SECONDS, ADVANCE BY 10 SECONDS, GRACE PERIOD 0 SECONDS) "
        "GROUP BY page",
        lambda e: (
            e.frame("clicks")
            .group_by("page", window=window.hopping(20_000, 10_000, grace=0))
            .agg(total=col("ms").sum())
        ),
        emit="final",
    ),
    "session": Case(
        "TABLE",
        "SELECT user_id, COUNT(*) AS n FROM clicks "
        "WINDOW SESSION (2 SECONDS, GRACE PERIOD 1 SECONDS) GROUP BY user_id",
        lambda e: (
            e.frame("clicks")
            .group_by("user_id", window=window.session("2s", grace="1s"))
            .agg(n=col("*").count())
        ),
    ),
    "session_final": Case(
        "TABLE",
        "SELECT page, COUNT(*) AS n FROM clicks "
        "WINDOW SESSION (5 SECONDS, GRACE PERIOD 0 SECONDS) GROUP BY page",
        lambda e: (
            e.frame("clicks")
            .group_by("page", window=window.session("5s", grace="0s"))
            .agg(n=col("*").count())
        ),
        emit="final",
    ),
    "stream_stream_join": Case(
        "STREAM",
        "SELECT * FROM orders o JOIN payments p WITHIN 5 SECONDS ON o.order_id = p.order_id",
        lambda e: (
            e.frame("orders")
            .alias("o")
            .join(
                e.frame("payments").alias("p"), col("o.order_id") == col("p.order_id"), within="5s"
            )
        ),
    ),
    "stream_stream_left_join": Case(
        "STREAM",
        "SELECT o.order_id AS id, amount, paid FROM orders o LEFT JOIN payments p "
        "WITHIN (1 SECONDS, 6 SECONDS) GRACE PERIOD 2 SECONDS ON o.order_id = p.order_id",
        lambda e: (
            e.frame("orders")
            .alias("o")
            .join(
                e.frame("payments").alias("p"),
                col("o.order_id") == col("p.order_id"),
                how="left",
                within=("1s", "6s"),
                grace="2s",
            )
            .select(col("o.order_id").alias("id"), "amount", "paid")
        ),
    ),
    "stream_table_join": Case(
        "STREAM",
        "SELECT c.user_id AS uid, name, page FROM clicks c JOIN users u ON c.user_id = u.id "
        "WHERE status = 200",
        lambda e: (
            e.frame("clicks")
            .alias("c")
            .join(e.frame("users").alias("u"), col("c.user_id") == col("u.id"))
            .filter(col("status") == 200)
            .select(col("c.user_id").alias("uid"), "name", "page")
        ),
    ),
    "table_table_join": Case(
        "TABLE",
        "SELECT * FROM users LEFT JOIN scores ON users.id = scores.id",
        lambda e: e.frame("users").join(
            e.frame("scores"), col("users.id") == col("scores.id"), how="left"
        ),
    ),
    "foreign_key_join": Case(
        "TABLE",
        "SELECT id, name, continent FROM users JOIN countries ON country = code",
        lambda e: (
            e.frame("users")
            .join(e.frame("countries"), col("country") == col("code"))
            .select("id", "name", "continent")
        ),
    ),
    "partition_by": Case(
        "STREAM",
        "SELECT * FROM clicks PARTITION BY page",
        lambda e: e.frame("clicks").partition_by("page"),
    ),
    "partition_by_after_select": Case(
        "STREAM",
        "SELECT UCASE(page) AS p, ms FROM clicks WHERE status = 404 PARTITION BY UCASE(page)",
        lambda e: (
            e.frame("clicks")
            .select(p=func("UCASE", col("page")), ms=col("ms"))
            .filter(col("status") == 404)
            .partition_by("p")
        ),
    ),
    "literals_case_cast": Case(
        "STREAM",
        "SELECT user_id, CAST(status AS STRING) AS s, ms + -2 AS shifted, 'x''y' AS q, "
        "tags[1] AS first_tag, 3000000000 AS big, CAST(NULL AS STRING) AS nothing, "
        "TRUE AS yes FROM clicks",
        lambda e: e.frame("clicks").select(
            "user_id",
            s=col("status").cast("STRING"),
            shifted=col("ms") + (-2),
            q=lit("x'y"),
            first_tag=col("tags")[1],
            big=lit(3_000_000_000),
            nothing=lit(None).cast("STRING"),
            yes=lit(True),
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_python_pipeline_writes_what_sql_writes(engine: Engine, name: str) -> None:
    case = CASES[name]
    emit = case.emit.upper()
    engine.execute(f"CREATE {case.kind} by_sql AS {case.sql} EMIT {emit};")
    frame = case.frame(engine)
    if case.kind == "TABLE":
        frame.to_table("by_python", emit=case.emit)
    else:
        frame.to_stream("by_python")
    # the same plan: EXPLAIN of the SQL and the frame's explain() print the same
    assert (
        frame.explain(emit=case.emit)
        == engine.execute(f"EXPLAIN {case.sql} EMIT {emit};")[0].message
    )
    load(engine)
    engine.drain()
    want = records(engine, "by_sql")
    assert want, f"{name}: the SQL query wrote nothing, so the comparison would prove nothing"
    assert schema(engine, "by_python") == schema(engine, "by_sql")
    assert records(engine, "by_python") == want


def test_to_topic_writes_the_named_topic(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM by_sql WITH (kafka_topic='slow_sql', value_format='DELIMITED') AS "
        "SELECT user_id, ms FROM clicks WHERE ms > 20 EMIT CHANGES;"
    )
    engine.frame("clicks").filter(col("ms") > 20).select("user_id", "ms").to_topic(
        "slow-py", value_format="DELIMITED"
    )
    grouped = engine.frame("clicks").group_by("page").agg(n=col("*").count())
    grouped.to_topic("page-counts", name="page_counts")
    load(engine)
    engine.drain()
    assert engine.catalog.sources["SLOW_PY"].topic == "slow-py"
    assert engine.catalog.sources["PAGE_COUNTS"].kind == "TABLE"
    assert engine.catalog.sources["PAGE_COUNTS"].topic == "page-counts"
    want = records(engine, "by_sql")
    assert want
    assert records(engine, "slow_py") == want
    assert records(engine, "page_counts")

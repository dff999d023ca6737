"""`Engine.analyze` and ANALYZE: DuckDB's SQL over streams' history and tables' current state.

Expected results are computed here with pandas from the rows the tests themselves produced,
never from hispeed's decoding.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError
from hispeed.runtime import history
from hispeed.runtime.analytic import run_analysis


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    with Engine(tmp_path / "data", fsync="never") as e:
        yield e


def _clicks_and_orders(engine: Engine) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Two JSON streams of 3 partitions with seeded random rows; the rows as produced."""
    engine.execute(
        "CREATE STREAM clicks (user_id STRING KEY, page STRING, ms INT) "
        "WITH (kafka_topic='clicks', value_format='JSON', partitions=3);"
        "CREATE STREAM orders (user_id STRING KEY, page STRING, amount DOUBLE) "
        "WITH (kafka_topic='orders', value_format='JSON', partitions=3);"
    )
    rng = random.Random(7)
    users = [f"u{i}" for i in range(12)]
    pages = ["home", "cart", "pay", "help"]
    ms = rng.sample(range(100_000), 600)  # distinct: the ranking has no ties
    clicks = [{"USER_ID": rng.choice(users), "PAGE": rng.choice(pages), "MS": m} for m in ms]
    amounts = rng.sample(range(1, 100_000), 150)
    orders = [
        {"USER_ID": rng.choice(users), "PAGE": rng.choice(pages), "AMOUNT": a / 100}
        for a in amounts
    ]
    for start in range(0, len(clicks), 100):  # several appends: several batches to scan
        engine.insert_many("clicks", clicks[start : start + 100])
    engine.insert_many("orders", orders)
    return pd.DataFrame(clicks), pd.DataFrame(orders)


def test_join_window_function_and_order_by_over_two_streams(engine: Engine) -> None:
    clicks, orders = _clicks_and_orders(engine)
    got = engine.analyze(
        """
        SELECT c.user_id, c.page, c.ms, o.amount,
               rank() OVER (PARTITION BY c.user_id ORDER BY c.ms DESC) AS r,
               sum(o.amount) OVER (PARTITION BY c.page) AS page_total
        FROM clicks c JOIN orders o ON c.user_id = o.user_id AND c.page = o.page
        WHERE c.ms > 1000
        ORDER BY c.user_id, r, o.amount
        """,
        format="pandas",
    )
    joined = clicks[clicks.MS > 1000].merge(orders, on=["USER_ID", "PAGE"])
    joined["r"] = joined.groupby("USER_ID").MS.rank(method="min", ascending=False).astype(int)
    joined["page_total"] = joined.groupby("PAGE").AMOUNT.transform("sum")
    want = joined.sort_values(["USER_ID", "r", "AMOUNT"])
    assert len(got) == len(want) > 100
    assert list(got.USER_ID) == list(want.USER_ID)
    assert list(got.PAGE) == list(want.PAGE)
    assert list(got.MS) == list(want.MS)
    assert list(got.AMOUNT) == list(want.AMOUNT)
    assert list(got.r) == list(want.r)
    assert list(got.page_total) == pytest.approx(list(want.page_total))


def test_every_format_gives_the_same_rows(engine: Engine) -> None:
    clicks, _ = _clicks_and_orders(engine)
    sql = "SELECT page, count(*) AS n, max(ms) AS top FROM clicks GROUP BY page ORDER BY page"
    want = (
        clicks.groupby("PAGE")
        .agg(n=("MS", "size"), top=("MS", "max"))
        .reset_index()
        .sort_values("PAGE")
    )
    expected = [
        {"PAGE": p, "n": int(n), "top": int(t)}
        for p, n, t in zip(want.PAGE, want.n, want.top, strict=True)
    ]
    assert engine.analyze(sql, format="rows") == expected
    table = engine.analyze(sql)
    assert isinstance(table, pa.Table)
    assert table.schema.field("top").type == pa.int32()  # the catalog's INT, not JSON's guess
    assert table.to_pylist() == expected
    assert engine.analyze(sql, format="polars").to_dicts() == expected
    assert engine.analyze(sql, format="pandas").to_dict("records") == expected
    with pytest.raises(HispeedError, match="format must be"):
        engine.analyze(sql, format="csv")


def test_pseudo_columns_are_where_each_record_landed(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM s (k STRING KEY, v BIGINT) "
        "WITH (kafka_topic='s', value_format='JSON', partitions=4);"
    )
    rows = [{"K": f"k{i % 9}", "V": i, "ROWTIME": 1_700_000_000_000 + i} for i in range(200)]
    landed = engine.insert_many("s", rows)
    got = engine.analyze("SELECT v, rowtime, rowpartition, rowoffset FROM s", format="rows")
    where = {
        (int(p), int(o)): i
        for i, (p, o) in enumerate(zip(landed.partitions, landed.offsets, strict=True))
    }
    assert len(got) == 200
    for row in got:
        i = where[(row["ROWPARTITION"], row["ROWOFFSET"])]
        assert row["V"] == i
        assert row["ROWTIME"] == 1_700_000_000_000 + i


def test_a_table_is_its_current_state(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE users (id STRING PRIMARY KEY, name STRING, visits INT) "
        "WITH (kafka_topic='users', value_format='JSON', partitions=2);"
    )
    rng = random.Random(3)
    state: dict[str, dict[str, Any]] = {}
    for step in range(300):
        key = f"u{rng.randrange(20)}"
        if rng.random() < 0.15:  # a tombstone: the key is deleted
            engine.log.append("users", [{"key": key.encode(), "value": None}])
            state.pop(key, None)
        else:
            row = {"ID": key, "NAME": f"n{step}", "VISITS": step}
            engine.insert("users", row)
            state[key] = row
    got = engine.analyze("SELECT id, name, visits FROM users ORDER BY id", format="rows")
    assert got == [state[k] for k in sorted(state)]
    assert 0 < len(got) < 20  # some keys were deleted
    # the table joins a stream as its current state
    engine.execute(
        "CREATE STREAM visits (id STRING KEY, page STRING) "
        "WITH (kafka_topic='visits', value_format='JSON', partitions=2);"
    )
    engine.insert_many("visits", [{"ID": f"u{i}", "PAGE": "home"} for i in range(20)])
    joined = engine.analyze(
        "SELECT v.id, u.name FROM visits v LEFT JOIN users u ON v.id = u.id ORDER BY v.id",
        format="rows",
    )
    assert joined == [
        {"ID": k, "NAME": state[k]["NAME"] if k in state else None}
        for k in sorted(f"u{i}" for i in range(20))
    ]


def test_a_derived_table_is_its_current_state(engine: Engine) -> None:
    clicks, _ = _clicks_and_orders(engine)
    engine.execute(
        "CREATE TABLE per_user AS SELECT user_id, COUNT(*) AS n FROM clicks GROUP BY user_id;"
    )
    engine.drain()
    got = engine.analyze("SELECT user_id, n FROM per_user ORDER BY user_id", format="rows")
    counts = clicks.groupby("USER_ID").size()
    assert got == [{"USER_ID": u, "N": int(n)} for u, n in counts.items()]


def test_bad_sql_is_a_clear_error_with_its_place(engine: Engine) -> None:
    _clicks_and_orders(engine)
    with pytest.raises(SqlError) as syntax:
        engine.analyze("SELECT *\nFROM clicks\nWHER ms > 3")
    assert (syntax.value.line, syntax.value.column) == (3, 6)
    assert "syntax error" in str(syntax.value)
    with pytest.raises(SqlError) as unknown:
        engine.analyze("SELECT *\n  FROM clicks JOIN nowhere USING (user_id)")
    assert (unknown.value.line, unknown.value.column) == (2, 20)
    assert "nowhere does not exist" in str(unknown.value)
    assert "CLICKS, ORDERS" in str(unknown.value)
    with pytest.raises(HispeedError, match='"nope" not found') as column:
        engine.analyze("SELECT nope FROM clicks")
    assert "Traceback" not in str(column.value)
    with pytest.raises(SqlError, match="one query"):
        engine.analyze("CREATE TABLE t (a INT)")
    # a CTE's name is no source of the engine's
    assert engine.analyze(
        "WITH top AS (SELECT max(ms) AS m FROM clicks) SELECT m FROM top", format="rows"
    )


def test_analytical_sql_cannot_reach_files(engine: Engine, tmp_path: Path) -> None:
    secret = tmp_path / "secret.csv"
    secret.write_text("a\nsecret\n")
    for sql in (f"SELECT * FROM read_csv('{secret}')", f"SELECT * FROM '{secret}'"):
        with pytest.raises(HispeedError) as refused:
            engine.analyze(sql)
        assert "secret\n" not in str(refused.value)


def test_analyze_statement_places_errors_in_the_whole_text(engine: Engine) -> None:
    _clicks_and_orders(engine)
    [result] = engine.execute("ANALYZE SELECT page, count(*) AS n FROM clicks GROUP BY page;")
    assert result.kind == "analysis"
    assert result.info["columns"] == ["PAGE", "n"]
    assert sum(r["n"] for r in result.rows) == 600
    with pytest.raises(SqlError) as bad:
        engine.execute("SHOW STREAMS;\nANALYZE SELECT *\n  FROM clicks\n  WHER 1 = 1;")
    assert (bad.value.line, bad.value.column) == (4, 8)
    # DuckDB's own syntax that this dialect's lexer does not know still runs
    [cast] = engine.execute("ANALYZE SELECT {'n': count(*)} AS s, max(ms)::BIGINT AS m FROM clicks")
    assert cast.rows[0]["s"] == {"n": 600}
    with pytest.raises(SqlError) as lone:
        engine.execute("ANALYZE SELECT $1 FORM clicks")
    assert (lone.value.line, lone.value.column) == (1, 24)


def test_analyze_statement_rows_are_bounded(engine: Engine) -> None:
    _clicks_and_orders(engine)
    with pytest.raises(HispeedError, match="at most 10 rows"):
        engine.execute("ANALYZE SELECT * FROM clicks", {"analyze.max.rows": 10})


def test_progress_counts_every_record(engine: Engine) -> None:
    _clicks_and_orders(engine)
    seen: list[tuple[int, int]] = []
    engine.analyze(
        "SELECT count(*) FROM clicks, orders",
        progress=lambda done, total: seen.append((done, total)),
    )
    assert seen[0] == (0, 750)
    assert seen[-1] == (750, 750)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)


def test_decoded_chunks_are_cached_and_checked(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(history, "CHUNK_OFFSETS", 64)
    engine.execute(
        "CREATE STREAM s (k STRING KEY, v BIGINT) "
        "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
    )
    engine.insert_many("s", [{"K": "a", "V": i} for i in range(200)])
    sql = "SELECT count(*) AS n, sum(v) AS total FROM s"
    assert engine.analyze(sql, format="rows") == [{"n": 200, "total": sum(range(200))}]
    cache = Path(engine.log.data_dir) / "analyze-cache"  # type: ignore[attr-defined]
    chunks = sorted(p.name for p in cache.rglob("*.arrow"))
    assert chunks == ["p0-0.arrow", "p0-1.arrow", "p0-2.arrow"]  # the last is not full yet
    assert engine.analyze(sql, format="rows") == [{"n": 200, "total": sum(range(200))}]
    # the topic made again under the same name: its old chunks are not used
    engine.execute("DROP STREAM s DELETE TOPIC;")
    engine.execute(
        "CREATE STREAM s (k STRING KEY, v BIGINT) "
        "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
    )
    engine.insert_many("s", [{"K": "a", "V": 2 * i} for i in range(150)])
    assert engine.analyze(sql, format="rows") == [{"n": 150, "total": 2 * sum(range(150))}]


def test_the_cache_stays_within_its_bytes(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history, "CHUNK_OFFSETS", 64)
    engine.execute(
        "CREATE STREAM s (k STRING KEY, v BIGINT) "
        "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
    )
    engine.insert_many("s", [{"K": "a", "V": i} for i in range(64 * 10)])
    limit = 5000
    engine.properties["analyze.cache.bytes"] = limit
    got = engine.analyze("SELECT sum(v) AS t FROM s", format="rows")
    assert got == [{"t": sum(range(640))}]
    cache = Path(engine.log.data_dir) / "analyze-cache"  # type: ignore[attr-defined]
    sizes = [p.stat().st_size for p in cache.rglob("*.arrow")]
    assert sizes
    assert sum(sizes) <= limit
    engine.properties["analyze.cache.bytes"] = 0  # off: nothing new is written
    for p in cache.rglob("*.arrow"):
        p.unlink()
    assert engine.analyze("SELECT sum(v) AS t FROM s", format="rows") == got
    assert not list(cache.rglob("*.arrow"))


def test_a_scan_goes_on_past_records_retention_lets_go(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM s (k STRING KEY, v BIGINT) "
        "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
    )
    for first in range(0, 200_000, 50_000):  # a frame per append: reads go frame by frame
        engine.insert_many("s", [{"K": "a", "V": i} for i in range(first, first + 50_000)])
    cut = 150_000

    def retention(done: int, total: int) -> None:
        if 0 < done < cut:  # the oldest records go while the scan is under way
            engine.log.delete_records_before("s", 0, cut)  # type: ignore[attr-defined]

    got = engine.analyze("SELECT count(*) AS n, max(v) AS top FROM s", progress=retention)
    n = got.column("n")[0].as_py()
    assert got.column("top")[0].as_py() == 199_999
    assert n < 200_000  # records let go were not read
    assert n >= 50_000  # those after the cut were


def _taken_elsewhere(engine: Engine, timeout: float) -> bool:
    """Whether another thread can take the engine's lock within `timeout` s."""
    got: list[bool] = []

    def take() -> None:
        ok = engine.lock.acquire(timeout=timeout)
        if ok:
            engine.lock.release()
        got.append(ok)

    worker = threading.Thread(target=take)
    worker.start()
    worker.join()
    return got[0]


def test_a_statement_lets_the_engine_run_while_it_scans(engine: Engine) -> None:
    _clicks_and_orders(engine)
    during: list[bool] = []

    def progress(done: int, total: int) -> None:
        if done and not during:  # mid-scan: the queries' loop could take the lock now
            during.append(_taken_elsewhere(engine, 10.0))

    with engine.lock, engine.lock:  # as a statement handler runs: held, maybe twice over
        table = run_analysis(engine.context, "SELECT count(*) AS n FROM clicks", progress=progress)
        assert not _taken_elsewhere(engine, 0.05)  # held again, as the handler expects
    assert during == [True]
    assert table.column("n").to_pylist() == [600]


def test_a_scan_reads_each_frame_of_the_log_once(engine: Engine) -> None:
    """A frame is read and CRC-checked whole: a scan asking the log for fewer records than a
    frame holds would read (and check) the same frame again for each part of it."""
    engine.execute(
        "CREATE STREAM s (k STRING KEY, v BIGINT) "
        "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
    )
    frames, per_frame = 3, 100_000
    for f in range(frames):  # one append of an Arrow batch: one frame
        first = f * per_frame
        engine.log.append(
            "s",
            pa.table(
                {
                    "key": pa.array([b"a"] * per_frame, pa.binary()),
                    "value": pa.array(
                        [b'{"V":%d}' % i for i in range(first, first + per_frame)], pa.binary()
                    ),
                }
            ),
            partition=0,
        )
    engine.properties["analyze.cache.bytes"] = 0
    reads: list[int] = []
    real_read = engine.log.read

    def counted(*args: Any, **kwargs: Any) -> list[pa.RecordBatch]:
        got = real_read(*args, **kwargs)
        reads.append(sum(b.num_rows for b in got))
        return got

    engine.log.read = counted  # type: ignore[method-assign]
    got = engine.analyze("SELECT count(*) AS n, sum(v) AS total FROM s", format="rows")
    assert got == [{"n": frames * per_frame, "total": sum(range(frames * per_frame))}]
    assert len(reads) <= frames
    assert sum(reads) == frames * per_frame

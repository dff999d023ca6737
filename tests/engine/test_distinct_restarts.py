"""COUNT(DISTINCT ...) and FILTER (WHERE ...) states across restarts, against DuckDB: the sets
written to the changelog as chunks of what each batch added (state/multisets.py), read back
by the path that wrote them and by the others (the record cache off writes them whole, as
changelogs written before chunks hold them), and tables' retractions restored."""

from __future__ import annotations

import json
import pickle
import random
from pathlib import Path
from typing import Any

import duckdb

from hispeed.engine import Engine
from hispeed.state.changelog import changelog_topic

CALLS = (
    "COUNT(*) AS n, COUNT(DISTINCT b) AS kinds, "
    "COUNT(DISTINCT b) FILTER (WHERE p < 10) AS cheap_kinds, "
    "COUNT(DISTINCT p) FILTER (WHERE p >= 10) AS dear_prices, MAX(p) AS top"
)
NAMES = ("N", "KINDS", "CHEAP_KINDS", "DEAR_PRICES", "TOP")
#: a table's (ksqlDB takes MAX of streams only)
TABLE_CALLS = CALLS.removesuffix(", MAX(p) AS top")
STREAM = (
    "CREATE STREAM s (id INT KEY, g STRING, b BIGINT, p BIGINT) WITH (kafka_topic='s', "
    "value_format='JSON', partitions=1);"
)


def _latest(
    engine: Engine, topic: str, names: tuple[str, ...] = NAMES
) -> dict[str, tuple[Any, ...]]:
    """Each group's last row in a table's topic (tombstones delete)."""
    table = engine.log.read_table(topic, 0)
    out: dict[str, tuple[Any, ...]] = {}
    for k, v in zip(
        table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
    ):
        if v is None:
            out.pop(k.decode(), None)
        else:
            row = json.loads(v)
            out[k.decode()] = tuple(row[c] for c in names)
    return out


def _rows(rng: random.Random, n: int) -> list[tuple[str | None, int | None, int | None]]:
    return [
        (
            rng.choice(["a", "b", "c", "d", None]),
            rng.choice([None, *range(60)]),
            rng.choice([None, *range(25)]),
        )
        for _ in range(n)
    ]


def _duckdb(rows: list[tuple[Any, ...]], calls: str = CALLS) -> dict[str, tuple[Any, ...]]:
    con = duckdb.connect()
    con.execute("create table s (g varchar, b bigint, p bigint)")
    if rows:
        con.executemany("insert into s values (?, ?, ?)", rows)
    query = f"select g, {calls} from s where g is not null group by g"
    return {r[0]: r[1:] for r in con.sql(query).fetchall()}


def test_distinct_sets_restart_in_either_changelog_form_as_duckdb(tmp_path: Path) -> None:
    """Five runs over one data directory, each appending rows and restarting from the last
    one's changelog: the by-group path (sets written as chunks), the record cache off
    (sets written whole, as before chunks; it reads chunks back), the by-group path again
    (reads whole sets and chunks no record refers to any more), and so on. After each
    run the table is DuckDB's over every row so far."""
    rng = random.Random(16)
    rows: list[tuple[str | None, int | None, int | None]] = []
    modes: list[dict[str, Any]] = [{}, {"ksql.streams.cache.max.bytes.buffering": 0}]
    for run in range(5):
        properties = {"query.max.poll.records": 40, **modes[run % 2]}
        with Engine(tmp_path / "d", properties=properties) as e:
            if run == 0:
                e.execute(STREAM)
                e.execute(f"CREATE TABLE agg AS SELECT g, {CALLS} FROM s GROUP BY g;")
            more = _rows(rng, 300)
            start = len(rows)
            e.log.append(
                "s",
                [
                    ((start + i).to_bytes(4, "big"), json.dumps({"G": g, "B": b, "P": p}).encode())
                    for i, (g, b, p) in enumerate(more)
                ],
            )
            rows += more
            e.drain()
            assert _latest(e, "AGG") == _duckdb(rows), f"after run {run}"


def _changelog_bytes(engine: Engine) -> int:
    """The bytes of every record the query's changelog holds (keys and values)."""
    [query_id] = list(engine.tasks)
    table = engine.log.read_table(changelog_topic(query_id), 0)
    return sum(
        len(k) + len(v or b"")
        for k, v in zip(
            table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
        )
    )


def test_a_growing_distinct_set_is_not_written_whole_each_batch(tmp_path: Path) -> None:
    """One group takes 100 new distinct values a batch for 30 batches: its changelog holds
    about the final set once (each batch writes what it added), not the set as it was at
    each batch (15 times the final set, as when every batch wrote the set whole)."""
    with Engine(tmp_path / "d", properties={"query.max.poll.records": 100}) as e:
        e.execute(STREAM)
        e.execute("CREATE TABLE agg AS SELECT g, COUNT(DISTINCT b) AS kinds FROM s GROUP BY g;")
        for batch in range(30):
            values = range(batch * 100, batch * 100 + 100)
            e.log.append(
                "s",
                [(v.to_bytes(4, "big"), json.dumps({"G": "g", "B": v}).encode()) for v in values],
            )
            e.drain()
        assert json.loads(e.log.read_table("AGG", 0).column("value")[-1].as_py()) == {"KINDS": 3000}
        whole = len(pickle.dumps(dict.fromkeys(range(3000), 1)))
        assert _changelog_bytes(e) < 3 * whole
    with Engine(tmp_path / "d", properties={"query.max.poll.records": 100}) as e:
        e.log.append("s", [(b"\x00\x00\x00\x01", json.dumps({"G": "g", "B": 5000}).encode())])
        e.drain()
        assert json.loads(e.log.read_table("AGG", 0).column("value")[-1].as_py()) == {"KINDS": 3001}


def test_table_distinct_counts_take_rows_back_across_restarts(tmp_path: Path) -> None:
    """A table's rows changed and removed (tombstones), the engine restarted between steps:
    each step's COUNT(DISTINCT ...) with FILTER is DuckDB's over the table's rows then."""
    rng = random.Random(22)
    current: dict[int, tuple[str | None, int | None, int | None]] = {}
    for step in range(6):
        with Engine(tmp_path / "d", properties={"query.max.poll.records": 9}) as e:
            if step == 0:
                e.execute(
                    "CREATE TABLE t (id INT PRIMARY KEY, g STRING, b BIGINT, p BIGINT) "
                    "WITH (kafka_topic='t', value_format='JSON', partitions=1);"
                )
                e.execute(f"CREATE TABLE agg AS SELECT g, {TABLE_CALLS} FROM t GROUP BY g;")
            records: list[tuple[bytes, bytes | None]] = []
            for _ in range(50):
                key = rng.randrange(30)
                if key in current and rng.random() < 0.35:
                    del current[key]
                    records.append((key.to_bytes(4, "big"), None))
                    continue
                g, b, p = _rows(rng, 1)[0]
                current[key] = (g, b, p)
                records.append(
                    (key.to_bytes(4, "big"), json.dumps({"G": g, "B": b, "P": p}).encode())
                )
            e.log.append("t", records)
            e.drain()
            # a group whose rows all left stays, counting none
            latest = _latest(e, "AGG", NAMES[:-1])
            got = {g: row for g, row in latest.items() if row[0] > 0}
        assert got == _duckdb(list(current.values()), TABLE_CALLS), f"after step {step}"

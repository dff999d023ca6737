"""Joins end to end on the embedded log: every join type, n-way, foreign keys, errors, restarts."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.log.base import Record

CLICKS = (
    "CREATE STREAM clicks (user_id STRING KEY, page STRING) "
    "WITH (kafka_topic='clicks', value_format='JSON', partitions=1);"
)
VIEWS = (
    "CREATE STREAM views (user_id STRING KEY, ms INT) "
    "WITH (kafka_topic='views', value_format='JSON', partitions=1);"
)
USERS = (
    "CREATE TABLE users (user_id STRING PRIMARY KEY, name STRING, country_id STRING) "
    "WITH (kafka_topic='users', value_format='JSON', partitions=1);"
)
COUNTRIES = (
    "CREATE TABLE countries (id STRING PRIMARY KEY, country STRING) "
    "WITH (kafka_topic='countries', value_format='JSON', partitions=1);"
)


LOCATED = (
    "CREATE TABLE located AS SELECT u.user_id, name, country FROM users u "
    "JOIN countries c ON u.country_id = c.id;"
)


def open_engine(path: Path) -> Engine:
    return Engine(path, fsync="never", properties={"ksql.streams.cache.max.bytes.buffering": "0"})


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = open_engine(tmp_path / "data")
    for ddl in (CLICKS, VIEWS, USERS, COUNTRIES):
        e.execute(ddl)
    yield e
    e.close()


def send(engine: Engine, topic: str, key: str, value: dict[str, Any] | None, ts: int) -> None:
    """One record, processed before the next (the order the join sees them in)."""
    raw = json.dumps(value).encode() if value is not None else None
    engine.log.append(topic, [Record(raw, key, ts)], partition=0)
    engine.drain()


def out(engine: Engine, topic: str) -> list[tuple[str | None, Any, int]]:
    rows = []
    for r in engine.log.read_table(topic, 0).to_pylist():
        key = r["key"].decode() if r["key"] is not None else None
        value = json.loads(r["value"]) if r["value"] is not None else None
        rows.append((key, value, r["timestamp"]))
    return rows


def test_stream_table_inner_and_left(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM enriched AS SELECT c.user_id, page, name FROM clicks c "
        "JOIN users u ON c.user_id = u.user_id;"
    )
    engine.execute(
        "CREATE STREAM enriched_all AS SELECT c.user_id, page, name FROM clicks c "
        "LEFT JOIN users u ON c.user_id = u.user_id;"
    )
    send(engine, "clicks", "u1", {"PAGE": "/a"}, 1)  # no user yet
    send(engine, "users", "u1", {"NAME": "Ada", "COUNTRY_ID": "uk"}, 2)  # sends nothing
    send(engine, "clicks", "u1", {"PAGE": "/b"}, 3)
    send(engine, "users", "u1", None, 4)  # the user is deleted
    send(engine, "clicks", "u1", {"PAGE": "/c"}, 5)
    assert out(engine, "ENRICHED") == [("u1", {"PAGE": "/b", "NAME": "Ada"}, 3)]
    assert out(engine, "ENRICHED_ALL") == [
        ("u1", {"PAGE": "/a", "NAME": None}, 1),
        ("u1", {"PAGE": "/b", "NAME": "Ada"}, 3),
        ("u1", {"PAGE": "/c", "NAME": None}, 5),
    ]
    assert engine.catalog.get("ENRICHED").schema_text() == (
        "`C_USER_ID` STRING KEY, `PAGE` STRING, `NAME` STRING"
    )


def test_stream_stream_within_and_every_outer_kind(engine: Engine) -> None:
    for kind in ("INNER", "LEFT", "RIGHT", "FULL OUTER"):
        name = kind.split()[0].lower()
        key = "ROWKEY" if kind == "FULL OUTER" else "c.user_id"
        engine.execute(
            f"CREATE STREAM ss_{name} AS SELECT {key}, page, ms FROM clicks c "
            f"{kind} JOIN views v WITHIN 10 SECONDS ON c.user_id = v.user_id;"
        )
    send(engine, "clicks", "u1", {"PAGE": "/a"}, 1_000)
    send(engine, "views", "u1", {"MS": 40}, 5_000)  # within 10 s of the click
    send(engine, "views", "u2", {"MS": 7}, 6_000)  # no click for u2
    send(engine, "clicks", "u1", {"PAGE": "/b"}, 30_000)  # too far from the view
    assert out(engine, "SS_INNER") == [("u1", {"PAGE": "/a", "MS": 40}, 5_000)]
    # without GRACE PERIOD an unmatched outer row is sent at once (ksqlDB's old semantics)
    assert out(engine, "SS_LEFT") == [
        ("u1", {"PAGE": "/a", "MS": None}, 1_000),
        ("u1", {"PAGE": "/a", "MS": 40}, 5_000),
        ("u1", {"PAGE": "/b", "MS": None}, 30_000),
    ]
    assert out(engine, "SS_RIGHT") == [
        ("u1", {"PAGE": "/a", "MS": 40}, 5_000),
        ("u2", {"PAGE": None, "MS": 7}, 6_000),  # keyed by the join key, not the null column
    ]
    assert [r[0] for r in out(engine, "SS_FULL")] == ["u1", "u1", "u2", "u1"]


def test_stream_stream_with_grace_waits_for_the_window_to_close(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM late AS SELECT c.user_id, page, ms FROM clicks c LEFT JOIN views v "
        "WITHIN 1 SECOND GRACE PERIOD 1 SECOND ON c.user_id = v.user_id;"
    )
    send(engine, "clicks", "u1", {"PAGE": "/a"}, 1_000)
    send(engine, "clicks", "u2", {"PAGE": "/x"}, 1_500)
    assert out(engine, "LATE") == []  # both still wait for a view
    send(engine, "views", "u2", {"MS": 3}, 2_000)
    send(engine, "clicks", "u3", {"PAGE": "/z"}, 10_000)  # stream time passes both windows
    assert out(engine, "LATE") == [
        ("u2", {"PAGE": "/x", "MS": 3}, 2_000),
        ("u1", {"PAGE": "/a", "MS": None}, 1_000),  # u1 never matched: sent once, when closed
    ]


def test_table_table_joins_send_changes_and_deletions(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE tt_inner AS SELECT u.user_id, name, country FROM users u "
        "JOIN countries c ON u.user_id = c.id;"
    )
    engine.execute(
        "CREATE TABLE tt_full AS SELECT ROWKEY AS id, name, country FROM users u "
        "FULL OUTER JOIN countries c ON u.user_id = c.id;"
    )
    send(engine, "users", "k", {"NAME": "Ada", "COUNTRY_ID": None}, 10)
    send(engine, "countries", "k", {"COUNTRY": "Kenya"}, 20)
    send(engine, "users", "k", None, 30)
    assert out(engine, "TT_INNER") == [
        ("k", {"NAME": "Ada", "COUNTRY": "Kenya"}, 20),
        ("k", None, 30),
    ]
    assert out(engine, "TT_FULL") == [
        ("k", {"NAME": "Ada", "COUNTRY": None}, 10),
        ("k", {"NAME": "Ada", "COUNTRY": "Kenya"}, 20),
        ("k", {"NAME": None, "COUNTRY": "Kenya"}, 30),
    ]


def test_foreign_key_join_follows_the_referenced_row(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE located AS SELECT u.user_id, name, country FROM users u "
        "JOIN countries c ON u.country_id = c.id;"
    )
    send(engine, "countries", "ke", {"COUNTRY": "Kenya"}, 1)
    send(engine, "users", "u1", {"NAME": "Ada", "COUNTRY_ID": "ke"}, 2)
    send(engine, "users", "u2", {"NAME": "Bo", "COUNTRY_ID": "ke"}, 3)
    send(engine, "countries", "ke", {"COUNTRY": "Kenya!"}, 4)  # both users change
    assert out(engine, "LOCATED") == [
        ("u1", {"NAME": "Ada", "COUNTRY": "Kenya"}, 2),
        ("u2", {"NAME": "Bo", "COUNTRY": "Kenya"}, 3),
        ("u1", {"NAME": "Ada", "COUNTRY": "Kenya!"}, 4),
        ("u2", {"NAME": "Bo", "COUNTRY": "Kenya!"}, 4),
    ]


def test_an_inner_foreign_key_join_retracts_a_row_whose_foreign_key_turns_null(
    engine: Engine,
) -> None:
    """A left row whose foreign key becomes NULL joins nothing: an inner join's result for it
    is deleted (it stayed, stale, before); a later change of the row it referred to sends
    nothing for it, and a left join keeps the row with no match."""
    engine.execute(
        "CREATE TABLE located AS SELECT u.user_id, name, country FROM users u "
        "JOIN countries c ON u.country_id = c.id;"
    )
    engine.execute(
        "CREATE TABLE maybe_located AS SELECT u.user_id, name, country FROM users u "
        "LEFT JOIN countries c ON u.country_id = c.id;"
    )
    send(engine, "countries", "ke", {"COUNTRY": "Kenya"}, 1)
    send(engine, "users", "u1", {"NAME": "Ada", "COUNTRY_ID": "ke"}, 2)
    send(engine, "users", "u1", {"NAME": "Ada", "COUNTRY_ID": None}, 3)
    send(engine, "countries", "ke", {"COUNTRY": "Kenya!"}, 4)  # u1 no longer refers to it
    send(engine, "users", "u1", {"NAME": "Ada", "COUNTRY_ID": "ke"}, 5)
    assert out(engine, "LOCATED") == [
        ("u1", {"NAME": "Ada", "COUNTRY": "Kenya"}, 2),
        ("u1", None, 3),
        ("u1", {"NAME": "Ada", "COUNTRY": "Kenya!"}, 5),
    ]
    assert out(engine, "MAYBE_LOCATED") == [
        ("u1", {"NAME": "Ada", "COUNTRY": "Kenya"}, 2),
        ("u1", {"NAME": "Ada", "COUNTRY": None}, 3),
        ("u1", {"NAME": "Ada", "COUNTRY": "Kenya!"}, 5),
    ]


def test_an_inner_foreign_key_join_sends_no_tombstone_for_a_key_it_never_sent(
    tmp_path: Path,
) -> None:
    """A left row that never joined leaves nothing to delete: its changes (same or another
    missing foreign key) and its deletion send nothing, before and after a restart. A key
    that was sent a row gets its tombstones, as ksqlDB sends them (its fk-join.json: the left
    row's deletion after the right row's deletion sends a second one)."""
    path = tmp_path / "data"
    with open_engine(path) as e:
        for statement in (USERS, COUNTRIES, LOCATED):
            e.execute(statement)
        send(e, "countries", "ke", {"COUNTRY": "Kenya"}, 1)
        send(e, "users", "u1", {"NAME": "Ada", "COUNTRY_ID": "zz"}, 2)  # no such country
        send(e, "users", "u1", {"NAME": "Ada!", "COUNTRY_ID": "zz"}, 3)
        send(e, "users", "u1", {"NAME": "Ada!", "COUNTRY_ID": "yy"}, 4)
        send(e, "users", "u1", {"NAME": "Ada!", "COUNTRY_ID": None}, 5)
        send(e, "users", "u2", {"NAME": "Bo", "COUNTRY_ID": "ke"}, 6)
        send(e, "users", "u3", {"NAME": "Cy", "COUNTRY_ID": "ke"}, 7)
        send(e, "users", "u4", {"NAME": "Di", "COUNTRY_ID": "zz"}, 8)
        send(e, "countries", "ke", None, 9)  # u2 and u3 lose their rows
        send(e, "users", "u2", None, 10)  # sent a row once: its tombstone again
        send(e, "users", "u1", None, 11)
    with open_engine(path) as e:
        send(e, "users", "u3", {"NAME": "Cy!", "COUNTRY_ID": "zz"}, 12)
        send(e, "users", "u4", None, 13)  # never sent, across the restart
        send(e, "users", "u2", {"NAME": "Bo", "COUNTRY_ID": "zz"}, 14)  # deleted: new again
        send(e, "users", "u2", None, 15)
        rows = out(e, "LOCATED")
    assert rows == [
        ("u2", {"NAME": "Bo", "COUNTRY": "Kenya"}, 6),
        ("u3", {"NAME": "Cy", "COUNTRY": "Kenya"}, 7),
        ("u2", None, 9),
        ("u3", None, 9),
        ("u2", None, 10),
        ("u3", None, 12),
    ]


def test_where_over_a_foreign_key_join_tells_left_keys_of_several_columns_apart(
    engine: Engine,
) -> None:
    """Rows of a left table keyed by two columns that share the first: one failing WHERE
    neither deletes the other (it never passed) nor keeps it when it fails later (before,
    the filter knew rows by the first key column alone: the second row's failure sent a
    tombstone for a row never sent and forgot the first, which then stayed, stale)."""
    engine.execute(
        "CREATE TABLE lines (k1 STRING PRIMARY KEY, k2 STRING PRIMARY KEY, cid STRING, q INT) "
        "WITH (kafka_topic='lines', format='JSON', partitions=1);"
    )
    engine.execute(
        "CREATE TABLE big AS SELECT l.k1, l.k2, country, q FROM lines l "
        "JOIN countries c ON l.cid = c.id WHERE q > 0;"
    )
    send(engine, "countries", "ke", {"COUNTRY": "Kenya"}, 1)
    for key, q, ts in (("1", 1, 2), ("2", 0, 3), ("1", 0, 4)):
        raw = json.dumps({"CID": "ke", "Q": q}).encode()
        engine.log.append(
            "lines", [Record(raw, json.dumps({"K1": "a", "K2": key}).encode(), ts)], partition=0
        )
        engine.drain()
    assert out(engine, "BIG") == [
        ('{"K1":"a","K2":"1"}', {"COUNTRY": "Kenya", "Q": 1}, 2),
        ('{"K1":"a","K2":"1"}', None, 4),
    ]


def test_n_way_join_and_self_join(engine: Engine) -> None:
    engine.execute(
        "CREATE STREAM three AS SELECT c.user_id, page, name, ms FROM clicks c "
        "JOIN users u ON c.user_id = u.user_id "
        "JOIN views v WITHIN 5 SECONDS ON c.user_id = v.user_id;"
    )
    # ksqlDB refuses to join a source with itself; hispeed does it when each side has an alias
    engine.execute(
        "CREATE STREAM pairs AS SELECT a.user_id, a.page AS first, b.page AS second "
        "FROM clicks a JOIN clicks b WITHIN 1 MINUTE ON a.user_id = b.user_id "
        "WHERE a.ROWOFFSET < b.ROWOFFSET;"
    )
    send(engine, "users", "u1", {"NAME": "Ada", "COUNTRY_ID": "uk"}, 1)
    send(engine, "clicks", "u1", {"PAGE": "/a"}, 1_000)
    send(engine, "views", "u1", {"MS": 9}, 2_000)
    send(engine, "clicks", "u1", {"PAGE": "/b"}, 3_000)
    assert out(engine, "THREE") == [
        ("u1", {"PAGE": "/a", "NAME": "Ada", "MS": 9}, 2_000),
        ("u1", {"PAGE": "/b", "NAME": "Ada", "MS": 9}, 3_000),
    ]
    assert out(engine, "PAIRS") == [("u1", {"FIRST": "/a", "SECOND": "/b"}, 3_000)]


def test_a_join_feeds_an_aggregation(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE per_country AS SELECT country_id, COUNT(*) AS clicks FROM clicks c "
        "JOIN users u ON c.user_id = u.user_id GROUP BY country_id;"
    )
    send(engine, "users", "u1", {"NAME": "Ada", "COUNTRY_ID": "uk"}, 1)
    send(engine, "users", "u2", {"NAME": "Bo", "COUNTRY_ID": "uk"}, 2)
    for user in ("u1", "u2", "u1"):
        send(engine, "clicks", user, {"PAGE": "/"}, 10)
    assert out(engine, "PER_COUNTRY")[-1] == ("uk", {"CLICKS": 3}, 10)


def test_push_query_that_joins_and_aggregates(engine: Engine) -> None:
    send(engine, "users", "u1", {"NAME": "Ada", "COUNTRY_ID": "uk"}, 1)
    with engine.stream(
        "SELECT name, COUNT(*) AS n FROM clicks c JOIN users u ON c.user_id = u.user_id "
        "GROUP BY name EMIT CHANGES;"
    ) as query:
        send(engine, "clicks", "u1", {"PAGE": "/a"}, 2)
        send(engine, "clicks", "u1", {"PAGE": "/b"}, 3)
        rows = query.poll(1.0)
        while len(rows) < 2:
            more = query.poll(1.0)
            assert more, f"only {rows} arrived"
            rows += more
    assert rows == [{"NAME": "Ada", "N": 1}, {"NAME": "Ada", "N": 2}]


def test_join_state_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "data"
    with open_engine(path) as e:
        for ddl in (CLICKS, USERS):
            e.execute(ddl)
        e.execute(
            "CREATE STREAM enriched AS SELECT c.user_id, page, name FROM clicks c "
            "JOIN users u ON c.user_id = u.user_id;"
        )
        send(e, "users", "u1", {"NAME": "Ada", "COUNTRY_ID": "uk"}, 1)
    with open_engine(path) as e:
        send(e, "clicks", "u1", {"PAGE": "/a"}, 2)  # the table side came back from the log
        assert out(e, "ENRICHED") == [("u1", {"PAGE": "/a", "NAME": "Ada"}, 2)]


@pytest.mark.parametrize(
    ("statement", "message"),
    [
        (
            "CREATE STREAM x AS SELECT * FROM clicks c JOIN views v ON c.user_id = v.user_id;",
            "Stream-Stream joins must have a WITHIN clause specified",
        ),
        (
            "CREATE STREAM x AS SELECT * FROM users u JOIN clicks c ON u.user_id = c.user_id;",
            "Invalid join order: table-stream joins are not supported; only stream-table joins."
            " Got U [INNER] JOIN C.",
        ),
        (
            "CREATE STREAM x AS SELECT * FROM clicks c FULL JOIN users u ON c.user_id = u.user_id;",
            "full-outer join not supported for stream-table join",
        ),
        (
            "CREATE STREAM x AS SELECT * FROM clicks c JOIN users u ON c.page = u.name;",
            "stream-table joins require to join on the table's primary key. Got C.PAGE = U.NAME.",
        ),
        (
            "CREATE STREAM x AS SELECT * FROM clicks c JOIN views v WITHIN 1 SECOND "
            "ON c.user_id = v.ms;",
            "Invalid join condition: types don't match. Got C.USER_ID{STRING} = V.MS{INTEGER}.",
        ),
        (
            "CREATE STREAM x AS SELECT page, ms FROM clicks c JOIN views v WITHIN 1 SECOND "
            "ON c.user_id = v.user_id;",
            "must include the join expressions C.USER_ID or V.USER_ID in its projection",
        ),
        (
            "CREATE STREAM x AS SELECT * FROM clicks c JOIN views v WITHIN 1 SECOND "
            "ON c.user_id = 'u1';",
            "Each side of the join comparision must contain references from exactly one source",
        ),
        (
            "CREATE TABLE x AS SELECT * FROM users u RIGHT JOIN countries c "
            "ON u.country_id = c.id;",
            "RIGHT OUTER JOIN on a foreign key is not supported",
        ),
        (
            "CREATE STREAM x AS SELECT * FROM clicks JOIN clicks WITHIN 1 SECOND "
            "ON clicks.user_id = clicks.user_id;",
            "Give each occurrence its own alias",
        ),
        ("SELECT * FROM users u JOIN countries c ON u.user_id = c.id;", "JOIN clauses"),
        (
            # the last join's key decides what must be selected: here a primary-key join's
            "CREATE TABLE x AS SELECT u.name, country FROM users u JOIN countries c "
            "ON u.country_id = c.id JOIN users u2 ON u.user_id = u2.user_id;",
            "The query used to build `X` must include the join expressions U.USER_ID or "
            "U2.USER_ID in its projection (eg, SELECT U.USER_ID...).",
        ),
        (
            # a foreign-key join last: the leftmost table's key, named by its alias
            "CREATE TABLE x AS SELECT u.name, country FROM users u JOIN countries c "
            "ON u.country_id = c.id;",
            "the projection must include all primary key columns from the left input table "
            "(`U`). Missing column: `USER_ID`.",
        ),
    ],
)
def test_join_errors_say_what_and_how(engine: Engine, statement: str, message: str) -> None:
    with pytest.raises(HispeedError) as err:
        engine.execute(statement)
    assert message in str(err.value)


records = st.lists(
    st.tuples(
        st.integers(0, 1),  # side
        st.one_of(st.none(), st.sampled_from(["a", "b", "c"])),  # key
        st.integers(0, 30_000),  # timestamp
        st.integers(0, 9),  # value
    ),
    max_size=40,
)


@settings(max_examples=40, deadline=None)
@given(records, st.sampled_from(["INNER", "LEFT", "RIGHT", "FULL OUTER"]), st.data())
def test_columnar_stream_join_matches_the_per_record_path(
    tmp_path_factory: pytest.TempPathFactory, recs: list[Any], kind: str, data: st.DataObject
) -> None:
    """Batches of one side at a time through the columnar path give what the per-record
    path gives for the same records."""
    results = []
    for columnar in (True, False):
        with open_engine(tmp_path_factory.mktemp("j") / "data") as e:
            e.execute(CLICKS)
            e.execute(
                "CREATE STREAM taps (user_id STRING KEY, x INT) "
                "WITH (kafka_topic='taps', value_format='JSON', partitions=1);"
            )
            key = "ROWKEY" if kind == "FULL OUTER" else "c.user_id"
            (res,) = e.execute(
                f"CREATE STREAM j AS SELECT {key}, page, x FROM clicks c {kind} JOIN taps t "
                "WITHIN 5 SECONDS ON c.user_id = t.user_id;"
            )
            join = e.tasks[str(res.query_id)].join
            assert join is not None
            assert (join.columnar is not None) is True
            if not columnar:
                join.columnar = None
                join.stores = list(join.steps)
            i = 0
            while i < len(recs):  # runs of one side, appended and processed together
                j = i
                while j < len(recs) and recs[j][0] == recs[i][0]:
                    j += 1
                topic = "clicks" if recs[i][0] == 0 else "taps"
                batch = [
                    Record(
                        json.dumps({"PAGE": str(v)} if side == 0 else {"X": v}),
                        k,
                        ts,
                    )
                    for side, k, ts, v in recs[i:j]
                ]
                e.log.append(topic, batch, partition=0)
                e.drain()
                i = j
            results.append(out(e, "J"))
    assert results[0] == results[1]


def test_where_on_a_table_join_deletes_only_rows_it_sent(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE big AS SELECT u.user_id, name, country FROM users u "
        "JOIN countries c ON u.user_id = c.id WHERE name <> 'skip';"
    )
    send(engine, "countries", "k", {"COUNTRY": "Kenya"}, 1)
    send(engine, "users", "k", {"NAME": "skip", "COUNTRY_ID": None}, 2)  # never sent: no delete
    send(engine, "users", "k", {"NAME": "Ada", "COUNTRY_ID": None}, 3)
    send(engine, "users", "k", {"NAME": "skip", "COUNTRY_ID": None}, 4)  # was sent: deleted
    assert out(engine, "BIG") == [("k", {"NAME": "Ada", "COUNTRY": "Kenya"}, 3), ("k", None, 4)]


def test_windowed_streams_join_on_key_and_window(engine: Engine) -> None:
    for side in ("a", "b"):
        engine.execute(
            f"CREATE STREAM w{side} (id STRING KEY, v INT) WITH (kafka_topic='w{side}', "
            "value_format='JSON', window_type='SESSION', partitions=1);"
        )
    engine.execute(
        "CREATE STREAM wj AS SELECT wa.id, wa.v AS va, wb.v AS vb FROM wa "
        "JOIN wb WITHIN 1 MINUTE ON wa.id = wb.id;"
    )

    def windowed(topic: str, start: int, end: int, v: int) -> None:
        # Kafka Streams' session key layout: key, end, start
        key = b"k" + end.to_bytes(8, "big") + start.to_bytes(8, "big")
        engine.log.append(topic, [Record(json.dumps({"V": v}), key, end)], partition=0)
        engine.drain()

    windowed("wa", 10, 50, 1)
    windowed("wb", 10, 40, 2)  # another session: no match
    windowed("wb", 10, 50, 3)
    (row,) = engine.log.read_table("WJ", 0).to_pylist()
    assert row["key"] == b"k" + (50).to_bytes(8, "big") + (10).to_bytes(8, "big")
    assert json.loads(row["value"]) == {"VA": 1, "VB": 3}


def test_sides_joined_on_their_keys_need_as_many_partitions(engine: Engine) -> None:
    engine.execute(
        "CREATE TABLE wide (id STRING PRIMARY KEY, x INT) "
        "WITH (kafka_topic='wide', value_format='JSON', partitions=3);"
    )
    with pytest.raises(HispeedError, match="partitions = 1; `WIDE` partitions = 3"):
        engine.execute(
            "CREATE STREAM x AS SELECT c.user_id, x FROM clicks c JOIN wide w ON c.user_id = w.id;"
        )


def test_a_synthetic_join_key_is_named_apart_from_the_sources_columns(engine: Engine) -> None:
    # ksqlDB's ColumnNames.generateSyntheticJoinKey: ROWKEY, or the first ROWKEY_n no joined
    # source uses (its numbers read from every column, key or value, of both sides)
    engine.execute(
        "CREATE TABLE l (rowkey STRING PRIMARY KEY, rowkey_1 INT, rowkey_3 INT) "
        "WITH (kafka_topic='l', value_format='JSON', partitions=1);"
    )
    engine.execute(
        "CREATE TABLE r (rowkey_2 STRING PRIMARY KEY, v INT) "
        "WITH (kafka_topic='r', value_format='JSON', partitions=1);"
    )
    with pytest.raises(HispeedError, match="join expression ROWKEY_4 in its projection"):
        engine.execute(
            "CREATE TABLE nokey AS SELECT l.rowkey_1, v FROM l FULL OUTER JOIN r "
            "ON l.rowkey = r.rowkey_2;"
        )
    engine.execute(
        "CREATE TABLE o AS SELECT ROWKEY_4 AS k, l.rowkey_1, v FROM l FULL OUTER JOIN r "
        "ON l.rowkey = r.rowkey_2;"
    )
    send(engine, "l", "a", {"ROWKEY_1": 1, "ROWKEY_3": 3}, 10)
    send(engine, "r", "a", {"V": 5}, 20)
    assert out(engine, "O") == [
        ("a", {"ROWKEY_1": 1, "V": None}, 10),
        ("a", {"ROWKEY_1": 1, "V": 5}, 20),
    ]
    assert [c.name for c in engine.catalog.sources["O"].key_columns] == ["K"]


def test_windowed_sides_in_other_key_formats_are_refused_as_ksqldb_does(engine: Engine) -> None:
    # ksqlDB joins in the left side's key format and would re-key a windowed right side in
    # another one (another window type or size), which it refuses
    for name, window in (("h", "Hopping"), ("h2", "Hopping"), ("t", "Tumbling")):
        engine.execute(
            f"CREATE STREAM {name} (id INT KEY, v INT) WITH (kafka_topic='{name}', "
            f"value_format='JSON', window_type='{window}', window_size='5 SECONDS', "
            "partitions=1);"
        )
    engine.execute(
        "CREATE STREAM ok AS SELECT h.id, h.v FROM h JOIN h2 WITHIN 1 MINUTE ON h.id = h2.id;"
    )
    with pytest.raises(HispeedError) as info:
        engine.execute(
            "CREATE STREAM bad AS SELECT * FROM h JOIN t WITHIN 1 MINUTE ON h.id = t.id;"
        )
    assert "Implicit repartitioning of windowed sources is not supported." in str(info.value)


def test_time_windowed_sides_in_a_schema_registry_key_format_join_by_window_start(
    engine: Engine,
) -> None:
    # ksqlDB re-keys the right side into the left side's key format (forced for a format with
    # schema inference): a time window's key holds only its start, so windows of other sizes
    # join by start, the result's window as long as the left side's
    for name, window, size in (("h", "Hopping", 5), ("t", "Tumbling", 2)):
        engine.execute(
            f"CREATE STREAM {name} (id INT KEY, v INT) WITH (kafka_topic='{name}', "
            f"key_format='JSON_SR', value_format='JSON', window_type='{window}', "
            f"window_size='{size} SECONDS', partitions=1);"
        )
    engine.execute(
        "CREATE STREAM hj AS SELECT h.id, h.v AS hv, t.v AS tv, t.windowend AS tend "
        "FROM h JOIN t WITHIN 1 MINUTE ON h.id = t.id;"
    )

    def windowed(topic: str, start: int, v: int) -> None:
        # Confluent's framing (magic byte, schema id), the JSON key, then the window start
        key = b"\x00" + (1).to_bytes(4, "big") + b"1" + start.to_bytes(8, "big")
        engine.log.append(topic, [Record(json.dumps({"V": v}), key, start)], partition=0)
        engine.drain()

    windowed("h", 0, 1)
    windowed("h", 1000, 2)
    windowed("t", 0, 4)
    windowed("t", 2000, 5)  # no left window starts at 2000 yet
    windowed("h", 2000, 3)
    rows = engine.log.read_table("HJ", 0).to_pylist()
    assert [(r["key"][-8:], json.loads(r["value"])) for r in rows] == [
        ((0).to_bytes(8, "big"), {"HV": 1, "TV": 4, "TEND": 2000}),
        ((2000).to_bytes(8, "big"), {"HV": 3, "TV": 5, "TEND": 4000}),
    ]


def test_partition_by_an_unqualified_column_that_star_brings_through_a_join(
    engine: Engine,
) -> None:
    # ksqlDB's sanitizer qualifies `A` as L.A, the column `*` brought in: it becomes the key
    engine.execute(
        "CREATE STREAM l (a INT KEY, b INT) WITH (kafka_topic='l', value_format='JSON', "
        "partitions=1);"
    )
    engine.execute(
        "CREATE STREAM r (x INT KEY, y INT) WITH (kafka_topic='r', value_format='JSON', "
        "partitions=1);"
    )
    engine.execute(
        "CREATE STREAM o AS SELECT * FROM l JOIN r WITHIN 10 SECONDS ON l.b = r.y PARTITION BY a;"
    )

    def kafka_int(n: int) -> bytes:
        return n.to_bytes(4, "big", signed=True)

    engine.log.append("l", [Record(json.dumps({"B": 1}), kafka_int(7), 11)], partition=0)
    engine.drain()
    engine.log.append("r", [Record(json.dumps({"Y": 1}), kafka_int(-1), 12)], partition=0)
    engine.drain()
    (row,) = engine.log.read_table("O", 0).to_pylist()
    assert row["key"] == kafka_int(7)
    value = json.loads(row["value"])
    assert "L_A" not in value
    assert (value["R_X"], value["L_B"]) == (-1, 1)
    assert [c.name for c in engine.catalog.sources["O"].key_columns] == ["L_A"]

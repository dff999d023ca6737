"""The Redis sink against a real redis-server: every mode, replays, wrong types, outages."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
import redis as redis_py

from hispeed.connectors.base import (
    ConnectorError,
    RetriableError,
    SinkBatch,
    connector_class,
)
from hispeed.connectors.redis import RedisSink
from hispeed.testing.services import free_port
from tests.connectors.conftest import RedisProcess, SinkFactory

pytestmark = pytest.mark.services


def make_batch(
    rows: list[dict[str, Any] | None],
    keys: list[Any] | None = None,
    *,
    start: int = 0,
    partition: int = 0,
    key_columns: tuple[str, ...] = ("ID",),
) -> SinkBatch:
    """A batch of `rows` (None: a tombstone) at offsets start.., keyed by `keys` or by each
    row's first key column."""
    if keys is None:
        keys = [None if r is None else r.get(key_columns[0]) for r in rows]
    n = len(rows)
    return SinkBatch(
        topic="t",
        partition=partition,
        offsets=list(range(start, start + n)),
        timestamps=[1_700_000_000_000 + i for i in range(n)],
        keys=list(keys),
        rows=list(rows),
        key_columns=list(key_columns),
    )


def test_the_sink_and_source_answer_to_their_class_names() -> None:
    for name in ("redis", "redis-sink", "RedisSink"):
        assert connector_class(name, "SINK") is RedisSink
    assert connector_class("redis-source", "SOURCE").__name__ == "RedisSource"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"redis.mode": "graph"}, "'redis.mode' must be one of hash, string"),
        ({"redis.mode": "zset"}, "needs 'zset.key'"),
        ({"redis.mode": "zset", "zset.key": "lb", "score.column": "S", "zset.update": "max"}, "gt"),
        ({"redis.mode": "hash", "ttl.seconds": "soon"}, "'ttl.seconds' must be a whole number"),
        ({"redis.mode": "publish"}, "needs 'channel'"),
        ({"redis.url": "http://localhost"}, "must start with redis://"),
    ],
)
def test_a_bad_configuration_is_an_error_naming_the_connector(
    config: dict[str, str], message: str
) -> None:
    with pytest.raises(ConnectorError, match="test_sink") as e:
        RedisSink("test_sink", config)
    assert message in str(e.value)


# -- hash --------------------------------------------------------------------------------------


def test_hash_keeps_one_hash_per_key_and_a_tombstone_deletes_it(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    sink = redis_sink_factory(redis_mode="hash", key_template=redis_prefix + ":{KEY}")
    batch = make_batch(
        [
            {"ID": "d1", "TEMP": 21.5, "OK": True, "NOTE": "hi"},
            {"ID": "d2", "TEMP": 19, "OK": False, "NOTE": None},
            {"ID": "d3", "TEMP": 1.0, "OK": True, "NOTE": "x"},
        ]
    )
    sink.write(batch)
    assert batch.failures == []
    assert redis_client.hgetall(f"{redis_prefix}:d1") == {
        "TEMP": "21.5",
        "OK": "true",
        "NOTE": "hi",
    }
    assert redis_client.hgetall(f"{redis_prefix}:d2") == {"TEMP": "19", "OK": "false"}
    # an update with a null deletes that field; a tombstone deletes the hash
    sink.write(
        make_batch([{"ID": "d1", "TEMP": 22.0, "OK": True, "NOTE": None}, None], ["d1", "d3"])
    )
    assert redis_client.hgetall(f"{redis_prefix}:d1") == {"TEMP": "22.0", "OK": "true"}
    assert not redis_client.exists(f"{redis_prefix}:d3")


def test_hash_records_of_one_key_in_a_batch_end_as_they_would_one_by_one(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    sink = redis_sink_factory(redis_mode="hash", key_template=redis_prefix + ":{KEY}")
    sink.write(
        make_batch(
            [
                {"ID": "a", "X": 1, "Y": "one"},
                None,
                {"ID": "a", "X": 2},
                {"ID": "a", "Y": "two"},
                {"ID": "b", "X": 5, "Y": "five"},
                {"ID": "b", "Y": None},
            ],
            ["a", "a", "a", "a", "b", "b"],
        )
    )
    assert redis_client.hgetall(f"{redis_prefix}:a") == {"X": "2", "Y": "two"}
    assert redis_client.hgetall(f"{redis_prefix}:b") == {"X": "5"}


def test_text_that_is_not_ascii_keeps_its_bytes(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    sink = redis_sink_factory(redis_mode="hash", key_template=redis_prefix + ":{KEY}")
    rows: list[dict[str, Any] | None] = [
        {"ID": f"ключ{i}", "CITY": "Zürich 東京", "N": i} for i in range(3000)
    ]
    sink.write(make_batch(rows))
    assert redis_client.hgetall(f"{redis_prefix}:ключ2999") == {"CITY": "Zürich 東京", "N": "2999"}
    assert len(list(redis_client.scan_iter(f"{redis_prefix}:*", count=1000))) == 3000


def test_a_key_template_takes_columns_of_any_case_and_the_window(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    sink = redis_sink_factory(
        redis_mode="hash", key_template=redis_prefix + ":{device}:{WINDOWSTART}:{KEY}"
    )
    sink.write(make_batch([{"ID": "k", "DEVICE": "d7", "WINDOWSTART": 3600000, "N": 1}]))
    assert redis_client.hgetall(f"{redis_prefix}:d7:3600000:k") == {
        "DEVICE": "d7",
        "WINDOWSTART": "3600000",
        "N": "1",
    }


def test_a_record_without_the_templates_column_fails_alone(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    sink = redis_sink_factory(redis_mode="hash", key_template=redis_prefix + ":{DEVICE}")
    batch = make_batch(
        [{"ID": "1", "DEVICE": "a", "N": 1}, {"ID": "2", "N": 2}, {"ID": "3", "DEVICE": None}]
    )
    sink.write(batch)
    assert [i for i, _ in batch.failures] == [1, 2]
    assert "test_sink" in batch.failures[0][1]
    assert "offset 1" in batch.failures[0][1]
    assert "needs column DEVICE" in batch.failures[0][1]
    assert "null" in batch.failures[1][1]
    assert redis_client.hgetall(f"{redis_prefix}:a") == {"DEVICE": "a", "N": "1"}


# -- wrong types -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "config"),
    [
        ("hash", {}),
        ("string", {}),
        ("zset", {"zset.key": "{KEY}", "score.column": "N"}),
        ("hll", {"element.column": "N"}),
        ("counter", {}),
        ("stream", {}),
        ("list", {}),
    ],
)
def test_a_wrong_type_at_a_key_fails_that_record_only(
    redis_sink_factory: SinkFactory,
    redis_client: redis_py.Redis,
    redis_prefix: str,
    mode: str,
    config: dict[str, str],
) -> None:
    bad = f"{redis_prefix}:bad"
    redis_client.sadd(bad, "a set, where the mode wants something else")
    sink = redis_sink_factory(
        redis_mode=mode,
        key_template=redis_prefix + ":{KEY}",
        **{
            k.replace(".", "_"): v.replace("{KEY}", f"{redis_prefix}:{{KEY}}")
            for k, v in config.items()
        },
    )
    batch = make_batch([{"ID": "good", "N": 1}, {"ID": "bad", "N": 2}, {"ID": "also", "N": 3}])
    sink.write(batch)
    if mode == "string":  # SET replaces a key of any type: nothing fails
        assert batch.failures == []
        return
    assert [i for i, _ in batch.failures] == [1]
    message = batch.failures[0][1]
    assert "WRONGTYPE" in message
    assert repr(bad) in message
    assert "connector test_sink" in message
    assert "offset 1" in message
    assert redis_client.type(f"{redis_prefix}:good") != "none"
    assert redis_client.type(f"{redis_prefix}:also") != "none"


# -- replays of upserts ------------------------------------------------------------------------


UPSERTS: list[tuple[str, dict[str, str]]] = [
    ("hash", {}),
    ("string", {"value.column": "SCORE"}),
    ("json", {}),
    ("zset", {"zset.key": "{REGION}", "score.column": "SCORE"}),
    ("hll", {"element.column": "ID"}),
    ("stream", {"key.template": "{REGION}"}),
]


def _dump(client: redis_py.Redis, prefix: str) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for key in sorted(client.scan_iter(f"{prefix}:*")):
        kind = client.type(key)
        if kind == "hash":
            state[key] = client.hgetall(key)
        elif kind == "string":
            try:
                state[key] = ("hll", client.pfcount(key))
            except redis_py.ResponseError:  # not a HyperLogLog
                state[key] = client.get(key)
        elif kind == "zset":
            state[key] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "stream":
            state[key] = client.xrange(key)
        else:
            state[key] = kind
    return state


@pytest.mark.parametrize(("mode", "config"), UPSERTS, ids=[m for m, _ in UPSERTS])
def test_a_replayed_batch_leaves_the_same_state(
    redis_sink_factory: SinkFactory,
    redis_client: redis_py.Redis,
    redis_prefix: str,
    mode: str,
    config: dict[str, str],
) -> None:
    options = {"key.template": redis_prefix + ":{KEY}", **config}
    options = {k: v.replace("{REGION}", redis_prefix + ":{REGION}") for k, v in options.items()}
    sink = redis_sink_factory(
        redis_mode=mode, **{k.replace(".", "_"): v for k, v in options.items()}
    )
    rows: list[dict[str, Any] | None] = [
        {"ID": f"p{i % 7}", "SCORE": float(i), "REGION": f"r{i % 2}"} for i in range(40)
    ]
    first, second = make_batch(rows[:25]), make_batch(rows[25:], start=25)
    sink.write(first)
    sink.write(second)
    expected = _dump(redis_client, redis_prefix)
    assert expected
    # a crash after the first batch was written but before its offsets were committed
    sink.write(make_batch(rows[:25]))
    sink.write(make_batch(rows[25:], start=25))
    assert _dump(redis_client, redis_prefix) == expected


# -- strings and JSON --------------------------------------------------------------------------


def test_string_takes_one_column_or_the_row_as_json(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    one = redis_sink_factory(
        redis_mode="string", key_template=redis_prefix + ":{KEY}:name", value_column="name"
    )
    whole = redis_sink_factory(redis_mode="json", key_template=redis_prefix + ":{KEY}")
    batch = make_batch([{"ID": "u1", "NAME": "Ada", "AGE": 36, "TAGS": ["a", "b"]}])
    one.write(batch)
    whole.write(batch)
    assert redis_client.get(f"{redis_prefix}:u1:name") == "Ada"
    assert json.loads(redis_client.get(f"{redis_prefix}:u1") or "") == {
        "ID": "u1",
        "NAME": "Ada",
        "AGE": 36,
        "TAGS": ["a", "b"],
    }
    whole.write(make_batch([None], ["u1"]))
    assert not redis_client.exists(f"{redis_prefix}:u1")


# -- TTL ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "config"),
    [
        ("hash", {}),
        ("string", {}),
        ("json", {}),
        ("zset", {"zset.key": "{KEY}", "score.column": "N"}),
        ("hll", {}),
        ("counter", {}),
        ("list", {}),
        ("stream", {}),
    ],
)
def test_ttl_seconds_expires_every_key_written(
    redis_sink_factory: SinkFactory,
    redis_client: redis_py.Redis,
    redis_prefix: str,
    mode: str,
    config: dict[str, str],
) -> None:
    options = {
        k.replace(".", "_"): v.replace("{KEY}", redis_prefix + ":{KEY}") for k, v in config.items()
    }
    sink = redis_sink_factory(
        redis_mode=mode, key_template=redis_prefix + ":{KEY}", ttl_seconds="1800", **options
    )
    sink.write(make_batch([{"ID": "s1", "N": 1}, {"ID": "s2", "N": 2}]))
    for key in (f"{redis_prefix}:s1", f"{redis_prefix}:s2"):
        assert 1790 < redis_client.ttl(key) <= 1800, key


def test_ttl_column_sets_each_writes_own_expiry(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    hashes = redis_sink_factory(
        redis_mode="hash", key_template=redis_prefix + ":h:{KEY}", ttl_column="ttl"
    )
    strings = redis_sink_factory(
        redis_mode="string",
        key_template=redis_prefix + ":s:{KEY}",
        ttl_column="TTL",
        ttl_seconds="60",
    )
    batch = make_batch(
        [{"ID": k, "N": 1, "TTL": t} for k, t in (("a", 100), ("b", 0.25), ("c", None))]
    )
    hashes.write(batch)
    strings.write(batch)
    assert 95 < redis_client.ttl(f"{redis_prefix}:h:a") <= 100
    assert 0 < redis_client.pttl(f"{redis_prefix}:h:b") <= 250
    assert redis_client.ttl(f"{redis_prefix}:h:c") == -1  # no TTL of its own
    assert 95 < redis_client.ttl(f"{redis_prefix}:s:a") <= 100
    assert 0 < redis_client.pttl(f"{redis_prefix}:s:b") <= 250
    assert 55 < redis_client.ttl(f"{redis_prefix}:s:c") <= 60  # 'ttl.seconds' otherwise
    time.sleep(0.3)
    assert not redis_client.exists(f"{redis_prefix}:h:b")
    assert not redis_client.exists(f"{redis_prefix}:s:b")


# -- sorted sets -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("update", "expected"),
    [
        ("gt", {"ann": 30.0, "bob": 20.0}),
        ("lt", {"ann": 5.0, "bob": 20.0}),
        ("always", {"ann": 5.0, "bob": 20.0}),
    ],
)
def test_zset_leaderboards_follow_their_update_rule(
    redis_sink_factory: SinkFactory,
    redis_client: redis_py.Redis,
    redis_prefix: str,
    update: str,
    expected: dict[str, float],
) -> None:
    sink = redis_sink_factory(
        redis_mode="zset",
        zset_key=redis_prefix + ":lb:{WINDOWSTART}",
        score_column="SCORE",
        zset_update=update,
    )
    hour = 3_600_000
    sink.write(
        make_batch(
            [
                {"ID": "ann", "SCORE": 10, "WINDOWSTART": hour},
                {"ID": "bob", "SCORE": 20, "WINDOWSTART": hour},
                {"ID": "ann", "SCORE": 30, "WINDOWSTART": hour},
            ]
        )
    )
    sink.write(make_batch([{"ID": "ann", "SCORE": 5, "WINDOWSTART": hour}], start=3))
    assert (
        dict(redis_client.zrange(f"{redis_prefix}:lb:{hour}", 0, -1, withscores=True)) == expected
    )


def test_zset_member_column_tombstones_and_top_n(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    sink = redis_sink_factory(
        redis_mode="zset",
        zset_key=redis_prefix + ":top",
        member_column="PLAYER",
        score_column="POINTS",
        zset_max_members="3",
    )
    rows: list[dict[str, Any] | None] = [
        {"ID": i, "PLAYER": f"p{i}", "POINTS": i * 10} for i in range(6)
    ]
    sink.write(make_batch(rows))
    assert redis_client.zrevrange(f"{redis_prefix}:top", 0, -1) == ["p5", "p4", "p3"]
    keyed = redis_sink_factory(
        redis_mode="zset", zset_key=redis_prefix + ":top", score_column="POINTS"
    )
    keyed.write(make_batch([None], ["p4"]))  # a deleted row leaves the board
    assert redis_client.zrevrange(f"{redis_prefix}:top", 0, -1) == ["p5", "p3"]
    bad = make_batch([{"ID": 9, "PLAYER": "p9", "POINTS": "lots"}])
    sink.write(bad)
    assert "not a number" in bad.failures[0][1]


def test_zset_lt_keeps_the_lowest_members(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    sink = redis_sink_factory(
        redis_mode="zset",
        zset_key=redis_prefix + ":fastest",
        score_column="SECONDS",
        zset_update="lt",
        zset_max_members="2",
    )
    sink.write(make_batch([{"ID": f"r{i}", "SECONDS": 10 - i} for i in range(5)]))
    assert redis_client.zrange(f"{redis_prefix}:fastest", 0, -1) == ["r4", "r3"]


# -- HyperLogLog and counters ------------------------------------------------------------------


def test_hll_counts_unique_elements_per_key(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    sink = redis_sink_factory(
        redis_mode="hll", key_template=redis_prefix + ":visitors:{PAGE}", element_column="USER"
    )
    rows: list[dict[str, Any] | None] = [
        {"ID": i, "PAGE": f"/p{i % 2}", "USER": f"u{i % 50}"} for i in range(1000)
    ]
    sink.write(make_batch(rows))
    sink.write(make_batch(rows))  # the same visitors again
    assert redis_client.pfcount(f"{redis_prefix}:visitors:/p0") == 25
    assert redis_client.pfcount(f"{redis_prefix}:visitors:/p1") == 25


def test_counters_add_their_increments(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    ones = redis_sink_factory(redis_mode="counter", key_template=redis_prefix + ":clicks:{PAGE}")
    amounts = redis_sink_factory(
        redis_mode="counter",
        key_template=redis_prefix + ":spend",
        counter_field="{USER}",
        increment_column="AMOUNT",
    )
    rows: list[dict[str, Any] | None] = [
        {"ID": i, "PAGE": "/a" if i < 7 else "/b", "USER": f"u{i % 2}", "AMOUNT": i}
        for i in range(10)
    ]
    ones.write(make_batch(rows))
    amounts.write(make_batch(rows))
    assert redis_client.get(f"{redis_prefix}:clicks:/a") == "7"
    assert redis_client.get(f"{redis_prefix}:clicks:/b") == "3"
    assert redis_client.hgetall(f"{redis_prefix}:spend") == {"u0": "20", "u1": "25"}
    amounts.write(
        make_batch([{"ID": 1, "USER": "u0", "AMOUNT": 0.5}, {"ID": 2, "USER": "u0", "AMOUNT": "x"}])
    )
    assert redis_client.hget(f"{redis_prefix}:spend", "u0") == "20.5"


# -- streams -----------------------------------------------------------------------------------


def test_a_stream_replayed_gets_no_duplicates(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    stream = f"{redis_prefix}:events"
    sink = redis_sink_factory(redis_mode="stream", key_template=stream)
    rows: list[dict[str, Any] | None] = [{"ID": f"e{i}", "V": i, "NOTE": None} for i in range(5)]
    batch = make_batch(rows, start=10)
    sink.write(batch)
    again = make_batch(rows, start=10)
    sink.write(again)
    assert again.failures == []
    entries = redis_client.xrange(stream)
    assert [e[0] for e in entries] == ["11-0", "12-0", "13-0", "14-0", "15-0"]
    assert entries[0][1] == {"ID": "e0", "V": "0", "NOTE": ""}
    # half replayed, half new, and a tombstone
    sink.write(make_batch([*rows[3:], None], ["e3", "e4", "e5"], start=13))
    entries = redis_client.xrange(stream)
    assert len(entries) == 6
    assert entries[-1] == ("16-0", {"ID": "e5", "_deleted": "true"})


def test_a_stream_fed_by_two_partitions_says_what_to_do(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    shared = redis_sink_factory(redis_mode="stream", key_template=redis_prefix + ":one")
    shared.write(make_batch([{"ID": "a"}], start=100, partition=0))
    late = make_batch([{"ID": "b"}], start=5, partition=1)
    shared.write(late)
    assert "{PARTITION}" in late.failures[0][1]
    split = redis_sink_factory(redis_mode="stream", key_template=redis_prefix + ":p{PARTITION}")
    for p in (0, 1):
        b = make_batch([{"ID": "x"}], start=3, partition=p)
        split.write(b)
        assert b.failures == []
    assert redis_client.xlen(f"{redis_prefix}:p1") == 1


def test_stream_maxlen_caps_the_stream(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    sink = redis_sink_factory(
        redis_mode="stream", key_template=redis_prefix + ":s", stream_maxlen="100"
    )
    sink.write(make_batch([{"ID": i} for i in range(2000)]))
    assert 100 <= redis_client.xlen(f"{redis_prefix}:s") < 300  # MAXLEN ~: about


# -- lists and pub/sub -------------------------------------------------------------------------


def test_lists_are_queues_trimmed_to_their_newest(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    right = redis_sink_factory(
        redis_mode="list", key_template=redis_prefix + ":q", value_column="ID", list_max="3"
    )
    left = redis_sink_factory(
        redis_mode="list", key_template=redis_prefix + ":stack", list_push="left", list_max="2"
    )
    batch = make_batch([{"ID": i} for i in range(5)])
    right.write(batch)
    left.write(batch)
    assert redis_client.lrange(f"{redis_prefix}:q", 0, -1) == ["2", "3", "4"]
    assert redis_client.lrange(f"{redis_prefix}:stack", 0, -1) == ['{"ID":4}', '{"ID":3}']


def test_publish_sends_each_record_to_its_channel(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    pubsub = redis_client.pubsub()
    pubsub.psubscribe(f"{redis_prefix}:alerts:*")
    assert pubsub.get_message(timeout=2)["type"] == "psubscribe"  # type: ignore[index]
    sink = redis_sink_factory(redis_mode="publish", channel=redis_prefix + ":alerts:{DEVICE}")
    sent = time.monotonic()
    sink.write(make_batch([{"ID": 1, "DEVICE": "d1", "LEVEL": "high"}, None], [1, 2]))
    message = pubsub.get_message(timeout=2)
    assert time.monotonic() - sent < 0.1
    assert message is not None
    assert message["channel"] == f"{redis_prefix}:alerts:d1"
    assert json.loads(message["data"]) == {"ID": 1, "DEVICE": "d1", "LEVEL": "high"}
    pubsub.close()


# -- Redis away --------------------------------------------------------------------------------


def test_an_unreachable_redis_is_retriable_and_the_batch_goes_in_once_it_is_back(
    redis_process: RedisProcess,
) -> None:
    sink = RedisSink(
        "outage",
        {
            "redis.url": redis_process.url,
            "redis.mode": "zset",
            "zset.key": "lb",
            "score.column": "S",
            "redis.timeout.ms": "500",
        },
    )
    try:
        sink.start()
        sink.write(make_batch([{"ID": "a", "S": 1}]))
        redis_process.stop()  # Redis goes away, by its PID
        batch = make_batch([{"ID": "b", "S": 2}], start=1)
        with pytest.raises(RetriableError, match="outage"):
            sink.write(batch)
        with pytest.raises(RetriableError, match="cannot connect"):
            sink.write(batch)  # the runner's retry, still down
        redis_process.start()  # empty: no persistence
        sink.write(batch)  # the same batch, once Redis is back
        assert batch.failures == []
        client = redis_py.Redis(port=redis_process.port, decode_responses=True)
        assert client.zrange("lb", 0, -1, withscores=True) == [("b", 2.0)]
        client.close()
    finally:
        sink.stop()
    never = RedisSink("nowhere", {"redis.url": f"redis://127.0.0.1:{free_port()}"})
    with pytest.raises(RetriableError, match="nowhere: cannot connect"):
        never.start()


@pytest.mark.parametrize("ttl", ["", "60"])
def test_a_wrong_type_deep_in_a_large_batch_fails_the_right_record(
    redis_sink_factory: SinkFactory, redis_client: redis_py.Redis, redis_prefix: str, ttl: str
) -> None:
    redis_client.rpush(f"{redis_prefix}:k2500", "a list")
    options = {"ttl_seconds": ttl} if ttl else {}
    sink = redis_sink_factory(redis_mode="hash", key_template=redis_prefix + ":{KEY}", **options)
    batch = make_batch([{"ID": f"k{i}", "N": i, "X": i / 2} for i in range(5000)])
    sink.write(batch)
    assert [i for i, _ in batch.failures] == [2500]
    assert f"'{redis_prefix}:k2500'" in batch.failures[0][1]
    assert redis_client.hgetall(f"{redis_prefix}:k4999") == {"N": "4999", "X": "2499.5"}

"""A failing UDF, a bad record and a failing query beside healthy queries on one engine.

A query's failure stays that query's (issue 16, defect 1): a record's fault goes to the
processing log and its query goes on; a query that cannot go on is in ERROR (SHOW QUERIES,
EXPLAIN, /metrics, the dashboard), with its message, retried with a backoff; and every other
query's output is complete and exact.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.processes import free_port
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.testing.server import RunningServer
from hispeed.testing.wait import wait_for
from hispeed.udf import USER_FUNCTIONS, udf, unregister

N = 200  # records in, each healthy query's output counted exactly

#: a query that cannot go on: its lookup's Redis is not there (nothing listens on the port)
FAILING = "CREATE STREAM looked_up AS SELECT id, REDIS_GET(id, '{url}') AS v FROM readings;"
#: then a query calling a Python UDF that fails on some rows, a windowed source's copy (a
#: record with a null key there is the record's fault), and two healthy queries
STATEMENTS = """
CREATE STREAM readings (id STRING KEY, x INT) WITH (kafka_topic='readings', value_format='JSON',
  partitions=2);
CREATE STREAM windowed (id STRING KEY, x INT) WITH (kafka_topic='windowed', value_format='JSON',
  window_type='TUMBLING', window_size='1 MINUTE', partitions=1);
{failing}
CREATE STREAM inverted AS SELECT id, x, FAULTS_INVERSE(x) AS inv FROM readings;
CREATE STREAM windowed_copy AS SELECT * FROM windowed;
CREATE STREAM doubled AS SELECT id, x * 2 AS y FROM readings;
CREATE TABLE totals AS SELECT id, COUNT(*) AS n, SUM(x) AS s FROM readings GROUP BY id;
"""


@pytest.fixture(autouse=True)
def inverse_udf() -> Iterator[None]:
    """FAULTS_INVERSE(x) = 1000 / x: a user's function that fails (ZeroDivisionError) on 0."""
    before = set(USER_FUNCTIONS)

    @udf(name="FAULTS_INVERSE")
    def inverse(x: int) -> int:
        return 1000 // x

    yield
    for name in set(USER_FUNCTIONS) - before:
        unregister(name)


def _dead_redis_url() -> str:
    return f"redis://127.0.0.1:{free_port()}"


def _make(engine: Engine) -> None:
    """The queries, the failing one first (before the fix it stopped every one after it),
    then N readings (every tenth x = 0: the UDF fails there) and a null-keyed record in the
    windowed source between two good ones."""
    engine.execute(STATEMENTS.format(failing=FAILING.format(url=_dead_redis_url())))
    for i in range(N):
        engine.insert("readings", {"ID": f"k{i % 5}", "X": 0 if i % 10 == 0 else i})
    window = (60_000).to_bytes(8, "big")
    engine.log.append(
        "windowed",
        [(b"a" + window, b'{"X": 1}'), (None, b'{"X": 2}'), (b"b" + window, b'{"X": 3}')],
        partition=0,
    )


def _sink_values(engine: Engine, topic: str) -> list[dict[str, Any]]:
    parts = len(engine.log.describe_topic(topic).partitions)
    return [
        json.loads(r["value"])
        for p in range(parts)
        for r in engine.log.read_table(topic, p).to_pylist()
    ]


def _processing_log(engine: Engine) -> list[dict[str, Any]]:
    return [json.loads(r["value"]) for r in engine.log.read_table(PROCESSING_LOG, 0).to_pylist()]


def _check_healthy_outputs(engine: Engine) -> None:
    """The healthy queries' outputs are complete and exact."""
    xs = [0 if i % 10 == 0 else i for i in range(N)]
    assert sorted(v["Y"] for v in _sink_values(engine, "DOUBLED")) == sorted(2 * x for x in xs)
    totals = {r["ID"]: (r["N"], r["S"]) for r in engine.query("SELECT * FROM totals")}
    assert totals == {
        f"k{k}": (N // 5, sum(x for i, x in enumerate(xs) if i % 5 == k)) for k in range(5)
    }
    # the failing UDF: its rows have a null INV, and the query goes on
    inverted = _sink_values(engine, "INVERTED")
    assert len(inverted) == N
    assert [v["INV"] for v in inverted if v["X"] == 0] == [None] * (N // 10)
    # the null-keyed record skipped, the ones around it copied
    assert sorted(v["X"] for v in _sink_values(engine, "WINDOWED_COPY")) == [1, 3]


def test_a_failing_query_a_failing_udf_and_a_bad_record_beside_healthy_queries(
    tmp_path: Path,
) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        _make(engine)
        engine.drain()
        _check_healthy_outputs(engine)
        rows = {q["id"]: q for q in engine.execute("SHOW QUERIES")[0].rows}
        failing = rows.pop("CSAS_LOOKED_UP_0")
        assert failing["state"] == "ERROR"
        assert "Redis at" in failing["error"]
        assert {q["state"] for q in rows.values()} == {"RUNNING"}
        # the records' faults are in the processing log, each with its query
        logged = _processing_log(engine)
        udf_errors = [e for e in logged if e.get("query") == "CSAS_INVERTED_1"]
        assert len(udf_errors) == N // 10
        assert all("ZeroDivisionError" in e["message"] for e in udf_errors)
        windowed = [e for e in logged if e.get("query") == "CSAS_WINDOWED_COPY_2"]
        assert [(e["topic"], e["offset"]) for e in windowed] == [("windowed", 1)]
        assert "null key" in windowed[0]["message"]
        # the failing query read nothing past its failure, and TERMINATE ends it
        assert engine.log.offsets("LOOKED_UP", 0)[1] == 0
        engine.execute("TERMINATE CSAS_LOOKED_UP_0")
        assert "CSAS_LOOKED_UP_0" not in engine.runtime.failed
        # healthy queries still run: more records, more output
        engine.insert("readings", {"ID": "k0", "X": 7})
        engine.drain()
        assert len(_sink_values(engine, "DOUBLED")) == N + 1


@pytest.mark.slow  # a Redis server process
def test_a_query_in_error_runs_again_once_its_cause_is_gone(tmp_path: Path) -> None:
    """ERROR is not final: the query is retried (a RetriableError after 0.5 s, doubling up
    to 5 s) from its last commit, and back in RUNNING with nothing skipped."""
    from hispeed.connectors.embedded_redis import EmbeddedRedis, find_binary

    port = free_port()
    url = f"redis://127.0.0.1:{port}"
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM readings (id STRING KEY, x INT) WITH (kafka_topic='readings', "
            "value_format='JSON', partitions=1);" + FAILING.format(url=url)
        )
        engine.insert("readings", {"ID": "a", "X": 1})
        engine.start()
        wait_for(lambda: engine.runtime.state("CSAS_LOOKED_UP_0")[0] == "ERROR")
        redis = EmbeddedRedis(tmp_path, find_binary())
        redis.start(port)
        try:
            wait_for(lambda: engine.log.offsets("LOOKED_UP", 0)[1] == 1, timeout=20)
            wait_for(lambda: engine.runtime.state("CSAS_LOOKED_UP_0") == ("RUNNING", None))
            with engine.lock:
                (info,) = engine.execute("SHOW QUERIES")[0].rows
            assert (info["state"], info["error"]) == ("RUNNING", None)
            assert engine.runtime.failures["CSAS_LOOKED_UP_0"] >= 1
        finally:
            redis.stop()


def test_a_push_query_that_fails_tells_its_subscriber(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM readings (id STRING KEY, x INT) WITH (kafka_topic='readings', "
            "value_format='JSON', partitions=1);"
        )
        engine.insert("readings", {"ID": "a", "X": 1})
        sql = (
            f"SELECT id, COUNT(*) AS n FROM readings WHERE REDIS_GET(id, '{_dead_redis_url()}') "
            "IS NULL GROUP BY id EMIT CHANGES"
        )
        with (
            engine.stream(sql, from_beginning=True) as push,
            pytest.raises(HispeedError, match="Redis at"),
        ):
            wait_for(lambda: push.poll(0.1) and False, timeout=10)
        assert not engine.runtime.failed  # closed with its query


@pytest.mark.slow  # a server with its query loop and HTTP
def test_the_error_state_and_its_message_through_the_server(server: RunningServer) -> None:
    engine = server.engine
    with engine.lock:
        _make(engine)
    wait_for(lambda: len(_sink_values(engine, "DOUBLED")) == N, timeout=30)
    wait_for(lambda: engine.runtime.state("CSAS_LOOKED_UP_0")[0] == "ERROR")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        # SHOW QUERIES
        body = http.post("/ksql", json={"ksql": "SHOW QUERIES;"}).json()
        queries = {q["id"]: q for q in body[0]["queries"]}
        assert queries["CSAS_LOOKED_UP_0"]["state"] == "ERROR"
        assert "Redis at" in queries["CSAS_LOOKED_UP_0"]["error"]
        assert queries["CSAS_DOUBLED_3"]["state"] == "RUNNING"
        # EXPLAIN: its state and ksqlDB's queryErrors
        body = http.post("/ksql", json={"ksql": "EXPLAIN CSAS_LOOKED_UP_0;"}).json()
        described = body[0]["queryDescription"]
        assert described["state"] == "ERROR"
        assert "Redis at" in described["queryErrors"][0]["errorMessage"]
        # /metrics: the state gauge and the failure counter
        metrics = http.get("/metrics").text
        assert 'hispeed_query_state{query="CSAS_LOOKED_UP_0",state="ERROR"} 1' in metrics
        assert 'hispeed_query_state{query="CSAS_DOUBLED_3",state="RUNNING"} 1' in metrics
        failures = [
            line for line in metrics.splitlines() if line.startswith("hispeed_query_failures_total")
        ]
        assert any('query="CSAS_LOOKED_UP_0"' in f and not f.endswith(" 0") for f in failures)
        assert 'hispeed_query_failures_total{query="CSAS_DOUBLED_3"} 0' in failures
        # the dashboard's query list
        overview = http.get("/api/overview").json()
        shown = {q["id"]: q for q in overview["queries"]}
        assert shown["CSAS_LOOKED_UP_0"]["state"] == "ERROR"
        assert "Redis at" in shown["CSAS_LOOKED_UP_0"]["error"]
    with engine.lock:
        _check_healthy_outputs(engine)


def test_a_query_over_a_corrupt_segment_is_retried_beside_healthy_ones(tmp_path: Path) -> None:
    """A query whose input has a corrupt closed segment is in ERROR, retried with the
    backoff its properties set (doubling up to the maximum), with the log's message naming
    the file; a query over another topic goes on."""
    props = {"ksql.query.retry.backoff.initial.ms": 10, "ksql.query.retry.backoff.max.ms": 40}
    with Engine(tmp_path / "data", fsync="never", properties=props) as engine:
        # forty single-row frames (about 70 bytes each): the first segment is a closed one
        engine.log.create_topic("damaged", 1, {"segment.bytes": "1024"})
        engine.execute(
            "CREATE STREAM damaged (id STRING KEY, x INT) WITH (kafka_topic='damaged', "
            "value_format='JSON');"
            "CREATE STREAM readings (id STRING KEY, x INT) WITH (kafka_topic='readings', "
            "value_format='JSON', partitions=1);"
        )
        for i in range(40):
            engine.insert("damaged", {"ID": "k", "X": i}, timestamp=i)  # one frame each:
            engine.flush()  # (insert gathers rows for the linger otherwise)
        first = sorted((tmp_path / "data" / "log" / "topics" / "damaged" / "0").glob("*.seg"))[0]
        data = bytearray(first.read_bytes())
        data[200] ^= 0xFF  # a flipped byte in a closed segment's first frame
        first.write_bytes(data)
        engine.execute(
            "CREATE STREAM damaged_copy AS SELECT * FROM damaged;"
            "CREATE STREAM readings_copy AS SELECT * FROM readings;"
        )
        for i in range(N):
            engine.insert("readings", {"ID": "a", "X": i})
        engine.start()
        wait_for(lambda: engine.runtime.failures.get("CSAS_DAMAGED_COPY_0", 0) >= 3)
        state, message = engine.runtime.state("CSAS_DAMAGED_COPY_0")
        assert state == "ERROR"
        assert message is not None
        assert first.name in message
        wait_for(lambda: engine.log.offsets("READINGS_COPY", 0)[1] == N)
        with engine.lock:
            engine.execute("TERMINATE CSAS_DAMAGED_COPY_0;")
            assert engine.runtime.state("CSAS_READINGS_COPY_1") == ("RUNNING", None)


def test_a_query_in_error_is_in_error_again_after_a_restart(tmp_path: Path) -> None:
    """A restart replays the query and retries it from its last commit, as ksqlDB restarts
    its queries (their state is not kept across a restart): while its cause lasts, the first
    poll puts it back in ERROR with its message; it never vanishes nor reads past the
    records it failed on."""
    url = _dead_redis_url()
    create = (
        "CREATE STREAM readings (id STRING KEY, x INT) WITH (kafka_topic='readings', "
        "value_format='JSON', partitions=1);" + FAILING.format(url=url)
    )
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(create)
        engine.insert("readings", {"ID": "a", "X": 1})
        engine.drain()
        (before,) = engine.execute("SHOW QUERIES")[0].rows
        assert before["state"] == "ERROR"
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.drain()
        (after,) = engine.execute("SHOW QUERIES")[0].rows
        assert (after["id"], after["state"], after["error"]) == (
            before["id"],
            "ERROR",
            before["error"],
        )
        assert engine.log.offsets("LOOKED_UP", 0)[1] == 0

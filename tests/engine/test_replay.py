"""Replaying the command topic on a restart (issue 16, defect 9): the server's own properties
come from this run, and objects made and later dropped are not reported as skipped."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest

from hispeed.engine import Engine
from hispeed.processes import free_port
from hispeed.server.metrics import Metrics
from hispeed.statements.commands import COMMAND_TOPIC
from hispeed.testing.services import Service
from hispeed.udf import udf, unregister
from tests.conftest import wait_for

SINK = (
    "CREATE STREAM scores (player STRING KEY, points INT) "
    "WITH (kafka_topic='scores', value_format='JSON', partitions=1);"
    "CREATE SINK CONNECTOR board WITH ('connector.class'='redis', 'source'='SCORES', "
    "'redis.mode'='hash', 'key.template'='{prefix}:{{PLAYER}}');"
)


def _record(engine_dir: Path, *entries: dict[str, object]) -> None:
    """Append command-topic entries as a server (maybe an older one) recorded them."""
    with Engine(engine_dir, fsync="never") as engine:
        engine.log.append(
            COMMAND_TOPIC, [(None, msgspec.json.encode(e)) for e in entries], partition=0
        )


@pytest.mark.services
def test_a_redis_connector_follows_the_servers_redis_across_a_restart(
    tmp_path: Path, redis_server: Service, redis_prefix: str
) -> None:
    """The embedded Redis comes back on another port: the connector must use that one."""
    gone = f"redis://127.0.0.1:{free_port()}"  # the first run's Redis, not there any more
    with Engine(tmp_path, fsync="never", properties={"redis.url": gone}) as engine:
        engine.execute(SINK.format(prefix=redis_prefix))
    with Engine(tmp_path, fsync="never", properties={"redis.url": redis_server.url}) as engine:
        runner = engine.connectors.runners["BOARD"]
        assert runner.connector.config["redis.url"] == redis_server.url
        wait_for(lambda: runner.status.state == "RUNNING", timeout=30)


def test_a_statement_recorded_with_the_servers_url_by_an_older_hispeed_takes_this_runs(
    tmp_path: Path,
) -> None:
    old, new = (f"redis://127.0.0.1:{free_port()}" for _ in range(2))
    statement = SINK.format(prefix="p")
    _record(tmp_path, {"statement": statement, "properties": {"redis.url": old}, "worker": "w"})
    with Engine(tmp_path, fsync="never", properties={"redis.url": new}) as engine:
        assert engine.connectors.runners["BOARD"].connector.config["redis.url"] == new


def test_what_the_user_set_is_kept_across_a_restart(tmp_path: Path) -> None:
    mine = f"redis://127.0.0.1:{free_port()}"
    with Engine(tmp_path, fsync="never", properties={"redis.url": "redis://a:1"}) as engine:
        engine.execute(f"SET 'redis.url'='{mine}';" + SINK.format(prefix="p"))
    with Engine(tmp_path, fsync="never", properties={"redis.url": "redis://b:2"}) as engine:
        assert engine.connectors.runners["BOARD"].connector.config["redis.url"] == mine


def test_objects_made_and_dropped_later_are_not_reported_on_replay(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def entry(statement: str) -> dict[str, object]:
        return {"statement": statement, "properties": {}, "worker": "w", "own": 1}

    _record(
        tmp_path,
        entry("CREATE STREAM gone AS SELECT * FROM nowhere;"),  # fails now, dropped later
        entry("CREATE SINK CONNECTOR gone_too WITH ('connector.class'='nothing');"),
        entry("DROP STREAM gone;"),
        entry("DROP CONNECTOR gone_too;"),
        entry("CREATE STREAM lost AS SELECT * FROM nowhere;"),  # fails, never dropped
    )
    with caplog.at_level(logging.INFO), Engine(tmp_path, fsync="never"):
        pass
    said = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert not [m for m in said if "gone" in m.lower()], said
    # the CREATE that is never dropped is kept as a query in ERROR, said once
    assert len([m for m in said if "in ERROR" in m and "lost" in m.lower()]) == 1, said


QUERIES = (
    "CREATE STREAM src (id INT KEY, v INT) WITH (kafka_topic='src', value_format='JSON', "
    "partitions=1);"
    "CREATE STREAM doubled AS SELECT id, REPLAY_TWICE(v) AS v FROM src;"
    "CREATE STREAM copied AS SELECT id, v FROM src;"
)


def _made_with_a_udf_then_reopened_without_it(path: Path) -> Engine:
    """Run QUERIES with the UDF REPLAY_TWICE, then open the engine again without it (its
    module gone since), as a server restarted without `--udf-module`."""

    @udf
    def replay_twice(v: int) -> int:
        return v * 2

    try:
        with Engine(path, fsync="never") as engine:
            engine.execute(QUERIES)
            engine.execute("INSERT INTO src (id, v) VALUES (1, 10);")
            engine.drain()
    finally:
        unregister("REPLAY_TWICE")
    return Engine(path, fsync="never")


def _queries(engine: Engine) -> dict[str, dict[str, object]]:
    return {r["id"]: r for r in engine.execute("SHOW QUERIES;")[0].rows}


def test_a_query_that_fails_on_replay_is_in_error_and_the_others_go_on(tmp_path: Path) -> None:
    with _made_with_a_udf_then_reopened_without_it(tmp_path) as engine:
        shown = _queries(engine)
        # the ids are the ones the queries had: the one after the failed one keeps its own
        assert set(shown) == {"CSAS_DOUBLED_0", "CSAS_COPIED_1"}, shown
        failed = shown["CSAS_DOUBLED_0"]
        assert failed["state"] == "ERROR"
        assert "REPLAY_TWICE" in str(failed["error"]).upper(), failed
        assert "REPLAY_TWICE" in str(failed["queryString"]).upper()
        assert shown["CSAS_COPIED_1"]["state"] == "RUNNING"
        stats = {q["id"]: q for q in Metrics(engine).query_stats()}
        assert stats["CSAS_DOUBLED_0"]["state"] == "ERROR"
        assert 'hispeed_query_state{query="CSAS_DOUBLED_0",state="ERROR"} 1' in Metrics(
            engine
        ).render(0, {})
        engine.execute("INSERT INTO src (id, v) VALUES (2, 20);")
        engine.drain()
        rows = engine.execute("SELECT id, v FROM copied;")[0].rows
        assert sorted((r["ID"], r["V"]) for r in rows) == [(1, 10), (2, 20)]
        engine.execute("TERMINATE CSAS_DOUBLED_0;")
        assert set(_queries(engine)) == {"CSAS_COPIED_1"}
    with Engine(tmp_path, fsync="never") as engine:  # the TERMINATE is replayed too
        assert set(_queries(engine)) == {"CSAS_COPIED_1"}


def test_the_sink_of_a_query_that_fails_on_replay_can_be_dropped(tmp_path: Path) -> None:
    with _made_with_a_udf_then_reopened_without_it(tmp_path) as engine:
        assert "DOUBLED" in engine.log.list_topics()
        engine.execute("DROP STREAM doubled DELETE TOPIC;")
        assert set(_queries(engine)) == {"CSAS_COPIED_1"}
        assert "DOUBLED" not in engine.log.list_topics()
        # made again once the function is back: a new query, its sink in the catalog
        engine.execute("CREATE STREAM doubled AS SELECT id, v * 2 AS v FROM src;")
        assert _queries(engine)["CSAS_DOUBLED_2"]["state"] == "RUNNING"
    with Engine(tmp_path, fsync="never") as engine:
        assert {q: r["state"] for q, r in _queries(engine).items()} == {
            "CSAS_COPIED_1": "RUNNING",
            "CSAS_DOUBLED_2": "RUNNING",
        }

"""Statements are all or nothing (issue 16, defect 6): a refused statement leaves nothing
behind, live or after a restart, and a statement whose later step fails is undone."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.state.changelog import changelog_topic
from hispeed.statements.commands import COMMAND_TOPIC
from hispeed.testing.server import RunningServer

SOURCE = (
    "CREATE STREAM s (id STRING KEY, x INT) "
    "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
)


def _state(engine: Engine) -> tuple[set[str], set[str], set[str], set[str]]:
    """What an engine has: sources, queries, tasks, topics."""
    return (
        set(engine.catalog.sources),
        set(engine.catalog.queries),
        set(engine.tasks),
        set(engine.log.list_topics(internal=True)),
    )


@pytest.mark.parametrize(
    "statement",
    [
        "CREATE STREAM t AS SELECT * FROM s;",
        "CREATE TABLE t AS SELECT id, COUNT(*) AS n FROM s GROUP BY id;",
        "CREATE STREAM t (id STRING KEY, x INT) WITH (kafka_topic='t', value_format='JSON', "
        "partitions=1); INSERT INTO t SELECT * FROM s;",
    ],
)
def test_a_refused_query_leaves_nothing_behind(tmp_path: Path, statement: str) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(SOURCE)
        if statement.startswith("CREATE STREAM t ("):
            first, statement = statement.split("; ", 1)
            engine.execute(first)
        before = _state(engine)
        with pytest.raises(HispeedError, match=r"auto\.offset\.reset"):
            engine.execute(statement, {"auto.offset.reset": "bogus"})
        assert _state(engine) == before
        # the same statement made right gets the id it would have had
        (result,) = engine.execute(statement, {"auto.offset.reset": "latest"})
        assert result.query_id is not None
        assert result.query_id.endswith("_0")
    with Engine(tmp_path / "data", fsync="never") as engine:  # a restart: the same
        assert set(engine.catalog.queries) == {result.query_id}


def test_set_refuses_a_bad_offset_reset(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        with pytest.raises(HispeedError, match="'earliest'"):
            engine.execute("SET 'auto.offset.reset'='bogus';")
        assert engine.properties["auto.offset.reset"] == "earliest"


def test_a_statement_whose_last_step_fails_is_undone(tmp_path: Path) -> None:
    """The command topic cannot take the statement (it was deleted under the engine): the
    table, its topic, its query, its task and its changelog topic all go again."""
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(SOURCE)
        engine.log.delete_topic(COMMAND_TOPIC)
        before = _state(engine)
        with pytest.raises(HispeedError):
            engine.execute("CREATE TABLE t AS SELECT id, COUNT(*) AS n FROM s GROUP BY id;")
        assert _state(engine) == before
        assert changelog_topic("CTAS_T_0") not in engine.log.list_topics(internal=True)
        assert engine.runtime.query_counter == 0
        with pytest.raises(HispeedError):
            engine.execute(
                "CREATE STREAM u (id STRING KEY) WITH (kafka_topic='u', value_format='JSON', "
                "partitions=1);"
            )
        assert _state(engine) == before


def test_terminate_all_checks_before_it_stops_and_leaves_push_queries_alone(
    tmp_path: Path,
) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(SOURCE + "CREATE STREAM t AS SELECT * FROM s;")
        sql = "SELECT id, COUNT(*) AS n FROM s GROUP BY id EMIT CHANGES"
        with engine.stream(sql, from_beginning=True) as push:
            engine.execute("TERMINATE ALL;")
            assert not engine.catalog.queries
            assert push.id in engine.tasks  # its client's to close
            engine.insert("s", {"ID": "a", "X": 1})
            assert push.poll(5.0) == [{"ID": "a", "N": 1}]


def test_a_refused_create_as_select_through_the_server(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=10) as http:
        assert http.post("/ksql", json={"ksql": SOURCE}).status_code == 200
        refused = http.post(
            "/ksql",
            json={
                "ksql": "CREATE STREAM t AS SELECT * FROM s;",
                "streamsProperties": {"auto.offset.reset": "bogus"},
            },
        )
        assert refused.status_code == 400
        assert "auto.offset.reset" in refused.json()["message"]
        streams = http.post("/ksql", json={"ksql": "SHOW STREAMS;"}).json()[0]["streams"]
        assert [s["name"] for s in streams] == ["S"]
        topics = http.post("/ksql", json={"ksql": "SHOW TOPICS;"}).json()[0]["topics"]
        assert "T" not in {t["name"] for t in topics}


def test_a_source_connector_whose_statement_fails_takes_its_topic_with_it(
    tmp_path: Path,
) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.log.delete_topic(COMMAND_TOPIC)  # the statement's last step fails
        before = _state(engine)
        with pytest.raises(HispeedError):
            engine.execute(
                "CREATE SOURCE CONNECTOR w WITH ('connector.class'='datagen', "
                "'generator'='weather', 'kafka.topic'='weather_feed');"
            )
        assert not engine.connectors.runners
        assert _state(engine) == before

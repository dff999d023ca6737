"""Replaying the command topic on a restart (issue 16, defect 9): the server's own properties
come from this run, and objects made and later dropped are not reported as skipped."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec
import pytest

from hispeed.engine import Engine
from hispeed.processes import free_port
from hispeed.statements.commands import COMMAND_TOPIC
from hispeed.testing.services import Service
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
    assert len([m for m in said if "skipped on replay" in m and "lost" in m]) == 1, said

"""A connector that cannot reach its system says so (issue 16, defect 9: the leaderboard's
Redis sinks sat RETRYING forever after a restart, and nothing said it)."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from hispeed.engine import Engine
from hispeed.processes import free_port
from hispeed.testing.server import RunningServer
from tests.conftest import wait_for


def test_a_connector_stuck_retrying_is_said_on_the_terminal_and_in_show_connectors(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}"
    with caplog.at_level(logging.WARNING), Engine(tmp_path, fsync="never") as engine:
        engine.execute(
            "CREATE STREAM s (k STRING KEY, v INT) "
            "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
            f"CREATE SINK CONNECTOR sink WITH ('connector.class'='redis', 'source'='S', "
            f"'redis.url'='{nowhere}', 'redis.mode'='hash', 'key.template'='x:{{K}}');"
        )
        rows = wait_for(
            lambda: [r for r in engine.connectors.rows() if r["state"] == "RETRYING"],
            timeout=30,
        )
        assert rows[0]["name"] == "SINK"
        said = wait_for(
            lambda: [r.getMessage() for r in caplog.records if "RETRYING" in r.getMessage()]
        )
    assert "SINK" in said[0]
    assert nowhere.split("//")[1] in said[0]  # what it cannot reach
    assert len(said) == 1  # once, then once a minute: not a flood


def test_a_connector_retrying_shows_in_the_servers_metrics(server: RunningServer) -> None:
    nowhere = f"redis://127.0.0.1:{free_port()}"
    server.engine.execute(
        "CREATE STREAM s (k STRING KEY, v INT) "
        "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
        f"CREATE SINK CONNECTOR sink WITH ('connector.class'='redis', 'source'='S', "
        f"'redis.url'='{nowhere}', 'redis.mode'='hash', 'key.template'='x:{{K}}');"
    )
    line = 'hispeed_connector_state{connector="SINK",state="RETRYING"} 1'
    server.wait_for(lambda: line in httpx.get(f"{server.url}/metrics").text, timeout=30)

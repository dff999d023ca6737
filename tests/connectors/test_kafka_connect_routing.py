"""Which connectors go to Kafka Connect, and what is said when they cannot (no worker needed):
a Java connector.class in the embedded log, or without ksql.connect.url, is a clear error;
the WITH clause's quoted keys keep their case for Connect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.server.statements import run_ksql
from hispeed.sql import ast
from hispeed.sql.parser import parse
from hispeed.statements import kafka_connect
from hispeed.statements.base import Call

FILE_SOURCE = "org.apache.kafka.connect.file.FileStreamSourceConnector"


def test_quoted_keys_keep_their_case_and_bare_ones_are_lower_cased() -> None:
    [parsed] = parse(
        "CREATE SOURCE CONNECTOR c WITH ('transforms.addPrefix.type'='x', "
        "`Tasks.Max`=1, Topic='t');"
    )
    stmt = parsed.statement
    assert isinstance(stmt, ast.CreateConnector)
    assert list(stmt.properties) == ["transforms.addPrefix.type", "Tasks.Max", "topic"]


def test_a_java_class_in_the_embedded_log_says_kafka_mode(tmp_path: Path) -> None:
    with Engine(tmp_path, properties={"ksql.connect.url": "http://127.0.0.1:1"}) as engine:
        status, body = run_ksql(
            engine, f"CREATE SOURCE CONNECTOR c WITH ('connector.class'='{FILE_SOURCE}');"
        )
        assert status == 400
        assert body["@type"] == "statement_error"
        assert "Kafka Connect connectors run in Kafka mode only" in body["message"]
        # SHOW/DESCRIBE/DROP stay hispeed's own there: nothing is asked of the URL
        assert engine.execute("SHOW CONNECTORS;")[0].rows == []
        with pytest.raises(HispeedError, match="Connector C does not exist"):
            engine.execute("DROP CONNECTOR c;")


def test_hispeeds_own_connectors_stay_local(tmp_path: Path) -> None:
    with Engine(tmp_path, properties={"ksql.connect.url": "http://127.0.0.1:1"}) as engine:
        engine.execute(
            "CREATE SOURCE CONNECTOR g WITH ('Connector.Class'='datagen', "
            "'generator'='users', 'kafka.topic'='g', 'limit'=1);"
        )
        assert [r["name"] for r in engine.execute("SHOW CONNECTORS;")[0].rows] == ["G"]
        engine.execute("DROP CONNECTOR g;")


def test_an_unknown_bare_class_is_hispeeds_error_without_a_connect_url(tmp_path: Path) -> None:
    with (
        Engine(tmp_path) as engine,
        pytest.raises(HispeedError, match="no source connector class 'nothing'"),
    ):
        engine.execute("CREATE SOURCE CONNECTOR c WITH ('connector.class'='nothing');")


def test_show_source_or_sink_connectors_lists_that_kind(tmp_path: Path) -> None:
    [parsed] = parse("SHOW SINK CONNECTORS;")
    assert parsed.statement == ast.Show("CONNECTORS", scope="SINK", pos=(1, 1))
    with Engine(tmp_path) as engine:
        engine.execute(
            "CREATE SOURCE CONNECTOR g WITH ('connector.class'='datagen', "
            "'generator'='users', 'kafka.topic'='g', 'limit'=1);"
        )
        assert [r["name"] for r in engine.execute("SHOW SOURCE CONNECTORS;")[0].rows] == ["G"]
        assert engine.execute("SHOW SINK CONNECTORS;")[0].rows == []
        assert [r["name"] for r in engine.execute("SHOW CONNECTORS;")[0].rows] == ["G"]


def test_a_replayed_create_is_never_sent_to_kafka_connect() -> None:
    # Connect's connectors are never recorded, so a CREATE read back from the command topic
    # is hispeed's own, even when its class is no longer known (a package uninstalled)
    [parsed] = parse(f"CREATE SOURCE CONNECTOR c WITH ('connector.class'='{FILE_SOURCE}');")
    stmt = parsed.statement
    assert isinstance(stmt, ast.CreateConnector)
    props = {"ksql.connect.url": "http://127.0.0.1:1"}
    # the check reads only the statement and the call on both paths: no engine parts needed
    parts: Any = None
    live = Call(parsed.text, props, replay=False, record=True)
    replayed = Call(parsed.text, props, replay=True, record=False)
    assert kafka_connect.is_remote_create(parts, stmt, live)
    assert not kafka_connect.is_remote_create(parts, stmt, replayed)
    assert not kafka_connect.is_remote(parts, "C", replayed)

"""The command topic: statements kept with their properties and replayed on a restart."""

from __future__ import annotations

from pathlib import Path

from hispeed.engine import Engine
from hispeed.statements.commands import COMMAND_TOPIC


def test_a_replayed_statement_runs_with_its_properties_and_leaves_the_engines(
    tmp_path: Path,
) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM s (id STRING KEY, x DOUBLE) "
            "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
        )
        engine.execute(
            "CREATE STREAM t AS SELECT * FROM s;", properties={"auto.offset.reset": "latest"}
        )
        start, end = engine.log.offsets(COMMAND_TOPIC, 0)
        assert end - start == 2
    with Engine(tmp_path / "data", fsync="never") as engine:
        assert set(engine.tasks) == {"CSAS_T_0"}
        # the replay ran under the statement's properties and put the engine's back, in the
        # very dict the runtime reads
        assert engine.properties["auto.offset.reset"] == "earliest"
        assert engine.properties is engine.context.properties
        engine.execute("SET 'ksql.streams.cache.max.bytes.buffering'='0';")
        assert engine.context.properties["ksql.streams.cache.max.bytes.buffering"] == "0"


def test_what_only_reads_is_not_kept(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute("SHOW STREAMS; SET 'a'='b'; LIST TOPICS;")
        start, end = engine.log.offsets(COMMAND_TOPIC, 0)
        assert end == start

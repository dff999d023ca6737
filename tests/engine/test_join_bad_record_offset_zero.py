"""A join query logs an undecodable record at offset 0 too: one RECORD_PROCESSING_ERROR per
bad record, as non-join queries do (before, a truthiness test on the offset left out the
first record's entry)."""

from __future__ import annotations

import json
from pathlib import Path

from hispeed.engine import Engine
from hispeed.log.base import Record
from hispeed.runtime.task import PROCESSING_LOG


def test_every_bad_record_of_a_join_is_logged(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "data", fsync="never")
    try:
        engine.execute(
            "CREATE TABLE r (id STRING PRIMARY KEY, y INT) "
            "WITH (kafka_topic='r', format='JSON', partitions=1);"
            "CREATE STREAM s (k STRING KEY, v INT) "
            "WITH (kafka_topic='s', format='JSON', partitions=1);"
            "CREATE STREAM sj AS SELECT s.k, v, y FROM s LEFT JOIN r ON s.k = r.id;"
        )
        bad_keys = [Record(json.dumps({"V": i}).encode(), b"bad", i) for i in range(3)]
        engine.log.append("s", bad_keys, partition=0)
        engine.drain()
        engine.log.append("s", [Record(b"{not json", b'"ok"', 9)], partition=0)
        engine.drain()
        logged = [
            json.loads(r["value"]) for r in engine.log.read_table(PROCESSING_LOG, 0).to_pylist()
        ]
        assert [(e["topic"], e["offset"]) for e in logged] == [("s", o) for o in range(4)]
    finally:
        engine.close()

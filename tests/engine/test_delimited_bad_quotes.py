"""A DELIMITED record csv cannot read (an unterminated quote, text after a closing quote)
goes to the processing log with its topic, partition and offset, and the query goes on
with the records around it (ksqlDB: "Error deserializing DELIMITED message"); a pull query
over the stream skips it. A filesystem CSV file with such a line is refused naming the line.
Before, building the "Column count mismatch" message crashed on the record's missing field
count, and the query stayed in ERROR."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError
from hispeed.log.base import Record
from hispeed.runtime.task import PROCESSING_LOG


@pytest.mark.parametrize("bad", [b'2,"abc', b'"', b'5,"x"y'])
def test_an_unreadable_quote_is_logged_and_the_query_goes_on(tmp_path: Path, bad: bytes) -> None:
    engine = Engine(tmp_path / "data", fsync="never")
    try:
        engine.execute(
            "CREATE STREAM d (k VARCHAR KEY, a INT, b VARCHAR) "
            "WITH (kafka_topic='d', value_format='DELIMITED', partitions=1);"
            "CREATE STREAM o AS SELECT * FROM d;"
        )
        records = [Record(b"1,x", b"k1", 1), Record(bad, b"k2", 2), Record(b"3,y", b"k3", 3)]
        engine.log.append("d", records, partition=0)
        engine.drain()
        rows = engine.log.read_table("O", 0).to_pylist()
        assert [(r["key"], r["value"]) for r in rows] == [(b"k1", b"1,x"), (b"k3", b"3,y")]
        logged = [
            json.loads(r["value"]) for r in engine.log.read_table(PROCESSING_LOG, 0).to_pylist()
        ]
        assert [(e["topic"], e["partition"], e["offset"]) for e in logged] == [("d", 0, 1)]
        assert "delimited" in logged[0]["message"].lower()
        assert engine.execute("SHOW QUERIES;")[0].rows[0]["state"] == "RUNNING"
        assert sorted(r["A"] for r in engine.query("SELECT * FROM d;")) == [1, 3]
    finally:
        engine.close()


def test_a_quoted_field_over_lines_in_a_csv_file_is_refused_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "ml.csv"
    path.write_text('1,a\n2,"multi\nline"\n3,z\n')
    engine = Engine(tmp_path / "data", fsync="never")
    try:
        with pytest.raises(SqlError, match="line 2 of its file"):
            engine.execute(
                "CREATE TABLE side (k BIGINT, v VARCHAR) WITH ('connector'='filesystem',"
                f"'path'='{path}','format'='csv');"
                "CREATE TABLE out_t (k BIGINT, v VARCHAR) WITH ('connector'='blackhole');"
                "INSERT INTO out_t SELECT k, v FROM side;"
            )
    finally:
        engine.close()

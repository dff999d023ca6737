"""The file source: a CSV or JSON-lines file followed through appends, rotation, truncation
and restarts; bad lines to the processing log with the file and the line."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from hispeed.connectors.base import connector_class
from hispeed.connectors.files import FileSource
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.testing.connectors import collect
from hispeed.testing.wait import wait_for


def _values(engine: Engine, topic: str) -> list[Any]:
    if topic not in engine.log.list_topics():
        return []
    return [json.loads(v) for v in engine.log.read_table(topic, 0).column("value").to_pylist()]


def _errors(engine: Engine) -> list[dict[str, Any]]:
    table = engine.log.read_table(PROCESSING_LOG, 0)
    return [json.loads(v) for v in table.column("value").to_pylist()]


def _append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


def _lines(numbers: range) -> str:
    return "".join(json.dumps({"n": n}) + "\n" for n in numbers)


def _tail(name: str, path: Path, topic: str = "events", extra: str = "") -> str:
    return (
        f"CREATE SOURCE CONNECTOR {name} WITH ('connector.class'='file', "
        f"'file.path'='{path}', 'kafka.topic'='{topic}'{extra});"
    )


def test_tail_follows_appends_a_partial_line_and_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    _append(path, _lines(range(3)))
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(_tail("app", path))
        wait_for(lambda: len(_values(engine, "events")) == 3)
        _append(path, _lines(range(3, 5)) + '{"n": 5')  # a line still being written
        wait_for(lambda: len(_values(engine, "events")) == 5)
        _append(path, "}\n" + _lines(range(6, 7)))
        wait_for(lambda: len(_values(engine, "events")) == 7)
        # rotated as logrotate does: renamed away (a last line without an end still in it),
        # and a new file made at the path
        _append(path, '{"n": 7}')
        os.rename(path, tmp_path / "app.jsonl.1")
        _append(path, _lines(range(8, 10)))
        wait_for(lambda: len(_values(engine, "events")) == 10)
        assert [v["n"] for v in _values(engine, "events")] == list(range(10))
        assert engine.execute("DESCRIBE CONNECTOR app;")[0].info["state"] == "RUNNING"


def test_a_truncated_file_is_read_again_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    _append(path, _lines(range(3)))
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(_tail("app", path))
        wait_for(lambda: len(_values(engine, "events")) == 3)
        with open(path, "w") as f:  # copytruncate: the same file, emptied, then written
            f.write(_lines(range(100, 101)))
        wait_for(lambda: len(_values(engine, "events")) == 4)
        assert [v["n"] for v in _values(engine, "events")] == [0, 1, 2, 100]


def test_a_restart_goes_on_after_the_last_line_also_past_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "app.jsonl"
    data = tmp_path / "data"
    _append(path, _lines(range(3)))
    with Engine(data, fsync="never") as engine:
        engine.execute(_tail("app", path))
        wait_for(lambda: len(_values(engine, "events")) == 3)
    # while hispeed is down: more lines, then a rotation, then lines in the new file
    _append(path, _lines(range(3, 5)))
    os.rename(path, tmp_path / "app.jsonl.1")
    _append(path, _lines(range(5, 7)))
    with Engine(data, fsync="never") as engine:
        wait_for(lambda: len(_values(engine, "events")) >= 7)
        _append(path, _lines(range(7, 8)))
        wait_for(lambda: len(_values(engine, "events")) >= 8)
        assert [v["n"] for v in _values(engine, "events")] == list(range(8))


def test_csv_rows_become_json_objects_keyed_and_timed_by_their_columns(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        'id,item,qty,at\no1,apple,3,2026-01-02T03:04:05Z\no2,"pear, green",,2026-01-02T03:04:06Z\n'
    )
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            _tail("orders", path, "orders", ", 'key.column'='id', 'timestamp.column'='at'")
            + "CREATE STREAM orders (id STRING KEY, item STRING, qty INT) "
            "WITH (kafka_topic='orders', value_format='JSON');"
        )
        wait_for(lambda: len(_values(engine, "orders")) == 2)
        table = engine.log.read_table("orders", 0)
        assert table.column("key").to_pylist() == [b"o1", b"o2"]
        assert table.column("timestamp").to_pylist() == [1767323045000, 1767323046000]
        assert _values(engine, "orders") == [
            {"id": "o1", "item": "apple", "qty": 3, "at": 1767323045000},
            {"id": "o2", "item": "pear, green", "qty": None, "at": 1767323046000},
        ]
        _append(path, "o3,plum,7,2026-01-02T03:04:07Z\n")  # the header is kept for later lines
        wait_for(lambda: len(_values(engine, "orders")) == 3)
        assert _values(engine, "orders")[2]["item"] == "plum"


def test_bad_lines_go_to_the_processing_log_and_the_source_goes_on(tmp_path: Path) -> None:
    csv_path = tmp_path / "in.csv"
    json_path = tmp_path / "in.jsonl"
    csv_path.write_text("a,b\n1,x\n2\n3,y,extra\n4,z\n")
    json_path.write_text('{"a": 1}\n{"a": \n[1, 2]\n\n{"a": 4}\n')
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(_tail("c", csv_path, "c") + _tail("j", json_path, "j"))
        wait_for(lambda: len(_values(engine, "c")) == 2 and len(_values(engine, "j")) == 2)
        wait_for(lambda: len(_errors(engine)) == 4)
        assert [v["a"] for v in _values(engine, "c")] == [1, 4]
        assert [v["a"] for v in _values(engine, "j")] == [1, 4]
        where = sorted((e["query"], e["file"], e["line"]) for e in _errors(engine))
        assert where == [
            ("connector C", str(csv_path), 3),
            ("connector C", str(csv_path), 4),
            ("connector J", str(json_path), 2),
            ("connector J", str(json_path), 3),
        ]
        info = engine.execute("DESCRIBE CONNECTOR c;")[0].info
        assert info["errors"] == 2
        assert info["state"] == "RUNNING"
        _append(csv_path, "5,w\n")
        wait_for(lambda: len(_values(engine, "c")) == 3)


def test_without_tail_a_last_line_without_an_end_is_read(tmp_path: Path) -> None:
    path = tmp_path / "once.jsonl"
    path.write_text('{"n": 0}\n{"n": 1}')
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(_tail("once", path, extra=", 'file.tail'='false'"))
        wait_for(lambda: len(_values(engine, "events")) == 2)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "needs 'file.path'"),
        ({"file.path": "x.parquet"}, "directory"),
        ({"file.path": "x.txt"}, "'file.format'"),
        ({"file.path": "x.csv", "file.tail": "yes"}, "'file.tail' must be true or false"),
        ({"file.path": "x.csv", "batch.bytes": "lots"}, "'batch.bytes' must be a whole number"),
        ({"file.path": "x.csv", "csv.header": "false"}, "'csv.columns'"),
    ],
)
def test_a_bad_configuration_is_a_clear_error(config: dict[str, str], message: str) -> None:
    with pytest.raises(HispeedError, match=message):
        FileSource("f", config)


def test_the_file_connectors_answer_to_their_class_names() -> None:
    assert connector_class("file", "SOURCE").__name__ == "FileSource"
    assert connector_class("DIRECTORY", "SOURCE").__name__ == "DirectorySource"
    assert connector_class("file-sink", "SINK").__name__ == "FileSink"
    assert connector_class("parquet", "SINK").__name__ == "ParquetSink"
    with pytest.raises(HispeedError, match="'directory' is a source connector, not a sink"):
        connector_class("directory", "SINK")


def test_the_test_helper_collects_a_batch_sources_records(tmp_path: Path) -> None:
    path = tmp_path / "in.jsonl"
    path.write_text(_lines(range(3)))
    got = collect(FileSource("f", {"file.path": str(path), "key.column": "n"}), 3)
    assert [(r.key, json.loads(r.value or b"")) for r in got] == [
        (str(n).encode(), {"n": n}) for n in range(3)
    ]
    # each record carries its batch's position: after the third line
    assert got[-1].position == {"ino": path.stat().st_ino, "offset": 27, "line": 3}


def test_csv_fields_may_stay_text_so_leading_zeros_are_kept(tmp_path: Path) -> None:
    path = tmp_path / "places.csv"
    path.write_text("zip,count\n01234,7\n99501,\n")
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            _tail("typed", path, "typed")
            + _tail("text", path, "text", ", 'csv.infer.types'='false'")
            + "CREATE STREAM text (zip STRING, count INT) "
            "WITH (kafka_topic='text', value_format='JSON');"
            "CREATE STREAM counts AS SELECT zip, count + 1 AS next FROM text;"
        )
        engine.start()
        wait_for(lambda: len(_values(engine, "typed")) == 2 and len(_values(engine, "text")) == 2)
        assert _values(engine, "typed") == [
            {"zip": 1234, "count": 7},
            {"zip": 99501, "count": None},
        ]
        assert _values(engine, "text") == [
            {"zip": "01234", "count": "7"},
            {"zip": "99501", "count": None},
        ]
        # the stream's declared types read the text
        wait_for(lambda: len(_values(engine, "COUNTS")) == 2)
        assert _values(engine, "COUNTS") == [
            {"ZIP": "01234", "NEXT": 8},
            {"ZIP": "99501", "NEXT": None},
        ]

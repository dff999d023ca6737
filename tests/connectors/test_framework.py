"""The connector framework, with plugins defined here: SQL, positions, retries, errors."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import pytest

from hispeed.connectors.base import (
    RetriableError,
    SinkBatch,
    SinkConnector,
    SourceConnector,
    SourceRecord,
    register,
)
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.runtime.task import PROCESSING_LOG
from tests.conftest import wait_for


@register
class MemorySink(SinkConnector):
    """Keeps what it is given in a class-level store, by connector name; can be told to fail."""

    names = ("test-memory",)
    written: ClassVar[dict[str, list[tuple[Any, dict[str, Any] | None, int]]]] = {}
    down: ClassVar[dict[str, bool]] = {}

    def start(self) -> None:
        self.written.setdefault(self.name, [])

    def write(self, batch: SinkBatch) -> None:
        if self.down.get(self.name):
            raise RetriableError("the store is down")
        for i, (key, row, offset) in enumerate(
            zip(batch.keys, batch.rows, batch.offsets, strict=True)
        ):
            if row is not None and row.get("X") == -1:
                batch.fail(i, f"key {key}: -1 cannot be stored")
                continue
            self.written[self.name].append((key, row, offset))

    def stop(self) -> None:
        self.down.pop(self.name, None)

    def details(self) -> dict[str, Any]:
        return {"store": "memory"}


@register
class CountingSource(SourceConnector):
    """Counts up from its last committed position; `limit` records in all."""

    names = ("test-counter",)

    def start(self, position: Any) -> None:
        self.next = 0 if position is None else int(position) + 1
        self.limit = int(self.option("limit", "5"))

    def poll(self, timeout: float) -> list[SourceRecord]:
        if self.next >= self.limit:
            time.sleep(timeout)
            return []
        n = self.next
        self.next += 1
        return [SourceRecord(f"k{n}".encode(), json.dumps({"n": n}).encode(), None, n)]

    def stop(self) -> None:
        self.next = self.limit


READINGS = (
    "CREATE STREAM readings (device STRING KEY, x DOUBLE) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
)


def test_a_sink_gets_decoded_rows_and_resumes_after_a_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    MemorySink.written.clear()
    with Engine(data, fsync="never") as engine:
        engine.execute(
            READINGS + "CREATE SINK CONNECTOR mem WITH ('connector.class'='test-memory', "
            "'source'='readings');"
        )
        for i in range(3):
            engine.insert("readings", {"DEVICE": f"d{i}", "X": float(i)})
        wait_for(lambda: len(MemorySink.written["MEM"]) == 3)
        assert MemorySink.written["MEM"][0] == ("d0", {"DEVICE": "d0", "X": 0.0}, 0)
        shown = engine.execute("SHOW CONNECTORS;")[0].rows
        assert shown[0]["name"] == "MEM"
        assert shown[0]["state"] == "RUNNING"
        wait_for(lambda: engine.execute("DESCRIBE CONNECTOR mem;")[0].info["lag"] == 0)
        info = engine.execute("DESCRIBE CONNECTOR mem;")[0].info
        assert info["records"] == 3
        assert info["details"] == {"store": "memory"}
    with Engine(data, fsync="never") as engine:  # the connector comes back, where it was
        engine.insert("readings", {"DEVICE": "d9", "X": 9.0})
        wait_for(lambda: len(MemorySink.written["MEM"]) == 4)
        # its own progress: it has committed all it read, so a resend would be written now
        wait_for(lambda: engine.execute("DESCRIBE CONNECTOR mem;")[0].info["lag"] == 0)
        assert [k for k, _, _ in MemorySink.written["MEM"]] == ["d0", "d1", "d2", "d9"]


def test_a_table_sink_sees_tombstones(tmp_path: Path) -> None:
    MemorySink.written.clear()
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            READINGS
            + "CREATE TABLE latest AS SELECT device, LATEST_BY_OFFSET(x) AS x FROM readings "
            "GROUP BY device HAVING LATEST_BY_OFFSET(x) > 0;"
            "CREATE SINK CONNECTOR t WITH ('connector.class'='test-memory', 'topics'='LATEST');"
        )
        engine.start()
        engine.insert("readings", {"DEVICE": "a", "X": 1.0})
        wait_for(lambda: len(MemorySink.written["T"]) == 1)
        engine.insert("readings", {"DEVICE": "a", "X": -5.0})  # HAVING no longer: a delete
        wait_for(lambda: len(MemorySink.written["T"]) == 2)
    assert MemorySink.written["T"] == [("a", {"DEVICE": "a", "X": 1.0}, 0), ("a", None, 1)]


def test_a_sink_retries_the_same_batch_while_it_is_down(tmp_path: Path) -> None:
    MemorySink.written.clear()
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(READINGS)
        MemorySink.down["DOWN"] = True
        engine.execute(
            "CREATE SINK CONNECTOR down WITH ('connector.class'='test-memory', "
            "'topics'='readings');"
        )
        engine.insert("readings", {"DEVICE": "a", "X": 1.0})
        wait_for(lambda: engine.execute("DESCRIBE CONNECTOR down;")[0].info["state"] == "RETRYING")
        info = engine.execute("DESCRIBE CONNECTOR down;")[0].info
        assert "the store is down" in info["lastError"]
        assert info["lag"] == 1
        MemorySink.down["DOWN"] = False
        wait_for(lambda: len(MemorySink.written["DOWN"]) == 1)
        wait_for(lambda: engine.execute("DESCRIBE CONNECTOR down;")[0].info["state"] == "RUNNING")


def test_records_a_sink_cannot_write_go_to_the_processing_log(tmp_path: Path) -> None:
    MemorySink.written.clear()
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            READINGS + "CREATE SINK CONNECTOR bad WITH ('connector.class'='test-memory', "
            "'topics'='readings');"
        )
        for x in (1.0, -1.0, 2.0):
            engine.insert("readings", {"DEVICE": "a", "X": x})
        wait_for(lambda: len(MemorySink.written["BAD"]) == 2)
        wait_for(lambda: engine.log.offsets(PROCESSING_LOG, 0)[1] == 1)
        record = engine.log.read_table(PROCESSING_LOG, 0).column("value")[0].as_py()
        error = json.loads(record)
        assert error["query"] == "connector BAD"
        assert error["offset"] == 1
        assert "-1 cannot be stored" in error["message"]
        assert engine.execute("DESCRIBE CONNECTOR bad;")[0].info["errors"] == 1


def test_a_source_commits_its_position_with_its_records(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with Engine(data, fsync="never") as engine:
        engine.execute(
            "CREATE SOURCE CONNECTOR c WITH ('connector.class'='test-counter', "
            "'kafka.topic'='counts', 'limit'='3');"
        )
        wait_for(lambda: engine.log.offsets("counts", 0)[1] == 3)
    with Engine(data, fsync="never") as engine:
        engine.execute("DROP CONNECTOR c;")  # what it did stays; it does not start again
        engine.execute(
            "CREATE SOURCE CONNECTOR c WITH ('connector.class'='test-counter', "
            "'kafka.topic'='counts', 'limit'='5');"
        )
        wait_for(lambda: engine.log.offsets("counts", 0)[1] == 5)
        engine.execute("DROP CONNECTOR c;")  # its thread has ended: nothing more can come
        values = engine.log.read_table("counts", 0).column("value").to_pylist()
    assert [json.loads(v)["n"] for v in values] == [0, 1, 2, 3, 4]  # no repeats, no gaps


@pytest.mark.parametrize(
    ("statement", "words"),
    [
        ("CREATE SINK CONNECTOR x WITH ('topics'='readings');", "'connector.class'"),
        (
            "CREATE SINK CONNECTOR x WITH ('connector.class'='nope', 'topics'='readings');",
            "no sink connector class 'nope'",
        ),
        (
            "CREATE SINK CONNECTOR x WITH ('connector.class'='test-counter');",
            "is a source connector",
        ),
        (
            "CREATE SINK CONNECTOR x WITH ('connector.class'='test-memory', 'topics'='zz');",
            "topic 'zz' does not exist",
        ),
        ("CREATE SINK CONNECTOR x WITH ('connector.class'='test-memory');", "'topics'"),
        *(
            (
                "CREATE SOURCE CONNECTOR x WITH ('connector.class'='test-counter', "
                f"'kafka.topic'='counts', 'partitions'='{bad}');",
                f"'partitions' must be a whole number from 1 to 2147483647, not '{bad}'",
            )
            for bad in ("x", "", "0", "-1", "1.5", "²", "1e309", "9" * 5000, "2147483648")
        ),
        (
            # the topic is there with one partition
            "CREATE SOURCE CONNECTOR x WITH ('connector.class'='test-counter', "
            "'kafka.topic'='readings', 'partitions'='3');",
            "topic 'readings' exists with 1 partition",
        ),
        ("DROP CONNECTOR nothing;", "does not exist"),
        ("DESCRIBE CONNECTOR nothing;", "Could not find connector NOTHING"),
    ],
)
def test_connector_statement_errors(tmp_path: Path, statement: str, words: str) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(READINGS)
        with pytest.raises(HispeedError, match=words):
            engine.execute(statement)
        assert engine.execute("SHOW CONNECTORS;")[0].rows == []


def test_drop_connector_stops_it(tmp_path: Path) -> None:
    MemorySink.written.clear()
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            READINGS + "CREATE SINK CONNECTOR d WITH ('connector.class'='test-memory', "
            "'topics'='readings');"
            "DROP CONNECTOR d;"
            "DROP CONNECTOR IF EXISTS d;"
        )
        # no thread of it is left (DROP joined it), so nothing can write after this check
        assert not [t for t in threading.enumerate() if t.name == "connector-D"]
        engine.insert("readings", {"DEVICE": "a", "X": 1.0})
        assert MemorySink.written.get("D", []) == []


def test_the_dashboard_overview_shows_connectors_and_their_trouble(tmp_path: Path) -> None:
    from hispeed.server.dashboard import Overview

    MemorySink.written.clear()
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(READINGS)
        MemorySink.down["DASH"] = True
        engine.execute(
            "CREATE SINK CONNECTOR dash WITH ('connector.class'='test-memory', "
            "'topics'='readings');"
        )
        engine.insert("readings", {"DEVICE": "a", "X": 1.0})
        overview = Overview(engine)
        row = wait_for(
            lambda: next(
                (c for c in overview.document()["connectors"] if c["state"] == "RETRYING"), None
            )
        )
        assert row["name"] == "DASH"
        assert row["type"] == "sink"
        assert row["lag"] == 1
        assert "the store is down" in row["last_error"]

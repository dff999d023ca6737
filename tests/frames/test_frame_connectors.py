"""`Frame.to_connector`: a sink connector over a frame's rows, made as `CREATE SINK CONNECTOR`
makes it. The file sink's files written through the SQL path and through the Python one are
read back as JSON lines and compared record for record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from hispeed import col
from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError
from hispeed.testing.wait import wait_for
from tests.frames.conftest import load, records


def _lines(path: Path) -> list[dict[str, Any]]:
    """The JSON-lines file's records, sorted (the partitions' records interleave as each
    connector polls them; within a record nothing may differ)."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line]
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True))


def _connector(engine: Engine, name: str) -> dict[str, Any]:
    (found,) = [c for c in engine.execute("SHOW CONNECTORS;")[0].rows if c["name"] == name.upper()]
    return {k: v for k, v in found.items() if k != "name"}


def test_a_frame_into_a_sink_connector_writes_what_sql_writes(
    engine: Engine, tmp_path: Path
) -> None:
    by_sql, by_python = tmp_path / "sql.jsonl", tmp_path / "python.jsonl"
    engine.execute(
        "CREATE STREAM slow_sql AS SELECT user_id, page, ms FROM clicks WHERE ms > 10 "
        "EMIT CHANGES;"
        "CREATE SINK CONNECTOR slow_sql_out WITH ('connector.class'='file-sink', "
        f"'source'='SLOW_SQL', 'file.path'='{by_sql}');"
    )
    made = (
        engine.frame("clicks")
        .filter(col("ms") > 10)
        .select("user_id", "page", "ms")
        .to_connector(
            "slow_py_out",
            {"connector.class": "file-sink", "file.path": str(by_python)},
            name="slow_py",
        )
    )
    assert made == "SLOW_PY_OUT"
    load(engine)
    engine.drain()
    want = len(records(engine, "slow_sql"))
    assert want > 0, "the SQL query wrote nothing, so the comparison would prove nothing"
    engine.start()
    wait_for(lambda: len(_lines(by_sql)) == want and len(_lines(by_python)) == want, 60)
    assert _lines(by_python) == _lines(by_sql)
    # the same kind of connector, in the same state, with as many records written (its
    # count goes up just after its write)
    wait_for(lambda: _connector(engine, "slow_py_out")["records"] == want, 60)
    wait_for(lambda: _connector(engine, "slow_sql_out")["records"] == want, 60)
    assert _connector(engine, "slow_py_out") == _connector(engine, "slow_sql_out")
    statement = engine.execute("DESCRIBE CONNECTOR slow_py_out;")[0].info["statement"]
    assert statement.startswith("CREATE SINK CONNECTOR SLOW_PY_OUT WITH (")
    assert "'source'='SLOW_PY'" in statement


def test_a_source_as_it_is_is_the_connector_s_source(engine: Engine, tmp_path: Path) -> None:
    by_sql, by_python = tmp_path / "sql.jsonl", tmp_path / "python.jsonl"
    engine.execute(
        "CREATE SINK CONNECTOR orders_sql WITH ('connector.class'='file-sink', "
        f"'source'='ORDERS', 'file.path'='{by_sql}');"
    )
    engine.frame("orders").to_connector(
        "orders_py", {"connector.class": "file-sink", "file.path": str(by_python)}
    )
    queries = engine.execute("SHOW QUERIES;")[0].rows
    assert queries == []  # no query: the connector reads the stream itself
    load(engine)
    engine.start()
    wait_for(lambda: len(_lines(by_sql)) == 12 and len(_lines(by_python)) == 12, 60)
    assert _lines(by_python) == _lines(by_sql)


def test_to_connector_errors_are_clear(engine: Engine, tmp_path: Path) -> None:
    frame = engine.frame("clicks").filter(col("ms") > 10)
    props = {"connector.class": "file-sink", "file.path": str(tmp_path / "out.jsonl")}
    with pytest.raises(HispeedError, match="name="):
        frame.to_connector("out", props)
    with pytest.raises(HispeedError, match="'source' is the frame's rows"):
        frame.to_connector("out", {**props, "source": "CLICKS"}, name="slow")
    with pytest.raises(HispeedError, match="as it is"):
        engine.frame("clicks").to_connector("out", props, name="copy")
    with pytest.raises((HispeedError, SqlError), match=r"connector\.class"):
        engine.frame("clicks").to_connector("out", {"file.path": "x"})

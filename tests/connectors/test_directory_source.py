"""The directory source: new CSV / JSON-lines / Parquet files read as they come, each once
(also across a restart), a file still being written left until it is complete."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hispeed.connectors.files import DirectorySource
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.testing.wait import wait_for


def _values(engine: Engine, topic: str = "drops") -> list[Any]:
    if topic not in engine.log.list_topics():
        return []
    return [json.loads(v) for v in engine.log.read_table(topic, 0).column("value").to_pylist()]


def _source(path: Path, extra: str = "") -> str:
    return (
        "CREATE SOURCE CONNECTOR drops WITH ('connector.class'='directory', "
        f"'path'='{path}', 'kafka.topic'='drops', 'file.stable.ms'='0'{extra});"
    )


def _put(path: Path, text: str, seconds_old: float | None = None) -> None:
    """Write a file as a producer should while the source runs: under a name it skips, then
    renamed into place (with 'file.stable.ms'='0' a file written in place may be read half)."""
    hidden = path.with_name(f".{path.name}")
    hidden.write_text(text)
    if seconds_old is not None:
        _age(hidden, seconds_old)
    hidden.rename(path)


def _age(path: Path, seconds: float) -> None:
    """Make `path` look last changed `seconds` ago."""
    then = time.time() - seconds
    os.utime(path, (then, then))


def test_csv_json_and_parquet_files_are_read_as_they_appear(tmp_path: Path) -> None:
    incoming = tmp_path / "in"
    incoming.mkdir()
    (incoming / "a.csv").write_text("n,s\n1,x\n2,y\n")
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(_source(incoming))
        wait_for(lambda: len(_values(engine)) == 2)
        _put(incoming / "b.jsonl", '{"n": 3, "s": "z"}\n')
        wait_for(lambda: len(_values(engine)) == 3)
        table = pa.table({"n": [4, 5], "s": ["p", "q"]})
        pq.write_table(table, incoming / ".c.parquet", row_group_size=1)  # two row groups
        (incoming / ".c.parquet").rename(incoming / "c.parquet")
        wait_for(lambda: len(_values(engine)) == 5)
        assert _values(engine) == [
            {"n": 1, "s": "x"},
            {"n": 2, "s": "y"},
            {"n": 3, "s": "z"},
            {"n": 4, "s": "p"},
            {"n": 5, "s": "q"},
        ]
        info = engine.execute("DESCRIBE CONNECTOR drops;")[0].info
        assert info["details"]["done"] == 3


def test_a_file_being_written_waits_until_it_is_stable_or_renamed(tmp_path: Path) -> None:
    incoming = tmp_path / "in"
    incoming.mkdir()
    young = incoming / "young.jsonl"
    young.write_text('{"n": "young"}\n')  # changed just now: maybe still being written
    (incoming / "part.jsonl.tmp").write_text('{"n": "renamed"}\n')  # not the pattern yet
    (incoming / ".hidden.jsonl").write_text('{"n": "hidden"}\n')
    old = incoming / "old.jsonl"
    old.write_text('{"n": "old"}\n')
    _age(old, 120)
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE SOURCE CONNECTOR drops WITH ('connector.class'='directory', "
            f"'path'='{incoming}', 'kafka.topic'='drops', 'file.pattern'='*.jsonl', "
            "'file.stable.ms'='60000');"
        )
        wait_for(lambda: _values(engine) == [{"n": "old"}])
        os.rename(incoming / "part.jsonl.tmp", incoming / "part.jsonl")
        _age(incoming / "part.jsonl", 120)  # a rename keeps the time of the last change
        wait_for(lambda: len(_values(engine)) == 2)
        # the young file is still left: read once it has stayed unchanged long enough
        assert [v["n"] for v in _values(engine)] == ["old", "renamed"]
        _age(young, 61)
        wait_for(lambda: len(_values(engine)) == 3)
        assert [v["n"] for v in _values(engine)] == ["old", "renamed", "young"]


def test_each_file_is_read_once_across_restarts(tmp_path: Path) -> None:
    incoming = tmp_path / "in"
    incoming.mkdir()
    data = tmp_path / "data"
    expected: list[int] = []

    def drop(i: int) -> None:
        rows = range(i * 40, i * 40 + 40)
        pad = "x" * 40  # 2.5 KB a file: read in three chunks of 'batch.bytes'
        text = "".join(f'{{"n": {n}, "pad": "{pad}"}}\n' for n in rows)
        _put(incoming / f"f{i:03d}.jsonl", text, 100 - i)  # read in the order they came
        expected.extend(rows)

    for i in range(5):
        drop(i)
    # small chunks: a file is read in several transactions, so a restart lands mid-file
    with Engine(data, fsync="never") as engine:
        engine.execute(_source(incoming, ", 'batch.bytes'='1024'"))
        wait_for(lambda: len(_values(engine)) >= 50)
    for i in range(5, 8):
        drop(i)
    (incoming / "f000.jsonl").unlink()  # a file read and then deleted is forgotten
    with Engine(data, fsync="never") as engine:
        wait_for(lambda: len(_values(engine)) >= 320)
        drop(8)
        wait_for(lambda: len(_values(engine)) >= 360)
        assert [v["n"] for v in _values(engine)] == expected
        assert engine.execute("DESCRIBE CONNECTOR drops;")[0].info["details"]["done"] == 8


def test_a_file_that_cannot_be_read_is_reported_and_passed_by(tmp_path: Path) -> None:
    incoming = tmp_path / "in"
    incoming.mkdir()
    (incoming / "a.parquet").write_bytes(b"PAR1 not really")
    _age(incoming / "a.parquet", 10)
    (incoming / "b.jsonl").write_text('{"n": 1}\n')
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(_source(incoming))
        wait_for(lambda: len(_values(engine)) == 1)
        wait_for(lambda: engine.log.offsets(PROCESSING_LOG, 0)[1] == 1)
        error = json.loads(engine.log.read_table(PROCESSING_LOG, 0).column("value")[0].as_py())
        assert error["file"] == str(incoming / "a.parquet")
        assert error["query"] == "connector DROPS"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({}, "needs 'path'"),
        ({"path": "d", "file.format": "xml"}, "'file.format' must be one of"),
        ({"path": "d", "file.stable.ms": "-1"}, "'file.stable.ms' must be from 0"),
    ],
)
def test_a_bad_configuration_is_a_clear_error(config: dict[str, str], message: str) -> None:
    with pytest.raises(HispeedError, match=message):
        DirectorySource("d", config)

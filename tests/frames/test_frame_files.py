"""The file connectors from the stream API: a directory of CSV files read as a frame, the
frame's rows written as Parquet, across a restart (docs/microbatch.md, frames/files.py).
The Parquet files are read back with pyarrow, not through the engine."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hispeed import Trigger, col
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.frames import read_files
from hispeed.testing.wait import wait_for


def _put(directory: Path, name: str, text: str) -> None:
    """A file written under a name the source skips, then renamed into place."""
    hidden = directory / f".{name}"
    hidden.write_text(text)
    hidden.rename(directory / name)


def _lake(lake: Path) -> list[tuple[int, str]]:
    files = sorted(lake.glob("*.parquet"))
    rows = [r for f in files for r in pq.read_table(f).to_pylist()]
    return sorted((r["N"], r["S"]) for r in rows)


def test_files_in_through_a_frame_into_parquet_once_across_a_restart(tmp_path: Path) -> None:
    incoming, lake, data = tmp_path / "in", tmp_path / "lake", tmp_path / "data"
    incoming.mkdir()
    _put(incoming, "a.csv", "n,s\n1,x\n2,y\n3,z\n")
    with Engine(data, fsync="never") as engine:
        drops = read_files(
            engine, "drops", incoming, "n INT, s STRING", file_pattern="*.csv", file_stable_ms=0
        )
        drops.filter(col("n") != 2).to_parquet(
            lake, name="kept", trigger=Trigger.processing_time("100ms"), parquet={"flush_ms": 1}
        )
        engine.start()
        wait_for(lambda: _lake(lake) == [(1, "x"), (3, "z")], timeout=60)
    with Engine(data, fsync="never") as engine:
        engine.start()
        _put(incoming, "b.csv", "n,s\n4,w\n2,v\n")
        wait_for(lambda: (4, "w") in _lake(lake), timeout=60)  # after a.csv, were it read again
        engine.drain()
    assert _lake(lake) == [(1, "x"), (3, "z"), (4, "w")]  # a.csv not read again


def test_to_parquet_refuses_complete_without_an_aggregation(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM ev (k STRING KEY, v INT) "
            "WITH (kafka_topic='ev', value_format='JSON', partitions=1);"
        )
        with pytest.raises(HispeedError, match="needs an aggregation"):
            engine.frame("ev").to_parquet(tmp_path / "lake", name="out", output_mode="complete")

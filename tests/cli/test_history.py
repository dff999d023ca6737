"""`hispeed analyze` and `hispeed topic export --parquet`, as users run them (a real process).

What the commands print or write is compared with the rows the test itself produced.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from hispeed.cli.history import ProgressBar
from hispeed.engine import Engine

ROWS = [{"ID": f"d{i % 5}", "X": i / 4} for i in range(300)]


def _cli(data_dir: Path, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "hispeed", "--data-dir", str(data_dir), *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "HISPEED_DEBUG": ""},
    )
    assert (proc.returncode == 0) == ok, proc.stderr
    assert "Traceback" not in proc.stderr
    return proc


def _make(data_dir: Path) -> None:
    with Engine(data_dir, fsync="never") as engine:
        engine.execute(
            "CREATE STREAM readings (id STRING KEY, x DOUBLE) "
            "WITH (kafka_topic='readings', value_format='JSON', partitions=2);"
        )
        engine.insert_many("readings", ROWS)
        engine.log.create_topic("raw", 1)
        engine.log.append("raw", [(b"k1", b"v1"), (None, b"v2")])


def test_export_writes_typed_parquet_and_raw_topics(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _make(data)
    out = tmp_path / "out"
    done = _cli(data, "topic", "export", "readings", "--parquet", str(out))
    assert f"exported 300 records of stream READINGS to {out / 'READINGS.parquet'}" in done.stdout
    table = pq.read_table(out / "READINGS.parquet")
    assert table.schema.field("X").type.equals(table.schema.field("X").type)
    assert str(table.schema.field("X").type) == "double"
    got = sorted(zip(table.column("ID").to_pylist(), table.column("X").to_pylist(), strict=True))
    assert got == sorted((r["ID"], r["X"]) for r in ROWS)
    assert sorted(set(table.column("ROWPARTITION").to_pylist())) == [0, 1]
    _cli(data, "topic", "export", "raw", "--parquet", str(out))
    raw = pq.read_table(out / "raw.parquet").to_pylist()
    assert [(r["partition"], r["offset"], r["key"], r["value"]) for r in raw] == [
        (0, 0, b"k1", b"v1"),
        (0, 1, None, b"v2"),
    ]
    missing = _cli(data, "topic", "export", "nothing", "--parquet", str(out), ok=False)
    assert "no stream, table or topic is called nothing" in missing.stderr


def test_analyze_command_prints_rows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _make(data)
    sql = "SELECT id, count(*) AS n, sum(x) AS total FROM readings GROUP BY id ORDER BY id"
    printed = _cli(data, "analyze", sql, "--format", "json").stdout.splitlines()
    want = [
        {"ID": f"d{k}", "n": 60, "total": sum(r["X"] for r in ROWS if r["ID"] == f"d{k}")}
        for k in range(5)
    ]
    assert [json.loads(line) for line in printed] == want
    shown = _cli(data, "analyze", sql).stdout
    assert "| d3 " in shown.replace("|  d3", "| d3") or " d3 " in shown
    bad = _cli(data, "analyze", "SELECT * FORM readings", ok=False)
    assert "error" in bad.stderr.lower()
    assert "line 1:" in bad.stderr


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_only() -> None:
    screen = _Terminal()
    bar = ProgressBar("scanning", screen, every=0)
    bar(0, 200)
    bar(100, 200)
    bar(200, 200)
    bar.close()
    drawn = screen.getvalue()
    assert "[---" in drawn
    assert " 50% 100/200 records" in drawn
    assert "[" + "#" * ProgressBar.WIDTH + "] 100% 200/200 records" in drawn
    assert drawn.endswith("\r")
    quiet = io.StringIO()
    ProgressBar("scanning", quiet, every=0)(5, 10)
    assert quiet.getvalue() == ""

"""kill -9 an engine running a Top-N query, again and again: the state comes back from the
changelog, and the table its changes leave equals DuckDB's ROW_NUMBER over every row."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.log import EmbeddedLog

CHILD = Path(__file__).with_name("_topn_child.py")
ROOT = Path(__file__).parents[2]
TOTAL = 700


def run_child(data_dir: Path, kill_after: tuple[int, float] | None) -> bool:
    """Run the child to its end (`kill_after` None) or kill -9 it `kill_after[1]` seconds
    after its `kill_after[0]`-th progress line (or when it ends, if sooner)."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir), str(TOTAL)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": f"{ROOT / 'src'}{os.pathsep}{ROOT}"},
    )
    assert proc.stdout is not None
    if kill_after is None:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
        return b"done" in out
    ready = proc.stdout.readline()
    assert ready == b"ready\n", proc.stderr.read() if proc.stderr else ready
    chunks, then = kill_after
    for _ in range(chunks):
        if not proc.stdout.readline().startswith(b"progress"):
            break
    time.sleep(then)  # a few milliseconds into the next chunk: mid-stream, wherever
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    return False


def read(log: EmbeddedLog, topic: str) -> list[tuple[Any, Any]]:
    out = []
    for p in range(len(log.describe_topic(topic).partitions)):
        for r in log.read_table(topic, p).to_pylist():
            value = None if r["value"] is None else json.loads(r["value"])
            out.append((r["key"], value))
    return out


@pytest.mark.slow
def test_top_n_state_survives_kills(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rng = random.Random(5)
    for _ in range(3):
        run_child(data_dir, kill_after=(rng.randint(1, 10), rng.uniform(0, 0.02)))
    assert run_child(data_dir, kill_after=None)
    with EmbeddedLog(data_dir, cleaner_interval_s=None) as log:
        rows = [v for _, v in read(log, "s")]
        changes = read(log, "TOP4")
    assert len(rows) == TOTAL
    final: dict[bytes, Any] = {}
    for key, value in changes:
        final[key] = None if value is None else {**json.loads(key), **value}
    got = {tuple(sorted(v.items())) for v in final.values() if v is not None}
    s = duckdb.sql(  # noqa: F841 (duckdb reads it by name)
        "select * from (values "
        + ", ".join(f"('{r['K']}', '{r['G']}', {r['V']})" for r in rows)
        + ") as t(k, g, v)"
    )
    result = duckdb.sql(
        "select * from (select g, k, v, row_number() over (partition by g order by v desc) "
        "as rn from s) where rn <= 4"
    )
    names = [c.upper() for c in result.columns]
    expected = {tuple(sorted(zip(names, r, strict=True))) for r in result.fetchall()}
    assert len(expected) == 20
    assert got == expected

"""Kill -9 mid-stream, restart: the directory source brings every input record into the log
once, and the Parquet sink's files hold every record once."""

from __future__ import annotations

import csv
import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hispeed.log.embedded import EmbeddedLog
from tests.connectors import _files_crash_child as child

pytestmark = pytest.mark.slow

FILES = child.TOTAL // child.PER_FILE


def _drop(incoming: Path, i: int) -> None:
    """Input file i, written under a name the source ignores, then renamed into view."""
    records = child.rows(i)
    if i % 2:
        name = f"in{i:03d}.csv"
        with open(incoming / f".{name}", "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(records[0]))
            writer.writeheader()
            writer.writerows(records)
    else:
        name = f"in{i:03d}.jsonl"
        (incoming / f".{name}").write_text("".join(json.dumps(r) + "\n" for r in records))
    (incoming / f".{name}").rename(incoming / name)


def _start(data: Path, incoming: Path, lake: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.connectors._files_crash_child",
            str(data),
            str(incoming),
            str(lake),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )


def test_sigkill_mid_stream_then_restart_loses_and_repeats_nothing(tmp_path: Path) -> None:
    data, incoming, lake = tmp_path / "data", tmp_path / "in", tmp_path / "lake"
    incoming.mkdir()
    for i in range(FILES // 2):
        _drop(incoming, i)
    rng = random.Random(11)
    kills = 0
    for run in range(4):
        if run == 2:  # new files come while hispeed is down and between runs
            for i in range(FILES // 2, FILES):
                _drop(incoming, i)
        proc = _start(data, incoming, lake)
        assert proc.stdout is not None
        # killed after a number of its progress lines, then a few milliseconds into the next:
        # chosen by progress, not the clock, so a busy machine kills as deep into the run
        for _ in range(rng.randint(3, 20)):
            if not proc.stdout.readline().startswith("progress"):
                break
        time.sleep(rng.uniform(0, 0.02))
        if proc.poll() is not None:
            proc.communicate()
            continue
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills += 1
    assert kills >= 2, "the runs finished too fast to be killed mid-stream"
    proc = _start(data, incoming, lake)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the last run did not finish: {out[-2000:]} {err[-3000:]}") from None
    assert proc.returncode == 0, err
    assert "done" in out

    expected = [r for i in range(FILES) for r in child.rows(i)]
    # the log: each input record once, in the order of the files
    with EmbeddedLog(data, fsync="never", cleaner_interval_s=None) as log:
        values = log.read_table("drops", 0).column("value").to_pylist()
    assert [json.loads(v) for v in values] == expected
    # the Parquet files: the union holds each record once, and nothing else
    assert not list(lake.glob(".*"))
    table = pq.read_table(lake)
    got = sorted(table.to_pylist(), key=lambda r: r["ID"])
    assert got == [
        {
            "K": str(r["id"]),
            "ID": r["id"],
            "DEVICE": r["device"],
            "READING": r["reading"],
            "NOTE": r["note"],
        }
        for r in expected
    ]

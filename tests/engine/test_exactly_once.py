"""kill -9 a running engine again and again: outputs are neither lost nor repeated."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hispeed.log import EmbeddedLog

CHILD = Path(__file__).with_name("_engine_child.py")
TOTAL = 3000


def run_child(data_dir: Path, kill_after: tuple[int, float] | None) -> bool:
    """Run the child to its end (`kill_after` None) or kill -9 it `kill_after[1]` seconds
    after its `kill_after[0]`-th progress line (or when it ends, if sooner)."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir), str(TOTAL)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )
    assert proc.stdout is not None
    if kill_after is None:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()[-3000:]
        return b"done" in out
    ready = proc.stdout.readline()
    assert ready == b"ready\n", proc.stderr.read() if proc.stderr else ready
    # the kill lands after a number of the child's chunks, then a few milliseconds into the
    # next: chosen by its progress, not the clock, so a busy machine kills as deep into the run
    # as a quiet one
    chunks, then = kill_after
    for _ in range(chunks):
        if not proc.stdout.readline().startswith(b"progress"):
            break  # it finished (or failed: the next run says so)
    time.sleep(then)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    return False


def read_values(log: EmbeddedLog, topic: str) -> list[tuple[str, dict[str, int]]]:
    out = []
    for p in range(len(log.describe_topic(topic).partitions)):
        for r in log.read_table(topic, p).to_pylist():
            out.append((r["key"].decode(), json.loads(r["value"])))
    return out


@pytest.mark.slow
def test_outputs_are_exactly_once_across_kills(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rng = random.Random(7)
    for _ in range(10):
        run_child(data_dir, kill_after=(rng.randint(0, 20), rng.uniform(0, 0.02)))
    assert run_child(data_dir, kill_after=None)
    with EmbeddedLog(data_dir, cleaner_interval_s=None) as log:
        events = read_values(log, "events")
        doubled = read_values(log, "DOUBLED")
        counts = read_values(log, "COUNTS")
    assert len(events) == TOTAL
    # the projection: one output per input, each exactly once
    assert sorted(v["V2"] for _, v in doubled) == sorted(2 * v["V"] for _, v in events)
    # the aggregation, per record: each key's counts run 1, 2, ... n with no repeats or gaps,
    # and its running sums are the sums of its inputs in order
    for key in {k for k, _ in events}:
        inputs = [v["V"] for k, v in events if k == key]
        outputs = [v for k, v in counts if k == key]
        assert [o["N"] for o in outputs] == list(range(1, len(inputs) + 1))
        running = [sum(inputs[: i + 1]) for i in range(len(inputs))]
        assert [o["TOTAL"] for o in outputs] == running

"""kill -9 an engine running a `.process` query, again and again: its outputs are neither lost
nor repeated, and its state goes on where the last commit left it."""

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

CHILD = Path(__file__).with_name("_process_child.py")
ROOT = Path(__file__).parents[2]
TOTAL = 1500


def run_child(data_dir: Path, kill_after: tuple[int, float] | None) -> bool:
    """Run the child to its end (`kill_after` None) or kill -9 it `kill_after[1]` seconds
    after its `kill_after[0]`-th progress line (or when it ends, if sooner)."""
    proc = subprocess.Popen(
        [sys.executable, str(CHILD), str(data_dir), str(TOTAL)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # the function is loaded by its module reference, tests.frames._process_fns
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
            break  # it finished (or failed: the next run says so)
    # a few milliseconds into the next chunk: where in it is not the point, only that the
    # kill lands mid-stream (the progress lines set how deep)
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
def test_process_outputs_and_state_are_exactly_once_across_kills(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rng = random.Random(11)
    for _ in range(4):
        run_child(data_dir, kill_after=(rng.randint(1, 12), rng.uniform(0, 0.02)))
    assert run_child(data_dir, kill_after=None)
    with EmbeddedLog(data_dir, cleaner_interval_s=None) as log:
        events = read_values(log, "events")
        counted = read_values(log, "COUNTED")
    assert len(events) == TOTAL
    assert len(counted) == TOTAL  # one output per input: none lost, none repeated
    # per key: counts 1, 2, ... n without gap or repeat, and running sums of its inputs in
    # order (the state went on from the last commit after every kill)
    for key in {k for k, _ in events}:
        inputs = [v["V"] for k, v in events if k == key]
        outputs = [v for k, v in counted if k == key]
        assert [o["N"] for o in outputs] == list(range(1, len(inputs) + 1))
        assert [o["TOTAL"] for o in outputs] == [sum(inputs[: i + 1]) for i in range(len(inputs))]

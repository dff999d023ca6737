"""Kill -9 a writer with fsync always at random moments: what it acknowledged is all there."""

from __future__ import annotations

import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hispeed.log import EmbeddedLog, TopicPartition

CHILD = Path(__file__).with_name("_crash_child.py")
VALUE = re.compile(rb"^b(\d+)-r(\d+)-\.*$")


@pytest.mark.slow
def test_acknowledged_appends_survive_sigkill(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rng = random.Random(20261126)
    expected: dict[int, bytes] = {}  # offset -> value, everything known durable
    next_batch = 0
    last_txn_batch = -1
    rounds = 20
    for round_ in range(rounds):
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(data_dir), str(next_batch)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
        )
        assert proc.stdout is not None
        ready = proc.stdout.readline()
        assert ready == b"ready\n", proc.stderr.read() if proc.stderr else ready
        # the kill lands after a random number of acknowledged appends (none, at times), then a
        # few milliseconds into the next: a moment chosen by the writer's progress, not by the
        # clock, so a busy machine kills as deep into the run as a quiet one
        lines = []
        for _ in range(rng.randint(0, 40)):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line.decode())
        time.sleep(rng.uniform(0, 0.02))
        os.kill(proc.pid, signal.SIGKILL)
        # read on through proc.stdout's own buffer (communicate() reads the pipe beneath it and
        # would miss the ack lines readline() had already buffered)
        with proc.stdout, proc.stderr or open(os.devnull, "rb") as stderr:
            out, err = proc.stdout.read(), stderr.read()
        proc.wait()
        lines += out.decode().splitlines()
        acks = [line.split() for line in lines if line.startswith("ack")]
        assert proc.returncode == -signal.SIGKILL, err.decode()[-2000:]
        for _, batch, first, n in acks:
            b, first_, n_ = int(batch), int(first), int(n)
            for j in range(n_):
                expected[first_ + j] = f"b{b}-r{j}-".encode().ljust(100, b".")
            if b % 5 == 0:
                last_txn_batch = b
            next_batch = b + 1

        with EmbeddedLog(data_dir, fsync="always", cleaner_interval_s=None) as log:
            table = log.read_table("t", 0)
            got = dict(
                zip(
                    table.column("offset").to_pylist(),
                    table.column("value").to_pylist(),
                    strict=True,
                )
            )
            # every acknowledged record reads back with identical bytes
            missing = [o for o in expected if got.get(o) != expected[o]]
            assert not missing, f"round {round_}: acked offsets lost or changed: {missing[:5]}"
            # after them, at most the one batch in flight at the kill, whole records in order
            end = max(expected) + 1 if expected else 0
            tail = [(o, v) for o, v in got.items() if o >= end]
            assert [o for o, _ in tail] == list(range(end, end + len(tail)))
            for j, (offset, value) in enumerate(tail):
                match = VALUE.match(value)
                assert match, f"round {round_}: offset {offset} holds unexpected bytes {value!r}"
                assert (int(match.group(1)), int(match.group(2))) == (next_batch, j)
                expected[offset] = value
            if tail:
                if next_batch % 5 == 0:
                    last_txn_batch = next_batch
                next_batch += 1
            assert len(got) == len(expected)
            # a transaction's offset commit is there exactly when its records are
            committed = log.committed_offsets("g").get(TopicPartition("src", 0), -1)
            assert committed == last_txn_batch
            log.verify()
    assert len(expected) > 1000

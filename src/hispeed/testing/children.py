"""Crash tests' child processes: run a script to its end, or kill -9 it mid-stream.

A child prints `ready`, then a `progress ...` line per chunk of work, then `done`. The kill
lands after a number of its progress lines, then a few milliseconds into the next chunk:
chosen by its progress, not the clock, so a busy machine kills as deep into the run as a
quiet one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def run_child(
    script: Path,
    args: Sequence[str],
    kill_after: tuple[int, float] | None,
    path: Sequence[Path] = (),
) -> bool:
    """Run `script` with `args` (`path`: its PYTHONPATH) to its end (`kill_after` None;
    whether it printed `done`) or kill -9 it `kill_after[1]` seconds after its
    `kill_after[0]`-th progress line (or when it ends, if sooner; then False)."""
    proc = subprocess.Popen(
        [sys.executable, str(script), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in path)},
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
    time.sleep(then)
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate()
    return False


def feed_until_done(
    engine: Any,
    topic: str,
    total: int,
    records: Callable[[int, int], list[tuple[Any, Any]]],
    *,
    chunk: int = 37,
    rounds: int = 3,
) -> None:
    """The child's side: append `records(start, end)` to `topic` a chunk at a time until it
    holds `total` records (resuming where a killed run left it), running the engine's
    queries after each and printing `progress`; then run them to the end, print `done`, close
    the engine (an `hispeed.engine.Engine`)."""
    print("ready", flush=True)
    partitions = len(engine.log.describe_topic(topic).partitions)
    produced = sum(engine.log.offsets(topic, p)[1] for p in range(partitions))
    while produced < total:
        end = min(produced + chunk, total)
        engine.log.append(topic, records(produced, end))
        produced = end
        engine.drain(max_rounds=rounds)
        # the parent kills after a number of these: a moment set by progress, not the clock
        print(f"progress {produced}", flush=True)
    engine.drain()
    print("done", flush=True)
    engine.close()


__all__ = ["feed_until_done", "run_child"]

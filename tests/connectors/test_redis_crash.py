"""Kill -9 mid-stream, restart, and Redis ends as if nothing had happened."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import pytest
import redis as redis_py

from hispeed.testing.services import Service
from tests.connectors import _redis_crash_child as child

pytestmark = [pytest.mark.slow, pytest.mark.services]


def _start(data_dir: Path, url: str, prefix: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.connectors._redis_crash_child", str(data_dir), url, prefix],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).parents[2],
    )


def test_sigkill_mid_stream_then_restart_gives_the_final_state(
    tmp_path: Path, redis_server: Service, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    url = f"redis://{redis_server.host}:{redis_server.port}"
    data_dir = tmp_path / "data"
    rng = random.Random(7)
    kills = 0
    for _ in range(4):
        proc = _start(data_dir, url, redis_prefix)
        assert proc.stdout is not None
        # the kill lands after a number of the child's appended chunks, then a few milliseconds
        # into the next: chosen by its progress, not the clock, so a busy machine kills as
        # deep into the run as a quiet one
        for _ in range(rng.randint(2, 15)):
            if not proc.stdout.readline().startswith("progress"):
                break  # it is past its inputs (or finished)
        time.sleep(rng.uniform(0, 0.02))
        if proc.poll() is not None:
            proc.communicate()
            break  # it finished before we could kill it
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
        kills += 1
    assert kills >= 2, "the run finished too fast to be killed mid-stream"
    proc = _start(data_dir, url, redis_prefix)
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"the last run did not finish: {out[-2000:]} {err[-3000:]}") from None
    assert proc.returncode == 0, err
    assert "done" in out

    totals: dict[str, int] = defaultdict(int)
    games: dict[str, int] = defaultdict(int)
    for n in range(child.TOTAL):
        key, value = child.record(n)
        totals[key.decode()] += json.loads(value)["points"]
        games[key.decode()] += 1
    board = dict(redis_client.zrange(f"{redis_prefix}:board", 0, -1, withscores=True))
    assert board == {p: float(t) for p, t in totals.items()}
    for player, total in totals.items():
        assert redis_client.hgetall(f"{redis_prefix}:player:{player}") == {
            "TOTAL": str(total),
            "GAMES": str(games[player]),
        }
    entries = redis_client.xrange(f"{redis_prefix}:scores")
    assert len(entries) == child.TOTAL  # every input once: no gaps, no duplicates
    ids = [entry_id for entry_id, _ in entries]
    assert len(set(ids)) == child.TOTAL

"""`hispeed bench nexmark`'s arguments: an empty `--queries` is refused as an unknown query
is (it ran all 23), and `hispeed --data-dir` is where the runs' data directories go."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _hispeed(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """`hispeed ARGS` in a process of its own, as a user's shell runs it."""
    argv = [sys.executable, "-m", "hispeed", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, env=env, check=False)


@pytest.mark.parametrize("queries", ["", ",", " , "])
def test_an_empty_query_list_is_refused(queries: str) -> None:
    done = _hispeed("bench", "nexmark", "--json", "--events", "1000", "--queries", queries)
    assert done.returncode != 0
    assert "--queries names no query; the queries are: q0" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


@pytest.mark.slow
def test_data_dir_holds_the_runs_data_directories(tmp_path: Path) -> None:
    data_dir, temp = tmp_path / "made" / "bench", tmp_path / "temp"
    temp.mkdir()
    args = ["--data-dir", str(data_dir), "bench", "nexmark", "--json", "--events", "1000"]
    done = _hispeed(*args, "--queries", "q0", env={**os.environ, "TMPDIR": str(temp)})
    assert done.returncode == 0, done.stderr
    assert set(json.loads(done.stdout)) == {"q0"}
    # made where --data-dir says, each run's own directory removed after it
    assert data_dir.is_dir()
    assert list(data_dir.iterdir()) == []

"""`hispeed bench nexmark` as users run it: `--json` is issue 22's `{"q0": ..., ...}`, each
value the query's events per CPU-second (per core); `--json-detail` keeps every figure."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

EVENTS = "2000"


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    """`hispeed bench nexmark ARGS` in a process of its own, as a user's shell runs it."""
    argv = [sys.executable, "-m", "hispeed", "bench", "nexmark", *args]
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)


@pytest.mark.slow
def test_json_is_an_object_of_query_names_to_events_per_cpu_second() -> None:
    proc = bench("--json", "--events", EVENTS, "--queries", "q0,q1")
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert sorted(figures) == ["q0", "q1"]
    for name, rate in figures.items():
        # a number, not an object nor a bool (which json would also call a number)
        assert type(rate) in (int, float), (name, rate)
        assert rate > 0, name


@pytest.mark.slow
def test_json_detail_keeps_every_figure_and_agrees_with_json() -> None:
    proc = bench("--json-detail", "--events", EVENTS, "--queries", "q0")
    assert proc.returncode == 0, proc.stderr
    detail = json.loads(proc.stdout)
    assert sorted(detail) == ["q0"]
    q0 = detail["q0"]
    assert q0["events"] == 2000
    assert q0["outputs"] > 0  # q0 passes every bid through
    assert q0["cpu_s"] > 0
    # the per-core rate is the events over the CPU seconds of the query's process (which
    # the figure shows rounded to the millisecond)
    low, high = 2000 / (q0["cpu_s"] + 0.0005), 2000 / max(q0["cpu_s"] - 0.0005, 1e-9)
    assert low - 1 <= q0["events_per_cpu_s"] <= high + 1
    for key in ("events_per_s", "wall_s", "peak_rss_mb", "records_read"):
        assert key in q0


def test_json_and_json_detail_together_are_refused() -> None:
    from click.testing import CliRunner

    from hispeed.cli.main import cli

    args = ["bench", "nexmark", "--json", "--json-detail", "--events", EVENTS, "--queries", "q0"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2  # click's usage error, before any query runs
    assert "--json and --json-detail: choose one" in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
def test_a_failed_query_is_left_out_of_json_said_on_stderr_and_exits_non_zero(
    tmp_path: Path,
) -> None:
    # the data directory's parent does not exist: the query's process cannot start its log
    proc = bench("--json", "--events", EVENTS, "--queries", "q0", "--dir", str(tmp_path / "a/b"))
    assert proc.returncode == 1
    assert json.loads(proc.stdout) == {}
    assert "q0 failed:" in proc.stderr

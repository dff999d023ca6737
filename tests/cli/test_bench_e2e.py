"""`hispeed bench e2e` as users run it: a figure per case, each checked for completeness."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hispeed.bench import e2e
from hispeed.engine import Engine


@pytest.mark.slow
def test_bench_e2e_json_has_complete_figures_per_case() -> None:
    cases = ["tumbling_final", "session_final", "groupby_keys", "stream_table_join"]
    argv = [sys.executable, "-m", "hispeed", "bench", "e2e", "--json", "--events", "150000"]
    argv += ["--keys", "2000"] + [a for c in cases for a in ("--case", c)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert sorted(figures) == sorted(cases)
    for name, case in figures.items():
        assert case["complete"], (name, case["why"])
        assert case["events_per_s"] > 0, name
        assert case["cpu_s"] > 0, name
        assert case["outputs"] > 0, name
    assert figures["groupby_keys"]["events"] == 4000  # each of the 2,000 keys twice


def test_bench_check_finds_missing_and_repeated_final_windows(tmp_path: Path) -> None:
    """The bench's own check: a final window missing, or output twice, is not complete."""
    case = e2e.CASES["tumbling_final"]
    events = e2e.make_events(200_000, 10)  # 200 s of event time: windows close
    expected = e2e._expected_windows(case, events)
    closed = sorted(k for k in expected if k[2] + e2e.GRACE_MS <= int(events.stamp.max()))
    assert closed
    with Engine(tmp_path / "data") as engine:
        engine.log.create_topic("OUT", 1)
        complete, why, _ = e2e.check(engine, case, events)
        assert not complete
        assert "missing" in str(why)

        def record(k: tuple[bytes, int, int]) -> dict[str, bytes]:
            count, mean = expected[k]
            value = json.dumps({"N": count, "MEAN": mean}).encode()
            return {"key": k[0] + k[1].to_bytes(8, "big"), "value": value}

        engine.log.append("OUT", [record(k) for k in closed], partition=0)
        assert e2e.check(engine, case, events)[:2] == (True, None)
        engine.log.append("OUT", [record(closed[0])], partition=0)
        complete, why, _ = e2e.check(engine, case, events)
        assert not complete
        assert "more than once" in str(why)

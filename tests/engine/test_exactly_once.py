"""kill -9 a running engine again and again: outputs are neither lost nor repeated."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from hispeed.log import EmbeddedLog
from hispeed.testing import children

CHILD = Path(__file__).with_name("_engine_child.py")
TOTAL = 3000


def run_child(data_dir: Path, kill_after: tuple[int, float] | None) -> bool:
    """Run the child to its end or kill -9 it mid-stream (hispeed.testing.children)."""
    return children.run_child(
        CHILD, [str(data_dir), str(TOTAL)], kill_after, [Path(__file__).parents[2] / "src"]
    )


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

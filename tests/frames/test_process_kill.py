"""kill -9 an engine running a `.process` query, again and again: its outputs are neither lost
nor repeated, and its state goes on where the last commit left it."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from hispeed.log import EmbeddedLog
from hispeed.testing import children

CHILD = Path(__file__).with_name("_process_child.py")
ROOT = Path(__file__).parents[2]
TOTAL = 1500


def run_child(data_dir: Path, kill_after: tuple[int, float] | None) -> bool:
    """Run the child to its end or kill -9 it mid-stream (hispeed.testing.children)."""
    return children.run_child(CHILD, [str(data_dir), str(TOTAL)], kill_after, [ROOT / "src", ROOT])


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

"""EMIT FINAL on the vectorized paths against the per-record reference path.

The harness of test_vectorized.py (two queries with the same SELECT on one engine, one always
on the reference path, the other on the fast path where Hypothesis picks it), with EMIT FINAL:
TUMBLING, HOPPING and SESSION windows, grace periods, records out of order and late, batches
the fast path refuses, and a restart from the changelog between batches. After every batch
both must have output the same final rows in the same order (each window once, as stream time
passes its end plus grace; by window end, then start; within a window the groups may come in
another order after a restart, as the two paths restore them from the changelog differently)
and hold the same state.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hispeed.engine import Engine
from hispeed.ops.changes import Change
from hispeed.state.changelog import STREAM_TIME_KEY
from tests.ops.test_vectorized import (
    QUERIES,
    SOURCE,
    WINDOWS,
    Pair,
    Side,
    Step,
    make_frame,
    records_of,
    same,
    sessions_of,
    states_of,
    steps,
)

FINAL_WINDOWS = {name: clause for name, clause in WINDOWS.items() if clause}


@pytest.fixture(scope="module")
def final_pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[tuple[str, str], Pair]]:
    engine = Engine(Path(tmp_path_factory.mktemp("final")) / "data", fsync="never")
    engine.execute(SOURCE)
    out: dict[tuple[str, str], Pair] = {}
    for window_name, window in FINAL_WINDOWS.items():
        for query_name, query in QUERIES.items():
            ids = []
            for side in ("ref", "fast"):
                name = f"final_{query_name}_{window_name}_{side}"
                sql = query.format(window=window).rstrip(";") + " EMIT FINAL;"
                (result,) = engine.execute(f"CREATE TABLE {name} AS " + sql)
                ids.append(result.query_id)
            out[window_name, query_name] = Pair(
                engine, engine.tasks[str(ids[0])], engine.tasks[str(ids[1])]
            )
    yield out
    engine.close()


def by_window_end(changes: list[Change]) -> list[tuple[Any, list[str]]]:
    """The changes in runs of one window (in output order), each run's rows sorted."""
    runs: list[tuple[Any, list[str]]] = []
    for c in changes:
        window = (c.window[1], c.window[0]) if c.window is not None else None
        if not runs or runs[-1][0] != window:
            runs.append((window, []))
        runs[-1][1].append(repr(c))
    return [(w, sorted(rows)) for w, rows in runs]


class FinalSide(Side):
    def restart(self) -> None:
        """Start again from the changelog (as compaction leaves it), stream time included,
        as `QueryTask` does after a restart; the changes output so far are kept."""
        changes, changelog = self.changes, self.changelog
        times = changelog.get(STREAM_TIME_KEY)
        Side.__init__(self, self.task, True, reference=self.reference)
        for key, value in changelog.items():
            if value is not None and key != STREAM_TIME_KEY:
                self.aggregator.restore(pickle.loads(key), pickle.loads(value))
        if times is not None:
            self.task.stream_time.update(pickle.loads(times))
        self.changes, self.changelog = changes, changelog


def check_final(pair: Pair, plan: list[Step], restart_at: int) -> None:
    reference = FinalSide(pair.reference, coalesce=True, reference=True)
    fast = FinalSide(pair.fast, coalesce=True)
    offset = 0
    for i, step in enumerate(plan):
        if i == restart_at:  # a restart, windows open: both carry on from their changelogs
            reference.restart()
            fast.restart()
        before, fast_before = len(reference.changes), len(fast.changes)
        ref_out = reference.run(make_frame(reference.task, step.rows, offset), step, offset)
        fast_out = fast.run(make_frame(fast.task, step.rows, offset), step, offset)
        offset += len(step.rows)
        ref_changes = reference.changes[before:]
        fast_changes = fast.changes[fast_before:]
        if i < restart_at:  # the same rows in the same order
            assert same(fast_changes, ref_changes)
        else:  # after a restart each path holds a window's groups in the changelog's order
            assert by_window_end(fast_changes) == by_window_end(ref_changes)
        assert sorted(map(repr, records_of(fast_out))) == sorted(map(repr, records_of(ref_out)))
        expected = states_of(reference.aggregator)
        assert same(states_of(fast.aggregator), expected)
        assert sessions_of(fast.aggregator) == sessions_of(reference.aggregator)
        assert reference.task.stream_time == fast.task.stream_time
        assert pickle.loads(fast_out.changelog[STREAM_TIME_KEY]) == reference.task.stream_time
        for side in (reference, fast):
            restored = side.restored()
            assert same(states_of(restored), expected)
            assert sessions_of(restored) == sessions_of(reference.aggregator)
    emitted = [(c.group, c.window) for c in fast.changes]
    assert len(emitted) == len(set(emitted))  # each window once


SETTINGS = settings(
    max_examples=int(os.environ.get("HISPEED_HYPOTHESIS_EXAMPLES", "50")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.mark.parametrize("query", sorted(QUERIES))
@pytest.mark.parametrize("window", sorted(FINAL_WINDOWS))
@SETTINGS
@given(data=st.data())
def test_final_rows_match_the_reference(
    final_pairs: dict[tuple[str, str], Pair], window: str, query: str, data: st.DataObject
) -> None:
    plan = data.draw(steps(query))
    restart_at = data.draw(st.integers(0, len(plan)))
    check_final(final_pairs[window, query], plan, restart_at)


# -- examples --------------------------------------------------------------------------------


def test_the_fast_path_outputs_closed_windows_once(
    final_pairs: dict[tuple[str, str], Pair],
) -> None:
    pair = final_pairs["tumbling", "narrow"]
    first = [("a", 1, 5, 0.5, 1, 3), ("b", 2, 7, 1.5, 2, 12), ("a", 1, 9, None, 3, 8)]
    second = [("a", 1, 1, 1.0, 1, 25), ("a", 2, 1, 1.0, 1, 26)]
    check_final(pair, [Step(first, True, False), Step(second, True, False)], restart_at=1)
    side = FinalSide(pair.fast, coalesce=True)
    side.run(make_frame(side.task, first, 0), Step(first, True, False), 0)
    assert side.changes == []  # stream time 12: no window has closed (end 10 + grace 4)
    side.run(make_frame(side.task, second, 3), Step(second, True, False), 3)
    assert side.fast_batches == 2
    # stream time 25: [0, 10) and [10, 20) have closed, but Kafka Streams' window store (size
    # 10 + grace 4 back from the newest window start, 20) no longer holds [0, 10): as in
    # ksqlDB, only [10, 20) is output, once, stamped with the newest record's time in it
    assert [(c.group, c.window, c.results, c.timestamp) for c in side.changes] == [
        ((2,), (10, 20), [1, 1.5, 1.5, 2, 2, 12], 12),
    ]


def test_a_session_closes_at_its_end_plus_grace_plus_gap(
    final_pairs: dict[tuple[str, str], Pair],
) -> None:
    """Gap 5, grace 4: Kafka Streams' suppression closes a session at end + grace + gap, so
    at 5 the session [0, 0] is still open (0 + 9 > 5) and the record at 5 extends it."""
    pair = final_pairs["session", "narrow"]
    rows = [("a", 1, 5, 0.5, 1, 0), ("a", 1, 9, 1.0, 3, 5), ("a", 2, 1, 1.0, 1, 30)]
    check_final(pair, [Step(rows, True, False)], restart_at=1)
    side = FinalSide(pair.fast, coalesce=True)
    side.run(make_frame(side.task, rows, 0), Step(rows, True, False), 0)
    assert [(c.group, c.window) for c in side.changes] == [((1,), (0, 5))]


def test_a_record_after_its_session_closed_opens_a_new_one(
    final_pairs: dict[tuple[str, str], Pair],
) -> None:
    """Gap 5, grace 4: at 9 the session [0, 0] has closed (0 + 4 + 5 <= 9), so the record at
    4 opens a session of its own, though it is within the gap."""
    pair = final_pairs["session", "narrow"]
    rows = [
        ("a", 1, 5, 0.5, 1, 0),
        ("b", 2, 7, 1.5, 2, 9),
        ("a", 1, 9, 1.0, 3, 4),
        ("a", 2, 1, 1.0, 1, 30),
    ]
    check_final(pair, [Step(rows, True, False)], restart_at=1)
    side = FinalSide(pair.fast, coalesce=True)
    side.run(make_frame(side.task, rows, 0), Step(rows, True, False), 0)
    assert [(c.group, c.window) for c in side.changes] == [
        ((1,), (0, 0)),
        ((1,), (4, 4)),
        ((2,), (9, 9)),
    ]

"""When an outer stream-stream join sends a record NULL-padded, and whether a match may still
follow it. ksqlDB's docs (select-push-query.md, upgrading.md): with GRACE PERIOD "the grace
period defines when the left/outer join result is emitted", and "events that arrive after the
grace period has passed are dropped as late records and not joined"; without it, results are
"emitted eagerly, which may cause spurious result records". So with a grace (and in an
interval join of time bounds, whose grace is 0) each outer record comes out once its window
and grace have passed, either joined or NULL-padded, never both, whatever order records come
in; without one, the NULL-padded row comes at once and a match may follow it."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import pytest

from hispeed.engine import Engine
from tests.engine.test_joins import open_engine, out, send

LEFT = (
    "CREATE STREAM l (k STRING KEY, a STRING, t BIGINT) "
    "WITH (kafka_topic='l', value_format='JSON', partitions=1, timestamp='t');"
)
RIGHT = (
    "CREATE STREAM r (k STRING KEY, b STRING, t BIGINT) "
    "WITH (kafka_topic='r', value_format='JSON', partitions=1, timestamp='t');"
)
WINDOWS = {
    "grace": "WITHIN 10 SECONDS GRACE PERIOD 2 SECONDS ON l.k = r.k",
    "interval": "ON l.k = r.k AND r.t BETWEEN l.t - INTERVAL '10' SECOND "
    "AND l.t + INTERVAL '10' SECOND",
}


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = open_engine(tmp_path / "data")
    e.execute(LEFT)
    e.execute(RIGHT)
    yield e
    e.close()


def left(engine: Engine, key: str, a: str, t: int) -> None:
    send(engine, "l", key, {"A": a, "T": t}, t)


def right(engine: Engine, key: str, b: str, t: int) -> None:
    send(engine, "r", key, {"B": b, "T": t}, t)


def create(engine: Engine, kind: str, window: str) -> None:
    key = "ROWKEY AS jk" if kind == "FULL" else "l.k AS lk"  # (FULL: the join's own key)
    engine.execute(f"CREATE STREAM o AS SELECT {key}, a, b FROM l {kind} JOIN r {WINDOWS[window]};")


def pairs(engine: Engine) -> list[tuple[str | None, str | None]]:
    """The (A, B) of each output row, in the order they were sent."""
    return [(v["A"], v["B"]) for _, v, _ in out(engine, "O")]


@pytest.mark.parametrize("window", sorted(WINDOWS))
def test_no_match_follows_a_null_padded_row(engine: Engine, window: str) -> None:
    create(engine, "LEFT", window)
    left(engine, "k1", "L", 0)
    right(engine, "k2", "X", 15_000)  # stream time 15 s: L's window (10 s) and grace passed
    assert pairs(engine) == [("L", None)]
    # a record of k1 inside L's window, 10 s late: L has been sent NULL-padded already
    right(engine, "k1", "LATE", 5_000)
    left(engine, "k9", "END", 60_000)  # stream time moves on: LATE's window closes too
    assert pairs(engine) == [("L", None)]


def test_a_late_unmatched_record_is_sent_at_once_and_joins_nothing_after(
    engine: Engine,
) -> None:
    """ksqlDB's "full outer join with out of order and custom grace period" shape: a record
    whose window and grace have passed when it comes is sent NULL-padded at once; the other
    side's record of the same key and time, as late, then finds nothing either."""
    create(engine, "FULL", "grace")
    right(engine, "k0", "far", 100_000)
    right(engine, "k2", "c", 30_000)  # 30 + 10 + 2 s < 100 s: late
    left(engine, "k2", "C", 30_000)
    assert pairs(engine) == [(None, "c"), ("C", None)]


def test_a_record_within_grace_still_joins_and_is_not_sent_padded(engine: Engine) -> None:
    create(engine, "LEFT", "grace")
    left(engine, "k1", "L", 0)
    right(engine, "k2", "X", 11_000)  # past L's window (10 s), within its grace (2 s)
    right(engine, "k1", "OK", 9_000)  # out of order, inside L's window: joins
    right(engine, "k3", "Y", 40_000)  # closes everything
    assert pairs(engine) == [("L", "OK")]


def test_the_rule_holds_across_a_restart(tmp_path: Path) -> None:
    e = open_engine(tmp_path / "data")
    e.execute(LEFT)
    e.execute(RIGHT)
    create(e, "LEFT", "grace")
    left(e, "k1", "L", 0)
    right(e, "k2", "X", 15_000)
    e.close()
    e = open_engine(tmp_path / "data")  # the join's state comes back from its changelog
    try:
        right(e, "k1", "LATE", 5_000)
        left(e, "k9", "END", 60_000)
        assert pairs(e) == [("L", None)]
    finally:
        e.close()


def test_without_grace_the_padded_row_comes_at_once_and_a_match_may_follow(
    engine: Engine,
) -> None:
    """ksqlDB's old semantics, kept: its "stream stream left join" case sends (zero, NULL) and
    then (zero, blah)."""
    engine.execute(
        "CREATE STREAM o AS SELECT l.k AS lk, a, b FROM l LEFT JOIN r WITHIN 10 SECONDS "
        "ON l.k = r.k;"
    )
    left(engine, "k1", "L", 0)
    right(engine, "k1", "M", 5_000)
    assert pairs(engine) == [("L", None), ("L", "M")]


@pytest.mark.parametrize(("kind", "window"), [("LEFT", "grace"), ("FULL", "interval")])
def test_out_of_order_records_each_come_out_joined_or_padded_never_both(
    engine: Engine, kind: str, window: str
) -> None:
    """Records of a few keys, out of order by up to 30 s: every outer record is sent
    NULL-padded at most once, and then never joined; every joined pair is inside the window."""
    create(engine, kind, window)
    rng = random.Random(7)
    times: dict[str, int] = {}
    for i in range(120):
        t = 40_000 + i * 1_000 - rng.randrange(30_000)
        key = f"k{rng.randrange(3)}"
        name = f"{'L' if i % 2 else 'R'}{i}"
        times[name] = t
        (left if i % 2 else right)(engine, key, name, t)
    left(engine, "end", "Lend", 10_000_000)  # closes every window
    right(engine, "end2", "Rend", 10_000_001)
    padded: dict[str, int] = defaultdict(int)
    joined: dict[str, int] = defaultdict(int)
    for a, b in pairs(engine):
        if a is not None and b is not None:
            assert abs(times[a] - times[b]) <= 10_000, (a, b)
            joined[a] += 1
            joined[b] += 1
        else:
            padded[a if a is not None else b] += 1
    assert padded, "no record came out NULL-padded: the case tests nothing"
    assert joined, "no record joined: the case tests nothing"
    assert max(padded.values()) == 1
    assert not set(padded) & set(joined), "a record came out NULL-padded and joined"
    outer = [n for n in times if n.startswith("L") or kind == "FULL"]
    missing = [n for n in outer if n not in padded and n not in joined]
    assert not missing, f"outer records never sent: {missing}"

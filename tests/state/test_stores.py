"""State stores: the key-value, window and session views of the pickled stores, their
changelog records (the layout existing data directories and Kafka changelogs hold) and the
restore that reads them back."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from hispeed.log.embedded import EmbeddedLog
from hispeed.state.changelog import STREAM_TIME_KEY, restore, write_stream_time
from hispeed.state.stores import PickledStores


def test_a_key_value_store_marks_what_it_writes_and_lists_a_range_in_order() -> None:
    stores = PickledStores("ST")
    table = stores["T"]
    table.put("b", 2)
    table.put("a", 1)
    table.put("c", 3)
    assert table.get("a") == 1
    assert table.get("z") is None
    assert list(table.range("a", "b")) == [("a", 1), ("b", 2)]
    assert table.delete("c") == 3
    assert table.delete("c") is None
    assert stores.dirty == {("T", "a"), ("T", "b"), ("T", "c")}


def test_a_window_store_fetches_a_keys_windows_by_start_and_evicts_closed_ones() -> None:
    states = PickledStores("S")["S"]
    for start in (0, 10, 20):
        states.put((("g",), (start, start + 10)), [start])
    states.put((("h",), (0, 10)), [99])
    assert list(states.fetch(("g",), 5, 20)) == [((10, 20), [10]), ((20, 30), [20])]
    states.evict(20)  # windows that end before 20 can no longer change
    assert sorted(states) == [(("g",), (10, 20)), (("g",), (20, 30))]


def test_a_session_index_finds_the_sessions_a_record_would_join() -> None:
    sessions = PickledStores("W")["W"]
    sessions.put(("g",), [[0, 5], [20, 30], [50, 60]])
    assert sessions.find_sessions(("g",), 18, 55) == [[20, 30], [50, 60]]
    assert sessions.find_sessions(("none",), 0, 100) == []


def test_the_changelog_holds_one_pickled_record_per_changed_entry() -> None:
    """The record layout is what existing changelogs hold: pickle((kind, key)) -> pickle(value),
    a deletion as None, the stream time under its own key."""
    stores = PickledStores("SP")
    key = (("g", 1), (0, 10))
    stores["S"].put(key, [1, 2.5])
    stores["P"].put(key, True)
    changelog: dict[bytes, bytes | None] = {}
    stores.checkpoint(changelog)
    write_stream_time(changelog, {0: 7})
    assert changelog == {
        pickle.dumps(("S", key)): pickle.dumps([1, 2.5]),
        pickle.dumps(("P", key)): pickle.dumps(True),
        b"\x00stream-time": pickle.dumps({0: 7}),
    }
    assert not stores.dirty
    stores["P"].delete(key)
    again: dict[bytes, bytes | None] = {}
    stores.checkpoint(again)
    assert again == {pickle.dumps(("P", key)): None}


class Taken:
    def __init__(self) -> None:
        self.entries: list[tuple[Any, Any]] = []

    def restore(self, name: Any, value: Any) -> None:
        self.entries.append((name, value))


def test_restore_reads_the_latest_value_of_each_key_and_routes_it_by_kind(
    tmp_path: Path,
) -> None:
    with EmbeddedLog(tmp_path, cleaner_interval_s=None) as log:
        log.create_topic("changelog", 1, {"cleanup.policy": "compact"})
        log.append(
            "changelog",
            [
                (pickle.dumps(("S", "a")), pickle.dumps(1)),
                (pickle.dumps(("J", 0, "x")), pickle.dumps("joined")),
                (STREAM_TIME_KEY, pickle.dumps({0: 5})),
                (pickle.dumps(("S", "a")), pickle.dumps(2)),
                (pickle.dumps(("S", "b")), pickle.dumps(3)),
                (pickle.dumps(("S", "b")), None),
            ],
            partition=0,
        )
        join, rest = Taken(), Taken()
        stream_time = restore(log, "changelog", 0, {"J": join, None: rest})
    assert stream_time == {0: 5}
    assert join.entries == [(("J", 0, "x"), "joined")]
    assert rest.entries == [(("S", "a"), 2)]  # the latest value; a deleted key not at all


def test_pickled_stores_take_back_what_they_wrote() -> None:
    stores = PickledStores("SX")
    stores["S"].put(("g",), [1])
    stores["X"].put(("g",), 5)
    changelog: dict[bytes, bytes | None] = {}
    stores.checkpoint(changelog)
    restored = PickledStores("SX")
    for k, v in changelog.items():
        assert v is not None
        restored.restore(pickle.loads(k), pickle.loads(v))
    restored.restore(("Q", "unknown"), 1)  # a kind it does not hold: ignored
    assert dict(restored["S"]) == {("g",): [1]}
    assert dict(restored["X"]) == {("g",): 5}
    assert not restored.dirty

"""The process's one pause of the cyclic garbage collector (hispeed/gc_pause.py): pauses nest
and overlap across threads, counted; the collector comes back when the last one ends, and
only if it was on when the first began."""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator

import pytest

from hispeed.gc_pause import gc_paused


@pytest.fixture(autouse=True)
def collector_on() -> Iterator[None]:
    gc.enable()
    yield
    gc.enable()
    assert gc_paused.depth == 0


def test_nested_pauses_resume_once_the_outermost_ends() -> None:
    @gc_paused
    def inner() -> bool:
        return gc.isenabled()

    with gc_paused:
        assert not gc.isenabled()
        assert inner() is False
        assert not gc.isenabled()  # the inner pause's end does not resume it
        with gc_paused:
            assert gc_paused.depth == 2
    assert gc.isenabled()


def test_a_pause_that_raises_still_ends() -> None:
    @gc_paused
    def fails() -> None:
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        fails()
    assert gc.isenabled()
    assert gc_paused.depth == 0


def test_a_collector_that_was_off_stays_off() -> None:
    gc.disable()
    with gc_paused:
        pass
    assert not gc.isenabled()


def test_a_pause_in_another_thread_keeps_the_collector_off_until_it_ends() -> None:
    """The first pause ends while a second one, begun in another thread, still runs: the
    collector stays off for the second (a pause that put it back on as it ended, as each
    layer's own did, let collections run in the middle of the other thread's batch)."""
    entered, release = threading.Event(), threading.Event()
    seen: list[bool] = []

    def batch() -> None:
        with gc_paused:
            entered.set()
            assert release.wait(30)
            seen.append(gc.isenabled())

    with gc_paused:
        worker = threading.Thread(target=batch)
        worker.start()
        assert entered.wait(30)
    assert not gc.isenabled()  # the worker's batch is still under way
    release.set()
    worker.join(30)
    assert seen == [False]
    assert gc.isenabled()

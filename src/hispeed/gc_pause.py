"""Pausing Python's cyclic garbage collector while a batch is worked on.

A batch's records, the calls' results, their columns and the states they update are many
small objects made at once, none of them in a cycle: the collector, which their numbers set
off again and again (each time walking every live object of the process, and a stateful
query's state is most of them), would cost more than the work itself. A cycle made during
the batch is collected after it, when the collector runs again.

`gc_paused` is one pause for the whole process, counted: the log's fetch, a query task, its
operators and the connectors each pause around their own batch, and a pause inside another
(or in another thread meanwhile) only counts; the collector resumes when the last one ends,
and only if it was enabled when the first began.
"""

from __future__ import annotations

import functools
import gc
import threading
from collections.abc import Callable
from types import TracebackType
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")


class GcPause:
    """The process's collector pause: `with gc_paused:` around a batch, or `@gc_paused` on
    the method that works on one."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: the pauses under way (nested, or in other threads)
        self.depth = 0
        #: whether the collector was enabled when the outermost pause began
        self._resume = False

    def __enter__(self) -> None:
        with self._lock:
            if self.depth == 0:
                self._resume = gc.isenabled()
                gc.disable()
            self.depth += 1

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            self.depth -= 1
            if self.depth == 0 and self._resume:
                gc.enable()

    def __call__(self, method: Callable[_P, _R]) -> Callable[_P, _R]:
        """`method` with the collector paused while it runs."""

        @functools.wraps(method)
        def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with self:
                return method(*args, **kwargs)

        return paused


#: the one pause every layer uses
gc_paused = GcPause()

"""Pausing Python's cyclic garbage collector while an operator works on a batch.

A batch's records, the calls' results, their columns and the states they update are many
small objects made at once: the collector, which their numbers set off again and again
(each time walking every live object of the process, and a stateful operator's state is
most of them), would cost more than the work itself. A cycle made during the batch is
collected after it, when the collector runs again.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable
from typing import ParamSpec, TypeVar

_P = ParamSpec("_P")
_R = TypeVar("_R")


def gc_paused(method: Callable[_P, _R]) -> Callable[_P, _R]:
    """`method` with the cyclic garbage collector paused while it runs (and enabled again
    after it only if it was enabled before)."""

    @functools.wraps(method)
    def paused(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        enabled = gc.isenabled()
        gc.disable()
        try:
            return method(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()

    return paused

"""An aggregate call's DISTINCT and FILTER (WHERE ...): wrappers around any aggregate's logic.

`COUNT(DISTINCT bidder) FILTER (WHERE price < 10000)` is `Filtered(Distinct(Count))`: the
filter's condition comes first among the call's per-record values and lets the record into
the wrapped aggregate only when it is TRUE (NULL and FALSE leave it out, as in SQL); DISTINCT
keeps each group's values with their multiplicity, so a table's retraction takes one
occurrence back and a value leaves the aggregate only when its last occurrence does. Both
take values back whenever their state can (DISTINCT always can: it recomputes from the
values it holds), so they aggregate tables as well as streams.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from hispeed.functions.aggregates import Aggregate, Count, distinct_key, unhashable
from hispeed.sql import types as T
from hispeed.sql.types import SqlType


class Filtered(Aggregate):
    """`inner` over the records whose condition (the first value) is TRUE."""

    def __init__(self, inner: Aggregate) -> None:
        super().__init__([T.BOOLEAN, *inner.arg_types], inner.params)
        self.inner = inner
        self.undoable = inner.undoable
        self.mergeable = inner.mergeable
        self.value_args = inner.value_args + 1

    def result_type(self) -> SqlType:
        return self.inner.result_type()

    def init(self) -> Any:
        return self.inner.init()

    def add(self, state: Any, args: Sequence[Any]) -> Any:
        return self.inner.add(state, args[1:]) if args[0] is True else state

    def undo(self, state: Any, args: Sequence[Any]) -> Any:
        return self.inner.undo(state, args[1:]) if args[0] is True else state

    def result(self, state: Any) -> Any:
        return self.inner.result(state)

    def merge(self, earlier: Any, later: Any) -> Any:
        return self.inner.merge(earlier, later)

    def configure(self, properties: Mapping[str, Any]) -> None:
        """The wrapped aggregate's settings."""
        self.inner.configure(properties)


class Distinct(Aggregate):
    """`inner` over the distinct non-NULL values of its one argument. The state is a
    Counter of the values (updated in place: a group's state belongs to it alone); the
    result folds `inner` over its keys in the order they first came."""

    undoable = True
    mergeable = True

    def __init__(self, inner: Aggregate) -> None:
        super().__init__(inner.arg_types, inner.params)
        self.inner = inner

    def result_type(self) -> SqlType:
        return self.inner.result_type()

    def init(self) -> Counter[Any]:
        return Counter()

    def add(self, state: Counter[Any], args: Sequence[Any]) -> Counter[Any]:
        if args[0] is not None:
            state[distinct_key(args[0])] += 1
        return state

    def undo(self, state: Counter[Any], args: Sequence[Any]) -> Counter[Any]:
        if args[0] is not None:
            value = distinct_key(args[0])
            left = state[value] - 1
            if left > 0:
                state[value] = left
            else:
                state.pop(value, None)
        return state

    def result(self, state: Counter[Any]) -> Any:
        inner = self.inner
        out = inner.init()
        element = self.arg_types[0]
        for value in state:
            out = inner.add(out, [unhashable(value, element)])
        return inner.result(out)

    def merge(self, earlier: Counter[Any], later: Counter[Any]) -> Counter[Any]:
        return earlier + later

    def configure(self, properties: Mapping[str, Any]) -> None:
        """The wrapped aggregate's settings."""
        self.inner.configure(properties)


class CountDistinct(Distinct):
    """COUNT(DISTINCT x): how many distinct non-NULL values, without a fold."""

    def __init__(self, arg_types: Sequence[SqlType]) -> None:
        super().__init__(Count(arg_types, []))

    def result(self, state: Counter[Any]) -> int:
        return len(state)


def distinct(inner: Aggregate) -> Aggregate:
    """`inner` over distinct values (COUNT's without folding)."""
    return CountDistinct(inner.arg_types) if type(inner) is Count else Distinct(inner)

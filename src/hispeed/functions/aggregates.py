"""Aggregate functions: per-group state with add, undo (for tables) and result.

This is the reference path: one Python state per group, updated record by record, which
gives ksqlDB's per-record change semantics exactly. Each aggregate says how its result type
follows from its argument types.
"""

from __future__ import annotations

import decimal
import itertools
import math
import sys
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hispeed.functions.registry import FunctionTypeError, declared_name
from hispeed.sql import types as T
from hispeed.sql.types import SqlType

#: how many values COLLECT_LIST and COLLECT_SET keep when the query sets no limit
#: (`ksql.functions.collect_list.limit`, `ksql.functions.collect_set.limit`): a group's state
#: is held and changelogged whole, so it is bounded by default
COLLECT_LIMIT = 1000


class Aggregate(ABC):
    """One aggregate call's logic. `args` of add/undo are the call's argument values."""

    #: how many leading arguments are per-record values (the rest are constant parameters)
    value_args = 1
    #: whether the aggregate can take back a value (needed for aggregating a table)
    undoable = True

    def __init__(self, arg_types: Sequence[SqlType], params: Sequence[Any]) -> None:
        self.arg_types = list(arg_types)
        self.params = list(params)

    @abstractmethod
    def result_type(self) -> SqlType: ...

    @abstractmethod
    def init(self) -> Any: ...

    @abstractmethod
    def add(self, state: Any, args: Sequence[Any]) -> Any: ...

    def undo(self, state: Any, args: Sequence[Any]) -> Any:
        """Take a value back (a table row that changed); only for `undoable` aggregates."""
        raise TypeError(f"{type(self).__name__} cannot take values back")

    def result(self, state: Any) -> Any:
        return state

    #: whether `merge` combines two states (session windows merge without replaying records)
    mergeable = False

    def merge(self, earlier: Any, later: Any) -> Any:
        """The state of the records of `earlier` followed by those of `later`."""
        raise TypeError(f"{type(self).__name__} cannot merge states")

    def configure(self, properties: Mapping[str, Any]) -> None:
        """Read the settings in effect for the query (ksqlDB's Configurable UDAFs)."""
        return None  # most aggregates have none


def _limit(properties: Mapping[str, Any], name: str, default: int) -> int:
    """A collect limit as ksqlDB's CollectListUdaf/CollectSetUdaf read it: a number or text
    holding one; a negative one means no limit."""
    value = properties.get(name)
    if value is None:
        return default
    try:
        limit = int(value)
    except (TypeError, ValueError):
        raise FunctionTypeError(f"{name} must be a whole number, not {value!r}") from None
    return sys.maxsize if limit < 0 else limit


@dataclass(frozen=True)
class AggregateSpec:
    name: str
    make: Callable[[Sequence[SqlType], Sequence[Any]], Aggregate]
    #: arguments that must be literals (e.g. TOPK's k), by position; a negative position
    #: counts from the end (TOPK's k is its last argument, after any number of columns)
    constant_args: tuple[int, ...] = ()
    min_args: int = 1
    #: None: any number (a variadic aggregate)
    max_args: int | None = 1


AGGREGATES: dict[str, AggregateSpec] = {}


def register(spec: AggregateSpec, *, replace: bool = False) -> None:
    """Add an aggregate (a Python UDAF) under `spec.name`; `replace` lets it take the place of
    one registered before under that name."""
    if spec.name in AGGREGATES and not replace:
        raise AssertionError(f"aggregate {spec.name} registered twice")
    AGGREGATES[spec.name] = spec


def _register(
    name: str, min_args: int = 1, max_args: int | None = 1, constant_args: tuple[int, ...] = ()
) -> Callable[[type[Aggregate]], type[Aggregate]]:
    def wrap(cls: type[Aggregate]) -> type[Aggregate]:
        AGGREGATES[name] = AggregateSpec(name, cls, constant_args, min_args, max_args)
        return cls

    return wrap


def _param_type(value: Any) -> str:
    """The SQL type of a literal parameter, for an error message."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "BOOLEAN"
    if isinstance(value, int):
        return "INTEGER"
    if isinstance(value, float):
        return "DOUBLE"
    if isinstance(value, decimal.Decimal):
        return "DECIMAL"
    return "STRING" if isinstance(value, str) else type(value).__name__.upper()


def _check_params(
    name: str, arg_types: Sequence[SqlType], params: Sequence[Any], allowed: Sequence[str]
) -> None:
    """Refuse literal parameters of the wrong kinds in ksqlDB's words; `allowed` lists the
    accepted kinds of the parameters in order, as "INTEGER" or "BOOLEAN"."""
    kinds = [_param_type(p) for p in params]
    if kinds != list(allowed[: len(kinds)]) or len(kinds) > len(allowed):
        shown = ", ".join([*(str(t) for t in arg_types), *kinds])
        wanted = ", ".join(["value", *allowed])
        raise FunctionTypeError(
            f"Function '{declared_name(name)}' does not accept parameters ({shown}). "
            f"{name} takes ({wanted}), each after the value a literal"
        )


def _numeric(name: str, t: SqlType) -> None:
    if not t.is_numeric:
        raise FunctionTypeError(f"{name} takes INT, BIGINT, DOUBLE or DECIMAL, not {t}")


@_register("COUNT", 0, 1)
class Count(Aggregate):
    """Count the rows (COUNT(*)) or the non-NULL values (COUNT(x))."""

    value_args = 1

    def result_type(self) -> SqlType:
        return T.BIGINT

    def init(self) -> int:
        return 0

    def add(self, state: int, args: Sequence[Any]) -> int:
        return state + (1 if not args or args[0] is not None else 0)

    def undo(self, state: int, args: Sequence[Any]) -> int:
        return state - (1 if not args or args[0] is not None else 0)

    mergeable = True

    def merge(self, earlier: int, later: int) -> int:
        return earlier + later


@_register("SUM")
class Sum(Aggregate):
    def __init__(self, arg_types: Sequence[SqlType], params: Sequence[Any]) -> None:
        super().__init__(arg_types, params)
        _numeric("SUM", arg_types[0])

    def result_type(self) -> SqlType:
        return self.arg_types[0]

    def init(self) -> Any:
        t = self.arg_types[0]
        return decimal.Decimal(0) if t.name == "DECIMAL" else 0.0 if t.name == "DOUBLE" else 0

    def add(self, state: Any, args: Sequence[Any]) -> Any:
        v = args[0]
        if v is None:
            return state
        out = state + v
        if self.arg_types[0].name == "INTEGER":
            out = _wrap32(out)
        elif self.arg_types[0].name == "BIGINT":
            out = _wrap64(out)
        return out

    def undo(self, state: Any, args: Sequence[Any]) -> Any:
        v = args[0]
        return state if v is None else state - v

    mergeable = True

    def merge(self, earlier: Any, later: Any) -> Any:
        return self.add(earlier, [later])


def _wrap32(v: int) -> int:
    return (v + (1 << 31)) % (1 << 32) - (1 << 31)


def _wrap64(v: int) -> int:
    return (v + (1 << 63)) % (1 << 64) - (1 << 63)


@_register("SUM_LIST")
class SumList(Aggregate):
    """Sum the elements of each record's array (NULL elements count as nothing)."""

    def __init__(self, arg_types: Sequence[SqlType], params: Sequence[Any]) -> None:
        super().__init__(arg_types, params)
        t = arg_types[0]
        if t.name != "ARRAY" or t.element is None or not t.element.is_numeric:
            raise FunctionTypeError(f"SUM_LIST takes an ARRAY of numbers, not {t}")
        self.element = t.element

    def result_type(self) -> SqlType:
        return self.element

    def init(self) -> Any:
        t = self.element
        return decimal.Decimal(0) if t.name == "DECIMAL" else 0.0 if t.name == "DOUBLE" else 0

    def add(self, state: Any, args: Sequence[Any]) -> Any:
        return state + sum(v for v in args[0] or [] if v is not None)

    def undo(self, state: Any, args: Sequence[Any]) -> Any:
        return state - sum(v for v in args[0] or [] if v is not None)


@_register("AVG")
class Avg(Aggregate):
    def __init__(self, arg_types: Sequence[SqlType], params: Sequence[Any]) -> None:
        super().__init__(arg_types, params)
        _numeric("AVG", arg_types[0])

    def result_type(self) -> SqlType:
        return T.DOUBLE

    def init(self) -> tuple[Any, int]:
        return (0, 0)

    def add(self, state: tuple[Any, int], args: Sequence[Any]) -> tuple[Any, int]:
        v = args[0]
        return state if v is None else (state[0] + v, state[1] + 1)

    def undo(self, state: tuple[Any, int], args: Sequence[Any]) -> tuple[Any, int]:
        v = args[0]
        return state if v is None else (state[0] - v, state[1] - 1)

    mergeable = True

    def merge(self, earlier: tuple[Any, int], later: tuple[Any, int]) -> tuple[Any, int]:
        return (earlier[0] + later[0], earlier[1] + later[1])

    def result(self, state: tuple[Any, int]) -> float:
        total, count = state
        return 0.0 if count == 0 else float(total) / count


def _comparable(name: str, t: SqlType) -> None:
    """Values the aggregate orders: not ARRAY, MAP or STRUCT, which have no order."""
    if t.name in ("ARRAY", "MAP", "STRUCT"):
        raise FunctionTypeError(
            f"Function '{declared_name(name)}' does not accept parameters ({t}). {name} takes "
            "values that have an order: numbers, strings, bytes, booleans, dates, times or "
            "timestamps"
        )


class _Extreme(Aggregate):
    undoable = False
    smallest = True

    def __init__(self, arg_types: Sequence[SqlType], params: Sequence[Any]) -> None:
        super().__init__(arg_types, params)
        _comparable("MIN" if self.smallest else "MAX", arg_types[0])

    def result_type(self) -> SqlType:
        return self.arg_types[0]

    def init(self) -> Any:
        return None

    def add(self, state: Any, args: Sequence[Any]) -> Any:
        v = args[0]
        if v is None:
            return state
        if state is None:
            return v
        return min(state, v) if self.smallest else max(state, v)

    mergeable = True

    def merge(self, earlier: Any, later: Any) -> Any:
        return self.add(earlier, [later])


@_register("MIN")
class Min(_Extreme):
    smallest = True


@_register("MAX")
class Max(_Extreme):
    smallest = False


class _Multiset(Aggregate):
    """State is a Counter of values, so a table update can take one back."""

    def init(self) -> Counter[Any]:
        return Counter()

    def add(self, state: Counter[Any], args: Sequence[Any]) -> Counter[Any]:
        v = args[0]
        if v is not None:
            state = state.copy()
            state[hashable(v)] += 1
        return state

    def undo(self, state: Counter[Any], args: Sequence[Any]) -> Counter[Any]:
        v = args[0]
        if v is not None:
            state = state.copy()
            key = hashable(v)
            state[key] -= 1
            if state[key] <= 0:
                del state[key]
        return state


def hashable(v: Any) -> Any:
    """`v` as a dict key: lists and dicts (ARRAY, MAP, STRUCT values) become tuples."""
    if isinstance(v, list):
        return tuple(hashable(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, hashable(x)) for k, x in v.items()))
    return v


class _NaNKey:
    """DOUBLE NaN as a DISTINCT set's key: NaN equals NaN there (Java's Double.equals, which
    Flink's DISTINCT aggregates use, and DuckDB), while float NaNs never equal each other. One
    object, pickled by its name, so a restored set holds the same one."""

    __slots__ = ()

    def __reduce__(self) -> str:
        return "NAN_KEY"

    def __repr__(self) -> str:
        return "NaN"


NAN_KEY = _NaNKey()


def distinct_key(v: Any) -> Any:
    """`v` as a DISTINCT set's key: hashable, every NaN the one NAN_KEY."""
    return NAN_KEY if v != v else hashable(v)


def unhashable(v: Any, t: SqlType) -> Any:
    """A value made by `hashable` (or `distinct_key`) back as a value of type `t`."""
    if v is NAN_KEY:
        return math.nan
    if t.name == "ARRAY" and isinstance(v, tuple):
        assert t.element is not None
        return [unhashable(x, t.element) for x in v]
    if t.name in ("STRUCT", "MAP") and isinstance(v, tuple):
        return {k: x for k, x in v}
    return v


@_register("COUNT_DISTINCT")
class CountDistinct(_Multiset):
    """Count distinct non-NULL values, exactly."""

    def result_type(self) -> SqlType:
        return T.BIGINT

    def result(self, state: Counter[Any]) -> int:
        return len(state)


@_register("HISTOGRAM")
class Histogram(_Multiset):
    def __init__(self, arg_types: Sequence[SqlType], params: Sequence[Any]) -> None:
        super().__init__(arg_types, params)
        if arg_types[0].name != "STRING":
            raise FunctionTypeError(f"HISTOGRAM takes a STRING, not {arg_types[0]}")

    def result_type(self) -> SqlType:
        return T.map_(T.STRING, T.BIGINT)

    def result(self, state: Counter[Any]) -> dict[str, int]:
        return dict(state)


@_register("COLLECT_SET")
class CollectSet(_Multiset):
    """The distinct values in the order they first came, NULL among them, at most
    `ksql.functions.collect_set.limit` of them (ksqlDB's CollectSetUdaf); two MAPs of the
    same entries are one value, whatever their order."""

    limit = COLLECT_LIMIT

    def configure(self, properties: Mapping[str, Any]) -> None:
        self.limit = _limit(properties, "ksql.functions.collect_set.limit", COLLECT_LIMIT)

    def result_type(self) -> SqlType:
        return T.array(self.arg_types[0])

    def _key(self, v: Any) -> Any:
        if self.arg_types[0].name == "MAP" and v is not None:
            return tuple(sorted((k, hashable(x)) for k, x in dict(v).items()))
        return hashable(v)

    def add(self, state: Counter[Any], args: Sequence[Any]) -> Counter[Any]:
        state = state.copy()
        state[self._key(args[0])] += 1
        return state

    def undo(self, state: Counter[Any], args: Sequence[Any]) -> Counter[Any]:
        state = state.copy()
        key = self._key(args[0])
        state[key] -= 1
        if state[key] <= 0:
            del state[key]
        return state

    def result(self, state: Counter[Any]) -> list[Any]:
        kept = itertools.islice(state, self.limit)
        return [unhashable(v, self.arg_types[0]) for v in kept]


@_register("ATTR")
class Attr(_Multiset):
    """The group's value when all its rows have the same one (NULL included), else NULL."""

    def result_type(self) -> SqlType:
        return self.arg_types[0]

    def add(self, state: Counter[Any], args: Sequence[Any]) -> Counter[Any]:
        state = state.copy()
        state[hashable(args[0])] += 1
        return state

    def undo(self, state: Counter[Any], args: Sequence[Any]) -> Counter[Any]:
        state = state.copy()
        key = hashable(args[0])
        state[key] -= 1
        if state[key] <= 0:
            del state[key]
        return state

    def result(self, state: Counter[Any]) -> Any:
        if len(state) != 1:
            return None
        return unhashable(next(iter(state)), self.arg_types[0])


@_register("COLLECT_LIST")
class CollectList(Aggregate):
    """The values in the order they came, at most `ksql.functions.collect_list.limit` of
    them (ksqlDB's CollectListUdaf; later values are ignored)."""

    LIMIT = COLLECT_LIMIT

    def configure(self, properties: Mapping[str, Any]) -> None:
        self.LIMIT = _limit(properties, "ksql.functions.collect_list.limit", COLLECT_LIMIT)

    def result_type(self) -> SqlType:
        return T.array(self.arg_types[0])

    def init(self) -> list[Any]:
        return []

    def add(self, state: list[Any], args: Sequence[Any]) -> list[Any]:
        if len(state) >= self.LIMIT:
            return state
        return [*state, args[0]]

    def undo(self, state: list[Any], args: Sequence[Any]) -> list[Any]:
        out = list(state)
        if args[0] in out:
            out.remove(args[0])
        return out


@_register("TOPK", 2, None, constant_args=(-1,))
class TopK(Aggregate):
    """TOPK(col, k) or TOPK(col, other..., k), as ksqlDB's TopkKudaf.

    With other columns, each entry is STRUCT<sort_col, col0, col1, ...> (ksqlDB's field
    names) holding a record's sort value and its other values. A NULL sort value is skipped;
    a value no greater than the smallest kept one, once k are kept, changes nothing; entries
    of equal sort value stay in the order they came (Java's stable sort)."""

    undoable = False

    def __init__(self, arg_types: Sequence[SqlType], params: Sequence[Any]) -> None:
        super().__init__(arg_types, params)
        distinct = isinstance(self, TopKDistinct)
        name = "TOPKDISTINCT" if distinct else "TOPK"
        _check_params(name, arg_types[:1], params, ["INTEGER"])
        _comparable(name, arg_types[0])
        if distinct and len(arg_types) > 1:
            raise FunctionTypeError(
                f"{name} takes (value, INTEGER), each after the value a literal"
            )
        self.k = int(params[0]) if params else 1
        if self.k < 1:
            raise FunctionTypeError(f"{name}'s k must be a positive number, not {self.k}")
        self.others = len(arg_types) - 1

    def result_type(self) -> SqlType:
        if not self.others:
            return T.array(self.arg_types[0])
        fields = [("sort_col", self.arg_types[0])]
        fields += [(f"col{i}", t) for i, t in enumerate(self.arg_types[1:])]
        return T.array(T.struct(fields))

    def init(self) -> list[Any]:
        return []

    def add(self, state: list[Any], args: Sequence[Any]) -> list[Any]:
        v = args[0]
        if v is None:
            return state
        if not self.others:
            return sorted([*state, v], reverse=True)[: self.k]
        if len(state) == self.k and v <= state[-1][0]:
            return state
        entry = tuple(args[: self.others + 1])
        kept = state[:-1] if len(state) == self.k else state
        # Python's sort is stable with reverse=True too: equal sort values keep their order
        return sorted([*kept, entry], key=lambda e: e[0], reverse=True)

    def result(self, state: list[Any]) -> Any:
        if not self.others:
            return state
        names = ["sort_col", *(f"col{i}" for i in range(self.others))]
        return [dict(zip(names, entry, strict=True)) for entry in state]


@_register("TOPKDISTINCT", 2, 2, constant_args=(1,))
class TopKDistinct(TopK):
    def add(self, state: list[Any], args: Sequence[Any]) -> list[Any]:
        v = args[0]
        if v is None or v in state:
            return state
        return sorted([*state, v], reverse=True)[: self.k]


class _ByOffset(Aggregate):
    """LATEST_BY_OFFSET / EARLIEST_BY_OFFSET (col [, n] [, ignore_nulls])."""

    undoable = False
    latest = True

    def __init__(self, arg_types: Sequence[SqlType], params: Sequence[Any]) -> None:
        super().__init__(arg_types, params)
        self.n: int | None = None
        self.ignore_nulls = True
        name = "LATEST_BY_OFFSET" if self.latest else "EARLIEST_BY_OFFSET"
        if len(params) == 1 and isinstance(params[0], bool):
            _check_params(name, arg_types, params, ["BOOLEAN"])
        else:
            _check_params(name, arg_types, params, ["INTEGER", "BOOLEAN"])
        for p in params:
            if isinstance(p, bool):
                self.ignore_nulls = p
            elif isinstance(p, int):
                self.n = p
        if self.n is not None and self.n <= 0:
            raise FunctionTypeError("the number of values to keep must be positive")

    def result_type(self) -> SqlType:
        return T.array(self.arg_types[0]) if self.n is not None else self.arg_types[0]

    def init(self) -> list[Any]:
        return []

    def add(self, state: list[Any], args: Sequence[Any]) -> list[Any]:
        v = args[0]
        if v is None and self.ignore_nulls:
            return state
        keep = self.n or 1
        if self.latest:
            return [*state, v][-keep:]
        return state if len(state) >= keep else [*state, v]

    def result(self, state: list[Any]) -> Any:
        if self.n is not None:
            return list(state)
        return state[-1] if state else None


@_register("LATEST_BY_OFFSET", 1, 3, constant_args=(1, 2))
class LatestByOffset(_ByOffset):
    latest = True


@_register("EARLIEST_BY_OFFSET", 1, 3, constant_args=(1, 2))
class EarliestByOffset(_ByOffset):
    latest = False


class _Moments(Aggregate):
    """Count, mean and sum of squared differences (Welford), undoable."""

    def __init__(self, arg_types: Sequence[SqlType], params: Sequence[Any]) -> None:
        super().__init__(arg_types, params)
        _numeric(type(self).__name__.upper(), arg_types[0])

    def result_type(self) -> SqlType:
        return T.DOUBLE

    def init(self) -> tuple[int, float, float]:
        return (0, 0.0, 0.0)

    def add(self, state: tuple[int, float, float], args: Sequence[Any]) -> tuple[int, float, float]:
        v = args[0]
        if v is None:
            return state
        n, mean, m2 = state
        x = float(v)
        n += 1
        delta = x - mean
        mean += delta / n
        return (n, mean, m2 + delta * (x - mean))

    def undo(
        self, state: tuple[int, float, float], args: Sequence[Any]
    ) -> tuple[int, float, float]:
        v = args[0]
        if v is None or state[0] == 0:
            return state
        n, mean, m2 = state
        x = float(v)
        if n == 1:
            return (0, 0.0, 0.0)
        new_mean = (mean * n - x) / (n - 1)
        return (n - 1, new_mean, m2 - (x - mean) * (x - new_mean))


def _wrap(value: int, bits: int) -> int:
    """`value` as a Java integer of `bits` bits (two's complement overflow)."""
    value &= (1 << bits) - 1
    return value - (1 << bits) if value >> (bits - 1) else value


class _YoungsCramer(Aggregate):
    """ksqlDB's STDDEV_SAMP / STDDEV_SAMPLE state, computed as its UDAFs compute it.

    The state is (count, sum, M2), updated with the Youngs-Cramer step ksqlDB uses:
    delta = x * (count + 1) - (sum + x); M2 += delta² / (n * (n - 1)), in Java's arithmetic
    for the argument's type (INT sums wrap at 32 bits, BIGINT at 64, deltas of both are longs;
    DOUBLE in doubles), so that results agree with ksqlDB's to the last digit. Undo applies
    ksqlDB's inverse step (delta from the state before the value leaves).
    """

    def __init__(self, arg_types: Sequence[SqlType], params: Sequence[Any]) -> None:
        super().__init__(arg_types, params)
        _numeric(type(self).__name__.upper(), arg_types[0])
        kind = arg_types[0].name
        #: Java's type of the sum: 32- or 64-bit integer, or double (None)
        self.bits = 32 if kind == "INTEGER" else 64 if kind == "BIGINT" else None

    def result_type(self) -> SqlType:
        return T.DOUBLE

    def init(self) -> tuple[int, Any, float]:
        return (0, 0 if self.bits else 0.0, 0.0)

    def _delta(self, count: int, total: Any, x: Any) -> float:
        if self.bits is None:
            return float(x * (count + 1) - (total + x))
        summed = _wrap(total + x, self.bits)
        return float(_wrap(_wrap(x * (count + 1), 64) - summed, 64))

    def _value(self, v: Any) -> Any:
        return int(v) if self.bits else float(v)

    def add(self, state: tuple[int, Any, float], args: Sequence[Any]) -> tuple[int, Any, float]:
        if args[0] is None:
            return state
        count, total, m2 = state
        x = self._value(args[0])
        n = count + 1
        step = 0.0
        if count > 0:
            delta = self._delta(count, total, x)
            step = delta * delta / float(_wrap(n * (n - 1), 64))
        summed = _wrap(total + x, self.bits) if self.bits else total + x
        return (n, summed, step + m2)

    def undo(self, state: tuple[int, Any, float], args: Sequence[Any]) -> tuple[int, Any, float]:
        if args[0] is None:
            return state
        count, total, m2 = state
        x = self._value(args[0])
        n = count - 1
        step = 0.0
        if n > 0:
            delta = self._delta(count, total, x)
            step = delta * delta / float(_wrap(n * (n + 1), 64))
        summed = _wrap(total - x, self.bits) if self.bits else total - x
        return (n, summed, m2 - step)

    def _variance(self, state: tuple[int, Any, float]) -> float | None:
        count, _, m2 = state
        return m2 / (count - 1) if count >= 2 else None


@_register("STDDEV_SAMP")
class StddevSamp(_YoungsCramer):
    """ksqlDB's STDDEV_SAMP: what its UDAF returns is the sample variance, M2 / (n - 1)."""

    def result(self, state: tuple[int, Any, float]) -> float | None:
        variance = self._variance(state)
        return 0.0 if variance is None else variance


@_register("STDDEV_SAMPLE")
class StddevSample(_YoungsCramer):
    """ksqlDB's STDDEV_SAMPLE: the sample standard deviation, sqrt(M2 / (n - 1))."""

    def result(self, state: tuple[int, Any, float]) -> float | None:
        variance = self._variance(state)
        if variance is None:
            return 0.0
        return math.sqrt(variance) if variance >= 0 else math.nan


@_register("STDDEV_POP")
class StddevPop(_Moments):
    def result(self, state: tuple[int, float, float]) -> float | None:
        n, _, m2 = state
        return math.sqrt(m2 / n) if n > 0 else 0.0


@_register("CORRELATION", 2, 2)
class Correlation(Aggregate):
    value_args = 2

    def __init__(self, arg_types: Sequence[SqlType], params: Sequence[Any]) -> None:
        super().__init__(arg_types, params)
        for t in arg_types:
            _numeric("CORRELATION", t)

    def result_type(self) -> SqlType:
        return T.DOUBLE

    def init(self) -> tuple[int, float, float, float, float, float]:
        return (0, 0.0, 0.0, 0.0, 0.0, 0.0)

    def add(
        self, state: tuple[int, float, float, float, float, float], args: Sequence[Any]
    ) -> tuple[int, float, float, float, float, float]:
        x, y = args[0], args[1]
        if x is None or y is None:
            return state
        n, sx, sy, sxx, syy, sxy = state
        x, y = float(x), float(y)
        return (n + 1, sx + x, sy + y, sxx + x * x, syy + y * y, sxy + x * y)

    def undo(
        self, state: tuple[int, float, float, float, float, float], args: Sequence[Any]
    ) -> tuple[int, float, float, float, float, float]:
        x, y = args[0], args[1]
        if x is None or y is None:
            return state
        n, sx, sy, sxx, syy, sxy = state
        x, y = float(x), float(y)
        return (n - 1, sx - x, sy - y, sxx - x * x, syy - y * y, sxy - x * y)

    def result(self, state: tuple[int, float, float, float, float, float]) -> float | None:
        # ksqlDB's single-pass formula, in its order of operations (CorrelationUdaf.map), so
        # that results agree to the last digit; Java's division gives NaN or an infinity
        n, sx, sy, sxx, syy, sxy = state
        numerator = n * sxy - sx * sy
        denominator_x = n * sxx - sx * sx
        denominator_y = n * syy - sy * sy
        product = denominator_x * denominator_y
        denominator = math.sqrt(product) if product >= 0 else math.nan
        return _java_divide(numerator, denominator)


def _java_divide(a: float, b: float) -> float:
    """Java's double division: x / 0.0 is NaN for x 0 or NaN, else an infinity of x's sign
    (and of the zero's)."""
    if b == 0 or math.isnan(b):
        if math.isnan(b) or a == 0 or math.isnan(a):
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    return a / b

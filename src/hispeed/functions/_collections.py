"""Array and map functions: ARRAY_*, SLICE, GENERATE_SERIES, AS_MAP, MAP_*, ENTRIES."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.registry import EvalContext, scalar
from hispeed.functions.signatures import (
    cast,
    check,
    java_string,
    reject,
    rows,
    widens_to,
)
from hispeed.sql.types import BIGINT, BOOLEAN, INTEGER, STRING, SqlType, array, map_, struct

Args = Sequence[pa.Array]
Types = Sequence[SqlType]

_PRIMITIVE = (
    "BOOLEAN",
    "INTEGER",
    "BIGINT",
    "DOUBLE",
    "DECIMAL",
    "STRING",
    "BYTES",
    "DATE",
    "TIME",
    "TIMESTAMP",
)


def _hashable(v: Any) -> Any:
    """A hashable stand-in for a value from to_pylist (lists, dicts and map entries nest)."""
    if isinstance(v, list):
        return ("l", tuple(_hashable(x) for x in v))
    if isinstance(v, dict):
        return ("d", tuple((k, _hashable(x)) for k, x in v.items()))
    if isinstance(v, tuple):
        return tuple(_hashable(x) for x in v)
    return v


def _distinct(values: Sequence[Any]) -> list[Any]:
    seen: set[Any] = set()
    out: list[Any] = []
    for v in values:
        k = _hashable(v)
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out


def _one_array(name: str, accepts: str = "(ARRAY)") -> Callable[[Types], SqlType]:
    def resolve(arg_types: Types) -> SqlType:
        check(name, accepts, arg_types, "ARRAY")
        return arg_types[0]

    return resolve


def _two_arrays(name: str) -> Callable[[Types], SqlType]:
    def resolve(arg_types: Types) -> SqlType:
        check(name, "(ARRAY<T>, ARRAY<T>)", arg_types, "ARRAY", "ARRAY")
        if arg_types[0] != arg_types[1]:
            reject(name, "(ARRAY<T>, ARRAY<T>) with the same element type", arg_types)
        return arg_types[0]

    return resolve


def _primitive_array(name: str, accepts: str, arg_types: Types) -> SqlType:
    if not arg_types or arg_types[0].name != "ARRAY":
        reject(name, accepts, arg_types)
    element = arg_types[0].element
    assert element is not None
    if element.name not in _PRIMITIVE:
        reject(name, accepts, arg_types)
    return element


def _resolve_length(arg_types: Types) -> SqlType:
    check("ARRAY_LENGTH", "(ARRAY)", arg_types, "ARRAY")
    return INTEGER


@scalar("ARRAY_LENGTH", _resolve_length)
def _array_length(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the number of elements of an array."""
    return pc.cast(pc.list_value_length(args[0]), pa.int32())


def _resolve_contains(arg_types: Types) -> SqlType:
    accepts = "(ARRAY<T>, T)"
    if len(arg_types) != 2 or arg_types[0].name != "ARRAY":
        reject("ARRAY_CONTAINS", accepts, arg_types)
    element = arg_types[0].element
    assert element is not None
    if not (widens_to(arg_types[1], element) or widens_to(element, arg_types[1])):
        reject("ARRAY_CONTAINS", accepts, arg_types)
    return BOOLEAN


@scalar("ARRAY_CONTAINS", _resolve_contains, handles_nulls=True)
def _array_contains(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Tell whether the array holds the value (false for a NULL array)."""

    def one(arr: Any, value: Any) -> bool:
        if arr is None:
            return False
        key = _hashable(value)
        return any(_hashable(v) == key for v in arr)

    return rows(ctx, "ARRAY_CONTAINS", args, rt, one, skip_nulls=False)


@scalar("ARRAY_DISTINCT", _one_array("ARRAY_DISTINCT"))
def _array_distinct(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the distinct elements in order of first occurrence."""
    return rows(ctx, "ARRAY_DISTINCT", args, rt, _distinct)


@scalar("ARRAY_EXCEPT", _two_arrays("ARRAY_EXCEPT"))
def _array_except(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the distinct elements of the first array that are not in the second."""

    def one(left: list[Any], right: list[Any]) -> list[Any]:
        drop = {_hashable(v) for v in right}
        return [v for v in _distinct(left) if _hashable(v) not in drop]

    return rows(ctx, "ARRAY_EXCEPT", args, rt, one)


@scalar("ARRAY_INTERSECT", _two_arrays("ARRAY_INTERSECT"))
def _array_intersect(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the distinct elements present in both arrays, in the first array's order."""

    def one(left: list[Any], right: list[Any]) -> list[Any]:
        keep = {_hashable(v) for v in right}
        return [v for v in _distinct(left) if _hashable(v) in keep]

    return rows(ctx, "ARRAY_INTERSECT", args, rt, one)


@scalar("ARRAY_UNION", _two_arrays("ARRAY_UNION"))
def _array_union(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the distinct elements of both arrays, in order of first occurrence."""
    return rows(ctx, "ARRAY_UNION", args, rt, lambda a, b: _distinct(a + b))


@scalar("ARRAY_CONCAT", _two_arrays("ARRAY_CONCAT"), handles_nulls=True)
def _array_concat(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Concatenate two arrays; a NULL array counts as empty unless both are NULL."""

    def one(a: Any, b: Any) -> Any:
        if a is None and b is None:
            return None
        return (a or []) + (b or [])

    return rows(ctx, "ARRAY_CONCAT", args, rt, one, skip_nulls=False)


def _resolve_join(arg_types: Types) -> SqlType:
    accepts = "(ARRAY<primitive>[, STRING delimiter])"
    _primitive_array("ARRAY_JOIN", accepts, arg_types)
    if len(arg_types) not in (1, 2) or (len(arg_types) == 2 and arg_types[1] != STRING):
        reject("ARRAY_JOIN", accepts, arg_types)
    return STRING


@scalar("ARRAY_JOIN", _resolve_join, handles_nulls=True)
def _array_join(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Join the elements' text with a delimiter (default ',')."""
    default = len(args) == 1

    def one(arr: Any, delimiter: Any = None) -> str | None:
        if arr is None:
            return None
        sep = "," if default else (delimiter or "")
        return sep.join("null" if v is None else java_string(v) for v in arr)

    return rows(ctx, "ARRAY_JOIN", args, rt, one, skip_nulls=False)


def _resolve_min_max(name: str) -> Callable[[Types], SqlType]:
    def resolve(arg_types: Types) -> SqlType:
        accepts = "(ARRAY<primitive>)"
        element = _primitive_array(name, accepts, arg_types)
        if len(arg_types) != 1:
            reject(name, accepts, arg_types)
        return element

    return resolve


@scalar("ARRAY_MAX", _resolve_min_max("ARRAY_MAX"))
def _array_max(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the largest non-NULL element."""
    return rows(
        ctx, "ARRAY_MAX", args, rt, lambda a: max((v for v in a if v is not None), default=None)
    )


@scalar("ARRAY_MIN", _resolve_min_max("ARRAY_MIN"))
def _array_min(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the smallest non-NULL element."""
    return rows(
        ctx, "ARRAY_MIN", args, rt, lambda a: min((v for v in a if v is not None), default=None)
    )


def _resolve_sort(arg_types: Types) -> SqlType:
    accepts = "(ARRAY<primitive>[, STRING direction])"
    _primitive_array("ARRAY_SORT", accepts, arg_types)
    if len(arg_types) not in (1, 2) or (len(arg_types) == 2 and arg_types[1] != STRING):
        reject("ARRAY_SORT", accepts, arg_types)
    return arg_types[0]


@scalar("ARRAY_SORT", _resolve_sort)
def _array_sort(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Sort the elements ascending (or 'DESC'), NULLs last."""

    def one(arr: list[Any], direction: str = "ASC") -> list[Any] | None:
        d = direction.upper()
        if d not in ("ASC", "ASCENDING", "DESC", "DESCENDING"):
            return None
        present = sorted((v for v in arr if v is not None), reverse=d.startswith("DESC"))
        return present + [None] * (len(arr) - len(present))

    return rows(ctx, "ARRAY_SORT", args, rt, one)


def _resolve_remove(arg_types: Types) -> SqlType:
    if len(arg_types) != 2 or arg_types[0].name != "ARRAY":
        reject("ARRAY_REMOVE", "(ARRAY<T>, T)", arg_types)
    element = arg_types[0].element
    assert element is not None
    if not widens_to(arg_types[1], element):
        reject("ARRAY_REMOVE", "(ARRAY<T>, T)", arg_types)
    return arg_types[0]


@scalar("ARRAY_REMOVE", _resolve_remove, handles_nulls=True)
def _array_remove(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Remove every element equal to the value (NULL removes NULLs)."""
    element = arg_types[0].element
    assert element is not None
    victims = cast(args[1], element)

    def one(arr: Any, victim: Any) -> Any:
        if arr is None:
            return None
        key = _hashable(victim)
        return [v for v in arr if _hashable(v) != key]

    return rows(ctx, "ARRAY_REMOVE", [args[0], victims], rt, one, skip_nulls=False)


def _resolve_slice(arg_types: Types) -> SqlType:
    check("SLICE", "(ARRAY, INTEGER from, INTEGER to)", arg_types, "ARRAY", INTEGER, INTEGER)
    return arg_types[0]


@scalar("SLICE", _resolve_slice, handles_nulls=True)
def _slice(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the elements from 1-based position from to to, inclusive (NULL if out of range)."""

    def one(arr: Any, start: Any, end: Any) -> Any:
        if arr is None:
            return None
        lo = 0 if start is None else start - 1
        hi = len(arr) if end is None else end
        if lo < 0 or hi > len(arr) or lo > hi:
            return None
        return arr[lo:hi]

    return rows(ctx, "SLICE", args, rt, one, skip_nulls=False)


def _resolve_series(arg_types: Types) -> SqlType:
    accepts = "(INTEGER, INTEGER[, INTEGER step]) or (BIGINT, BIGINT[, INTEGER step])"
    if len(arg_types) not in (2, 3) or not all(t.is_integral for t in arg_types[:2]):
        reject("GENERATE_SERIES", accepts, arg_types)
    if len(arg_types) == 3 and arg_types[2] != INTEGER:
        reject("GENERATE_SERIES", accepts, arg_types)
    both_int = arg_types[0] == INTEGER and arg_types[1] == INTEGER
    return array(INTEGER if both_int else BIGINT)


_MAX_SERIES = 10_000_000


@scalar("GENERATE_SERIES", _resolve_series)
def _generate_series(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the integers from start to end inclusive, by step (default 1 or -1)."""

    def one(start: int, end: int, step: int | None = None) -> list[int]:
        diff = end - start
        if step is None:
            step = 1 if diff > 0 else -1
        if step == 0:
            raise ValueError("GENERATE_SERIES step cannot be zero")
        if (diff > 0 and step < 0) or (diff < 0 and step > 0):
            raise ValueError("GENERATE_SERIES step has wrong sign")
        size = 1 + abs(diff) // abs(step)
        if size > _MAX_SERIES:
            raise ValueError(f"GENERATE_SERIES would give {size} elements")
        return list(range(start, end + (1 if step > 0 else -1), step))

    return rows(ctx, "GENERATE_SERIES", args, rt, one)


# --- maps ----------------------------------------------------------------------------------------


def _resolve_as_map(arg_types: Types) -> SqlType:
    accepts = "(ARRAY<STRING> keys, ARRAY<T> values)"
    check("AS_MAP", accepts, arg_types, "ARRAY", "ARRAY")
    if arg_types[0].element != STRING:
        reject("AS_MAP", accepts, arg_types)
    element = arg_types[1].element
    assert element is not None
    return map_(STRING, element)


def _no_null_keys(entries: dict[Any, Any]) -> list[tuple[Any, Any]]:
    if None in entries:
        raise ValueError("map keys cannot be NULL")
    return list(entries.items())


@scalar("AS_MAP", _resolve_as_map)
def _as_map(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Build a map from an array of keys and an array of values."""

    def one(keys: list[Any], values: list[Any]) -> list[tuple[Any, Any]]:
        out: dict[Any, Any] = {}
        for i, k in enumerate(keys):
            out[k] = values[i] if i < len(values) else None
        return _no_null_keys(out)

    return rows(ctx, "AS_MAP", args, rt, one)


def _one_map(name: str, result: Callable[[SqlType], SqlType]) -> Callable[[Types], SqlType]:
    def resolve(arg_types: Types) -> SqlType:
        check(name, "(MAP)", arg_types, "MAP")
        return result(arg_types[0])

    return resolve


def _keys_type(t: SqlType) -> SqlType:
    assert t.key is not None
    return array(t.key)


def _values_type(t: SqlType) -> SqlType:
    assert t.element is not None
    return array(t.element)


@scalar("MAP_KEYS", _one_map("MAP_KEYS", _keys_type))
def _map_keys(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the keys of a map as an array."""
    m = args[0]
    return _map_part(m, m.keys, rt)


@scalar("MAP_VALUES", _one_map("MAP_VALUES", _values_type))
def _map_values(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the values of a map as an array."""
    m = args[0]
    return _map_part(m, m.items, rt)


def _map_part(m: pa.Array, part: pa.Array, rt: SqlType) -> pa.Array:
    if isinstance(m, pa.ChunkedArray):  # pragma: no cover - arguments are plain arrays
        m = m.combine_chunks()
    offsets = m.offsets
    start, end = offsets[0].as_py(), offsets[-1].as_py()
    child = part if len(part) == end - start else part.slice(start, end - start)
    offsets = pc.subtract(offsets, offsets[0])
    return pa.ListArray.from_arrays(offsets, child, type=rt.to_arrow(), mask=m.is_null())


def _resolve_map_union(arg_types: Types) -> SqlType:
    check("MAP_UNION", "(MAP<K, V>, MAP<K, V>)", arg_types, "MAP", "MAP")
    if arg_types[0] != arg_types[1]:
        reject("MAP_UNION", "(MAP<K, V>, MAP<K, V>) of the same type", arg_types)
    return arg_types[0]


@scalar("MAP_UNION", _resolve_map_union, handles_nulls=True)
def _map_union(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Merge two maps, the second winning on shared keys; NULL only when both are NULL."""

    def one(a: Any, b: Any) -> Any:
        if a is None and b is None:
            return None
        out = dict(a or [])
        out.update(dict(b or []))
        return list(out.items())

    return rows(ctx, "MAP_UNION", args, rt, one, skip_nulls=False)


def _resolve_entries(arg_types: Types) -> SqlType:
    accepts = "(MAP<STRING, V>, BOOLEAN sorted)"
    check("ENTRIES", accepts, arg_types, "MAP", BOOLEAN)
    if arg_types[0].key != STRING:
        reject("ENTRIES", accepts, arg_types)
    value = arg_types[0].element
    assert value is not None
    return array(struct([("K", STRING), ("V", value)]))


@scalar("ENTRIES", _resolve_entries)
def _entries(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return a map's entries as an array of STRUCT<K, V>, sorted by key if told."""

    def one(m: list[tuple[Any, Any]], sort: bool) -> list[dict[str, Any]]:
        items = sorted(m, key=lambda kv: kv[0]) if sort else m
        return [{"K": k, "V": v} for k, v in items]

    return rows(ctx, "ENTRIES", args, rt, one)

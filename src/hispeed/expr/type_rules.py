"""Type rules: the types values of several types take together, and what may meet what.

Used when an expression is compiled: the common type of CASE branches and IN lists,
arithmetic's result type (DECIMAL precision and scale as ksqlDB computes them), which types
compare, and how GREATEST and LEAST pick an overload.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hispeed.expr.casts import cast_compiled
from hispeed.expr.scope import Compiled, error_at
from hispeed.functions.registry import declared_name
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.types import SqlType


def common_type(types: Sequence[SqlType | None], node: Any, what: str) -> SqlType | None:
    """The one type values of `types` can all take (for CASE, IN, COALESCE, comparisons)."""
    known = [t for t in types if t is not None]
    if not known:
        return None
    result = known[0]
    for t in known[1:]:
        if t == result:
            continue
        if t.is_numeric and result.is_numeric:
            result = T.widest_numeric(result, t)
        elif {t.name, result.name} <= {"ARRAY", "MAP", "STRUCT"} and t.name == result.name:
            continue
        else:
            raise error_at(node, f"{what} mixes {result} and {t}; cast one to the other")
    return result


def constructor_type(
    nodes: Sequence[ast.Expr], types: Sequence[SqlType | None], node: Any, what: str
) -> SqlType | None:
    """The element type of an ARRAY[...] or MAP(...) constructor's items, as ksqlDB's
    CoercionUtil finds it: in order, each item widens the type so far, and a STRUCT(...)
    constructor meeting a STRUCT adds its fields (its own first, then the others'), so the
    element type holds every field any item has."""
    result: SqlType | None = None
    for item, t in zip(nodes, types, strict=True):
        result = _widened(item, t, result, node, what)
    return result


def _widened(
    item: ast.Expr, t: SqlType | None, target: SqlType | None, node: Any, what: str
) -> SqlType | None:
    if target is None or t is None:
        return target or t
    if isinstance(item, ast.StructConstructor) and t.name == target.name == "STRUCT":
        values = dict(zip((n for n, _ in t.fields), (v for _, v in item.fields), strict=True))
        names = list(dict.fromkeys([*(n for n, _ in t.fields), *(n for n, _ in target.fields)]))
        fields: list[tuple[str, SqlType]] = []
        for name in names:
            mine, theirs = dict(t.fields).get(name), dict(target.fields).get(name)
            if mine is None or theirs is None:
                field = mine or theirs
            else:
                field = _widened(values[name], mine, theirs, node, what)
            assert field is not None
            fields.append((name, field))
        return T.struct(fields)
    return common_type([target, t], node, what)


def arithmetic_type(op: str, a: SqlType, b: SqlType, node: Any, text: str = "") -> SqlType:
    """The result type of `a <op> b`, DECIMAL precision and scale as ksqlDB computes them."""
    if not (a.is_numeric and b.is_numeric):
        if op == "+" and a.name == "STRING" and b.name == "STRING":
            return T.STRING
        raise error_at(
            node,
            f"Error processing expression: {text}. Unsupported arithmetic types. {a.name} {b.name}",
        )
    if a.name == "DECIMAL" or b.name == "DECIMAL":
        if a.name == "DOUBLE" or b.name == "DOUBLE":
            return T.DOUBLE
        da = a if a.name == "DECIMAL" else T.integral_as_decimal(a)
        db = b if b.name == "DECIMAL" else T.integral_as_decimal(b)
        assert da.precision is not None and da.scale is not None
        assert db.precision is not None and db.scale is not None
        p1, s1, p2, s2 = da.precision, da.scale, db.precision, db.scale
        if op in ("+", "-"):
            s = max(s1, s2)
            p = max(p1 - s1, p2 - s2) + s + 1
        elif op == "*":
            p, s = p1 + p2 + 1, s1 + s2
        elif op == "/":
            s = max(6, s1 + p2 + 1)
            p = p1 - s1 + s2 + s
        else:  # %
            s = max(s1, s2)
            p = min(p1 - s1, p2 - s2) + s
        return T.decimal(min(p, 38), min(s, min(p, 38)))
    return T.widest_numeric(a, b)


_EQUALITY = ("=", "!=", "<>", "IS DISTINCT FROM", "IS NOT DISTINCT FROM")


def valid_comparison(lt: SqlType, op: str, rt: SqlType) -> bool:
    """Whether ksqlDB lets `lt <op> rt` through (its ComparisonUtil, by the left side's base
    type): numbers with numbers; text with text or a time type; BOOLEAN, ARRAY, MAP and STRUCT
    with their own kind and only for (in)equality; TIME with TIME or text; DATE and TIMESTAMP
    with either or text; BYTES with BYTES."""
    left, right = lt.name, rt.name
    if lt.is_numeric:
        return rt.is_numeric
    if left == "STRING":
        return right in ("STRING", "TIME", "DATE", "TIMESTAMP")
    if left in ("BOOLEAN", "ARRAY", "MAP", "STRUCT"):
        return right == left and op in _EQUALITY
    if left == "TIME":
        return right in ("TIME", "STRING")
    if left in ("DATE", "TIMESTAMP"):
        return right in ("DATE", "TIMESTAMP", "STRING")
    if left == "BYTES":
        return right == "BYTES"
    return False


def comparable(lt: SqlType | None, rt: SqlType | None, node: Any, op: str) -> SqlType | None:
    """The type two sides are compared as; an error where they cannot be compared."""
    if lt is None or rt is None:
        return lt or rt
    if lt == rt:
        return lt
    if lt.is_numeric and rt.is_numeric:
        return T.widest_numeric(lt, rt)
    if (
        {lt.name, rt.name} == {"STRING", "TIMESTAMP"}
        or {lt.name, rt.name} == {"STRING", "DATE"}
        or {lt.name, rt.name} == {"STRING", "TIME"}
    ):
        return lt if lt.name != "STRING" else rt
    if {lt.name, rt.name} == {"DATE", "TIMESTAMP"}:
        return T.TIMESTAMP  # a DATE is compared as its midnight
    if lt.name == rt.name and lt.name in ("ARRAY", "MAP", "STRUCT"):
        return lt
    raise error_at(
        node, f"Cannot compare {lt} to {rt} with {op}: cast one side, like CAST(x AS {lt})"
    )


def same_shape(a: SqlType | None, b: SqlType | None) -> bool:
    """Whether values of two types may be compared: numbers with numbers, and collections
    whose parts may be (STRUCTs by the fields they share)."""
    if a is None or b is None or a == b:
        return True
    if a.is_numeric and b.is_numeric:
        return True
    if a.name != b.name:
        return "STRING" in (a.name, b.name) and (a.is_temporal or b.is_temporal)
    if a.name == "ARRAY":
        return same_shape(a.element, b.element)
    if a.name == "MAP":
        return same_shape(a.key, b.key) and same_shape(a.element, b.element)
    if a.name == "STRUCT":
        fa, fb = dict(a.fields), dict(b.fields)
        return all(same_shape(fa[n], fb[n]) for n in set(fa) & set(fb))
    return True


def _widest_decimal(a: SqlType, b: SqlType) -> SqlType:
    assert a.precision is not None and a.scale is not None
    assert b.precision is not None and b.scale is not None
    scale = max(a.scale, b.scale)
    digits = max(a.precision - a.scale, b.precision - b.scale)
    return T.decimal(min(digits + scale, 38), scale)


_TEMPORAL = ("DATE", "TIME", "TIMESTAMP")


#: the types a NULL argument is tried as, in order, when STRING does not fit the function
NULL_GUESSES = (T.INTEGER, T.BIGINT, T.DOUBLE, T.BOOLEAN, T.BYTES, T.DATE, T.TIME, T.TIMESTAMP)


def extreme_args(e: ast.FunctionCall, args: list[Compiled]) -> list[Compiled]:
    """GREATEST and LEAST resolve as ksqlDB's overloads do: NULLs take the others' type, text
    literals beside dates or times are read as such, and mixed numbers need a DOUBLE or all
    DECIMALs to pick one overload."""
    types = [a.type for a in args]
    known = [t for t in types if t is not None]
    shown = ", ".join(str(t) if t is not None else "null" for t in types)
    ambiguous = (
        f"Function '{declared_name(e.name)}' cannot be resolved due to ambiguous method parameters "
        f"({shown})."
    )
    if not known:
        raise error_at(e, ambiguous)
    temporal = next((t for t in known if t.name in _TEMPORAL), None)
    if temporal is not None:
        literal_text = [
            i
            for i, (a, t) in enumerate(zip(e.args, types, strict=True))
            if t is not None and t.name == "STRING" and isinstance(a, ast.Literal)
        ]
        args = list(args)
        for i in literal_text:
            args[i] = cast_compiled(args[i], T.STRING, temporal)
        types = [a.type for a in args]
        known = [t for t in types if t is not None]
    target = known[0]
    if len({str(t) for t in known}) > 1 and all(t.is_numeric for t in known):
        if any(t.name == "DOUBLE" for t in known):
            target = T.DOUBLE
        elif all(t.name == "DECIMAL" for t in known):
            target = known[0]
            for t in known[1:]:
                target = _widest_decimal(target, t)
        else:
            raise error_at(e, ambiguous)
    return [a if a.type is not None else Compiled(target, a.evaluate, a.constant) for a in args]

"""Text literals read as the type they meet: `I = '2'` compares numbers, as in ksqlDB."""

from __future__ import annotations

import decimal
from typing import Any

import pyarrow as pa

from hispeed.expr.casts import broadcast, parse_boolean_exact
from hispeed.expr.scope import Compiled, error_at
from hispeed.functions.registry import EvalContext
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.types import SqlType


def coerce_literal(
    node: ast.Expr, compiled: Compiled, target: SqlType | None, strict: bool = False
) -> Compiled | None:
    """A STRING literal compared with a number or a BOOLEAN becomes a literal of that type.

    With `strict` (IN lists), text that does not parse is an error, as in ksqlDB.
    """
    if not (isinstance(node, ast.Literal) and isinstance(node.value, str) and target is not None):
        return None
    if not (target.is_numeric or target.name == "BOOLEAN"):
        return None
    text = node.value.strip()
    try:
        if target.name == "BOOLEAN":
            value: Any = parse_boolean_exact(text)
            if value is None:
                raise ValueError(text)
        elif target.is_integral:
            exact = decimal.Decimal(text)
            if exact != exact.to_integral_value() or not exact.is_finite():
                raise ValueError(text)
            value = int(exact)
            if target.name == "INTEGER" and not -(2**31) <= value < 2**31:
                target = T.BIGINT  # too big for the column: compared as a BIGINT
        elif target.name == "DOUBLE":
            value = float(text)
        else:
            value = decimal.Decimal(text)
    except (ValueError, decimal.InvalidOperation):
        if strict:
            raise error_at(
                node,
                f'Invalid Predicate: invalid input syntax for type {target.name}: "{node.value}".',
            ) from None
        return None
    return Compiled(target, lambda b, ctx: broadcast(value, target, b.num_rows), constant=True)


def typed_texts(node: ast.Expr, target: SqlType) -> ast.Expr:
    """Text literals inside ARRAY[...], MAP(...) and STRUCT(...) constructors compared with a
    collection, read as the collection's element types (an IN list's rule, as ksqlDB's)."""
    if isinstance(node, ast.Literal) and isinstance(node.value, str):
        if target.is_numeric or target.name == "BOOLEAN":
            parsed = coerce_literal(node, Compiled(T.STRING, lambda b, c: b), target, strict=True)
            assert parsed is not None
            value = parsed(pa.RecordBatch.from_pydict({"x": [0]}), EvalContext())[0].as_py()
            return ast.Literal(value, parsed.type, pos=node.pos)
        return node
    if isinstance(node, ast.ArrayConstructor) and target.name == "ARRAY":
        assert target.element is not None
        element = target.element
        return ast.ArrayConstructor(
            tuple(typed_texts(i, element) for i in node.items), pos=node.pos
        )
    if isinstance(node, ast.MapConstructor) and target.name == "MAP":
        assert target.key is not None and target.element is not None
        kt, vt = target.key, target.element
        return ast.MapConstructor(
            tuple((typed_texts(k, kt), typed_texts(v, vt)) for k, v in node.entries),
            pos=node.pos,
        )
    if isinstance(node, ast.StructConstructor) and target.name == "STRUCT":
        fields = dict(target.fields)
        return ast.StructConstructor(
            tuple(
                (n, typed_texts(v, fields[n.upper()]) if n.upper() in fields else v)
                for n, v in node.fields
            ),
            pos=node.pos,
        )
    return node

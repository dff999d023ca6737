"""Helpers for calling registered functions on Python values."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from hispeed.functions.registry import EvalContext, lookup
from hispeed.sql.types import SqlType


def call(name: str, *columns: tuple[list[Any], SqlType]) -> tuple[list[Any], EvalContext]:
    """Resolve and evaluate `name` over columns given as (values, type); return values and ctx."""
    fn = lookup(name)
    assert fn is not None, name
    types = [t for _, t in columns]
    rt = fn.resolve(types)
    arrays = [pa.array(v, t.to_arrow()) for v, t in columns]
    ctx = EvalContext()
    out = fn.evaluate(ctx, arrays, types, rt)
    assert out.type == rt.to_arrow(), (out.type, rt)
    if columns:
        assert len(out) == len(columns[0][0])
    return out.to_pylist(), ctx


def values(name: str, *columns: tuple[list[Any], SqlType]) -> list[Any]:
    """Like call, asserting no row errors."""
    out, ctx = call(name, *columns)
    assert ctx.errors == []
    return out


def col(t: SqlType, *vals: Any) -> tuple[list[Any], SqlType]:
    return list(vals), t

"""The compiler's column-at-once paths against its row-by-row ones, which stay the reference.

`arr[k]` with a constant k takes the list offsets (`compiler.element_at`); with k from a
column it picks row by row. Over random arrays (NULL arrays, NULL elements, empty arrays,
slices of larger batches) and indexes (negative, zero, past either end), both agree.
"""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hispeed.expr.compiler import compile_expr, element_at
from hispeed.expr.scope import Scope, ScopeColumn
from hispeed.functions.registry import EvalContext
from hispeed.sql import types as T
from hispeed.sql.parser import parse_expression

SETTINGS = settings(
    max_examples=int(os.environ.get("HISPEED_HYPOTHESIS_EXAMPLES", "50")) * 4,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def evaluate(text: str, columns: dict[str, tuple[T.SqlType, list[Any]]], skip: int) -> Any:
    """`text` over the columns, as a slice of a batch that starts `skip` rows in."""
    scope = Scope([ScopeColumn(n, t, n) for n, (t, _) in columns.items()])
    batch = pa.RecordBatch.from_arrays(
        [pa.array(v, t.to_arrow()) for t, v in columns.values()], names=list(columns)
    ).slice(skip)
    ctx = EvalContext()
    out = compile_expr(parse_expression(text), scope)(batch, ctx)
    return out.to_pylist(), ctx.errors


texts = st.one_of(st.none(), st.text(st.sampled_from("ab/é😀"), max_size=3))


@SETTINGS
@given(
    arrays=st.lists(st.one_of(st.none(), st.lists(texts, max_size=5)), min_size=1, max_size=12),
    index=st.integers(-7, 7),
    skip=st.integers(0, 3),
)
def test_constant_index_matches_the_row_path(
    arrays: list[list[str | None] | None], index: int, skip: int
) -> None:
    skip = min(skip, len(arrays) - 1)
    columns = {
        "A": (T.array(T.STRING), arrays),
        "K": (T.INTEGER, [index] * len(arrays)),
    }
    by_column = evaluate(f"A[{index}]", columns, skip)
    by_row = evaluate("A[K]", columns, skip)
    assert by_column == by_row


@SETTINGS
@given(
    urls=st.lists(st.one_of(st.none(), st.text(st.sampled_from("ab/"), max_size=8)), min_size=1),
    index=st.integers(-5, 8),
)
def test_split_then_index(urls: list[str | None], index: int) -> None:
    """Nexmark q22's SPLIT(url, '/')[k], against the row path and Python's own split."""
    columns = {"U": (T.STRING, urls), "K": (T.INTEGER, [index] * len(urls))}
    got = evaluate(f"SPLIT(U, '/')[{index}]", columns, 0)
    assert got == evaluate("SPLIT(U, '/')[K]", columns, 0)

    def expected(u: str | None) -> str | None:
        if u is None:
            return None
        parts = u.split("/")
        position = index - 1 if index > 0 else len(parts) + index
        return parts[position] if index != 0 and 0 <= position < len(parts) else None

    assert got == ([expected(u) for u in urls], [])


def test_element_at_reads_the_offsets_of_a_slice() -> None:
    arrays = pa.array([["x"], ["a", None, "c"], None, [], ["d", "e"]], pa.list_(pa.string()))
    part = arrays.slice(1, 4)
    assert element_at(part, 1).to_pylist() == ["a", None, None, "d"]
    assert element_at(part, -1).to_pylist() == ["c", None, None, "e"]
    assert element_at(part, 3).to_pylist() == ["c", None, None, None]
    assert element_at(part, 0).to_pylist() == [None] * 4
    assert element_at(part, None).to_pylist() == [None] * 4

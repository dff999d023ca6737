"""The compiler's column-at-once paths against its row-by-row ones, which stay the reference.

`arr[k]` with a constant k takes the list offsets (`compiler.element_at`); with k from a
column it picks row by row. Over random arrays (NULL arrays, NULL elements, empty arrays,
slices of larger batches) and indexes (negative, zero, past either end), both agree.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hispeed.expr.compiler import compile_expr, element_at
from hispeed.expr.scope import Scope, ScopeColumn
from hispeed.functions import registry
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


def counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    """Count the evaluations of the scalar function `name` (one per column computed)."""
    fn = registry.SCALAR_FUNCTIONS[name]
    calls = [0]

    def evaluate(*args: Any) -> Any:
        calls[0] += 1
        return fn.evaluate(*args)

    monkeypatch.setitem(registry.SCALAR_FUNCTIONS, name, dataclasses.replace(fn, evaluate=evaluate))
    return calls


def test_a_sub_expression_written_twice_is_computed_once_per_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Nexmark q22 splits the URL in three select items: one SPLIT per batch."""
    calls = counting(monkeypatch, "SPLIT")
    scope = Scope([ScopeColumn("U", T.STRING, "U")])
    items = [compile_expr(parse_expression(f"SPLIT(U, '/')[{k}]"), scope) for k in (1, 2, 3)]
    batch = pa.RecordBatch.from_arrays([pa.array(["a/b/c", None, "d"])], names=["U"])
    ctx = EvalContext()
    assert [c(batch, ctx).to_pylist() for c in items] == [
        ["a", None, "d"],
        ["b", None, None],
        ["c", None, None],
    ]
    assert calls[0] == 1
    other = batch.slice(1)  # another batch: computed again
    assert [c(other, ctx).to_pylist() for c in items] == [[None, "d"], [None, None], [None, None]]
    assert calls[0] == 2


def test_shared_sub_expressions_report_their_errors_each_time() -> None:
    """Each use of a failing expression reports its rows, as when each is computed."""
    scope = Scope([ScopeColumn("S", T.STRING, "S")])
    batch = pa.RecordBatch.from_arrays([pa.array(["1", "x"])], names=["S"])
    twice = compile_expr(parse_expression("CAST(S AS INT) + CAST(S AS INT)"), scope)
    ctx = EvalContext()
    assert twice(batch, ctx).to_pylist() == [2, None]
    assert [row for row, _ in ctx.errors] == [1, 1]


def test_functions_that_are_not_deterministic_are_not_shared() -> None:
    scope = Scope([ScopeColumn("S", T.STRING, "S")])
    batch = pa.RecordBatch.from_arrays([pa.array(["a"] * 50)], names=["S"])
    pair = compile_expr(parse_expression("RANDOM() = RANDOM()"), scope)
    assert not any(pair(batch, EvalContext()).to_pylist())


def test_a_case_reads_the_columns_of_its_branches_only() -> None:
    """Each branch's rows are taken with the columns the CASE reads, lambdas' included."""
    scope = Scope(
        [
            ScopeColumn("I", T.INTEGER, "I"),
            ScopeColumn("A", T.array(T.INTEGER), "A"),
            ScopeColumn("S", T.STRING, "S"),
        ]
    )
    batch = pa.RecordBatch.from_arrays(
        [pa.array([1, 2, 3, None]), pa.array([[1], [2, 3], None, [4]]), pa.array(list("abcd"))],
        names=["I", "A", "S"],
    )
    text = (
        "CASE WHEN I = 1 THEN 'one' WHEN I = 2 THEN CAST(TRANSFORM(A, x => x + I) AS STRING) "
        "ELSE UCASE(S) END"
    )
    out = compile_expr(parse_expression(text), scope)(batch, EvalContext())
    assert out.to_pylist() == ["one", "[4, 5]", "C", "D"]

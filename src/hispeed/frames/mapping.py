"""A frame's Python function (`map`, `map_batches`): what the frame keeps of it, and how a
push or pull query's rows go through it in this process (a persistent query runs it in the
plan: plan/python.py, ops/python_map.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from hispeed.catalog import Catalog
from hispeed.errors import HispeedError
from hispeed.log.base import Log
from hispeed.plan import python
from hispeed.plan.model import QueryPlan
from hispeed.plan.query import plan_query
from hispeed.sql import ast
from hispeed.sql.types import SqlType


@dataclass(frozen=True)
class PythonStep:
    """map() or map_batches() as the frame was given it."""

    kind: str  # MAP MAP_BATCHES MAP_POLARS
    function: Callable[..., Any]
    #: the value columns the function returns (None: those it is given)
    schema: tuple[tuple[str, SqlType], ...] | None


def _label(function: Callable[..., Any]) -> str:
    module = getattr(function, "__module__", "?")
    return f"{module}:{getattr(function, '__qualname__', repr(function))}"


def stage_plan(catalog: Catalog, log: Log, select: ast.Select, step: PythonStep) -> QueryPlan:
    """The plan of `select` with the function after it, as a persistent query would run."""
    plan = plan_query(select, catalog, log)
    schema = list(step.schema) if step.schema is not None else None
    return python.with_python(plan, step.kind, _label(step.function), step.function, schema)


def explained(message: str, plan: QueryPlan) -> str:
    """EXPLAIN's text of the SQL part, with the function and the columns it writes."""
    stage = plan.python
    assert stage is not None
    lines = [line for line in message.split("\n") if not line.startswith("value: ")]
    lines.append(f"python: {stage.kind} {stage.reference}")
    lines.append("value: " + ", ".join(f"{c.name} {c.type}" for c in plan.value))
    return "\n".join(lines)


def mapped_rows(
    rows: Iterable[dict[str, Any]], plan: QueryPlan, *, whole: bool
) -> Iterator[dict[str, Any]]:
    """A query's rows through the plan's function: `map` row by row; `map_batches` over all
    the rows at once (`whole`, a pull query) or over each row as it comes (a push query)."""
    stage = plan.python
    assert stage is not None
    if stage.kind == "PROCESS":
        raise HispeedError(
            "process() keeps state, which lives in a persistent query's changelog: write its "
            "output with to_stream() or to_topic() and read that"
        )
    keys = [c.name for c in plan.key]
    values = [c.name for c in plan.value]
    if stage.kind == "MAP":
        for row in rows:
            out = stage.function(dict(row))
            if out is None:
                continue
            yield {**{k: row.get(k) for k in keys}, **{v: out.get(v) for v in values}}
        return
    chunks: Iterable[list[dict[str, Any]]] = [list(rows)] if whole else ([r] for r in rows)
    for chunk in chunks:
        if not chunk:
            continue
        batch = pa.RecordBatch.from_pylist(chunk)
        given: Any = batch
        if stage.kind == "MAP_POLARS":
            import polars as pl

            given = pl.from_arrow(batch)
        got = stage.function(given)
        table = got if isinstance(got, pa.Table | pa.RecordBatch) else got.to_arrow()
        out_rows = table.to_pylist()
        if len(out_rows) != len(chunk) and not all(k in table.column_names for k in keys):
            raise HispeedError(
                f"{stage.reference} returned {len(out_rows)} rows for {len(chunk)}: rows it "
                "drops or adds need their key columns"
            )
        # the rows given, where it returned as many; else its own rows carry their keys
        givens = chunk if len(out_rows) == len(chunk) else out_rows
        for given_row, out in zip(givens, out_rows, strict=True):
            yield {
                **{k: out.get(k, given_row.get(k)) for k in keys},
                **{v: out.get(v) for v in values},
            }

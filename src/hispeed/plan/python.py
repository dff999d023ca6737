"""A Python function in a query's plan: the stream API's `.map` and `.map_batches`.

What cannot be SQL is kept in the SQL statement as properties of its sink, so the command
topic keeps it as it keeps any statement and a restart replays it:

    CREATE STREAM out WITH (PYTHON_FUNCTION='shop.enrich:add_vat', PYTHON_KIND='MAP',
        PYTHON_SCHEMA='`ID` STRING, `GROSS` DOUBLE') AS SELECT ... EMIT CHANGES;

The function is loaded from its module when the statement runs (at a restart, as the
engine starts, as UDF modules are), so it must be a module's top-level function: a lambda or
a closure cannot be found again and is refused for a persistent query.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable, Mapping
from typing import Any

from hispeed.errors import HispeedError
from hispeed.expr.scope import Compiled
from hispeed.plan.model import OutputColumn, PythonStage, QueryPlan
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.parser import parse_one

#: the sink properties that carry the function, its kind and its output columns
FUNCTION_PROPERTY = "PYTHON_FUNCTION"
KIND_PROPERTY = "PYTHON_KIND"
SCHEMA_PROPERTY = "PYTHON_SCHEMA"
#: PROCESS: the stateful function of `.process` (ops/stateful.py)
KINDS = ("MAP", "MAP_BATCHES", "MAP_POLARS", "PROCESS")


def reference_of(function: Callable[..., Any]) -> str:
    """`module:qualified.name` of a function a restart can import again; anything else (a
    lambda, a closure, a function of `__main__`, a callable object) raises, saying why."""
    module = getattr(function, "__module__", None)
    qualname = getattr(function, "__qualname__", None)
    if not module or not qualname:
        raise HispeedError(
            f"{function!r} has no module and name to load it by: a persistent query needs a "
            "function defined at the top level of an importable module"
        )
    if "<lambda>" in qualname or "<locals>" in qualname:
        raise HispeedError(
            f"{module}.{qualname} is a lambda or a closure, which a restart cannot load "
            "again: define the function at the top level of an importable module for a "
            "persistent query (a lambda is fine for stream() and collect())"
        )
    if module == "__main__":
        raise HispeedError(
            f"{qualname} is defined in __main__, which another process (a restart, the "
            "server) cannot import: move it into a module of its own"
        )
    reference = f"{module}:{qualname}"
    if resolve(reference) is not function:
        raise HispeedError(f"{reference} does not name {function!r} when imported again")
    return reference


def resolve(reference: str) -> Callable[..., Any]:
    """The function `module:qualified.name` names, importing its module."""
    module_name, colon, qualname = reference.partition(":")
    if not colon or not module_name or not qualname:
        raise HispeedError(f"{FUNCTION_PROPERTY} is 'module:function', not {reference!r}")
    try:
        found: Any = importlib.import_module(module_name)
    except Exception as e:
        raise HispeedError(
            f"{FUNCTION_PROPERTY} {reference!r}: module {module_name} could not be imported: "
            f"{type(e).__name__}: {e}"
        ) from e
    for part in qualname.split("."):
        found = getattr(found, part, None)
        if found is None:
            raise HispeedError(
                f"{FUNCTION_PROPERTY} {reference!r}: {module_name} has no {qualname}"
            )
    if not callable(found):
        raise HispeedError(f"{FUNCTION_PROPERTY} {reference!r} is not a function")
    return found  # type: ignore[no-any-return]


def parse_schema(text: str) -> list[tuple[str, T.SqlType]]:
    """Columns written as in CREATE STREAM: "`ID` STRING, `GROSS` DOUBLE"."""
    stmt = parse_one(f"CREATE STREAM S ({text}) WITH (KAFKA_TOPIC='S');")
    assert isinstance(stmt, ast.CreateSource)
    return [(c.name, c.type) for c in stmt.columns]


def schema_text(columns: list[tuple[str, T.SqlType]]) -> str:
    """The columns as `parse_schema` reads them."""
    return ", ".join("`" + n.replace("`", "``") + f"` {t}" for n, t in columns)


def _unavailable(*_: Any) -> Any:
    raise AssertionError("a column a Python function makes is not computed from the frame")


def with_python(
    plan: QueryPlan,
    kind: str,
    reference: str,
    function: Callable[..., Any] | None = None,
    schema: list[tuple[str, T.SqlType]] | None = None,
) -> QueryPlan:
    """`plan` with a Python function between its select list and its sink; its value
    columns become the function's (`schema`, by default the select list's own). `function`
    is the one `reference` names (resolved here when not given)."""
    if kind not in KINDS:
        raise HispeedError(f"{KIND_PROPERTY} is one of {', '.join(KINDS)}, not {kind!r}")
    if plan.aggregation is not None or plan.source.kind == "TABLE" or plan.sink_kind == "TABLE":
        raise HispeedError(
            "map() and map_batches() run over a stream's rows: an aggregation or a table's "
            "changes cannot go through them (write the stream they read, then aggregate)"
        )
    if plan.join is not None and plan.join.kind == "TABLE":
        raise HispeedError("map() and map_batches() run over a stream's rows, not a table's")
    if plan.source.window is not None:
        raise HispeedError("map() and map_batches() do not run over a windowed source")
    if function is None:
        function = resolve(reference)
    inputs = plan.value
    columns = schema if schema is not None else [(c.name, c.type) for c in inputs]
    keys = {c.name for c in plan.key}
    clash = [n for n, _ in columns if n in keys]
    if clash:
        raise HispeedError(
            f"the function's columns {', '.join(clash)} are key columns, which pass through "
            "as they are: name its value columns only"
        )
    value = [OutputColumn(n, t, Compiled(t, _unavailable)) for n, t in columns]
    stage = PythonStage(kind, reference, function, inputs)
    return dataclasses.replace(
        plan, value=value, outputs=[*plan.key, *value], python=stage, notes=[*plan.notes]
    )


def from_properties(plan: QueryPlan, props: Mapping[str, Any]) -> QueryPlan:
    """`plan` with the Python function a CREATE ... AS SELECT's WITH clause names, if any."""
    reference = props.get(FUNCTION_PROPERTY)
    if reference is None:
        for name in (KIND_PROPERTY, SCHEMA_PROPERTY):
            if name in props:
                raise HispeedError(f"{name} goes with {FUNCTION_PROPERTY}='module:function'")
        return plan
    kind = str(props.get(KIND_PROPERTY, "MAP")).upper()
    schema_prop = props.get(SCHEMA_PROPERTY)
    schema = parse_schema(str(schema_prop)) if schema_prop is not None else None
    return with_python(plan, kind, str(reference), schema=schema)

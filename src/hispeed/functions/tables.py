"""Table functions (UDTFs): each input row gives zero or more output values.

A table function declares its output type from its argument types (`resolve`) and computes
a whole batch at once (`evaluate`): the output values, flattened, and for each value the
index of the input row it came from (ascending). A row whose values cannot be computed gives
no values and its error goes to `EvalContext.error` (and so to the processing log).

Several table functions in one select list are zipped, as in ksqlDB: an input row gives as
many output rows as its longest function output, the shorter ones padded with NULL.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.registry import EvalContext, FunctionTypeError
from hispeed.sql import types as T
from hispeed.sql.types import SqlType

Resolver = Callable[[Sequence[SqlType]], SqlType]
#: (context, argument arrays, argument types, output type) -> (values, parent row indexes)
TableEvaluator = Callable[
    [EvalContext, Sequence[pa.Array], Sequence[SqlType], SqlType],
    tuple[pa.Array, np.ndarray],
]


@dataclass(frozen=True)
class TableFunction:
    name: str
    resolve: Resolver
    evaluate: TableEvaluator
    description: str = ""


TABLE_FUNCTIONS: dict[str, TableFunction] = {}


def table(
    name: str, resolve: Resolver, *, aliases: Sequence[str] = (), description: str = ""
) -> Callable[[TableEvaluator], TableEvaluator]:
    """Register a table function under `name` (and `aliases`), case-insensitively."""

    def register(evaluate: TableEvaluator) -> TableEvaluator:
        fn = TableFunction(name.upper(), resolve, evaluate, description or evaluate.__doc__ or "")
        for n in (name, *aliases):
            TABLE_FUNCTIONS[n.upper()] = fn
        return evaluate

    return register


def lookup_table(name: str) -> TableFunction | None:
    return TABLE_FUNCTIONS.get(name.upper())


def rows_table(
    name: str, resolve: Resolver, *, description: str = ""
) -> Callable[[Callable[..., Sequence[object]]], Callable[..., Sequence[object]]]:
    """Register a table function written per row: `fn(*args)` returns the row's values.

    A row whose function raises gives no values; its error goes to the processing log.
    """

    def register(fn: Callable[..., Sequence[object]]) -> Callable[..., Sequence[object]]:
        def evaluate(
            ctx: EvalContext, args: Sequence[pa.Array], types: Sequence[SqlType], out: SqlType
        ) -> tuple[pa.Array, np.ndarray]:
            values: list[object] = []
            parents: list[int] = []
            columns = [a.to_pylist() for a in args]
            for i, row in enumerate(zip(*columns, strict=True)):
                try:
                    got = list(fn(*row))
                except Exception as exc:  # a user's function: its failure is the row's error
                    ctx.error(i, f"Table function {name.upper()} failed: {exc}")
                    continue
                values += got
                parents += [i] * len(got)
            return pa.array(values, out.to_arrow()), np.array(parents, np.int64)

        table(name, resolve, description=description or fn.__doc__ or "")(evaluate)
        return fn

    return register


# -- built-ins --------------------------------------------------------------------------------


def _one_collection(name: str) -> Resolver:
    def resolve(types: Sequence[SqlType]) -> SqlType:
        if len(types) != 1 or types[0].name != "ARRAY" or types[0].element is None:
            shown = ", ".join(str(t) for t in types)
            raise FunctionTypeError(
                f"Function '{name}' does not accept parameters ({shown}). It takes one ARRAY."
            )
        element = types[0].element
        return element if name == "EXPLODE" else T.array(element)

    return resolve


@table("EXPLODE", _one_collection("EXPLODE"))
def _explode(
    ctx: EvalContext, args: Sequence[pa.Array], types: Sequence[SqlType], out: SqlType
) -> tuple[pa.Array, np.ndarray]:
    """Each element of an array as a row of its own (a NULL or empty array gives none)."""
    arr = args[0]
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    values = pc.list_flatten(arr)
    parents = np.asarray(pc.list_parent_indices(arr).to_numpy(zero_copy_only=False), np.int64)
    return values.cast(out.to_arrow()), parents


@table("CUBE_EXPLODE", _one_collection("CUBE_EXPLODE"))
def _cube_explode(
    ctx: EvalContext, args: Sequence[pa.Array], types: Sequence[SqlType], out: SqlType
) -> tuple[pa.Array, np.ndarray]:
    """Every combination of the array's elements with some replaced by NULL (all 2^n)."""
    values: list[list[object]] = []
    parents: list[int] = []
    for i, row in enumerate(args[0].to_pylist()):
        if row is None:
            continue
        seen: list[list[object]] = []  # a NULL element kept or not gives the same row once
        for keep in itertools.product((False, True), repeat=len(row)):
            combo = [v if k else None for v, k in zip(row, keep, strict=True)]
            if combo not in seen:
                seen.append(combo)
        values += seen
        parents += [i] * len(seen)
    return pa.array(values, out.to_arrow()), np.array(parents, np.int64)

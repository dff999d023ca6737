"""Scalar functions: a registry of vectorized implementations over Arrow arrays.

A function declares how its return type follows from its argument types (`resolve`, which
raises FunctionTypeError when the arguments do not fit) and computes a whole column at once
(`evaluate`). SQL NULL in gives NULL out unless the function says otherwise. A row whose
value cannot be computed (bad input for that row) becomes NULL, and the row's error is
reported through `EvalContext.error`, which sends it to the processing log; the query goes on.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from hispeed.errors import HispeedError
from hispeed.sql.types import SqlType


class FunctionTypeError(HispeedError):
    """Arguments that a function does not accept; says what it accepts."""


@dataclass
class EvalContext:
    """What a function may use while computing one batch."""

    #: (row index in the batch, message) for rows that could not be computed
    errors: list[tuple[int, str]] = field(default_factory=list)
    #: a shared sub-expression's last result in this context, by its evaluator: (the batch,
    #: the result, the errors its rows gave), so that it is computed once per batch
    shared: dict[int, tuple[Any, Any, list[tuple[int, str]]]] = field(default_factory=dict)

    def error(self, row: int, message: str) -> None:
        self.errors.append((row, message))


Resolver = Callable[[Sequence[SqlType]], SqlType]
Evaluator = Callable[[EvalContext, Sequence[pa.Array], Sequence[SqlType], SqlType], pa.Array]


@dataclass(frozen=True)
class ScalarFunction:
    name: str
    resolve: Resolver
    evaluate: Evaluator
    description: str = ""
    #: True when NULL arguments do not simply give NULL (COALESCE, IFNULL, CONCAT...)
    handles_nulls: bool = False
    #: False for functions whose result changes between calls (RANDOM, UNIX_TIMESTAMP())
    deterministic: bool = True


SCALAR_FUNCTIONS: dict[str, ScalarFunction] = {}


def scalar(
    name: str,
    resolve: Resolver,
    *,
    aliases: Sequence[str] = (),
    description: str = "",
    handles_nulls: bool = False,
    deterministic: bool = True,
) -> Callable[[Evaluator], Evaluator]:
    """Register a scalar function under `name` (and `aliases`), case-insensitively."""

    def register(evaluate: Evaluator) -> Evaluator:
        doc = description or (evaluate.__doc__ or "")
        fn = ScalarFunction(name.upper(), resolve, evaluate, doc, handles_nulls, deterministic)
        for n in (name, *aliases):
            if n.upper() in SCALAR_FUNCTIONS:
                raise AssertionError(f"scalar function {n.upper()} registered twice")
            SCALAR_FUNCTIONS[n.upper()] = fn
        return evaluate

    return register


def lookup(name: str) -> ScalarFunction | None:
    """The scalar function of that name (any case), or None."""
    return SCALAR_FUNCTIONS.get(name.upper())


def rowwise(
    ctx: EvalContext,
    args: Sequence[pa.Array],
    return_type: SqlType,
    fn: Callable[..., Any],
    *,
    skip_nulls: bool = True,
    label: str = "",
) -> pa.Array:
    """Apply a Python function row by row: the slow path, for what Arrow compute cannot do.

    With skip_nulls, a row with any NULL argument gives NULL without calling `fn`. An
    exception in `fn` makes that row NULL and reports it through `ctx`.
    """
    columns = [a.to_pylist() for a in args]
    n = len(args[0]) if args else 0
    out: list[Any] = []
    for i in range(n):
        row = [c[i] for c in columns]
        if skip_nulls and any(v is None for v in row):
            out.append(None)
            continue
        try:
            out.append(fn(*row))
        except Exception as e:  # one bad row must not stop the query
            ctx.error(i, f"{label}: {e}" if label else f"{type(e).__name__}: {e}")
            out.append(None)
    return pa.array(out, return_type.to_arrow())


#: the functions ksqlDB declares with a name that is not all lower case (their
#: @UdfDescription/@UdafDescription/@UdtfDescription names); its resolution errors name a
#: function as declared ("Function 'COALESCE' ...", "Function 'substring' ...")
_DECLARED = {
    n.upper(): n
    for n in (
        "ARRAY_CONTAINS",
        "ARRAY_JOIN",
        "ARRAY_LENGTH",
        "AS_MAP",
        "ATTR",
        "Abs",
        "COUNT",
        "COUNT_DISTINCT",
        "Ceil",
        "Chr",
        "EARLIEST_BY_OFFSET",
        "ENTRIES",
        "Floor",
        "GENERATE_SERIES",
        "IFNULL",
        "IS_JSON_STRING",
        "JSON_ARRAY_CONTAINS",
        "JSON_ARRAY_LENGTH",
        "JSON_CONCAT",
        "JSON_ITEMS",
        "JSON_KEYS",
        "JSON_RECORDS",
        "LATEST_BY_OFFSET",
        "LPad",
        "MAX",
        "MIN",
        "RPad",
        "Round",
        "STDDEV_SAMP",
        "STDDEV_SAMPLE",
        "SUM",
        "TOPK",
        "TOPKDISTINCT",
        "TO_JSON_STRING",
        "UUID",
        "AS_VALUE",
        "COALESCE",
        "NULLIF",
    )
}


def declared_name(name: str) -> str:
    """A function's name as ksqlDB declares it, for its messages."""
    return _DECLARED.get(name.upper(), name.lower())

"""The decorators that register Python functions in SQL: `udf` (scalar functions), `udtf` (table
functions) and `udaf` (aggregates, built in `aggregate.py`), and `unregister`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar, Unpack, overload

import numpy as np
import pyarrow as pa

from hispeed.functions import aggregates, tables
from hispeed.functions.overloads import Signature, choose
from hispeed.functions.registry import SCALAR_FUNCTIONS, EvalContext, ScalarFunction
from hispeed.functions.udf.aggregate import AGG_IMPLS, register_aggregate
from hispeed.functions.udf.annotations import (
    AggregateOptions,
    Options,
    ScalarOptions,
    doc_of,
    params_of,
    returns_of,
    returns_text,
)
from hispeed.functions.udf.calls import Call, Impl, row_calls, row_rows, vector_rows, vectors
from hispeed.functions.udf.catalog import USER_FUNCTIONS, FunctionInfo, Overload, UdfError, claim
from hispeed.sql.types import SqlType

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)


def unregister(name: str) -> None:
    """Take the user function `name` out of every registry (tests reload modules)."""
    key = name.upper()
    info = USER_FUNCTIONS.pop(key, None)
    if info is None:
        return
    if info.kind == "SCALAR":
        SCALAR_FUNCTIONS.pop(key, None)
    elif info.kind == "AGGREGATE":
        aggregates.AGGREGATES.pop(key, None)
    else:
        tables.TABLE_FUNCTIONS.pop(key, None)
    _IMPLS.pop(key, None)
    AGG_IMPLS.pop(key, None)


# -- scalar functions ---------------------------------------------------------------------------


_IMPLS: dict[str, list[tuple[Signature, Impl]]] = {}


def _add_overload(
    info: FunctionInfo, sig: Signature, impl: Impl, shown: Overload
) -> list[Signature]:
    """Add (or replace, for the same parameter types) an overload; returns all signatures."""
    impls = _IMPLS.setdefault(info.name, [])
    for i, (old, _) in enumerate(impls):
        if old.params == sig.params and old.variadic == sig.variadic:
            impls[i] = (sig, impl)
            info.overloads[i] = shown
            break
    else:
        impls.append((sig, impl))
        info.overloads.append(shown)
    return [s for s, _ in impls]


def _enter(
    fn: Callable[..., Any], kind: str, options: Options
) -> tuple[str, list[Signature], list[tuple[Signature, Impl]]]:
    """Register `fn` as an overload of a scalar or table function: (its name, every
    signature of that name, and their implementations, in the same order)."""
    key = (options.get("name") or fn.__name__).upper()
    what = f"{'table function' if kind == 'TABLE' else 'function'} {key}"
    vectorized = options.get("vectorized", False)
    p = params_of(fn, 0, options.get("params"), what, vectorized=vectorized)
    if kind == "TABLE" and not p.types:
        raise UdfError(f"{what} needs at least one parameter: its rows come from each input row")
    ret = returns_of(fn, options.get("returns"), what, rows=kind == "TABLE")
    info = claim(key, kind)
    info.description = options.get("description") or info.description or doc_of(fn)
    info.category = options.get("category", "USER")
    info.path = getattr(fn, "__module__", "")
    sig = Signature(p.types, ret, p.variadic)
    shown = Overload(p.types, p.names, p.variadic, returns_text(ret), doc_of(fn))
    impl = Impl(fn, p, vectorized, options.get("call_on_null", False))
    signatures = _add_overload(info, sig, impl, shown)
    return key, signatures, list(_IMPLS[key])


def _register_scalar(fn: Callable[..., Any], options: ScalarOptions) -> None:
    key, signatures, impls = _enter(fn, "SCALAR", options)

    def resolve(arg_types: Sequence[SqlType]) -> SqlType:
        return choose(key, signatures, arg_types, lead=False).returns

    def evaluate(
        ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], out: SqlType
    ) -> pa.Array:
        match = choose(key, signatures, arg_types)
        impl = impls[match.index][1]
        call = Call.of(args, arg_types, match)
        if impl.vectorized:
            return vectors(ctx, "Function", key, impl, call, out)
        return row_calls(ctx, key, impl, call, out)

    SCALAR_FUNCTIONS[key] = ScalarFunction(
        key,
        resolve,
        evaluate,
        USER_FUNCTIONS[key].description,
        handles_nulls=True,
        deterministic=options.get("deterministic", True),
    )


@overload
def udf(fn: F, /) -> F: ...


@overload
def udf(**options: Unpack[ScalarOptions]) -> Callable[[F], F]: ...


def udf(fn: Callable[..., Any] | None = None, /, **options: Unpack[ScalarOptions]) -> Any:
    """Register a Python function as a SQL scalar function (an overload, if the name exists).

    Options: `name` (default: the function's name, upper-cased); `params` and `returns`
    declare SQL types instead of reading the annotations (`returns` may also be a callable
    from the argument types to the result type); `description` (default: the docstring);
    `vectorized` functions take and return whole columns; `call_on_null=True` passes NULL
    arguments in as None; `deterministic=False` for functions whose result changes between
    calls with the same arguments; `category` for SHOW FUNCTIONS. The function is returned
    unchanged.
    """

    def register(f: F) -> F:
        _register_scalar(f, options)
        return f

    return register(fn) if fn is not None else register


# -- table functions ----------------------------------------------------------------------------


def _register_table(fn: Callable[..., Any], options: Options) -> None:
    key, signatures, impls = _enter(fn, "TABLE", options)

    def resolve(arg_types: Sequence[SqlType]) -> SqlType:
        return choose(key, signatures, arg_types).returns

    def evaluate(
        ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], out: SqlType
    ) -> tuple[pa.Array, np.ndarray]:
        match = choose(key, signatures, arg_types)
        impl = impls[match.index][1]
        call = Call.of(args, arg_types, match)
        if impl.vectorized:
            return vector_rows(ctx, key, impl, call, out)
        return row_rows(ctx, key, impl, call, out)

    description = USER_FUNCTIONS[key].description
    tables.TABLE_FUNCTIONS[key] = tables.TableFunction(key, resolve, evaluate, description)


@overload
def udtf(fn: F, /) -> F: ...


@overload
def udtf(**options: Unpack[Options]) -> Callable[[F], F]: ...


def udtf(fn: Callable[..., Any] | None = None, /, **options: Unpack[Options]) -> Any:
    """Register a Python function as a SQL table function: each input row gives the values
    the function returns (a list, or any iterable), each an output row.

    Annotate the result as `list[X]`, or declare `returns=` as the type of each value. A
    `vectorized` table function takes whole columns and returns one list per input row (a
    list-typed Arrow array or Polars Series). Other options as for `udf`.
    """

    def register(f: F) -> F:
        _register_table(f, options)
        return f

    return register(fn) if fn is not None else register


# -- aggregates ---------------------------------------------------------------------------------


@overload
def udaf(target: C, /) -> C: ...


@overload
def udaf(**options: Unpack[AggregateOptions]) -> Callable[[C], C]: ...


def udaf(target: Any = None, /, **options: Unpack[AggregateOptions]) -> Any:
    """Register a Python aggregate.

    Decorate a class: `init(self)` gives a group's first state, `add(self, state, *values)`
    the state after a record, optional `undo(self, state, *values)` takes a record back (so
    the aggregate works over a table), `merge(self, a, b)` combines two states (session
    windows) and `result(self, state)` the value to output (default: the state). Parameter
    types come from `add`'s annotations after `state`, the result type from `result`'s (or
    `init`'s) return annotation. The constructor's parameters are literal arguments written
    after the column arguments, as ksqlDB's UDAF factory arguments: `TOP(x, 3)`. States must
    be picklable (they are checkpointed); a method may change a state in place.

    With `vectorized=True`, decorate a function instead: it receives the group's values, one
    Arrow array (or Polars Series) per parameter, and returns the result; `params` and
    `returns` must be declared. It keeps every value of the group, so suits small groups.
    """

    def register(t: Any) -> Any:
        register_aggregate(t, options)
        return t

    return register(target) if target is not None else register

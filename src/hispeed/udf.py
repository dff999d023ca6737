"""Python functions in SQL: scalar functions, aggregates and table functions.

    import hispeed

    @hispeed.udf
    def celsius(fahrenheit: float) -> float:
        "Convert Fahrenheit to Celsius."
        return (fahrenheit - 32) * 5 / 9

    SELECT CELSIUS(temp) FROM readings EMIT CHANGES;

Types come from the annotations (int BIGINT, float DOUBLE, str STRING, bool BOOLEAN, bytes
BYTES, Decimal DECIMAL, datetime TIMESTAMP, date DATE, time TIME, list[X] ARRAY, dict[str, X]
MAP, a TypedDict STRUCT, `Annotated[int, "INT"]` a declared type, a TypeVar a generic type,
Any any type) or are declared: `@hispeed.udf(returns="DOUBLE", params=["INT"])`. Several
functions under one name are overloads; a call picks one by its argument types, as in ksqlDB.

A NULL argument skips the call (the result is NULL, a table function gives no rows, an
aggregate ignores the record) unless the parameter is Optional (`int | None`) or the function
says `call_on_null=True`. A call that raises makes that row NULL (no rows from a table
function) and sends the row, with the exception, to the processing log; the query goes on.

`vectorized=True` functions receive whole columns (pyarrow Arrays, or Polars Series when a
parameter is annotated `pl.Series`) and return one; they need declared types. When a
vectorized call raises, its rows are tried one by one so only the failing ones are logged.

`load_modules(["my_udfs"])` imports modules (or .py files) that register functions; the
`udf_modules` setting (HISPEED_UDF_MODULES, `[udf] modules` in hispeed.toml, `hispeed server
--udf-module`) and `Engine(udf_modules=...)` call it.
"""

from __future__ import annotations

import copy
import datetime
import decimal
import importlib
import importlib.util
import inspect
import logging
import sys
import types as pytypes
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, Unpack, overload

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.errors import HispeedError
from hispeed.functions import aggregates, tables
from hispeed.functions._overloads import (
    ANY,
    ANY_DECIMAL,
    Match,
    ReturnProvider,
    Signature,
    TypeParam,
    call_type,
    choose,
)
from hispeed.functions.registry import (
    SCALAR_FUNCTIONS,
    EvalContext,
    FunctionTypeError,
    ScalarFunction,
    lookup,
)
from hispeed.sql import types as T
from hispeed.sql.types import SqlType

__all__ = [
    "FunctionInfo",
    "Overload",
    "UdfError",
    "describe",
    "functions",
    "load_modules",
    "udaf",
    "udf",
    "udtf",
]

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])
C = TypeVar("C", bound=type)
#: a declared type: SQL text ("INT", "ARRAY<STRING>", "ANY", or a single capital letter for
#: a generic), or a SqlType
TypeText = str | SqlType


class UdfError(HispeedError):
    """A Python function that cannot be registered as declared; says what to change."""


# -- what SHOW FUNCTIONS and DESCRIBE FUNCTION show --------------------------------------------


@dataclass(frozen=True)
class Overload:
    """One registered signature of a user function, as DESCRIBE FUNCTION shows it."""

    params: tuple[SqlType, ...]
    names: tuple[str, ...]
    variadic: bool
    returns: str
    description: str
    #: an aggregate's trailing literal arguments (its constructor's), after `params`
    init_params: tuple[SqlType, ...] = ()
    init_names: tuple[str, ...] = ()
    init_variadic: bool = False

    def arguments(self) -> list[dict[str, Any]]:
        out = []
        last = len(self.params) - 1
        for i, (n, t) in enumerate(zip(self.names, self.params, strict=True)):
            out.append({"name": n, "type": str(t), "isVariadic": self.variadic and i == last})
        last = len(self.init_params) - 1
        for i, (n, t) in enumerate(zip(self.init_names, self.init_params, strict=True)):
            v = self.init_variadic and i == last
            out.append({"name": n, "type": str(t), "isVariadic": v, "literal": True})
        return out


@dataclass
class FunctionInfo:
    """A user function: its kind (SCALAR, AGGREGATE or TABLE), description and overloads."""

    name: str
    kind: str
    description: str = ""
    category: str = "USER"
    author: str = ""
    path: str = ""
    overloads: list[Overload] = field(default_factory=list)


USER_FUNCTIONS: dict[str, FunctionInfo] = {}


def functions() -> list[dict[str, str]]:
    """Every function, built-in and user, as SHOW FUNCTIONS lists them (sorted by name)."""
    lookup("ABS")  # loads the built-ins
    rows: dict[str, dict[str, str]] = {}
    for name in SCALAR_FUNCTIONS:
        rows[name] = {"name": name, "type": "SCALAR", "category": "BUILT-IN"}
    for name in aggregates.AGGREGATES:
        rows[name] = {"name": name, "type": "AGGREGATE", "category": "BUILT-IN"}
    for name in tables.TABLE_FUNCTIONS:
        rows[name] = {"name": name, "type": "TABLE", "category": "BUILT-IN"}
    for name, info in USER_FUNCTIONS.items():
        rows[name] = {"name": name, "type": info.kind, "category": info.category}
    return [rows[n] for n in sorted(rows)]


def describe(name: str) -> FunctionInfo:
    """What DESCRIBE FUNCTION shows of `name`, or a HispeedError when there is no such function."""
    key = name.upper()
    if key in USER_FUNCTIONS:
        return USER_FUNCTIONS[key]
    fn = lookup(key)
    if fn is not None:
        return FunctionInfo(key, "SCALAR", fn.description.strip(), "BUILT-IN")
    if key in aggregates.AGGREGATES:
        doc = aggregates.AGGREGATES[key].make.__doc__ or ""
        return FunctionInfo(key, "AGGREGATE", doc.strip(), "BUILT-IN")
    table = tables.lookup_table(key)
    if table is not None:
        return FunctionInfo(key, "TABLE", table.description.strip(), "BUILT-IN")
    raise HispeedError(f"Can't find any functions with the name '{key}'")


def _claim(name: str, kind: str) -> FunctionInfo:
    """The registry entry for a user function `name` of `kind`, refusing built-in names."""
    key = name.upper()
    info = USER_FUNCTIONS.get(key)
    if info is not None:
        if info.kind != kind:
            raise UdfError(
                f"{key} is already a {info.kind.lower()} function; "
                f"a {kind.lower()} function needs another name"
            )
        return info
    lookup("ABS")
    if key in SCALAR_FUNCTIONS or key in aggregates.AGGREGATES or key in tables.TABLE_FUNCTIONS:
        raise UdfError(f"{key} is a built-in function: give the Python function another name")
    info = FunctionInfo(key, kind)
    USER_FUNCTIONS[key] = info
    return info


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
    _AGG_IMPLS.pop(key, None)


# -- types from annotations and declarations ---------------------------------------------------

_PYTHON_TYPES: dict[Any, SqlType] = {
    bool: T.BOOLEAN,
    int: T.BIGINT,
    float: T.DOUBLE,
    str: T.STRING,
    bytes: T.BYTES,
    decimal.Decimal: ANY_DECIMAL,
    datetime.datetime: T.TIMESTAMP,
    datetime.date: T.DATE,
    datetime.time: T.TIME,
}
_LISTS = {list, tuple, Sequence, Iterable, typing.Iterator, typing.Generator, set, frozenset}
_MAPS = {dict, Mapping}


def _unwrap_optional(ann: Any) -> tuple[Any, bool]:
    """(the annotation without `| None`, whether None was allowed)."""
    origin = typing.get_origin(ann)
    if origin is typing.Union or origin is pytypes.UnionType:
        args = [a for a in typing.get_args(ann) if a is not type(None)]
        if len(args) == 1 and len(args) < len(typing.get_args(ann)):
            return args[0], True
    if ann is None or ann is type(None):
        return ann, True
    return ann, ann is Any or ann is object


def sql_type(ann: Any, where: str = "a parameter") -> SqlType:
    """The SQL type of a Python annotation (see the module doc), or a UdfError."""
    ann, _ = _unwrap_optional(ann)
    if typing.get_origin(ann) is typing.Annotated:
        for meta in typing.get_args(ann)[1:]:
            if isinstance(meta, (str, SqlType)):
                return declared_type(meta)
        ann = typing.get_args(ann)[0]
    if ann in _PYTHON_TYPES:
        return _PYTHON_TYPES[ann]
    if ann is Any or ann is object:
        return ANY
    if isinstance(ann, TypeVar):
        return TypeParam(ann.__name__)
    if isinstance(ann, SqlType):
        return ann
    origin = typing.get_origin(ann)
    args = typing.get_args(ann)
    if origin is not None:
        origin = getattr(origin, "__origin__", origin)
        if origin in _LISTS or (isinstance(origin, type) and issubclass(origin, Sequence)):
            if not args:
                raise UdfError(f"{where}: say what {origin.__name__} holds, as list[int]")
            return T.array(sql_type(args[0], where))
        if origin in _MAPS or (isinstance(origin, type) and issubclass(origin, Mapping)):
            if len(args) != 2:
                raise UdfError(f"{where}: say what the dict holds, as dict[str, int]")
            return T.map_(sql_type(args[0], where), sql_type(args[1], where))
    if typing.is_typeddict(ann):
        hints = typing.get_type_hints(ann)
        return T.struct([(n, sql_type(h, where)) for n, h in hints.items()])
    raise UdfError(
        f"{where}: no SQL type for the annotation {ann!r}; annotate with int, float, str, "
        "bool, bytes, Decimal, datetime, date, time, list[...], dict[str, ...], a TypedDict, "
        "or declare the types (params=[...], returns=...)"
    )


def declared_type(text: TypeText) -> SqlType:
    """A declared type: SQL text, ANY, a generic's single capital letter, or a SqlType."""
    if isinstance(text, SqlType):
        return text
    word = text.strip()
    if word.upper() == "ANY":
        return ANY
    if len(word) == 1 and word.isalpha() and word.isupper():
        return TypeParam(word)
    if word.upper() == "DECIMAL":
        return ANY_DECIMAL
    from hispeed.sql.parser import parse_type

    try:
        return parse_type(word)
    except HispeedError as e:
        raise UdfError(f"declared type {text!r}: {e}") from None


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    try:
        return typing.get_type_hints(fn, include_extras=True)
    except Exception:  # names only a type checker sees (TYPE_CHECKING imports)
        return dict(getattr(fn, "__annotations__", {}))


def _is_polars(ann: Any) -> bool:
    text = ann if isinstance(ann, str) else getattr(ann, "__module__", "") + "." + repr(ann)
    return "polars" in text or (isinstance(ann, str) and "Series" in ann)


@dataclass(frozen=True)
class _Params:
    """A Python callable's SQL parameters (after the leading ones the caller supplies)."""

    types: tuple[SqlType, ...]
    names: tuple[str, ...]
    nullable: tuple[bool, ...]
    variadic: bool
    polars: bool


def _params_of(
    fn: Callable[..., Any],
    skip: int,
    declared: Sequence[TypeText] | None,
    what: str,
    *,
    vectorized: bool = False,
) -> _Params:
    sig = inspect.signature(fn)
    hints = _hints(fn)
    params = list(sig.parameters.values())[skip:]
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    usable = [p for p in params if p.kind in kinds or p.kind is inspect.Parameter.VAR_POSITIONAL]
    variadic = bool(usable) and usable[-1].kind is inspect.Parameter.VAR_POSITIONAL
    if declared is not None and len(declared) != len(usable):
        raise UdfError(
            f"{what} declares {len(declared)} parameter types for {len(usable)} parameters"
        )
    types: list[SqlType] = []
    nullable: list[bool] = []
    polars = False
    for i, p in enumerate(usable):
        ann = hints.get(p.name, p.annotation)
        polars = polars or _is_polars(ann)
        if declared is not None:
            types.append(declared_type(declared[i]))
            nullable.append(_unwrap_optional(ann)[1] if ann is not p.empty else False)
            continue
        if vectorized:
            raise UdfError(f"{what} is vectorized: declare its parameter types (params=[...])")
        if ann is p.empty:
            raise UdfError(f"{what}: parameter {p.name!r} needs a type annotation (or params=)")
        types.append(sql_type(ann, f"{what}, parameter {p.name!r}"))
        nullable.append(_unwrap_optional(ann)[1])
    return _Params(tuple(types), tuple(p.name for p in usable), tuple(nullable), variadic, polars)


def _returns_of(
    fn: Callable[..., Any], declared: TypeText | ReturnProvider | None, what: str, *, rows: bool
) -> SqlType | ReturnProvider:
    """The declared or annotated result type; `rows`: a table function's (each row's type)."""
    if declared is not None:
        if isinstance(declared, (str, SqlType)):
            return _check_result(declared_type(declared), what)
        provider = declared

        def provide(arg_types: Sequence[SqlType]) -> SqlType:
            got = provider(arg_types)
            return declared_type(got) if isinstance(got, str) else got

        return provide
    ann = _hints(fn).get("return", inspect.signature(fn).return_annotation)
    if ann is inspect.Signature.empty:
        raise UdfError(f"{what} needs a return annotation (or returns=)")
    t = sql_type(ann, f"{what}, result")
    if rows:
        if t.name != "ARRAY" or t.element is None:
            raise UdfError(f"{what} must return a list of its rows' values, as list[str]")
        t = t.element
    return _check_result(t, what)


def _check_result(t: SqlType, what: str) -> SqlType:
    if isinstance(t, TypeParam) and t.wildcard:
        raise UdfError(f"{what}: a result of ANY type must be declared (returns=...)")
    probe = t
    while probe.element is not None:
        probe = probe.element
    if probe.name == "DECIMAL" and probe.precision is None:
        raise UdfError(f"{what}: a DECIMAL result needs its precision: returns='DECIMAL(p, s)'")
    return t


def _returns_text(returns: SqlType | ReturnProvider) -> str:
    return str(returns) if isinstance(returns, SqlType) else "(from the argument types)"


def _doc(obj: Any) -> str:
    return inspect.getdoc(obj) or ""


# -- values between Arrow and Python ------------------------------------------------------------


def _has_map(t: SqlType) -> bool:
    if t.name == "MAP":
        return True
    inner = [x for x in (t.element, t.key) if x is not None] + [f for _, f in t.fields]
    return any(_has_map(x) for x in inner)


def _python(value: Any, t: SqlType) -> Any:
    """An Arrow value as Python: MAP values become dicts (Arrow gives lists of pairs)."""
    if value is None:
        return None
    if t.name == "MAP" and t.element is not None:
        pairs = value.items() if isinstance(value, dict) else value
        return {k: _python(v, t.element) for k, v in pairs}
    if t.name == "ARRAY" and t.element is not None:
        return [_python(v, t.element) for v in value]
    if t.name == "STRUCT":
        types = dict(t.fields)
        return {k: _python(v, types[k]) if k in types else v for k, v in value.items()}
    return value


def _column(arr: pa.Array | pa.ChunkedArray, t: SqlType) -> list[Any]:
    values = arr.to_pylist()
    return [_python(v, t) for v in values] if _has_map(t) else values


def _arrow(ctx: EvalContext, name: str, values: list[Any], t: SqlType, rows: list[int]) -> pa.Array:
    """Python results as an Arrow column; a value that does not fit `t` is NULL and logged."""
    target = t.to_arrow()
    try:
        return pa.array(values, target)
    except (pa.ArrowException, TypeError, ValueError, OverflowError):
        return _arrow_by_value(ctx, name, values, t, rows)


def _arrow_by_value(
    ctx: EvalContext, name: str, values: list[Any], t: SqlType, rows: list[int]
) -> pa.Array:
    """`_arrow` one value at a time, to find the values that do not fit."""
    target = t.to_arrow()
    fixed: list[Any] = []
    for v, row in zip(values, rows, strict=True):
        try:
            pa.array([v], target)
            fixed.append(v)
        except (pa.ArrowException, TypeError, ValueError, OverflowError) as e:
            ctx.error(row, f"Function {name} returned {v!r}, which is not a {t}: {e}")
            fixed.append(None)
    return pa.array(fixed, target)


@dataclass(frozen=True)
class _Call:
    """A batch's argument columns, converted to the chosen overload's parameter types."""

    arrays: list[pa.Array]
    types: list[SqlType]

    @classmethod
    def of(cls, args: Sequence[pa.Array], arg_types: Sequence[SqlType], match: Match) -> _Call:
        arrays, types = [], []
        for arr, at, pt in zip(args, arg_types, match.params, strict=True):
            if isinstance(arr, pa.ChunkedArray):
                arr = arr.combine_chunks()
            want = call_type(pt, at)
            arrays.append(arr if want == at else pc.cast(arr, want.to_arrow()))
            types.append(want)
        return cls(arrays, types)

    def rows(self) -> int:
        return len(self.arrays[0]) if self.arrays else 1

    def columns(self) -> list[list[Any]]:
        """The arguments as Python values, column by column."""
        return [_column(a, t) for a, t in zip(self.arrays, self.types, strict=True)]


def _from_vector(result: Any, n: int, t: SqlType) -> pa.Array:
    """A vectorized function's result as an Arrow column of `n` rows of type `t`."""
    if hasattr(result, "to_arrow") and not isinstance(result, (pa.Array, pa.ChunkedArray)):
        result = result.to_arrow()  # a Polars Series
    if isinstance(result, pa.ChunkedArray):
        result = result.combine_chunks()
    if not isinstance(result, pa.Array):
        result = pa.array(result, t.to_arrow())
    if len(result) != n:
        raise UdfError(f"returned {len(result)} values for {n} rows")
    return result if result.type == t.to_arrow() else pc.cast(result, t.to_arrow())


def _to_polars(arrays: list[pa.Array]) -> list[Any]:
    import polars as pl

    return [pl.Series(arr) for arr in arrays]


def _failure(kind: str, name: str, exc: BaseException) -> str:
    return f"{kind} {name} failed: {type(exc).__name__}: {exc}"


# -- scalar functions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Impl:
    """One overload's Python callable and how to call it."""

    fn: Callable[..., Any]
    params: _Params
    vectorized: bool
    call_on_null: bool


_IMPLS: dict[str, list[tuple[Signature, _Impl]]] = {}


def _add_overload(
    info: FunctionInfo, sig: Signature, impl: _Impl, shown: Overload
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


class _Options(typing.TypedDict, total=False):
    """The options every decorator takes (see `udf`)."""

    name: str | None
    params: Sequence[TypeText] | None
    returns: TypeText | ReturnProvider | None
    description: str | None
    vectorized: bool
    call_on_null: bool
    category: str


class _ScalarOptions(_Options, total=False):
    deterministic: bool


class _AggregateOptions(_Options, total=False):
    init_params: Sequence[TypeText] | None


def _enter(
    fn: Callable[..., Any], kind: str, options: _Options
) -> tuple[str, list[Signature], list[tuple[Signature, _Impl]]]:
    """Register `fn` as an overload of a scalar or table function: (its name, every
    signature of that name, and their implementations, in the same order)."""
    key = (options.get("name") or fn.__name__).upper()
    what = f"{'table function' if kind == 'TABLE' else 'function'} {key}"
    vectorized = options.get("vectorized", False)
    p = _params_of(fn, 0, options.get("params"), what, vectorized=vectorized)
    if kind == "TABLE" and not p.types:
        raise UdfError(f"{what} needs at least one parameter: its rows come from each input row")
    ret = _returns_of(fn, options.get("returns"), what, rows=kind == "TABLE")
    info = _claim(key, kind)
    info.description = options.get("description") or info.description or _doc(fn)
    info.category = options.get("category", "USER")
    info.path = getattr(fn, "__module__", "")
    sig = Signature(p.types, ret, p.variadic)
    shown = Overload(p.types, p.names, p.variadic, _returns_text(ret), _doc(fn))
    impl = _Impl(fn, p, vectorized, options.get("call_on_null", False))
    signatures = _add_overload(info, sig, impl, shown)
    return key, signatures, list(_IMPLS[key])


def _register_scalar(fn: Callable[..., Any], options: _ScalarOptions) -> None:
    key, signatures, impls = _enter(fn, "SCALAR", options)

    def resolve(arg_types: Sequence[SqlType]) -> SqlType:
        return choose(key, signatures, arg_types, lead=False).returns

    def evaluate(
        ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], out: SqlType
    ) -> pa.Array:
        match = choose(key, signatures, arg_types)
        impl = impls[match.index][1]
        call = _Call.of(args, arg_types, match)
        if impl.vectorized:
            return _vectors(ctx, "Function", key, impl, call, out)
        return _row_calls(ctx, key, impl, call, out)

    SCALAR_FUNCTIONS[key] = ScalarFunction(
        key,
        resolve,
        evaluate,
        USER_FUNCTIONS[key].description,
        handles_nulls=True,
        deterministic=options.get("deterministic", True),
    )


def _skips(impl: _Impl, row: Sequence[Any]) -> bool:
    """Whether a row's NULLs skip the call (parameters that do not take None)."""
    if impl.call_on_null:
        return False
    nullable = impl.params.nullable
    return any(v is None and not nullable[min(i, len(nullable) - 1)] for i, v in enumerate(row))


def _row_calls(ctx: EvalContext, name: str, impl: _Impl, call: _Call, out: SqlType) -> pa.Array:
    columns = call.columns()
    n = call.rows()
    values: list[Any] = []
    for i in range(n):
        row = [c[i] for c in columns]
        if _skips(impl, row):
            values.append(None)
            continue
        try:
            values.append(impl.fn(*row))
        except Exception as e:  # a user's function: its failure is the row's error
            ctx.error(i, _failure("Function", name, e))
            values.append(None)
    return _arrow(ctx, name, values, out, list(range(n)))


def _vectors(
    ctx: EvalContext, kind: str, name: str, impl: _Impl, call: _Call, out: SqlType
) -> pa.Array:
    """Call a vectorized function on the whole batch; if it raises, row by row, so that only
    the failing rows are NULL and logged."""
    arrays = call.arrays

    def run(cols: list[pa.Array], rows: int) -> pa.Array:
        given = _to_polars(cols) if impl.params.polars else cols
        return _from_vector(impl.fn(*given), rows, out)

    try:
        return run(arrays, call.rows())
    except Exception:  # find the rows that fail: call once per row
        parts = []
        for i in range(call.rows()):
            try:
                parts.append(run([a.slice(i, 1) for a in arrays], 1))
            except Exception as e:  # a user's function: its failure is the row's error
                ctx.error(i, _failure(kind, name, e))
                parts.append(pa.nulls(1, out.to_arrow()))
        return pa.concat_arrays(parts) if parts else pa.nulls(0, out.to_arrow())


@overload
def udf(fn: F, /) -> F: ...


@overload
def udf(**options: Unpack[_ScalarOptions]) -> Callable[[F], F]: ...


def udf(fn: Callable[..., Any] | None = None, /, **options: Unpack[_ScalarOptions]) -> Any:
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


def _register_table(fn: Callable[..., Any], options: _Options) -> None:
    key, signatures, impls = _enter(fn, "TABLE", options)

    def resolve(arg_types: Sequence[SqlType]) -> SqlType:
        return choose(key, signatures, arg_types).returns

    def evaluate(
        ctx: EvalContext, args: Sequence[pa.Array], arg_types: Sequence[SqlType], out: SqlType
    ) -> tuple[pa.Array, np.ndarray]:
        match = choose(key, signatures, arg_types)
        impl = impls[match.index][1]
        call = _Call.of(args, arg_types, match)
        if impl.vectorized:
            return _vector_rows(ctx, key, impl, call, out)
        return _row_rows(ctx, key, impl, call, out)

    description = USER_FUNCTIONS[key].description
    tables.TABLE_FUNCTIONS[key] = tables.TableFunction(key, resolve, evaluate, description)


def _row_rows(
    ctx: EvalContext, name: str, impl: _Impl, call: _Call, out: SqlType
) -> tuple[pa.Array, np.ndarray]:
    columns = call.columns()
    values: list[Any] = []
    parents: list[int] = []
    for i in range(call.rows()):
        row = [c[i] for c in columns]
        if _skips(impl, row):
            continue
        try:
            got = list(impl.fn(*row) or ())
        except Exception as e:  # a user's function: its failure is the row's error
            ctx.error(i, _failure("Table function", name, e))
            continue
        values += got
        parents += [i] * len(got)
    return _arrow(ctx, name, values, out, parents), np.array(parents, np.int64)


def _vector_rows(
    ctx: EvalContext, name: str, impl: _Impl, call: _Call, out: SqlType
) -> tuple[pa.Array, np.ndarray]:
    got = _vectors(ctx, "Table function", name, impl, call, T.array(out))
    values = pc.list_flatten(got)
    parents = np.asarray(pc.list_parent_indices(got).to_numpy(zero_copy_only=False), np.int64)
    return values, parents


@overload
def udtf(fn: F, /) -> F: ...


@overload
def udtf(**options: Unpack[_Options]) -> Callable[[F], F]: ...


def udtf(fn: Callable[..., Any] | None = None, /, **options: Unpack[_Options]) -> Any:
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


class _Pending:
    """The state of a group before its first record, for aggregates with literal arguments:
    those arrive with the records, so the user's object and first state wait for one."""

    def __reduce__(self) -> str:
        return "_PENDING"

    def __repr__(self) -> str:
        return "_PENDING"


_PENDING = _Pending()
_IMMUTABLE = (int, float, str, bytes, bool, tuple, frozenset, decimal.Decimal, type(None))


def _own(state: Any) -> Any:
    """A copy of a mutable state: user code may change it in place, and the engine may still
    hold the old one (a result already emitted, a window's earlier state)."""
    return state if isinstance(state, _IMMUTABLE) else copy.deepcopy(state)


class _VectorAggregate:
    """A vectorized aggregate: its state is the group's rows; the function sees them as columns."""

    def __init__(self, fn: Callable[..., Any], types: list[SqlType], polars: bool) -> None:
        self.fn = fn
        self.types = types
        self.polars = polars

    def init(self) -> list[tuple[Any, ...]]:
        return []

    def add(self, state: list[tuple[Any, ...]], *row: Any) -> list[tuple[Any, ...]]:
        state.append(row)
        return state

    def undo(self, state: list[tuple[Any, ...]], *row: Any) -> list[tuple[Any, ...]]:
        if row in state:
            state.remove(row)
        return state

    def merge(self, a: list[tuple[Any, ...]], b: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
        return a + b

    def result(self, state: list[tuple[Any, ...]]) -> Any:
        cols = [pa.array([r[i] for r in state], t.to_arrow()) for i, t in enumerate(self.types)]
        got = self.fn(*(_to_polars(cols) if self.polars else cols))
        return got.as_py() if isinstance(got, pa.Scalar) else got


@dataclass(frozen=True)
class _AggImpl:
    """One aggregate overload: how to build its object, and what the object can do."""

    make: Callable[..., Any]
    columns: _Params
    init: _Params
    vectorized: bool
    call_on_null: bool
    undoable: bool
    mergeable: bool
    has_result: bool


class _UserAggregate(aggregates.Aggregate):
    """A Python aggregate behind the engine's Aggregate interface.

    Each record's arguments are the column arguments followed by the literal ones (the user
    constructor's). Without literal arguments the user's object is built at once and states
    are the user's; with them, a state is (literal arguments, user state), so the object can
    be rebuilt from any state (after a restart), and a group starts as `_PENDING`. A failing
    method leaves the state as it was and is logged (aggregates have no per-record channel
    to the processing log).
    """

    def __init__(
        self, name: str, impl: _AggImpl, match: Match, arg_types: Sequence[SqlType]
    ) -> None:
        super().__init__(arg_types, [])
        self.name = name
        self.impl = impl
        self.returns = match.returns
        init = impl.init
        n_init = len(arg_types) - len(impl.columns.types) if init.variadic else len(init.types)
        self.columns = len(arg_types) - n_init
        self.value_args = len(arg_types)
        self.undoable = impl.undoable
        self.mergeable = impl.mergeable
        self.literal = n_init > 0
        #: the user's objects by their literal arguments (as text: literals may be lists)
        self.objects: dict[str, Any] = {}
        if impl.vectorized:
            types = [call_type(p, a) for p, a in zip(match.params, arg_types, strict=True)]
            self.vector_types = types[: self.columns]
        #: the argument types whose values need converting (Arrow gives MAPs as pairs)
        self.maps = [(i, t) for i, t in enumerate(arg_types[: self.columns]) if _has_map(t)]
        self.failures = 0

    def _object(self, literals: tuple[Any, ...]) -> Any:
        obj = self.objects.get(repr(literals))
        if obj is None:
            if self.impl.vectorized:
                fn = self.impl.make
                obj = _VectorAggregate(
                    lambda *cols: fn(*cols, *literals), self.vector_types, self.impl.columns.polars
                )
            else:
                obj = self.impl.make(*literals)
            self.objects[repr(literals)] = obj
        return obj

    def result_type(self) -> SqlType:
        return self.returns

    def init(self) -> Any:
        return _PENDING if self.literal else self._object(()).init()

    def _open(self, state: Any, literals: tuple[Any, ...]) -> tuple[Any, Any, tuple[Any, ...]]:
        """(the user object, a private copy of the user's state, the literal arguments)."""
        if self.literal:
            if state is _PENDING:
                obj = self._object(literals)
                return obj, obj.init(), literals
            literals, state = state
        return self._object(literals), _own(state), literals

    def _close(self, user: Any, literals: tuple[Any, ...]) -> Any:
        return (literals, user) if self.literal else user

    def _skips(self, values: Sequence[Any]) -> bool:
        if self.impl.call_on_null:
            return False
        nullable = self.impl.columns.nullable
        return any(
            v is None and not nullable[min(i, len(nullable) - 1)] for i, v in enumerate(values)
        )

    def _apply(self, method: str, state: Any, args: Sequence[Any]) -> Any:
        obj, user, literals = self._open(state, tuple(args[self.columns :]))
        values = list(args[: self.columns])
        for i, t in self.maps:
            values[i] = _python(values[i], t)
        if not self._skips(values):
            try:
                user = getattr(obj, method)(user, *values)
            except Exception as e:  # a user's aggregate must not stop the query
                self.failures += 1
                log.warning("%s; the record is left out", _failure("Aggregate", self.name, e))
        return self._close(user, literals)

    def add(self, state: Any, args: Sequence[Any]) -> Any:
        return self._apply("add", state, args)

    def undo(self, state: Any, args: Sequence[Any]) -> Any:
        return self._apply("undo", state, args)

    def merge(self, earlier: Any, later: Any) -> Any:
        if earlier is _PENDING:
            return later
        if later is _PENDING:
            return earlier
        obj, a, literals = self._open(earlier, ())
        _, b, _ = self._open(later, ())
        return self._close(obj.merge(a, b), literals)

    def result(self, state: Any) -> Any:
        if state is _PENDING:
            return None
        obj, user, _ = self._open(state, ())
        if not self.impl.has_result:
            return user
        try:
            return _own(obj.result(user))
        except Exception as e:  # a user's aggregate must not stop the query
            self.failures += 1
            log.warning("%s; its result is NULL", _failure("Aggregate", self.name, e))
            return None


@dataclass(frozen=True)
class _AggSignature:
    """An aggregate's column parameters followed by its literal (constructor) parameters."""

    columns: Signature
    init: Signature

    def flat(self, count: int) -> Signature | None:
        """The whole signature of a call with `count` arguments, the literal ones trailing."""
        cols, init = self.columns, self.init
        if init.variadic:  # the column arguments are then fixed in number
            n_init = count - len(cols.params)
        else:
            n_init = len(init.params)
        col_types = cols.expand(count - n_init)
        init_types = init.expand(n_init)
        if col_types is None or init_types is None:
            return None
        return Signature(tuple(col_types + init_types), cols.returns)


_AGG_IMPLS: dict[str, list[tuple[_AggSignature, _AggImpl, Overload]]] = {}


def _choose_aggregate(name: str, arg_types: Sequence[SqlType]) -> tuple[Match, _AggImpl]:
    """The overload for a call of `name`; its literal arguments are the trailing ones."""
    entries = _AGG_IMPLS[name]
    flat = [(e[0].flat(len(arg_types)), e[1]) for e in entries]
    usable = [(f, impl) for f, impl in flat if f is not None]
    try:
        match = choose(name, [f for f, _ in usable], arg_types)
    except FunctionTypeError:
        shown = ", ".join(str(t) for t in arg_types)
        valid = "\n".join(f"{name}({_shown_args(e[2])})" for e in entries)
        raise FunctionTypeError(
            f"Function '{name}' does not accept parameters ({shown}).\n"
            f"Valid alternatives are:\n{valid}"
        ) from None
    return match, usable[match.index][1]


def _shown_args(o: Overload) -> str:
    return ", ".join(a["type"] + ("..." if a["isVariadic"] else "") for a in o.arguments())


def _register_aggregate(target: Any, options: _AggregateOptions) -> None:
    name, params, returns = options.get("name"), options.get("params"), options.get("returns")
    description, category = options.get("description"), options.get("category", "USER")
    call_on_null = options.get("call_on_null", False)
    vectorized = options.get("vectorized", False)
    key = (name or target.__name__).upper()
    what = f"aggregate {key}"
    if vectorized:
        if isinstance(target, type) or not callable(target):
            raise UdfError(f"{what}: a vectorized aggregate is a function of the group's columns")
        columns = _params_of(target, 0, params, what, vectorized=True)
        init = _params_of(lambda: None, 0, None, what)
        ret = _returns_of(target, returns, what, rows=False)
        impl = _AggImpl(target, columns, init, True, True, True, True, True)
    else:
        if not isinstance(target, type):
            raise UdfError(
                f"{what}: decorate a class with init and add methods (and optionally undo, "
                "merge and result), or a function with vectorized=True"
            )
        for method in ("init", "add"):
            if not callable(getattr(target, method, None)):
                raise UdfError(f"{what}: the class needs an {method}() method")
        columns = _params_of(getattr(target, "add"), 2, params, what)  # noqa: B009
        constructor = next(
            (vars(k)["__init__"] for k in target.__mro__[:-1] if "__init__" in vars(k)), None
        )
        if constructor is None:
            init = _params_of(lambda: None, 0, None, what)
        else:
            init = _params_of(constructor, 1, options.get("init_params"), f"{what} constructor")
        if columns.variadic and init.variadic:
            raise UdfError(f"{what}: add() and the constructor cannot both take *args")
        has_result = callable(getattr(target, "result", None))
        source = getattr(target, "result" if has_result else "init")
        ret = _returns_of(source, returns, what, rows=False)
        impl = _AggImpl(
            target,
            columns,
            init,
            False,
            call_on_null,
            callable(getattr(target, "undo", None)),
            callable(getattr(target, "merge", None)),
            has_result,
        )
    info = _claim(key, "AGGREGATE")
    info.description = description or info.description or _doc(target)
    info.category, info.path = category, getattr(target, "__module__", "")
    sig = _AggSignature(
        Signature(columns.types, ret, columns.variadic), Signature(init.types, ret, init.variadic)
    )
    shown = Overload(
        columns.types,
        columns.names,
        columns.variadic,
        _returns_text(ret),
        _doc(target),
        init.types,
        init.names,
        init.variadic,
    )
    entries = _AGG_IMPLS.setdefault(key, [])
    entries[:] = [e for e in entries if e[0] != sig] + [(sig, impl, shown)]
    info.overloads = [e[2] for e in entries]

    def make(arg_types: Sequence[SqlType], _literals: Sequence[Any]) -> aggregates.Aggregate:
        match, found = _choose_aggregate(key, arg_types)
        return _UserAggregate(key, found, match, arg_types)

    make.__doc__ = info.description
    aggregates.register(aggregates.AggregateSpec(key, make, (), 0, 1_000), replace=True)


@overload
def udaf(target: C, /) -> C: ...


@overload
def udaf(**options: Unpack[_AggregateOptions]) -> Callable[[C], C]: ...


def udaf(target: Any = None, /, **options: Unpack[_AggregateOptions]) -> Any:
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
        _register_aggregate(t, options)
        return t

    return register(target) if target is not None else register


# -- loading modules ----------------------------------------------------------------------------


def load_modules(names: Iterable[str]) -> list[str]:
    """Import each module (a dotted name, or a path to a .py file) so its functions register.

    Returns the module names imported. A module that cannot be imported raises a HispeedError
    naming it, with the reason.
    """
    loaded = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        try:
            if name.endswith(".py") or "/" in name or "\\" in name:
                loaded.append(_load_file(Path(name)))
            else:
                importlib.import_module(name)
                loaded.append(name)
        except HispeedError as e:
            raise HispeedError(f"UDF module {name!r}: {e}") from e
        except Exception as e:
            raise HispeedError(
                f"UDF module {name!r} could not be imported: {type(e).__name__}: {e}"
            ) from e
    return loaded


def _load_file(path: Path) -> str:
    if not path.is_file():
        raise HispeedError("no such file")
    module_name = f"hispeed_udf_{path.stem}"
    if module_name in sys.modules:
        return module_name
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise HispeedError("not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module_name


class _DecoratorModule(pytypes.ModuleType):
    """This module, callable as the `udf` decorator.

    `hispeed.udf` names both the decorator and this module, and importing the module rebinds
    the package's attribute to it; so the module itself decorates: `@hispeed.udf` and
    `@hispeed.udf(name=...)` work whichever of the two the attribute holds.
    """

    def __call__(self, fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:
        return udf(fn, **options) if fn is not None else udf(**options)


sys.modules[__name__].__class__ = _DecoratorModule

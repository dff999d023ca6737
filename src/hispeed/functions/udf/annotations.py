"""SQL types of Python functions: read from their annotations (int BIGINT, list[X] ARRAY, a
TypedDict STRUCT, a TypeVar a generic...) or declared as SQL text, and the options a decorator
declares them with."""

from __future__ import annotations

import datetime
import decimal
import inspect
import types as pytypes
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from hispeed.errors import HispeedError
from hispeed.functions.overloads import ANY, ANY_DECIMAL, ReturnProvider, TypeParam
from hispeed.functions.udf.catalog import UdfError
from hispeed.sql import types as T
from hispeed.sql.parser import parse_type
from hispeed.sql.types import SqlType

#: a declared type: SQL text ("INT", "ARRAY<STRING>", "ANY", or a single capital letter for
#: a generic), or a SqlType
TypeText = str | SqlType

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
class Params:
    """A Python callable's SQL parameters (after the leading ones the caller supplies)."""

    types: tuple[SqlType, ...]
    names: tuple[str, ...]
    nullable: tuple[bool, ...]
    variadic: bool
    polars: bool


def params_of(
    fn: Callable[..., Any],
    skip: int,
    declared: Sequence[TypeText] | None,
    what: str,
    *,
    vectorized: bool = False,
) -> Params:
    """The SQL parameters of `fn` after its first `skip` (declared, or from annotations)."""
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
    return Params(tuple(types), tuple(p.name for p in usable), tuple(nullable), variadic, polars)


def returns_of(
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


def returns_text(returns: SqlType | ReturnProvider) -> str:
    """The result type as DESCRIBE FUNCTION shows it."""
    return str(returns) if isinstance(returns, SqlType) else "(from the argument types)"


def doc_of(obj: Any) -> str:
    """The docstring of a function or class, dedented ('' without one)."""
    return inspect.getdoc(obj) or ""


class Options(typing.TypedDict, total=False):
    """The options every decorator takes (see `udf`)."""

    name: str | None
    params: Sequence[TypeText] | None
    returns: TypeText | ReturnProvider | None
    description: str | None
    vectorized: bool
    call_on_null: bool
    category: str


class ScalarOptions(Options, total=False):
    deterministic: bool


class AggregateOptions(Options, total=False):
    init_params: Sequence[TypeText] | None

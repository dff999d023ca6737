"""Python aggregates (`@udaf`): a user's class (or vectorized function) behind the engine's
Aggregate interface, its overloads, and their registration."""

from __future__ import annotations

import copy
import decimal
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from hispeed.functions import aggregates
from hispeed.functions.overloads import Match, Signature, call_type, choose
from hispeed.functions.registry import FunctionTypeError
from hispeed.functions.udf.annotations import (
    AggregateOptions,
    Params,
    doc_of,
    params_of,
    returns_of,
    returns_text,
)
from hispeed.functions.udf.calls import failure, has_map, to_polars, to_python
from hispeed.functions.udf.catalog import Overload, UdfError, claim
from hispeed.sql.types import SqlType

# the logger keeps the name it had when this code was hispeed/udf.py: logging settings name it
log = logging.getLogger("hispeed.udf")


class _Pending:
    """The state of a group before its first record, for aggregates with literal arguments:
    those arrive with the records, so the user's object and first state wait for one."""

    def __reduce__(self) -> str:
        return "PENDING"

    def __repr__(self) -> str:
        return "PENDING"


#: a group's state before its first record (see _Pending)
PENDING = _Pending()
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
        got = self.fn(*(to_polars(cols) if self.polars else cols))
        return got.as_py() if isinstance(got, pa.Scalar) else got


@dataclass(frozen=True)
class _AggImpl:
    """One aggregate overload: how to build its object, and what the object can do."""

    make: Callable[..., Any]
    columns: Params
    init: Params
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
    be rebuilt from any state (after a restart), and a group starts as `PENDING`. A failing
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
        self.maps = [(i, t) for i, t in enumerate(arg_types[: self.columns]) if has_map(t)]
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
        return PENDING if self.literal else self._object(()).init()

    def _open(self, state: Any, literals: tuple[Any, ...]) -> tuple[Any, Any, tuple[Any, ...]]:
        """(the user object, a private copy of the user's state, the literal arguments)."""
        if self.literal:
            if state is PENDING:
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
            values[i] = to_python(values[i], t)
        if not self._skips(values):
            try:
                user = getattr(obj, method)(user, *values)
            except Exception as e:  # a user's aggregate must not stop the query
                self.failures += 1
                log.warning("%s; the record is left out", failure("Aggregate", self.name, e))
        return self._close(user, literals)

    def add(self, state: Any, args: Sequence[Any]) -> Any:
        return self._apply("add", state, args)

    def undo(self, state: Any, args: Sequence[Any]) -> Any:
        return self._apply("undo", state, args)

    def merge(self, earlier: Any, later: Any) -> Any:
        if earlier is PENDING:
            return later
        if later is PENDING:
            return earlier
        obj, a, literals = self._open(earlier, ())
        _, b, _ = self._open(later, ())
        return self._close(obj.merge(a, b), literals)

    def result(self, state: Any) -> Any:
        if state is PENDING:
            return None
        obj, user, _ = self._open(state, ())
        if not self.impl.has_result:
            return user
        try:
            return _own(obj.result(user))
        except Exception as e:  # a user's aggregate must not stop the query
            self.failures += 1
            log.warning("%s; its result is NULL", failure("Aggregate", self.name, e))
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


AGG_IMPLS: dict[str, list[tuple[_AggSignature, _AggImpl, Overload]]] = {}


def _choose_aggregate(name: str, arg_types: Sequence[SqlType]) -> tuple[Match, _AggImpl]:
    """The overload for a call of `name`; its literal arguments are the trailing ones."""
    entries = AGG_IMPLS[name]
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


def register_aggregate(target: Any, options: AggregateOptions) -> None:
    """Register `target` (a class, or a vectorized function) as an aggregate."""
    name, params, returns = options.get("name"), options.get("params"), options.get("returns")
    description, category = options.get("description"), options.get("category", "USER")
    call_on_null = options.get("call_on_null", False)
    vectorized = options.get("vectorized", False)
    key = (name or target.__name__).upper()
    what = f"aggregate {key}"
    if vectorized:
        if isinstance(target, type) or not callable(target):
            raise UdfError(f"{what}: a vectorized aggregate is a function of the group's columns")
        columns = params_of(target, 0, params, what, vectorized=True)
        init = params_of(lambda: None, 0, None, what)
        ret = returns_of(target, returns, what, rows=False)
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
        columns = params_of(getattr(target, "add"), 2, params, what)  # noqa: B009
        constructor = next(
            (vars(k)["__init__"] for k in target.__mro__[:-1] if "__init__" in vars(k)), None
        )
        if constructor is None:
            init = params_of(lambda: None, 0, None, what)
        else:
            init = params_of(constructor, 1, options.get("init_params"), f"{what} constructor")
        if columns.variadic and init.variadic:
            raise UdfError(f"{what}: add() and the constructor cannot both take *args")
        has_result = callable(getattr(target, "result", None))
        source = getattr(target, "result" if has_result else "init")
        ret = returns_of(source, returns, what, rows=False)
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
    info = claim(key, "AGGREGATE")
    info.description = description or info.description or doc_of(target)
    info.category, info.path = category, getattr(target, "__module__", "")
    sig = _AggSignature(
        Signature(columns.types, ret, columns.variadic), Signature(init.types, ret, init.variadic)
    )
    shown = Overload(
        columns.types,
        columns.names,
        columns.variadic,
        returns_text(ret),
        doc_of(target),
        init.types,
        init.names,
        init.variadic,
    )
    entries = AGG_IMPLS.setdefault(key, [])
    entries[:] = [e for e in entries if e[0] != sig] + [(sig, impl, shown)]
    info.overloads = [e[2] for e in entries]

    def make(arg_types: Sequence[SqlType], _literals: Sequence[Any]) -> aggregates.Aggregate:
        match, found = _choose_aggregate(key, arg_types)
        return _UserAggregate(key, found, match, arg_types)

    make.__doc__ = info.description
    aggregates.register(aggregates.AggregateSpec(key, make, (), 0, 1_000), replace=True)

"""ksqlDB's test-only scalar functions, for the QTT conformance runner and nothing else.

Some query-validation cases call functions that ksqlDB's own test harness loads from its
test sources rather than from its built-ins. `register()` adds hispeed versions of them to
the scalar registry; only the conformance runner calls it, so users never see them.

| Function                      | Returns                                                     |
|-------------------------------|-------------------------------------------------------------|
| BAD_UDF(INT)                  | STRING; fails every row ("boom!")                           |
| BAD_UDF(BOOLEAN)              | INT 0; fails the rows whose argument is true                |
| BAD_UDF(STRING)               | STRING: NULL on every other call (the 1st, 3rd, ...), else  |
|                               | the argument                                                |
| WHENCONDITION(BOOLEAN, BOOL.) | the first argument; fails when the second is false          |
| WHENRESULT(INT, BOOLEAN)      | the first argument; fails when the second is false          |
| TEST_UDF(INT, STRING)         | 'doStuffIntString'                                          |
| TEST_UDF(BIGINT, STRING)      | 'doStuffLongString'                                         |
| TEST_UDF(BIGINT, BIGINT, STR.)| 'doStuffLongLongString'                                     |
| TEST_UDF(BIGINT...)           | 'doStuffLongVarargs'                                        |
| TEST_UDF(STRUCT<A STRING>)    | the struct's A                                              |
| TEST_UDF()                    | STRUCT<A STRING> {A: 'foo'}                                 |
| TOSTRUCT(STRING)              | STRUCT<A STRING> holding the argument as A                  |

These are Java methods in ksqlDB, so NULL arguments are passed in rather than short-cut to
NULL: a NULL for a STRING or STRUCT parameter is an ordinary value, while a NULL for a
Java primitive parameter (INT, BIGINT, BOOLEAN) fails the row. Overloads are chosen as
ksqlDB's UdfIndex does: exact parameter types first, then implicit widening
(INT < BIGINT < DECIMAL < DOUBLE); a fixed-arity overload before a variadic one.

A row that fails gives NULL and an `EvalContext.error` entry, like any other function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from hispeed.functions.registry import (
    SCALAR_FUNCTIONS,
    EvalContext,
    Evaluator,
    Resolver,
    lookup,
    scalar,
)
from hispeed.functions.signatures import reject, rows, widens_to
from hispeed.functions.udf.catalog import USER_FUNCTIONS
from hispeed.functions.udf.decorators import unregister as unregister_user_function
from hispeed.sql.types import BIGINT, BOOLEAN, INTEGER, STRING, SqlType, struct

Args = Sequence[pa.Array]
Types = Sequence[SqlType]

#: the STRUCT<A VARCHAR> that TEST_UDF takes and TEST_UDF() and TOSTRUCT return
STRUCT_A = struct([("A", STRING)])


class _PrimitiveNullError(Exception):
    """A NULL passed to a parameter that ksqlDB's Java method declares as a primitive."""

    def __init__(self, position: int, type_: SqlType) -> None:
        super().__init__(
            f"argument {position} is NULL, which its primitive {type_} parameter cannot take"
        )


def _require(values: Sequence[Any], types: Sequence[SqlType]) -> None:
    """Fail unless every argument for a primitive (non-STRING, non-STRUCT) parameter is set."""
    for i, (v, t) in enumerate(zip(values, types, strict=True), start=1):
        if v is None and t.name in ("BOOLEAN", "INTEGER", "BIGINT", "DOUBLE"):
            raise _PrimitiveNullError(i, t)


# --- overload resolution -------------------------------------------------------------------------


@dataclass(frozen=True)
class _Overload:
    params: tuple[SqlType, ...]
    returns: SqlType
    #: the last parameter repeats zero or more times
    variadic: bool = False

    def accepts(self, arg_types: Types, *, widen: bool) -> bool:
        if self.variadic:
            fixed = len(self.params) - 1
            if len(arg_types) < fixed:
                return False
            params = [*self.params[:fixed], *[self.params[-1]] * (len(arg_types) - fixed)]
        else:
            if len(arg_types) != len(self.params):
                return False
            params = list(self.params)
        return all(
            _param_accepts(p, t, widen=widen) for p, t in zip(params, arg_types, strict=True)
        )

    def param_types(self, count: int) -> list[SqlType]:
        """The parameter types of a call with `count` arguments."""
        if not self.variadic:
            return list(self.params)
        fixed = len(self.params) - 1
        return [*self.params[:fixed], *[self.params[-1]] * (count - fixed)]


def _param_accepts(param: SqlType, arg: SqlType, *, widen: bool) -> bool:
    if param.name == "STRUCT" and arg.name == "STRUCT":
        # ksqlDB: the same field names with exactly the same types (no casts inside a
        # struct); an empty struct on either side matches any struct
        if not param.fields or not arg.fields:
            return True
        fields = dict(arg.fields)
        return len(fields) == len(param.fields) and all(
            fields.get(name) == t for name, t in param.fields
        )
    if arg == param or (arg.name == param.name and arg.name != "DECIMAL"):
        return True
    return widen and widens_to(arg, param)


def _choose(name: str, overloads: Sequence[_Overload], arg_types: Types) -> _Overload:
    """The overload ksqlDB would call for `arg_types`, or a FunctionTypeError."""
    for widen in (False, True):
        matches = [o for o in overloads if o.accepts(arg_types, widen=widen)]
        fixed = [o for o in matches if not o.variadic]
        if fixed or matches:
            return (fixed or matches)[0]
    accepts = " or ".join(_show(o) for o in overloads)
    reject(name, accepts, arg_types)


def _show(o: _Overload) -> str:
    shown = [str(p) for p in o.params]
    if o.variadic:
        shown[-1] += "..."
    return "(" + ", ".join(shown) + ")"


def _resolver(name: str, overloads: Sequence[_Overload]) -> Resolver:
    def resolve(arg_types: Types) -> SqlType:
        return _choose(name, overloads, arg_types).returns

    return resolve


def _batch_rows(args: Args) -> int:
    # the registry's convention for a call without arguments (PI, RANDOM): one row
    return len(args[0]) if args else 1


# --- BAD_UDF -------------------------------------------------------------------------------------

_BAD_UDF = (
    _Overload((INTEGER,), STRING),
    _Overload((BOOLEAN,), INTEGER),
    _Overload((STRING,), STRING),
)


@dataclass
class _CallCounter:
    """How often BAD_UDF(STRING) has been called since register() last reset it.

    ksqlDB makes a fresh instance of a UDF for each query that uses it, and the STRING
    overload of BAD_UDF counts its calls on that instance. The runner calls register() once
    per case, which starts the count again, as each case's queries start it in ksqlDB.
    """

    calls: int = 0


_bad_udf_calls = _CallCounter()


def _bad_udf_throw(value: Any) -> str:
    raise RuntimeError("boom!")


def _bad_udf_might_throw(value: Any) -> int:
    _require([value], [BOOLEAN])
    if value:
        raise RuntimeError("You asked me to throw...")
    return 0


def _bad_udf_return_null(value: Any) -> str | None:
    call = _bad_udf_calls.calls
    _bad_udf_calls.calls += 1
    return None if call % 2 == 0 else value


def _bad_udf(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Fail or drop values on purpose, to test how queries handle failing functions."""
    chosen = _choose("BAD_UDF", _BAD_UDF, arg_types)
    fn: Callable[[Any], Any]
    if chosen.params[0] == INTEGER:
        fn = _bad_udf_throw
    elif chosen.params[0] == BOOLEAN:
        fn = _bad_udf_might_throw
    else:
        fn = _bad_udf_return_null
    return rows(ctx, "BAD_UDF", args, rt, fn, skip_nulls=False)


# --- WHENCONDITION, WHENRESULT -------------------------------------------------------------------


def _lazy_probe(name: str, value_type: SqlType, message: str) -> Evaluator:
    def evaluate(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
        def one(value: Any, should_be_evaluated: Any) -> Any:
            _require([value, should_be_evaluated], [value_type, BOOLEAN])
            if not should_be_evaluated:
                raise RuntimeError(message)
            return value

        return rows(ctx, name, args, rt, one, skip_nulls=False)

    evaluate.__doc__ = (
        f"Return the first argument; fail when the second is false ({name} tests that CASE "
        "evaluates only the branches it takes)."
    )
    return evaluate


_WHENCONDITION = (_Overload((BOOLEAN, BOOLEAN), BOOLEAN),)
_WHENRESULT = (_Overload((INTEGER, BOOLEAN), INTEGER),)


# --- TEST_UDF ------------------------------------------------------------------------------------

_TEST_UDF = (
    _Overload((INTEGER, STRING), STRING),
    _Overload((BIGINT, STRING), STRING),
    _Overload((BIGINT, BIGINT, STRING), STRING),
    _Overload((BIGINT,), STRING, variadic=True),
    _Overload((STRUCT_A,), STRING),
    _Overload((), STRUCT_A),
)

#: what each fixed-result overload returns: the name of ksqlDB's Java method
_METHOD_NAMES = {
    _TEST_UDF[0]: "doStuffIntString",
    _TEST_UDF[1]: "doStuffLongString",
    _TEST_UDF[2]: "doStuffLongLongString",
    _TEST_UDF[3]: "doStuffLongVarargs",
}


def _test_udf(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the name of the overload called, a struct's A, or the struct {A: 'foo'}."""
    chosen = _choose("TEST_UDF", _TEST_UDF, arg_types)
    if not chosen.params:
        return pa.array([{"A": "foo"}] * _batch_rows(args), rt.to_arrow())
    if chosen.params[0] == STRUCT_A:

        def field_a(value: Any) -> Any:
            if value is None:
                raise ValueError("argument 1 is NULL, so it has no field A")
            return value.get("A")

        return rows(ctx, "TEST_UDF", args, rt, field_a, skip_nulls=False)
    method = _METHOD_NAMES[chosen]
    params = chosen.param_types(len(arg_types))

    def method_name(*values: Any) -> str:
        _require(values, params)
        return method

    return rows(ctx, "TEST_UDF", args, rt, method_name, skip_nulls=False)


# --- TOSTRUCT ------------------------------------------------------------------------------------

_TOSTRUCT = (_Overload((STRING,), STRUCT_A),)


def _tostruct(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Wrap a string in a STRUCT<A STRING> (NULL gives a struct whose A is NULL)."""
    return pa.array([{"A": v} for v in args[0].to_pylist()], rt.to_arrow())


# --- registration --------------------------------------------------------------------------------

_FUNCTIONS: tuple[tuple[str, Sequence[_Overload], Evaluator, bool], ...] = (
    # (name, overloads, evaluate, deterministic)
    ("BAD_UDF", _BAD_UDF, _bad_udf, False),
    (
        "WHENCONDITION",
        _WHENCONDITION,
        _lazy_probe("WHENCONDITION", BOOLEAN, "When condition in case is not running lazily!"),
        True,
    ),
    (
        "WHENRESULT",
        _WHENRESULT,
        _lazy_probe("WHENRESULT", INTEGER, "Then expression in case is not running lazily!"),
        True,
    ),
    ("TEST_UDF", _TEST_UDF, _test_udf, True),
    ("TOSTRUCT", _TOSTRUCT, _tostruct, True),
)

NAMES = tuple(name for name, *_ in _FUNCTIONS)


def register() -> None:
    """Add ksqlDB's test-only scalar functions to the registry, and reset their state.

    Safe to call any number of times: a name already registered is left as it is. Each call
    starts BAD_UDF(STRING)'s call count again, so call it once per test case.
    """
    _bad_udf_calls.calls = 0
    from hispeed.testing import _qtt_udafs

    if not all(n in USER_FUNCTIONS for n in _qtt_udafs.NAMES):
        _qtt_udafs.register()
    for name, overloads, evaluate, deterministic in _FUNCTIONS:
        if lookup(name) is not None:  # lookup loads the built-ins first
            continue
        scalar(
            name,
            _resolver(name, overloads),
            handles_nulls=True,  # NULL arguments reach the Java method (see the module doc)
            deterministic=deterministic,
        )(evaluate)
    assert all(name in SCALAR_FUNCTIONS for name in NAMES)


def unregister() -> None:
    """Take this module's functions out of the registry again (for tests of the runner)."""
    for name, _, evaluate, _ in _FUNCTIONS:
        fn = SCALAR_FUNCTIONS.get(name)
        if fn is not None and fn.evaluate is evaluate:
            del SCALAR_FUNCTIONS[name]
    from hispeed.testing import _qtt_udafs

    for name in _qtt_udafs.NAMES:
        unregister_user_function(name)

"""ksqlDB's test-only aggregates and table functions, written with hispeed's decorators.

The conformance runner registers these (through `qtt_functions.register`) for the cases that
call them; users never see them. Each follows the semantics of the ksqlDB test class of the
same name: column arguments first, then the literal ones that ksqlDB passes to the UDAF's
factory method (here: the class's constructor).

| Function                            | Gives                                                      |
|-------------------------------------|------------------------------------------------------------|
| MULTI_ARG(BIGINT, STRING, INT lit,  | starting at the literal INT plus the literal strings'      |
|   STRING lit...)                    | lengths, adds each record's number and its string's length |
| FOUR_ARG(BIGINT, STRING, STRING,    | the same with three strings per record                     |
|   STRING, INT lit, STRING lit...)   |                                                            |
| VAR_ARG(BIGINT, STRING...)          | the sum of the numbers and the strings' lengths            |
| MID_VAR_ARG(BIGINT, STRING...,      | VAR_ARG's sum plus the two literals                        |
|   INT lit, INT lit)                 |                                                            |
| GENERIC_VAR_ARG(A, B, C...)         | ARRAY<A>: the first argument of each record whose          |
|                                     | arguments are all non-NULL                                 |
| OBJ_COL_ARG(INT, ANY...)            | ARRAY<INT>: the same, the others of any types              |
| TEST_UDAF(BIGINT / INT / DOUBLE)    | the sum (BIGINT for INT; undoable for BIGINT and INT)      |
| TEST_UDAF(STRING, STRING lit)       | the literal's length plus each string's length             |
| TEST_UDAF(STRUCT<A INT, B INT>)     | the struct of the sums of A and of B                       |
| TEST_UDTF(...)                      | each argument as Java's text, or the one argument itself   |
| THROWING_UDTF(BOOLEAN)              | the argument as one row; fails when it is true             |

A NULL for what ksqlDB's Java method takes as a primitive (int, long, double, boolean) fails
there; the aggregates leave such a record out, the table functions fail the row.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any, Generic, TypedDict, TypeVar

from hispeed.functions.overloads import ANY_DECIMAL
from hispeed.functions.signatures import java_string
from hispeed.functions.udf.decorators import udaf, udtf
from hispeed.sql import types as T

A = TypeVar("A")
B = TypeVar("B")
C = TypeVar("C")

Int = Annotated[int, "INT"]


def _length(text: str | None) -> int:
    return len(text) if text is not None else 0


# -- UDAFs ----------------------------------------------------------------------------------------


class _Summing:
    """A sum whose states merge by adding."""

    def merge(self, a: int, b: int) -> int:
        return a + b


class _FromLiterals(_Summing):
    """A sum that starts at its literal INT plus its literal strings' lengths."""

    def __init__(self, start: Int, *texts: str) -> None:
        self.start = start + sum(len(t) for t in texts)

    def init(self) -> int:
        return self.start


def register_aggregates() -> None:
    """Register the test UDAFs (again: a registration replaces the one before)."""

    @udaf(name="MULTI_ARG")
    class MultiArg(_FromLiterals):
        """Returns the sum of the provided longs and lengths of strings."""

        def add(self, total: int, number: int | None, text: str | None) -> int:
            return total + (number or 0) + _length(text)

    @udaf(name="FOUR_ARG")
    class FourArg(_FromLiterals):
        """Returns the sum of the provided longs and lengths of strings."""

        def add(
            self, total: int, number: int | None, a: str | None, b: str | None, c: str | None
        ) -> int:
            return total + (number or 0) + _length(a) + _length(b) + _length(c)

    @udaf(name="VAR_ARG")
    class VarArg(_Summing):
        """Returns the sum of the provided longs and lengths of strings."""

        def init(self) -> int:
            return 0

        def add(self, total: int, number: int | None, *texts: str | None) -> int:
            return total + (number or 0) + sum(_length(t) for t in texts)

    @udaf(name="MID_VAR_ARG")
    class MiddleVarArg(_Summing):
        """Returns the sum of the provided longs, lengths of strings, and initial arguments."""

        def __init__(self, first: Int, second: Int) -> None:
            self.constant = first + second

        def init(self) -> int:
            return 0

        def add(self, total: int, number: int | None, *texts: str | None) -> int:
            return total + (number or 0) + sum(_length(t) for t in texts)

        def result(self, total: int) -> int:
            return total + self.constant

    @udaf(name="GENERIC_VAR_ARG")
    class GenericVarArg(_NonNullFirsts[A]):
        """Returns an array of rows where all the given columns are non-null."""

        def add(self, kept: list[A], first: A | None, second: B | None, *rest: C | None) -> list[A]:
            return self.keep(kept, first, second, *rest)

    @udaf(name="OBJ_COL_ARG")
    class ObjVarColArg(_NonNullFirsts[Int]):
        """Returns an array of rows where all the given columns are non-null."""

        def init(self) -> list[Int]:
            return []

        def add(self, kept: list[Int], first: Int | None, *rest: Any) -> list[Int]:
            return self.keep(kept, first, *rest)

    _register_test_udaf()


class _NonNullFirsts(Generic[A]):
    """Keep each record's first argument when none of its arguments is NULL."""

    def init(self) -> list[A]:
        return []

    def keep(self, kept: list[A], first: A | None, *others: Any) -> list[A]:
        if first is not None and all(v is not None for v in others):
            kept.append(first)
        return kept

    def merge(self, a: list[A], b: list[A]) -> list[A]:
        return a + b


class _AB(TypedDict):
    A: Int
    B: Int


def _register_test_udaf() -> None:
    @udaf(name="TEST_UDAF", description="test_udaf")
    class SumLong(_Summing):
        """sums longs"""

        def init(self) -> int:
            return 0

        def add(self, total: int, value: int) -> int:
            return total + value

        def undo(self, total: int, value: int) -> int:
            return total - value

    @udaf(name="TEST_UDAF", params=["INT"])
    class SumInt(SumLong):
        """sums int"""

    @udaf(name="TEST_UDAF")
    class SumDouble:
        """sums double"""

        def init(self) -> float:
            return 0.0

        def add(self, total: float, value: float) -> float:
            return total + value

        def merge(self, a: float, b: float) -> float:
            return a + b

    @udaf(name="TEST_UDAF")
    class SumLengthString(_Summing):
        """sums the length of strings"""

        def __init__(self, initial: str) -> None:
            self.initial = len(initial)

        def init(self) -> int:
            return self.initial

        def add(self, total: int, text: str) -> int:
            return total + len(text)

    @udaf(name="TEST_UDAF")
    class SumStruct:
        """returns a struct with {SUM(in->A), SUM(in->B)}"""

        def init(self) -> _AB:
            return {"A": 0, "B": 0}

        def add(self, total: _AB, value: _AB) -> _AB:
            return {"A": total["A"] + value["A"], "B": total["B"] + value["B"]}

        def merge(self, a: _AB, b: _AB) -> _AB:
            return self.add(a, b)


# -- UDTFs ----------------------------------------------------------------------------------------

_STRUCT_A = T.struct([("A", T.STRING)])
_PRIMITIVES = ("INTEGER", "BIGINT", "DOUBLE", "BOOLEAN")
_SEVEN = ("INT", "BIGINT", "DOUBLE", "BOOLEAN", "STRING", ANY_DECIMAL, _STRUCT_A)


def _java(value: Any, type_name: str, position: int) -> str:
    """A value as Java's String.valueOf shows it; a NULL primitive fails, as in Java."""
    if value is None:
        if type_name in _PRIMITIVES or type_name == "INT":
            raise ValueError(f"argument {position} is NULL, which a Java primitive cannot take")
        return "null"
    if isinstance(value, dict):
        return "Struct{" + ",".join(f"{k}={v}" for k, v in value.items() if v is not None) + "}"
    if isinstance(value, Decimal):
        return str(value)
    return java_string(value)


def _texts(values: tuple[Any, ...]) -> list[str]:
    names = [t if isinstance(t, str) else t.name for t in _SEVEN]
    return [_java(v, n, i) for i, (v, n) in enumerate(zip(values, names, strict=True), 1)]


def _first(collection: Any) -> Any:
    """The first element of a list, or the first value of a map."""
    if isinstance(collection, dict):
        return next(iter(collection.values()))
    return collection[0]


def _element_types(wrap: Any) -> list[Any]:
    return [wrap(T.by_name(t) if isinstance(t, str) else t) for t in _SEVEN]


def register_table_functions() -> None:
    """Register the test UDTFs (again: a registration replaces the one before)."""

    @udtf(name="TEST_UDTF", params=list(_SEVEN), returns="STRING", call_on_null=True)
    def standard_params(i: Any, n: Any, d: Any, b: Any, s: Any, bd: Any, st: Any) -> list[str]:
        return _texts((i, n, d, b, s, bd, st))

    lists = _element_types(T.array)
    maps = _element_types(lambda t: T.map_(T.STRING, t))
    long_keys = [T.map_(T.BIGINT, T.INTEGER), *maps[1:]]
    for params in (lists, maps, long_keys):

        @udtf(name="TEST_UDTF", params=params, returns="STRING")
        def collection_params(
            i: Any,
            n: Any,
            d: Any,
            b: Any,
            s: Any,
            bd: Any,
            st: Any,
        ) -> list[str]:
            return _texts(tuple(_first(c) for c in (i, n, d, b, s, bd, st)))

    for param in _SEVEN:
        returns = param if param is not ANY_DECIMAL else (lambda _: T.decimal(30, 10))
        udtf(name="TEST_UDTF", params=[param], returns=returns, call_on_null=True)(
            _one_value(str(param))
        )

    @udtf(name="THROWING_UDTF", description="test UDTF that throws if param is true")
    def throw_if_true(should_throw: bool | None) -> list[bool]:
        if should_throw is None:
            raise ValueError("argument 1 is NULL, which a Java primitive cannot take")
        if should_throw:
            raise RuntimeError("You asked me to throw...")
        return [should_throw]


def _one_value(type_name: str) -> Any:
    def one_value(value: Any) -> list[Any]:
        _java(value, type_name, 1)  # fails for a NULL primitive
        return [value]

    return one_value


def register() -> None:
    register_aggregates()
    register_table_functions()


NAMES = (
    "MULTI_ARG",
    "FOUR_ARG",
    "VAR_ARG",
    "MID_VAR_ARG",
    "GENERIC_VAR_ARG",
    "OBJ_COL_ARG",
    "TEST_UDAF",
    "TEST_UDTF",
    "THROWING_UDTF",
)

"""Overloaded function signatures and how a call picks one, as ksqlDB's UdfIndex does.

A parameter is a SqlType, which may hold type parameters (`TypeParam`): a generic `T` binds to
the first argument type it meets and must equal it everywhere else; `ANY` fits any argument.
A DECIMAL without precision fits any DECIMAL. A call takes the first overload whose
parameters its argument types fit exactly, then the first it fits with implicit widening
(INT < BIGINT < DECIMAL < DOUBLE); among those, one of fixed arity before a variadic one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from hispeed.functions.registry import FunctionTypeError
from hispeed.functions.signatures import widens_to
from hispeed.sql import types as T
from hispeed.sql.types import SqlType


@dataclass(frozen=True)
class TypeParam(SqlType):
    """A type parameter: a generic (named like a TypeVar) or, with `wildcard`, ANY type."""

    wildcard: bool = False

    def __str__(self) -> str:
        return "ANY" if self.wildcard else self.name


@dataclass(frozen=True)
class _AnyDecimal(SqlType):
    def __str__(self) -> str:
        return "DECIMAL"


ANY = TypeParam("ANY", wildcard=True)
#: a DECIMAL of any precision and scale
ANY_DECIMAL: SqlType = _AnyDecimal("DECIMAL")

#: the return type of a call from its argument types (ksqlDB's schema provider)
ReturnProvider = Callable[[Sequence[SqlType]], SqlType]


def is_concrete(t: SqlType) -> bool:
    """Tell whether `t` names one SQL type (no type parameter, no DECIMAL without precision)."""
    if isinstance(t, TypeParam):
        return False
    if t.name == "DECIMAL":
        return t.precision is not None
    inner = [x for x in (t.element, t.key) if x is not None] + [f for _, f in t.fields]
    return all(is_concrete(x) for x in inner)


@dataclass(frozen=True)
class Signature:
    """One overload: its parameter types (the last repeats when `variadic`) and result."""

    params: tuple[SqlType, ...]
    returns: SqlType | ReturnProvider
    variadic: bool = False

    def expand(self, count: int) -> list[SqlType] | None:
        """The parameter types of a call with `count` arguments, or None if it cannot have them."""
        if self.variadic:
            fixed = len(self.params) - 1
            if count < fixed:
                return None
            return [*self.params[:fixed], *[self.params[-1]] * (count - fixed)]
        return list(self.params) if count == len(self.params) else None

    def shown(self) -> str:
        parts = [str(p) for p in self.params]
        if self.variadic:
            parts[-1] += "..."
        return "(" + ", ".join(parts) + ")"


@dataclass(frozen=True)
class Match:
    """The overload a call resolved to, with its parameter and result types for that call."""

    index: int
    signature: Signature
    params: list[SqlType]
    returns: SqlType
    bindings: dict[str, SqlType]


def fits(param: SqlType, arg: SqlType, bindings: dict[str, SqlType], *, widen: bool) -> bool:
    """Tell whether an argument of type `arg` fits `param`, binding its type parameters."""
    if isinstance(param, TypeParam):
        if param.wildcard:
            return True
        bound = bindings.get(param.name)
        if bound is None:
            bindings[param.name] = arg
            return True
        return bound == arg
    if param.name in ("ARRAY", "MAP"):
        if arg.name != param.name:
            return False
        pairs = [(param.element, arg.element), (param.key, arg.key)]
        return all(
            p is None or (a is not None and fits(p, a, bindings, widen=widen)) for p, a in pairs
        )
    if param.name == "STRUCT":
        if arg.name != "STRUCT":
            return False
        # the same field names with the same types; an empty struct fits any struct
        if not param.fields or not arg.fields:
            return True
        fields = dict(arg.fields)
        return len(fields) == len(param.fields) and all(
            n in fields and fits(p, fields[n], bindings, widen=False) for n, p in param.fields
        )
    if param.name == "DECIMAL" and param.precision is None:
        return arg.name == "DECIMAL" or (widen and arg.is_integral)
    if arg == param or (arg.name == param.name and arg.name != "DECIMAL"):
        return True
    return widen and widens_to(arg, param)


def substitute(t: SqlType, bindings: dict[str, SqlType]) -> SqlType:
    """`t` with its type parameters replaced by what they were bound to."""
    if isinstance(t, TypeParam):
        if t.wildcard or t.name not in bindings:
            raise FunctionTypeError(f"the result type {t} is not bound by any argument")
        return bindings[t.name]
    if t.name == "ARRAY" and t.element is not None:
        return T.array(substitute(t.element, bindings))
    if t.name == "MAP" and t.element is not None and t.key is not None:
        return T.map_(substitute(t.key, bindings), substitute(t.element, bindings))
    if t.name == "STRUCT":
        return T.struct([(n, substitute(f, bindings)) for n, f in t.fields])
    return t


def choose(
    name: str, signatures: Sequence[Signature], arg_types: Sequence[SqlType], *, lead: bool = True
) -> Match:
    """The overload ksqlDB would call for `arg_types`, or a FunctionTypeError saying why not.

    The error's message starts "Function 'NAME' does not accept parameters (...)." unless
    `lead` is False (the expression compiler writes that line itself).
    """
    for widen in (False, True):
        found: list[Match] = []
        for i, sig in enumerate(signatures):
            params = sig.expand(len(arg_types))
            if params is None:
                continue
            bindings: dict[str, SqlType] = {}
            if all(
                fits(p, a, bindings, widen=widen) for p, a in zip(params, arg_types, strict=True)
            ):
                returns = (
                    sig.returns(list(arg_types))
                    if callable(sig.returns)
                    else substitute(sig.returns, bindings)
                )
                found.append(Match(i, sig, params, returns, bindings))
        fixed = [m for m in found if not m.signature.variadic]
        if fixed or found:
            return (fixed or found)[0]
    shown = ", ".join(str(t) for t in arg_types)
    valid = "\n".join(f"{name}{s.shown()}" for s in signatures)
    first = f"Function '{name}' does not accept parameters ({shown}).\n" if lead else ""
    raise FunctionTypeError(f"{first}Valid alternatives are:\n{valid}")


def call_type(param: SqlType, arg: SqlType) -> SqlType:
    """The type an argument is converted to before the call: the parameter's, when concrete
    and different (an implicit widening), else the argument's own."""
    if param.name == "DECIMAL" and param.precision is None and arg.is_integral:
        return T.integral_as_decimal(arg)
    if is_concrete(param) and param != arg and param.name != "STRUCT":
        return param
    return arg

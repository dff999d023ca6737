"""The user functions registered so far, and what SHOW FUNCTIONS and DESCRIBE FUNCTION show of
every function, built-in or user."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hispeed.errors import HispeedError
from hispeed.functions import aggregates, tables
from hispeed.functions.registry import SCALAR_FUNCTIONS, lookup
from hispeed.sql.types import SqlType


class UdfError(HispeedError):
    """A Python function that cannot be registered as declared; says what to change."""


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


#: Flink's names of built-ins that sql/flink.py rewrites to hispeed's (UPPER to UCASE, ...)
FLINK_BUILT_INS = frozenset(
    [
        "MOD",
        "DATE_FORMAT",
        "HOUR",
        "MINUTE",
        "SECOND",
        "SPLIT_INDEX",
        "REGEXP_EXTRACT",
        "CHAR_LENGTH",
        "CHARACTER_LENGTH",
        "LOWER",
        "UPPER",
    ]
)


def claim(name: str, kind: str) -> FunctionInfo:
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
    if (
        key in SCALAR_FUNCTIONS
        or key in aggregates.AGGREGATES
        or key in tables.TABLE_FUNCTIONS
        or key in FLINK_BUILT_INS
    ):
        raise UdfError(f"{key} is a built-in function: give the Python function another name")
    info = FunctionInfo(key, kind)
    USER_FUNCTIONS[key] = info
    return info

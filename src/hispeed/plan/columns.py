"""The select list's output columns: their names, and the checks on key and value columns."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable

from hispeed.errors import HispeedError
from hispeed.expr.scope import Scope
from hispeed.plan.model import OutputColumn
from hispeed.plan.scope import compile_clause, default_name, error_at
from hispeed.sql import ast
from hispeed.sql import types as T

#: ksqlDB's ColumnNames.NUMBERED_COLUMN_PATTERN: a name, then maybe `_` and a number
_NUMBERED = re.compile(r"(?P<name>.*?)?(?:_(?P<number>\d+))?")


def numbered(names: Iterable[str]) -> dict[str, set[int]]:
    """The numbers each name stem is used with, as ksqlDB's ColumnNames reads source columns:
    `ROWKEY_2` is stem ROWKEY with 2, `ROWKEY` is ROWKEY with 0."""
    used: dict[str, set[int]] = {}
    for name in names:
        m = _NUMBERED.fullmatch(name)
        assert m is not None  # every text matches: both parts are optional
        number = m.group("number")
        used.setdefault(m.group("name") or "", set()).add(int(number) if number else 0)
    return used


class AliasGenerator:
    """Fresh names `PREFIX_n` for n = 0, 1, ... skipping those taken, as ksqlDB's
    ColumnNames.AliasGenerator makes them; n = 0 is the bare prefix unless `keep_zero`
    (its KSQL_COL_n aliases keep it)."""

    def __init__(self, prefix: str, used: set[int], *, keep_zero: bool = False) -> None:
        self.prefix = prefix
        self.used = used
        self.keep_zero = keep_zero
        self.next_index = 0

    def next(self) -> str:
        """The next name not taken."""
        while self.next_index in self.used:
            self.next_index += 1
        index = self.next_index
        self.next_index += 1
        return self.prefix if index == 0 and not self.keep_zero else f"{self.prefix}_{index}"


def synthetic_join_key(source_columns: Iterable[str]) -> str:
    """The name of a join's synthetic key column: ROWKEY, or ROWKEY_n when the joined sources'
    columns already use that (ksqlDB's ColumnNames.generateSyntheticJoinKey)."""
    return AliasGenerator("ROWKEY", numbered(source_columns).get("ROWKEY", set())).next()


def output_names(
    items: list[ast.SelectItem],
    scope: Scope | None = None,
    type_of: Callable[[ast.Expr], T.SqlType | None] | None = None,
) -> list[str]:
    """The select items' column names (KSQL_COL_n for unnamed expressions); two items of one
    name are an error naming the second one's type as ksqlDB's LogicalSchema builder does
    (`Duplicate value columns found in schema: `X` BIGINT`), typed in `scope` or by `type_of`
    (an aggregation's select list, whose calls only its own scope can type)."""
    if type_of is None and scope is not None:
        in_scope = scope

        def type_of(e: ast.Expr) -> T.SqlType | None:
            return _type_of(e, in_scope)

    names: list[str | None] = [i.alias or default_name(i.expr) for i in items]
    taken = {n for n in names if n is not None}
    counter = 0
    out = []
    for name in names:
        if name is None:
            while f"KSQL_COL_{counter}" in taken:
                counter += 1
            name = f"KSQL_COL_{counter}"
            counter += 1
        out.append(name)
    seen: set[str] = set()
    for item, name in zip(items, out, strict=True):
        if name in seen:
            column = f"`{name}`"
            typed = type_of(item.expr) if type_of is not None else None
            if typed is not None:
                column += f" {typed}"
            raise error_at(
                item,
                f"Duplicate value columns found in schema: {column}; give one of "
                f"them another name with AS",
            )
        seen.add(name)
    return out


def _type_of(expr: ast.Expr, scope: Scope) -> T.SqlType | None:
    """The expression's type in `scope`, or None if it does not compile there (an aggregate
    call in a GROUP BY's select list)."""
    try:
        return compile_clause(expr, scope, "SELECT").type
    except HispeedError:
        return None


def output_column(item: ast.SelectItem, name: str, scope: Scope) -> OutputColumn:
    """The output column `name` of a select item, compiled in `scope`."""
    compiled = compile_clause(item.expr, scope, "SELECT")
    return OutputColumn(name, compiled.type or T.STRING, compiled)


def key_missing(sink: str | None, what: str, names: list[str]) -> str:
    """The message for a query that does not select its key (`what`: which expressions)."""
    built = f"`{sink}`" if sink else "the result"
    if len(names) == 1:
        listed, plural = names[0], ""
    else:
        listed, plural = ", ".join(names[:-1]) + " and " + names[-1], "s"
    return (
        f"Key missing from projection (ie, SELECT). The query used to build {built} must "
        f"include the {what}{plural} {listed} in its projection (eg, SELECT "
        f"{', '.join(names)}...)."
    )


def check_value_columns(select: ast.Select, value: list[OutputColumn], sink: str | None) -> None:
    """Refuse a persistent query (one with a sink) that selects no value column, and a value
    column of no type (a bare NULL: ksqlDB's SelectionUtil cannot give it a schema type)."""
    if not value and sink is not None:
        raise error_at(select, "The projection contains no value columns.")
    for column in value:
        if column.expr.type is None:
            raise error_at(
                select,
                "Can't infer a type of null. Please explicitly cast it to a required type, "
                "e.g. CAST(null AS VARCHAR).",
            )


def key_more_than_once(key: str, aliases: list[str]) -> str:
    """ksqlDB's FinalProjectNode message for a persistent query that selects one key column
    under several names: the aliases sorted and listed as its GrammaticalJoiner.and() does."""
    names = sorted(aliases)
    listed = ", ".join(names[:-1]) + " and " + names[-1]
    return (
        f"The projection contains a key column (`{key}`) more than once, aliased as: {listed}."
        "\nEach key column must only be in the projection once. If you intended to copy the "
        "key into the value, then consider using the AS_VALUE function to indicate which key "
        "reference should be copied."
    )

"""Checks ksqlDB's analyzer makes before any expression is typed, with its messages.

Unknown columns are refused clause by clause in ksqlDB's order (WHERE, GROUP BY, PARTITION
BY, HAVING, SELECT; its ColumnReferenceValidator), so a query with an unknown column and a
type error reports the unknown column, naming it as written (`I.BOB`). System column names
(ROWTIME, ROWPARTITION, ROWOFFSET, WINDOWSTART, WINDOWEND) may not be used as an alias, nor
selected unaliased into a persistent query (its Analyzer.checkForReservedToken).
"""

from __future__ import annotations

import dataclasses

from hispeed.catalog import Source
from hispeed.errors import SqlError
from hispeed.expr.compiler import TIME_UNITS, UNIT_FUNCTIONS
from hispeed.expr.scope import Scope
from hispeed.plan.model import PSEUDO_COLUMNS, WINDOW_COLUMNS
from hispeed.sql import ast
from hispeed.sql.format import sql

SYSTEM_COLUMNS = (*PSEUDO_COLUMNS, *WINDOW_COLUMNS)


def _unknown_refs(e: ast.Expr, known: set[str], bound: frozenset[str]) -> ast.ColumnRef | None:
    """The first column reference in `e` (in reading order) that names no known column."""
    if isinstance(e, ast.ColumnRef):
        if e.source is None and e.name in bound:
            return None
        return None if e.name in known else e
    if isinstance(e, ast.Lambda):
        return _unknown_refs(e.body, known, bound | frozenset(e.params))
    if (
        isinstance(e, ast.FunctionCall)
        and e.name.upper() in UNIT_FUNCTIONS
        and e.args
        and isinstance(e.args[0], ast.ColumnRef)
        and e.args[0].name in TIME_UNITS
    ):
        # DATEADD(DAYS, ...): the unit is a keyword, not a column
        e = dataclasses.replace(e, args=e.args[1:])
    for value in vars(e).values():
        children = value if isinstance(value, tuple) else (value,)
        for child in children:
            nested = child if isinstance(child, tuple) else (child,)
            for c in nested:
                if isinstance(c, ast.Expr):
                    found = _unknown_refs(c, known, bound)
                    if found is not None:
                        return found
    return None


def check_column_references(select: ast.Select, scope: Scope, names: tuple[str, ...]) -> None:
    """Refuse a reference to a column the single source of `select` does not have.

    `names` are the names the source is known by (its name and alias); a reference qualified
    by another name is left to the scope's own message. Window bounds are left to the
    planner, which knows whether the query is windowed."""
    known = {c.name for c in scope.columns} | set(WINDOW_COLUMNS)
    clauses: list[tuple[str, ast.Expr]] = []
    if select.where is not None:
        clauses.append(("WHERE", select.where))
    clauses += [("GROUP BY", g) for g in select.group_by]
    clauses += [("PARTITION BY", p) for p in select.partition_by]
    if select.having is not None:
        clauses.append(("HAVING", select.having))
    clauses += [("SELECT", i.expr) for i in select.items if isinstance(i, ast.SelectItem)]
    for clause, e in clauses:
        ref = _unknown_refs(e, known, frozenset())
        if ref is None or (ref.source is not None and ref.source not in names):
            continue
        shown = f"{ref.source}.{ref.name}" if ref.source else ref.name
        message = f"{clause} column '{shown}' cannot be resolved."
        if clause == "PARTITION BY":
            message += (
                f" '{shown}' must be a column in the source schema since PARTITION BY is "
                "applied on the input."
            )
        columns = [
            f"{ref.source}.{c.name}" if ref.source else c.name
            for c in scope.columns
            if not c.name.startswith("$") and not (c.source or "").startswith("$")
        ]
        if columns:  # never an empty list: without columns the message ends at the name
            message += f" The columns here are: {', '.join(dict.fromkeys(columns))}"
        line, column = ref.pos
        raise SqlError(message, line or 1, column or 1, located=True)


def check_reserved_names(items: list[ast.SelectItem], persistent: bool) -> None:
    """Refuse a system column name as an alias, and one selected unaliased into a
    persistent query (a transient query may show ROWTIME and the window bounds)."""
    for item in items:
        alias = item.alias if item.alias is not None else _default_alias(item.expr)
        if alias is None or alias.upper() not in SYSTEM_COLUMNS:
            continue
        text = sql(item.expr)
        unqualified = text[text.find(".") + 1 :]
        if unqualified.upper() != alias.upper():
            raise SqlError(
                f"`{alias.upper()}` is a reserved column name. You cannot use it as an alias "
                "for a column.",
                *_at(item),
            )
        if persistent:
            raise SqlError(
                f"Reserved column name in select: `{alias.upper()}`. Please remove or alias "
                "the column.",
                *_at(item),
            )


def _default_alias(e: ast.Expr) -> str | None:
    if isinstance(e, ast.ColumnRef):
        return e.name
    if isinstance(e, ast.Dereference):
        return e.field
    return None


def _at(item: ast.SelectItem) -> tuple[int, int]:
    line, column = item.pos
    return line or 1, column or 1


def check_persistent_sources(select: ast.Select, sources: list[Source], persistent: bool) -> None:
    """Refuse a persistent query that reads a windowed table (ksqlDB's PushQueryValidator)."""
    if persistent and any(s.kind == "TABLE" and s.window is not None for s in sources):
        first, rest = sources[0], sources[1:]
        stream = first.kind == "STREAM" and first.window is None
        if rest and (stream or (first.window and all(s.window is None for s in rest))):
            return  # a stream looks its time's windows up (plan/windowed_joins.py, #4736)
        line, column = select.pos
        raise SqlError(
            "KSQL does not support persistent queries on windowed tables.", line or 1, column or 1
        )


def check_emit_final(select: ast.Select) -> None:
    """Refuse EMIT FINAL on a query that is not a windowed aggregation (ksqlDB's
    LogicalPlanner)."""
    if select.emit == "FINAL" and not (select.group_by and select.window is not None):
        line, column = select.pos
        raise SqlError(
            "EMIT FINAL is only supported for windowed aggregations.", line or 1, column or 1
        )


# ksqlDB's Analyzer.KAFKA_VALUE_FORMAT_LIMITATION_DETAILS, after its JOIN / GROUP BY refusal
KAFKA_VALUE_FORMAT_DETAILS = (
    "The KAFKA format is primarily intended for use as a key format. It can be used as a value "
    "format, but can not be used in any operation that requires a repartition or changelog "
    "topic.\nRemoving this limitation requires enhancements to the core of KSQL. This will "
    "come in a future release. Until then, avoid using the KAFKA format for values.\nIf you "
    "have an existing topic with KAFKA formatted values you can duplicate the data and "
    "serialize using Avro or JSON with a statement such as: \n\n'CREATE STREAM "
    "<new-stream-name> WITH(VALUE_FORMAT='Avro') AS SELECT * FROM "
    "<existing-kafka-formated-stream-name>;'"
)


def check_kafka_group_by(select: ast.Select, sources: list[tuple[str, Source]]) -> None:
    """Refuse GROUP BY over a source whose values are KAFKA-format (ksqlDB's
    Analyzer.Visitor.validate: grouping needs a repartition and a changelog topic, which
    that format cannot carry). `sources`: each source with the name (alias) it has in the
    query, which is what ksqlDB's message lists."""
    kafka = [name for name, s in sources if s.value_format == "KAFKA"]
    if select.group_by and kafka:
        line, column = getattr(select.group_by[0], "pos", select.pos)
        raise SqlError(
            f"Source(s) {', '.join(kafka)} are using the 'KAFKA' value format. This format "
            f"does not yet support GROUP BY.\n{KAFKA_VALUE_FORMAT_DETAILS}",
            line or 1,
            column or 1,
        )

"""Flink SQL's DDL, the subset a Flink user's Nexmark texts need (past ksqlDB: docs/sql.md).

`CREATE [TEMPORARY] TABLE name (columns, computed columns, WATERMARK FOR, PRIMARY KEY (...)
NOT ENFORCED) WITH ('connector' = '...', ...)` and `CREATE [TEMPORARY] VIEW name AS SELECT`
parse into `FlinkTable` and `FlinkView`; `statements/flink.py` maps them onto hispeed's
streams, tables and persistent queries. `flink_query` rewrites a query written in Flink's
words into hispeed's: identifiers upper-cased (Flink's are case-sensitive and back-quoted
where they clash with keywords, hispeed's are upper-cased) and Flink's function names and
argument orders (`MOD`, `DATE_FORMAT`, `HOUR`, `SPLIT_INDEX`, `REGEXP_EXTRACT`, ...).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hispeed.errors import SqlError
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.expression_parser import ExpressionParser
from hispeed.sql.flink_function import create_function
from hispeed.sql.intervals import interval
from hispeed.sql.lexer import IDENT, STRING, Token

#: the connectors a Flink table may name, and what hispeed makes of each (docs/sql.md)
CONNECTORS = ("nexmark", "datagen", "kafka", "upsert-kafka", "blackhole", "print", "filesystem")


@dataclass(frozen=True)
class FlinkColumn:
    """A physical column (`type`) or a computed one (`expr`)."""

    name: str
    type: T.SqlType | None
    expr: ast.Expr | None = None
    pos: ast.Pos = ast.NOPOS


@dataclass(frozen=True)
class FlinkTable(ast.Statement):
    """`CREATE [TEMPORARY] TABLE name (...) WITH ('connector' = ...)` as Flink SQL says it."""

    name: str
    columns: tuple[FlinkColumn, ...]
    #: the watermark's column and its delay in milliseconds (`col - INTERVAL '4' SECOND`)
    watermark: tuple[str, int] | None
    primary_key: tuple[str, ...]
    #: the WITH options, keys as written (Flink's are case-sensitive), values as strings
    options: dict[str, str]
    temporary: bool = False
    if_not_exists: bool = False
    pos: ast.Pos = ast.NOPOS
    #: PARTITIONED BY's columns (accepted, not applied)
    partitioned_by: tuple[str, ...] = ()
    #: where each WITH option's value was written (its errors' line and column)
    option_pos: dict[str, ast.Pos] = dataclasses.field(default_factory=dict)

    @property
    def connector(self) -> str:
        """The connector's name, lower case ('' if none named)."""
        legacy = self.options.get("connector.type", "")
        return self.options.get("connector", legacy).lower()


@dataclass(frozen=True)
class FlinkView(ast.Statement):
    """`CREATE [TEMPORARY] VIEW name AS SELECT ...`."""

    name: str
    query: ast.Select
    temporary: bool = False
    if_not_exists: bool = False
    pos: ast.Pos = ast.NOPOS


# -- parsing -------------------------------------------------------------------------------


def is_flink_create(p: ExpressionParser) -> bool:
    """After CREATE: a Flink statement (TEMPORARY, VIEW, or a TABLE whose WITH names a
    'connector' or whose columns hold a WATERMARK or a PRIMARY KEY ... NOT ENFORCED)."""
    if p.tok.is_word("TEMPORARY", "VIEW", "FUNCTION"):
        return True
    if not p.tok.is_word("TABLE"):
        return False
    depth = 0
    tokens = p.tokens
    for j in range(p.i + 1, len(tokens)):
        tok = tokens[j]
        if tok.is_op(";") or tok.kind == "EOF" or (depth == 0 and tok.is_word("AS")):
            return False
        if tok.is_op("("):
            depth += 1
        elif tok.is_op(")"):
            depth -= 1
        elif depth == 1 and tok.is_word("WATERMARK", "ENFORCED"):
            return True
        elif depth == 0 and tok.is_word("WITH") and j + 2 < len(tokens):
            key = tokens[j + 2]
            return key.kind == STRING and key.value.lower() in ("connector", "connector.type")
    return False


def create(p: ExpressionParser, start: Token, select: Callable[[], ast.Select]) -> ast.Statement:
    """A Flink CREATE statement, CREATE already read (`is_flink_create` said yes); `select`
    parses a query (the statement parser's, which imports this module)."""
    temporary = bool(p.accept_word("TEMPORARY"))
    p.accept_word("SYSTEM")
    if p.tok.is_word("FUNCTION"):
        return create_function(p, start, temporary)
    kind = p.expect_word("TABLE", "VIEW")
    if_not_exists = False
    if p.accept_word("IF"):
        p.expect_word("NOT")
        p.expect_word("EXISTS")
        if_not_exists = True
    name = p.identifier(f"the {kind.value.lower()}'s name").upper()
    if kind.is_word("VIEW"):
        if p.tok.is_op("("):
            raise SqlError(
                "a Flink view's column list is not supported: name the columns in its SELECT",
                p.tok.line,
                p.tok.column,
            )
        p.expect_word("AS")
        query = flink_query(select())
        return FlinkView(name, query, temporary, if_not_exists, pos=p.pos(start))
    columns, watermark, key = _table_elements(p)
    partitioned: tuple[str, ...] = ()
    if p.accept_word("PARTITIONED"):
        # a filesystem sink's directories by these columns' values: accepted, not applied
        # (a sink is one topic here)
        p.expect_word("BY")
        p.expect_op("(")
        partitioned = tuple(n.upper() for n in p.items_until(")", p.identifier))
    options, option_pos = _options(p)
    if p.tok.is_word("AS", "LIKE", "PARTITIONED", "COMMENT"):
        raise SqlError(
            f"Flink's CREATE TABLE ... {p.tok.value.upper()} is not supported by hispeed "
            "(docs/sql.md lists the Flink DDL it accepts)",
            p.tok.line,
            p.tok.column,
        )
    table = FlinkTable(
        name,
        columns,
        watermark,
        key,
        options,
        temporary,
        if_not_exists,
        pos=p.pos(start),
        partitioned_by=partitioned,
        option_pos=option_pos,
    )
    _check_table(table, start)
    return table


def _table_elements(
    p: ExpressionParser,
) -> tuple[tuple[FlinkColumn, ...], tuple[str, int] | None, tuple[str, ...]]:
    p.expect_op("(")
    columns: list[FlinkColumn] = []
    watermark: tuple[str, int] | None = None
    key: tuple[str, ...] = ()
    while True:
        tok = p.tok
        if tok.is_word("WATERMARK"):
            p.advance()
            p.expect_word("FOR")
            column = p.identifier("the watermark's column").upper()
            p.expect_word("AS")
            watermark = (column, _watermark_delay(p, column))
        elif tok.is_word("PRIMARY") or tok.is_word("CONSTRAINT"):
            if p.accept_word("CONSTRAINT"):
                p.identifier("the constraint's name")
            p.expect_word("PRIMARY")
            p.expect_word("KEY")
            p.expect_op("(")
            key = tuple(n.upper() for n in p.items_until(")", p.identifier))
            _not_enforced(p)
        else:
            name = p.identifier("a column name, WATERMARK or PRIMARY KEY").upper()
            if p.accept_word("AS"):
                columns.append(FlinkColumn(name, None, flink_expr(p.expr()), pos=p.pos(tok)))
            else:
                col_type = flink_type(p)
                if p.accept_word("NOT"):
                    p.expect_word("NULL")  # hispeed's columns are all nullable
                if p.accept_word("PRIMARY"):
                    p.expect_word("KEY")
                    _not_enforced(p)
                    key = (name,)
                if p.tok.is_word("METADATA"):
                    raise SqlError(
                        "Flink's METADATA columns are not supported by hispeed: "
                        "ROWTIME is the record's time",
                        p.tok.line,
                        p.tok.column,
                    )
                columns.append(FlinkColumn(name, col_type, pos=p.pos(tok)))
        if p.accept_op(")"):
            return tuple(columns), watermark, key
        if not p.accept_op(","):
            raise p.error("',' or ')'")


def _not_enforced(p: ExpressionParser) -> None:
    """Flink refuses an enforced key; so does hispeed, with Flink's reason."""
    tok = p.tok
    if not (p.accept_word("NOT") and p.accept_word("ENFORCED")):
        raise SqlError(
            "Flink's PRIMARY KEY must be declared NOT ENFORCED (the rows' keys are not "
            "checked, only relied on): PRIMARY KEY (...) NOT ENFORCED",
            tok.line,
            tok.column,
        )


def _watermark_delay(p: ExpressionParser, column: str) -> int:
    """`col` or `col - INTERVAL 'n' UNIT`: the watermark's delay in milliseconds."""
    tok = p.tok
    if p.identifier(f"{column}, the watermark's column").upper() != column:
        raise SqlError(
            f"a watermark is `{column}` or `{column} - INTERVAL 'n' SECOND` (a bounded delay "
            "on its own column): hispeed supports no other watermark expression",
            tok.line,
            tok.column,
        )
    if p.accept_op("-"):
        return interval(p)[0]
    return 0


def flink_type(p: ExpressionParser) -> T.SqlType:
    """A Flink type: ROW<name type, ...> (or ROW(...)), TIMESTAMP(p) [WITH [LOCAL] TIME
    ZONE], TIMESTAMP_LTZ(p), TINYINT/SMALLINT/INTEGER, FLOAT, CHAR(n), and ksqlDB's types."""
    tok = p.tok
    word = tok.value.upper() if tok.kind == IDENT else ""
    if word == "ROW":
        p.advance()
        close = ">" if p.accept_op("<") else ")" if p.accept_op("(") else None
        if close is None:
            raise p.error("'<' or '(' after ROW")
        fields = p.items_until(
            close, lambda: (p.identifier("a field name").upper(), _field_type(p))
        )
        return T.struct(fields)
    if word in ("TIMESTAMP_LTZ", "TINYINT", "SMALLINT", "FLOAT", "CHAR"):
        p.advance()
        p.type_parameters()
        return {"TIMESTAMP_LTZ": T.TIMESTAMP, "FLOAT": T.DOUBLE, "CHAR": T.STRING}.get(
            word, T.INTEGER
        )
    if word in ("ARRAY", "MAP"):
        return p.type_()
    result = p.type_()
    if result.name == "TIMESTAMP" and p.accept_word("WITH"):
        p.accept_word("LOCAL")
        p.expect_word("TIME")
        p.expect_word("ZONE")
    return result


def _field_type(p: ExpressionParser) -> T.SqlType:
    result = flink_type(p)
    if p.accept_word("NOT"):
        p.expect_word("NULL")
    return result


def _options(p: ExpressionParser) -> tuple[dict[str, str], dict[str, ast.Pos]]:
    """WITH ('key' = 'value', ...): Flink's options, keys and values quoted, and where each
    value was written; an option given twice is refused at the second, as Flink does."""
    if not p.accept_word("WITH"):
        raise p.error("WITH ('connector' = '...'): a Flink table names its connector")
    p.expect_op("(")
    options: dict[str, str] = {}
    where: dict[str, ast.Pos] = {}
    while True:
        at = p.tok
        key = p.string("an option's name in quotes, like 'connector'")
        if key in options:
            raise SqlError(f"Option '{key}' is given twice: give it once", at.line, at.column)
        p.expect_op("=")
        where[key] = (p.tok.line, p.tok.column)
        options[key] = p.string(f"the value of '{key}' in quotes")
        if p.accept_op(")"):
            return options, where
        if not p.accept_op(","):
            raise p.error("',' or ')'")


def _check_table(table: FlinkTable, start: Token) -> None:
    names = {c.name for c in table.columns}
    connector = table.connector
    if connector not in CONNECTORS:
        raise SqlError(
            f"Flink connector '{connector}' is not supported by hispeed; these are: "
            + ", ".join(CONNECTORS),
            start.line,
            start.column,
        )
    for clause, cols in (
        ("PARTITIONED BY", table.partitioned_by),
        ("PRIMARY KEY", table.primary_key),
    ):
        for col in cols:
            if col not in names:
                raise SqlError(
                    f"{clause} names {col}, which is no column of {table.name}",
                    start.line,
                    start.column,
                )
    if table.watermark is not None and table.watermark[0] not in names:
        raise SqlError(
            f"WATERMARK FOR names {table.watermark[0]}, which is no column of {table.name}",
            start.line,
            start.column,
        )


@dataclass(frozen=True)
class JoinedSubquery(ast.SourceRef):
    """A join's right side written as `(SELECT ...) [AS] alias`: Flink statements make it a
    view of its own before the join is planned (statements/flink_views.py); elsewhere the
    planner refuses it at its place."""

    query: ast.Select | None = None


def joined_table(p: ExpressionParser) -> tuple[ast.SourceRef, ast.Expr | None]:
    """A join's right side: `name [FOR SYSTEM_TIME AS OF expr] [[AS] alias]` (Flink's
    temporal join: plan/temporal.py), and the AS OF time (None without it); or a subquery,
    `(SELECT ...) [AS] alias` (`JoinedSubquery`)."""
    tok = p.tok
    if tok.is_op("(") and p.peek().is_word("SELECT"):
        select = getattr(p, "select", None)
        assert select is not None  # a join is parsed by the statement parser
        p.advance()
        p.nested += 1
        try:
            query = select()
        finally:
            p.nested -= 1
        p.expect_op(")")
        alias = p.optional_alias()
        return JoinedSubquery(alias or "SUBQUERY", alias, pos=p.pos(tok), query=query), None
    name = p.identifier("a stream or table name")
    as_of = None
    if p.tok.is_word("FOR") and p.peek().is_word("SYSTEM_TIME"):
        p.advance()
        p.advance()
        p.expect_word("AS")
        p.expect_word("OF")
        as_of = p.expr()
    return ast.SourceRef(name, p.optional_alias(), pos=p.pos(tok)), as_of


# -- Flink's words in a query, hispeed's after ---------------------------------------------


def insert_select(
    target: str, columns: list[str], query: ast.Select, start: Token, target_tok: Token, at: Token
) -> ast.InsertInto:
    """Flink's `INSERT INTO sink (c1, c2, ...) SELECT ...`: the query fills the listed
    columns, in the list's order (statements/flink.py maps them onto the sink's)."""
    return ast.InsertInto(
        target,
        query,
        pos=(start.line, start.column),
        target_pos=(target_tok.line, target_tok.column),
        columns=tuple(columns),
        columns_pos=(at.line, at.column),
    )


def flink_query(query: ast.Select) -> ast.Select:
    """`query` as written in Flink SQL, in hispeed's terms (module docstring)."""
    result = _walk(query)
    assert isinstance(result, ast.Select)
    return _group_window(result)


#: Flink's group window functions (in GROUP BY) and ksqlDB's windows they are
_GROUP_WINDOWS = {"TUMBLE": "TUMBLING", "HOP": "HOPPING", "SESSION": "SESSION"}


def _group_window(query: ast.Select) -> ast.Select:
    """Flink's legacy group windows: `GROUP BY k, SESSION(t, INTERVAL '10' SECOND)` (or
    TUMBLE(t, size), HOP(t, slide, size)) with `SESSION_START(...)`/`_END(...)` in the
    select list are ksqlDB's `WINDOW SESSION (10 SECONDS) GROUP BY k` with WINDOWSTART and
    WINDOWEND. The window runs on the stream's record time: `t` is its time column."""
    windows = [
        g for g in query.group_by if isinstance(g, ast.FunctionCall) and g.name in _GROUP_WINDOWS
    ]
    if not windows:
        return query
    call = windows[0]
    sizes = [a.value for a in call.args[1:] if isinstance(a, ast.Literal)]
    wanted = 2 if call.name == "HOP" else 1
    if (
        len(windows) > 1
        or not call.args
        or not isinstance(call.args[0], ast.ColumnRef)
        or len(sizes) != wanted
        or len(call.args) != wanted + 1
        or not all(isinstance(v, int) and v > 0 for v in sizes)
    ):
        more = ", INTERVAL ..." * (wanted - 1)
        raise SqlError(
            f"a group window is {call.name}(time_col, INTERVAL ...{more}), one per GROUP BY",
            *call.pos,
        )
    kind = _GROUP_WINDOWS[call.name]
    spec = (
        ast.WindowSpec(kind, sizes[1], advance_ms=sizes[0], pos=call.pos)
        if call.name == "HOP"
        else ast.WindowSpec(kind, sizes[0], pos=call.pos)
    )

    def bound(node: Any) -> Any:
        if isinstance(node, ast.FunctionCall):
            for prefix in _GROUP_WINDOWS:
                if node.name in (f"{prefix}_START", f"{prefix}_END"):
                    name = "WINDOWSTART" if node.name.endswith("_START") else "WINDOWEND"
                    return ast.ColumnRef(name, pos=node.pos)
        return node

    items = tuple(
        dataclasses.replace(i, expr=_map(i.expr, bound)) if isinstance(i, ast.SelectItem) else i
        for i in query.items
    )
    group_by = tuple(g for g in query.group_by if g is not call)
    return dataclasses.replace(query, items=items, group_by=group_by, window=spec)


def _map(node: Any, fix: Callable[[Any], Any]) -> Any:
    """`node` with `fix` applied bottom-up to every part of it."""
    if isinstance(node, tuple):
        return tuple(_map(n, fix) for n in node)
    if not dataclasses.is_dataclass(node) or isinstance(node, type):
        return node
    changes = {
        f.name: _map(getattr(node, f.name), fix)
        for f in dataclasses.fields(node)
        if f.name not in _LEAVES
    }
    return fix(dataclasses.replace(node, **changes))


def flink_expr(expr: ast.Expr) -> ast.Expr:
    """One expression as written in Flink SQL, in hispeed's terms."""
    result = _walk(expr)
    assert isinstance(result, ast.Expr)
    return result


#: fields of the statement model that hold no names nor expressions
_LEAVES = frozenset({"pos", "type", "time_pos", "value", "emit", "op", "kind"})


def _walk(node: Any) -> Any:
    return _map(node, _rename)


def _upper(name: str | None) -> str | None:
    return None if name is None else name.upper()


def _rename(node: Any) -> Any:
    if isinstance(node, ast.ColumnRef):
        return dataclasses.replace(node, name=node.name.upper(), source=_upper(node.source))
    if isinstance(node, ast.Dereference):
        return dataclasses.replace(node, field=node.field.upper())
    if isinstance(node, ast.SelectItem):
        return dataclasses.replace(node, alias=_upper(node.alias))
    if isinstance(node, ast.AllColumns):
        return dataclasses.replace(node, source=_upper(node.source))
    if isinstance(node, ast.SourceRef):
        return dataclasses.replace(node, name=node.name.upper(), alias=_upper(node.alias))
    if isinstance(node, ast.WindowTvf):
        return dataclasses.replace(
            node, time_column=node.time_column.upper(), alias=_upper(node.alias)
        )
    if isinstance(node, ast.Subquery):
        return dataclasses.replace(node, alias=_upper(node.alias))
    if isinstance(node, ast.FunctionCall):
        return _function(node)
    return node


def _function(call: ast.FunctionCall) -> ast.Expr:
    """Flink's functions whose names or arguments differ from hispeed's (ksqlDB's)."""
    name, args, pos = call.name.upper(), call.args, call.pos
    if name == "MOD" and len(args) == 2:
        return ast.BinaryOp("%", args[0], args[1], pos=pos)
    if name == "DATE_FORMAT" and len(args) == 2:
        return ast.FunctionCall("FORMAT_TIMESTAMP", (*args, _utc(pos)), pos=pos)
    if name in ("HOUR", "MINUTE", "SECOND") and len(args) == 1:
        pattern = {"HOUR": "HH", "MINUTE": "mm", "SECOND": "ss"}[name]
        text = ast.FunctionCall(
            "FORMAT_TIMESTAMP", (args[0], ast.Literal(pattern, T.STRING), _utc(pos)), pos=pos
        )
        return ast.Cast(text, T.INTEGER, pos=pos)
    if name == "SPLIT_INDEX" and len(args) == 3:
        # Flink counts from 0, an ARRAY's subscript from 1; both give NULL past the end
        index = args[2]
        one_based: ast.Expr = (
            ast.Literal(index.value + 1, index.type)
            if isinstance(index, ast.Literal) and isinstance(index.value, int)
            else ast.BinaryOp("+", index, ast.Literal(1, T.INTEGER), pos=pos)
        )
        split = ast.FunctionCall("SPLIT", args[:2], pos=pos)
        return ast.Subscript(split, one_based, pos=pos)
    if name == "REGEXP_EXTRACT" and len(args) >= 2:
        # Flink: (string, pattern[, group]); ksqlDB: (pattern, string[, group])
        return dataclasses.replace(call, args=(args[1], args[0], *args[2:]))
    if name in ("CHAR_LENGTH", "CHARACTER_LENGTH"):
        return dataclasses.replace(call, name="LEN")
    if name == "LOWER":
        return dataclasses.replace(call, name="LCASE")
    if name == "UPPER":
        return dataclasses.replace(call, name="UCASE")
    return call


def _utc(pos: ast.Pos) -> ast.Literal:
    # Flink formats a TIMESTAMP (no zone) as it is: hispeed's TIMESTAMPs are UTC instants
    return ast.Literal("UTC", T.STRING, pos=pos)


__all__ = [
    "CONNECTORS",
    "FlinkColumn",
    "FlinkTable",
    "FlinkView",
    "JoinedSubquery",
    "create",
    "flink_expr",
    "flink_query",
    "flink_type",
    "is_flink_create",
    "joined_table",
]

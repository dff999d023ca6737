"""A recursive-descent parser for ksqlDB's SQL. Every error names its line and column and
says what was expected there."""

from __future__ import annotations

import decimal as _decimal
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

from hispeed.errors import HispeedError, SqlError
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.lexer import DECIMAL, EOF, FLOAT, IDENT, INTEGER, QUOTED, STRING, Token, tokenize

_T = TypeVar("_T")
_K = TypeVar("_K")

_DURATION_UNITS = {
    "MILLISECOND": 1,
    "MILLISECONDS": 1,
    "SECOND": 1000,
    "SECONDS": 1000,
    "MINUTE": 60_000,
    "MINUTES": 60_000,
    "HOUR": 3_600_000,
    "HOURS": 3_600_000,
    "DAY": 86_400_000,
    "DAYS": 86_400_000,
}
#: words that end an expression or cannot start an identifier in a select list
_RESERVED = {
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "HAVING",
    "WINDOW",
    "PARTITION",
    "EMIT",
    "LIMIT",
    "AND",
    "OR",
    "NOT",
    "AS",
    "ON",
    "JOIN",
    "LEFT",
    "RIGHT",
    "FULL",
    "INNER",
    "OUTER",
    "WITHIN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "IS",
    "NULL",
    "IN",
    "BETWEEN",
    "LIKE",
    "TRUE",
    "FALSE",
    "CAST",
    "WITH",
    "VALUES",
    "INTO",
    "CREATE",
    "INSERT",
    "DROP",
}


def parse(text: str, types: Mapping[str, T.SqlType] | None = None) -> list[ast.ParsedStatement]:
    """Parse one or more statements separated by ';'."""
    return list(parse_iter(text, types))


def parse_iter(
    text: str, types: Mapping[str, T.SqlType] | None = None
) -> Iterator[ast.ParsedStatement]:
    """Parse statements one at a time, so that running one (CREATE TYPE) can change how the
    next parses: `types` is read as each statement is parsed."""
    return _Parser(text, types if types is not None else {}).statements()


def parse_one(text: str, types: Mapping[str, T.SqlType] | None = None) -> ast.Statement:
    parsed = parse(text, types)
    if len(parsed) != 1:
        raise SqlError(f"expected one statement, found {len(parsed)}", 1, 1)
    return parsed[0].statement


def parse_expression(text: str) -> ast.Expr:
    p = _Parser(text, {})
    expr = p.expr()
    p.expect_eof()
    return expr


def parse_type(text: str, types: Mapping[str, T.SqlType] | None = None) -> T.SqlType:
    p = _Parser(text, types or {})
    t = p.type_()
    p.expect_eof()
    return t


class _Parser:
    def __init__(self, text: str, types: Mapping[str, T.SqlType]) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.types = types  # upper-case names; read live, see parse_iter

    # -- token helpers -----------------------------------------------------------------------

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def peek(self, n: int = 1) -> Token:
        return self.tokens[min(self.i + n, len(self.tokens) - 1)]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        if tok.kind != EOF:
            self.i += 1
        return tok

    def error(self, expected: str, tok: Token | None = None) -> SqlError:
        tok = tok or self.tok
        # the phrase ksqlDB uses, then what would have fitted there
        return SqlError(
            f"Syntax error at or near {tok.describe()} at line {tok.line}:{tok.column}: "
            f"expected {expected}",
            tok.line,
            tok.column,
        )

    def accept_word(self, *words: str) -> Token | None:
        if self.tok.is_word(*words):
            return self.advance()
        return None

    def expect_word(self, *words: str) -> Token:
        if self.tok.is_word(*words):
            return self.advance()
        raise self.error(" or ".join(words))

    def accept_op(self, *ops: str) -> Token | None:
        if self.tok.is_op(*ops):
            return self.advance()
        return None

    def expect_op(self, op: str) -> Token:
        if self.tok.is_op(op):
            return self.advance()
        tok = self.tok
        # ksqlDB's (ANTLR's) words for a missing token
        raise SqlError(f"Syntax Error\nmissing '{op}' at {tok.describe()}", tok.line, tok.column)

    def expect_eof(self) -> None:
        if self.tok.kind != EOF:
            raise self.error("the end of the statement")

    def items_until(self, close: str, item: Callable[[], _T]) -> list[_T]:
        """Items separated by ',' up to `close` (the opening token is already read)."""
        items: list[_T] = []
        if self.accept_op(close):
            return items
        while True:
            items.append(item())
            if self.accept_op(close):
                return items
            if not self.accept_op(","):
                raise self.error(f"',' or '{close}'")

    def assignment(self, target: Callable[[], _K]) -> tuple[_K, ast.Expr]:
        """`target := expression`, as in MAP('a' := 1) and STRUCT(a := 1)."""
        left = target()
        self.expect_op(":=")
        return left, self.expr()

    def identifier(self, what: str = "a name") -> str:
        tok = self.tok
        if tok.kind == QUOTED:
            self.advance()
            return tok.value
        if tok.kind == IDENT:
            self.advance()
            return tok.value
        raise self.error(what)

    @staticmethod
    def pos(tok: Token) -> ast.Pos:
        return (tok.line, tok.column)

    # -- statements --------------------------------------------------------------------------

    def statements(self) -> Iterator[ast.ParsedStatement]:
        while True:
            while self.accept_op(";") is not None:
                continue  # empty statements
            if self.tok.kind == EOF:
                break
            first = self.tok
            stmt = self.statement()
            last = self.tokens[self.i - 1]
            if not self.accept_op(";") and self.tok.kind != EOF:
                raise self.error("';' or the end of the statement")
            end = self.tokens[self.i - 1].end
            yield (
                ast.ParsedStatement(
                    stmt,
                    self.text[first.start : max(end, last.end)].strip(),
                    first.line,
                    first.column,
                )
            )
        return

    def statement(self) -> ast.Statement:
        tok = self.tok
        if tok.is_word("CREATE"):
            return self.create()
        if tok.is_word("INSERT"):
            return self.insert()
        if tok.is_word("DROP"):
            return self.drop()
        if tok.is_word("SHOW", "LIST"):
            return self.show()
        if tok.is_word("DESCRIBE"):
            return self.describe()
        if tok.is_word("EXPLAIN"):
            self.advance()
            if self.tok.kind in (IDENT, QUOTED) and not self.tok.is_word(
                "SELECT", "CREATE", "INSERT"
            ):
                return ast.Explain(self.identifier("a query id"), pos=self.pos(tok))
            return ast.Explain(self.statement(), pos=self.pos(tok))
        if tok.is_word("TERMINATE"):
            self.advance()
            if self.accept_word("ALL"):
                return ast.Terminate(None, pos=self.pos(tok))
            return ast.Terminate(self.identifier("a query id or ALL"), pos=self.pos(tok))
        if tok.is_word("PRINT"):
            return self.print_()
        if tok.is_word("SET"):
            self.advance()
            name = self.string("a property name in quotes, like 'auto.offset.reset'")
            self.expect_op("=")
            value = self.string("a property value in quotes")
            return ast.SetProperty(name, value, pos=self.pos(tok))
        if tok.is_word("UNSET"):
            self.advance()
            return ast.UnsetProperty(self.string("a property name in quotes"), pos=self.pos(tok))
        if tok.is_word("SELECT"):
            return ast.QueryStatement(self.select(), pos=self.pos(tok))
        raise self.error(
            "a statement (CREATE, INSERT, SELECT, DROP, SHOW, LIST, DESCRIBE, EXPLAIN, "
            "TERMINATE, PRINT, SET, UNSET)"
        )

    def string(self, what: str) -> str:
        if self.tok.kind == STRING:
            return self.advance().value
        raise self.error(what)

    def create(self) -> ast.Statement:
        start = self.advance()
        or_replace = False
        if self.accept_word("OR"):
            self.expect_word("REPLACE")
            or_replace = True
        source = bool(self.accept_word("SOURCE"))
        sink = not source and bool(self.accept_word("SINK"))
        if (source or sink) and self.accept_word("CONNECTOR"):
            if_not_exists = self.if_not_exists()
            name = self.identifier("the connector's name")
            props = {k.lower(): v for k, v in self.with_properties().items()}
            return ast.CreateConnector(
                "SOURCE" if source else "SINK", name, props, if_not_exists, pos=self.pos(start)
            )
        if sink:
            raise self.error("CONNECTOR: CREATE SINK CONNECTOR name WITH (...)")
        if self.tok.is_word("TYPE"):
            self.advance()
            if_not_exists = self.if_not_exists()
            name = self.identifier("a type name")
            self.expect_word("AS")
            return ast.CreateType(name, self.type_(), if_not_exists, pos=self.pos(start))
        kind_tok = self.expect_word("STREAM", "TABLE")
        kind = kind_tok.value
        if_not_exists = self.if_not_exists()
        name = self.identifier(f"the {kind.lower()}'s name")
        columns: tuple[ast.ColumnDef, ...] = ()
        if self.tok.is_op("("):
            columns = self.column_defs(kind)
        properties = self.with_properties()
        if self.accept_word("AS"):
            if columns:
                raise self.error(
                    "no column list: a CREATE ... AS SELECT takes its columns from the query",
                    self.tokens[self.i - 1],
                )
            if source:
                raise SqlError(
                    "CREATE SOURCE ... AS SELECT is not allowed: a source reads an existing topic",
                    start.line,
                    start.column,
                )
            query = self.select()
            return ast.CreateAsSelect(
                kind, name, query, properties, or_replace, if_not_exists, pos=self.pos(start)
            )
        return ast.CreateSource(
            kind, name, columns, properties, or_replace, if_not_exists, source, pos=self.pos(start)
        )

    def if_not_exists(self) -> bool:
        if self.accept_word("IF"):
            self.expect_word("NOT")
            self.expect_word("EXISTS")
            return True
        return False

    def column_defs(self, kind: str) -> tuple[ast.ColumnDef, ...]:
        self.expect_op("(")
        cols = []
        while True:
            tok = self.tok
            name = self.identifier("a column name")
            col_type = self.type_()
            key = primary = False
            headers: str | None = None
            if self.accept_word("KEY"):
                key = True
            elif self.accept_word("PRIMARY"):
                self.expect_word("KEY")
                primary = True
            elif self.accept_word("HEADERS"):
                headers = ""
            elif self.accept_word("HEADER"):
                self.expect_op("(")
                headers = self.string("a header key in quotes")
                self.expect_op(")")
            cols.append(ast.ColumnDef(name, col_type, key, primary, headers, pos=self.pos(tok)))
            if self.accept_op(")"):
                return tuple(cols)
            if not self.accept_op(","):
                raise self.error("',' or ')'")

    def with_properties(self) -> dict[str, ast.Property]:
        props: dict[str, ast.Property] = {}
        if not self.accept_word("WITH"):
            return props
        self.expect_op("(")
        while True:
            tok = self.tok
            if tok.kind in (IDENT, QUOTED):
                key = self.advance().value.upper()
            elif tok.kind == STRING:
                self._check_quoted_property(tok)
                key = self.advance().value.upper()
            else:
                raise self.error("a property name, like KAFKA_TOPIC")
            if not self.tok.is_op("="):
                raise self.error(f"'=' and a value for {key}")
            self.advance()
            vtok = self.tok
            value: object
            if vtok.kind == STRING:
                value = vtok.value
            elif vtok.kind == INTEGER:
                value = int(vtok.value)
            elif vtok.kind in (DECIMAL, FLOAT):
                value = float(vtok.value)
            elif vtok.is_word("TRUE", "FALSE"):
                value = vtok.value == "TRUE"
            elif vtok.kind == IDENT:
                value = vtok.value
            else:
                raise self.error(f"a value for {key}, like '{key.lower()}_value' in quotes")
            self.advance()
            props[key] = ast.Property(value, pos=self.pos(tok))
            if self.accept_op(")"):
                return props
            if not self.accept_op(","):
                raise self.error("',' or ')'")

    def _check_quoted_property(self, tok: Token) -> None:
        """Explain a property written as one string, such as 'kafka_topic=‘users' (pasted
        from a document that curled its quotes)."""
        text = tok.value
        curly = next((i for i, c in enumerate(text) if c in "\u2018\u2019\u201c\u201d"), None)
        if curly is None and "=" not in text:
            return
        name, _, value = text.partition("=")
        value = value.strip("\u2018\u2019\u201c\u201d'\" ")
        fix = f"{name.strip()}='{value}'" if value else f"{name.strip()}='...'"
        if curly is not None:
            raise SqlError(
                f"Syntax error at or near '{text[curly]}': a typographic quote inside the string "
                f"'{text}'; write the property with straight quotes around its value only: {fix}",
                tok.line,
                tok.column + 1 + curly,
            )
        raise SqlError(
            f"Syntax error at or near '{text}': a property is NAME='value', not one quoted "
            f"string; write {fix}",
            tok.line,
            tok.column,
        )

    def insert(self) -> ast.Statement:
        start = self.advance()
        self.expect_word("INTO")
        target_tok = self.tok
        target = self.identifier("the stream or table to insert into")
        if self.tok.is_op("(") or self.tok.is_word("VALUES"):
            columns: list[str] = []
            if self.accept_op("("):
                columns = self.items_until(")", lambda: self.identifier("a column name"))
            self.expect_word("VALUES")
            self.expect_op("(")
            values = self.items_until(")", self.expr)
            return ast.InsertValues(target, tuple(columns), tuple(values), pos=self.pos(start))
        properties = self.with_properties()
        return ast.InsertInto(
            target,
            self.select(),
            properties,
            pos=self.pos(start),
            target_pos=self.pos(target_tok),
        )

    def drop(self) -> ast.Statement:
        start = self.advance()
        kind = self.expect_word("STREAM", "TABLE", "TYPE", "CONNECTOR").value
        if_exists = False
        if self.accept_word("IF"):
            self.expect_word("EXISTS")
            if_exists = True
        if kind == "CONNECTOR":
            name = self.identifier("the name of the connector to drop")
            return ast.DropConnector(name, if_exists, pos=self.pos(start))
        name = self.identifier(f"the name of the {kind.lower()} to drop")
        delete_topic = False
        if kind != "TYPE" and self.accept_word("DELETE"):
            self.expect_word("TOPIC")
            delete_topic = True
        return ast.Drop(kind, name, if_exists, delete_topic, pos=self.pos(start))

    def show(self) -> ast.Statement:
        start = self.advance()
        what = self.expect_word(
            "STREAMS",
            "TABLES",
            "TOPICS",
            "QUERIES",
            "PROPERTIES",
            "FUNCTIONS",
            "TYPES",
            "CONNECTORS",
            "VARIABLES",
        ).value
        if what == "TOPICS":
            self.accept_word("ALL")
        extended = bool(self.accept_word("EXTENDED"))
        return ast.Show(what, extended, pos=self.pos(start))

    def describe(self) -> ast.Statement:
        start = self.advance()
        if self.accept_word("FUNCTION"):
            return ast.Describe(
                self.identifier("a function name"), function=True, pos=self.pos(start)
            )
        if self.accept_word("CONNECTOR"):
            return ast.Describe(
                self.identifier("a connector name"), connector=True, pos=self.pos(start)
            )
        extended = bool(self.accept_word("EXTENDED"))
        name = self.identifier("a stream or table name")
        if not extended and self.accept_word("EXTENDED"):
            extended = True
        return ast.Describe(name, extended, pos=self.pos(start))

    def print_(self) -> ast.Statement:
        start = self.advance()
        if self.tok.kind == STRING:
            topic = self.advance().value
        else:
            topic = self.raw_identifier("a topic name")
        from_beginning = False
        limit = interval = None
        while True:
            if self.accept_word("FROM"):
                self.expect_word("BEGINNING")
                from_beginning = True
            elif self.accept_word("LIMIT"):
                limit = self.integer("a number of records")
            elif self.accept_word("INTERVAL", "SAMPLE"):
                interval = self.integer("an interval")
            else:
                break
        return ast.Print(topic, from_beginning, limit, interval, pos=self.pos(start))

    def raw_identifier(self, what: str) -> str:
        """An identifier as written (topic names keep their case)."""
        tok = self.tok
        if tok.kind == QUOTED:
            self.advance()
            return tok.value
        if tok.kind == IDENT:
            self.advance()
            return self.text[tok.start : tok.end]
        raise self.error(what)

    def integer(self, what: str) -> int:
        if self.tok.kind != INTEGER:
            raise self.error(what)
        return int(self.advance().value)

    # -- queries -----------------------------------------------------------------------------

    def select(self) -> ast.Select:
        start = self.expect_word("SELECT")
        items: list[ast.SelectItem | ast.AllColumns] = []
        while True:
            tok = self.tok
            if tok.is_op("*"):
                self.advance()
                items.append(ast.AllColumns(pos=self.pos(tok)))
            elif tok.kind in (IDENT, QUOTED) and self.peek().is_op(".") and self.peek(2).is_op("*"):
                source = self.identifier()
                self.advance()
                self.advance()
                items.append(ast.AllColumns(source, pos=self.pos(tok)))
            else:
                expr = self.expr()
                alias = None
                if self.accept_word("AS"):
                    alias = self.identifier("a column alias")
                elif self.tok.kind == QUOTED or (
                    self.tok.kind == IDENT and self.tok.value not in _RESERVED
                ):
                    alias = self.identifier()
                items.append(ast.SelectItem(expr, alias, pos=self.pos(tok)))
            if not self.accept_op(","):
                break
        if not self.tok.is_word("FROM"):
            raise self.error("',' or FROM")
        self.advance()
        relation = self.relation()
        window = where = having = None
        group_by: tuple[ast.Expr, ...] = ()
        partition_by: tuple[ast.Expr, ...] = ()
        if self.tok.is_word("WINDOW"):
            window = self.window()
        if self.accept_word("WHERE"):
            where = self.expr()
        if self.accept_word("GROUP"):
            self.expect_word("BY")
            group_by = self.expr_list()
        if self.accept_word("PARTITION"):
            self.expect_word("BY")
            partition_by = self.expr_list()
        if self.accept_word("HAVING"):
            having = self.expr()
        emit = None
        if self.accept_word("EMIT"):
            emit = self.expect_word("CHANGES", "FINAL").value
        limit = None
        if self.accept_word("LIMIT"):
            if self.tok.kind in (DECIMAL, FLOAT):
                raise SqlError(
                    "Failed to prepare statement: Value must be integer for command: LIMIT",
                    *self.pos(self.tok),
                )
            negative = self.accept_op("-")
            limit = self.integer("a number of rows")
            if negative:
                limit = -limit  # refused where it is used, with what LIMIT allows
        if self.tok.kind != EOF and not self.tok.is_op(";"):
            raise self.error(
                "WINDOW, WHERE, GROUP BY, PARTITION BY, HAVING, EMIT, LIMIT or ';'"
                if not group_by
                else "HAVING, EMIT, LIMIT or ';'"
            )
        return ast.Select(
            tuple(items),
            relation,
            where,
            window,
            group_by,
            partition_by,
            having,
            emit,
            limit,
            pos=self.pos(start),
        )

    def expr_list(self) -> tuple[ast.Expr, ...]:
        """GROUP BY / PARTITION BY expressions: values, not conditions (as ksqlDB's grammar).

        `GROUP BY (a, b)` is one parenthesized list; `GROUP BY a, (b, c)` is an error.
        """
        if self.tok.is_op("("):
            save = self.i
            self.advance()
            first = self.predicate()
            if self.accept_op(","):
                items = [first, self.predicate()]
                while self.accept_op(","):
                    items.append(self.predicate())
                self.expect_op(")")
                return tuple(items)
            self.i = save
        items = [self.predicate()]
        while self.accept_op(","):
            items.append(self.predicate())
        return tuple(items)

    def relation(self) -> ast.Relation:
        left: ast.Relation = self.source_ref()
        while True:
            tok = self.tok
            kind = None
            if self.accept_word("JOIN"):
                kind = "INNER"
            elif self.accept_word("INNER"):
                self.expect_word("JOIN")
                kind = "INNER"
            elif self.tok.is_word("LEFT", "RIGHT", "FULL"):
                kind = self.advance().value
                self.accept_word("OUTER")
                self.expect_word("JOIN")
            elif self.accept_word("OUTER"):
                self.expect_word("JOIN")
                kind = "FULL"
            if kind is None:
                return left
            right = self.source_ref()
            within = None
            if self.accept_word("WITHIN"):
                within = self.within()
            self.expect_word("ON")
            on = self.expr()
            left = ast.Join(left, right, kind, on, within, pos=self.pos(tok))

    def source_ref(self) -> ast.SourceRef:
        tok = self.tok
        name = self.identifier("a stream or table name")
        alias = None
        if self.accept_word("AS"):
            alias = self.identifier("an alias")
        elif self.tok.kind == QUOTED or (
            self.tok.kind == IDENT
            and self.tok.value not in _RESERVED
            and not self.tok.is_word("EMIT")
        ):
            alias = self.identifier()
        return ast.SourceRef(name, alias, pos=self.pos(tok))

    def duration(self) -> int:
        tok = self.tok
        if tok.kind != INTEGER:
            raise self.error("a duration, like 10 SECONDS")
        amount = int(self.advance().value)
        unit = self.tok
        if unit.kind != IDENT or unit.value not in _DURATION_UNITS:
            raise self.error("a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS)")
        self.advance()
        return amount * _DURATION_UNITS[unit.value]

    def within(self) -> ast.WithinSpec:
        if self.accept_op("("):
            before = self.duration()
            self.expect_op(",")
            after = self.duration()
            self.expect_op(")")
        else:
            before = after = self.duration()
        grace = None
        if self.accept_word("GRACE"):
            self.expect_word("PERIOD")
            grace = self.duration()
        return ast.WithinSpec(before, after, grace)

    def window(self) -> ast.WindowSpec:
        start = self.expect_word("WINDOW")
        kind = self.expect_word("TUMBLING", "HOPPING", "SESSION").value
        self.expect_op("(")
        size = advance = grace = retention = None
        if kind == "SESSION":
            size = self.duration()
        else:
            self.expect_word("SIZE")
            size = self.duration()
        while self.accept_op(","):
            if self.accept_word("ADVANCE"):
                self.expect_word("BY")
                advance = self.duration()
            elif self.accept_word("RETENTION"):
                retention = self.duration()
            elif self.accept_word("GRACE"):
                self.expect_word("PERIOD")
                grace = self.duration()
            else:
                raise self.error("ADVANCE BY, RETENTION or GRACE PERIOD")
        self.expect_op(")")
        if kind == "HOPPING" and advance is None:
            raise SqlError(
                "a HOPPING window needs ADVANCE BY, e.g. WINDOW HOPPING (SIZE 30 "
                "SECONDS, ADVANCE BY 10 SECONDS)",
                start.line,
                start.column,
            )
        if kind != "HOPPING" and advance is not None:
            raise SqlError(
                f"ADVANCE BY is for HOPPING windows, not {kind}", start.line, start.column
            )
        return ast.WindowSpec(kind, size, advance, grace, retention, pos=self.pos(start))

    # -- types -------------------------------------------------------------------------------

    def type_(self) -> T.SqlType:
        tok = self.tok
        if tok.kind not in (IDENT, QUOTED) or tok.is_word("NULL"):
            raise self.error("a type, like INT, STRING or ARRAY<STRING>")
        name = tok.value.upper() if tok.kind == IDENT else tok.value
        self.advance()
        if name == "DECIMAL":
            self.expect_op("(")
            precision = self.integer("the precision, a whole number")
            self.expect_op(",")
            scale = self.integer("the scale, a whole number")
            self.expect_op(")")
            try:
                return T.decimal(precision, scale)
            except HispeedError as e:
                raise SqlError(str(e), tok.line, tok.column) from None
        if name == "ARRAY":
            self.expect_op("<")
            element = self.type_()
            self.expect_op(">")
            return T.array(element)
        if name == "MAP":
            self.expect_op("<")
            key = self.type_()
            self.expect_op(",")
            value = self.type_()
            self.expect_op(">")
            return T.map_(key, value)
        if name == "STRUCT":
            self.expect_op("<")
            fields = self.items_until(">", lambda: (self.identifier("a field name"), self.type_()))
            return T.struct(fields)
        simple = T.by_name(name)
        if simple is not None:
            if name == "VARCHAR" and self.tok.is_op("(") and self.peek().kind == INTEGER:
                self.advance()
                self.advance()
                self.expect_op(")")
            return simple
        if name in self.types:
            return self.types[name]
        raise SqlError(
            f"unknown type {tok.value}: use BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL(p, s), STRING, "
            "BYTES, TIMESTAMP, DATE, TIME, ARRAY<..>, MAP<..>, STRUCT<..>, or a type made with "
            "CREATE TYPE",
            tok.line,
            tok.column,
        )

    # -- expressions -------------------------------------------------------------------------

    def expr(self) -> ast.Expr:
        return self.or_()

    def or_(self) -> ast.Expr:
        left = self.and_()
        while (tok := self.accept_word("OR")) is not None:
            left = ast.BinaryOp("OR", left, self.and_(), pos=self.pos(tok))
        return left

    def and_(self) -> ast.Expr:
        left = self.not_()
        while (tok := self.accept_word("AND")) is not None:
            left = ast.BinaryOp("AND", left, self.not_(), pos=self.pos(tok))
        return left

    def not_(self) -> ast.Expr:
        if (tok := self.accept_word("NOT")) is not None:
            return ast.UnaryOp("NOT", self.not_(), pos=self.pos(tok))
        return self.predicate()

    def predicate(self) -> ast.Expr:
        left = self.value()
        tok = self.tok
        if tok.is_op("=", "!=", "<>", "<", "<=", ">", ">="):
            self.advance()
            op = "!=" if tok.value == "<>" else tok.value
            return ast.BinaryOp(op, left, self.value(), pos=self.pos(tok))
        if tok.is_word("IS"):
            self.advance()
            negated = bool(self.accept_word("NOT"))
            if self.accept_word("NULL"):
                return ast.IsNull(left, negated, pos=self.pos(tok))
            if self.accept_word("DISTINCT"):
                self.expect_word("FROM")
                right = self.value()
                fn = "IS_NOT_DISTINCT_FROM" if negated else "IS_DISTINCT_FROM"
                return ast.FunctionCall(fn, (left, right), pos=self.pos(tok))
            raise self.error("NULL, NOT NULL or DISTINCT FROM")
        negated = False
        if tok.is_word("NOT") and self.peek().is_word("BETWEEN", "IN", "LIKE"):
            self.advance()
            negated = True
        if self.accept_word("BETWEEN"):
            low = self.value()
            self.expect_word("AND")
            high = self.value()
            return ast.Between(left, low, high, negated, pos=self.pos(tok))
        if self.accept_word("IN"):
            self.expect_op("(")
            if self.tok.is_op(")"):
                raise self.error("a value: IN needs at least one")
            items = [self.expr()]
            while self.accept_op(","):
                items.append(self.expr())
            self.expect_op(")")
            return ast.InList(left, tuple(items), negated, pos=self.pos(tok))
        if self.accept_word("LIKE"):
            pattern = self.value()
            escape = None
            if self.accept_word("ESCAPE"):
                escape = self.string("an escape character in quotes")
            return ast.Like(left, pattern, escape, negated, pos=self.pos(tok))
        if negated:
            raise self.error("BETWEEN, IN or LIKE")
        return left

    def value(self) -> ast.Expr:
        left = self.additive()
        while (tok := self.accept_op("||")) is not None:
            left = ast.FunctionCall("CONCAT", (left, self.additive()), pos=self.pos(tok))
        return left

    def additive(self) -> ast.Expr:
        left = self.multiplicative()
        while (tok := self.accept_op("+", "-")) is not None:
            left = ast.BinaryOp(tok.value, left, self.multiplicative(), pos=self.pos(tok))
        return left

    def multiplicative(self) -> ast.Expr:
        left = self.unary()
        while (tok := self.accept_op("*", "/", "%")) is not None:
            left = ast.BinaryOp(tok.value, left, self.unary(), pos=self.pos(tok))
        return left

    def unary(self) -> ast.Expr:
        tok = self.tok
        if tok.is_op("-", "+"):
            self.advance()
            if tok.value == "-" and self.tok.kind in (INTEGER, DECIMAL, FLOAT):
                return self.postfix(self.number(negative=True, sign=tok))
            operand = self.unary()
            return operand if tok.value == "+" else ast.UnaryOp("-", operand, pos=self.pos(tok))
        return self.postfix(self.primary())

    def postfix(self, expr: ast.Expr) -> ast.Expr:
        while True:
            tok = self.tok
            if self.accept_op("["):
                index = self.expr()
                self.expect_op("]")
                expr = ast.Subscript(expr, index, pos=self.pos(tok))
            elif self.accept_op("->"):
                if self.accept_op("*"):
                    return ast.StructStar(expr, pos=self.pos(tok))
                expr = ast.Dereference(expr, self.identifier("a field name"), pos=self.pos(tok))
            else:
                return expr

    def number(self, negative: bool = False, sign: Token | None = None) -> ast.Literal:
        tok = self.advance()
        at = sign or tok
        text = ("-" if negative else "") + tok.value
        if tok.kind == INTEGER:
            value = int(text)
            if -(1 << 31) <= value < (1 << 31):
                return ast.Literal(value, T.INTEGER, pos=self.pos(at))
            if -(1 << 63) <= value < (1 << 63):
                return ast.Literal(value, T.BIGINT, pos=self.pos(at))
            raise SqlError(f"Invalid numeric literal: {text}", at.line, at.column)
        if tok.kind == FLOAT:
            return ast.Literal(float(text), T.DOUBLE, pos=self.pos(at))
        dec = _decimal.Decimal(text)
        digits = tok.value.replace(".", "").lstrip("0") or "0"
        scale = len(tok.value.split(".", 1)[1]) if "." in tok.value else 0
        precision = max(len(digits), scale, 1)
        if precision > 38:
            raise SqlError(f"Invalid numeric literal: {text}", at.line, at.column)
        return ast.Literal(dec, T.decimal(precision, scale), pos=self.pos(at))

    def primary(self) -> ast.Expr:
        tok = self.tok
        p = self.pos(tok)
        if tok.kind in (INTEGER, DECIMAL, FLOAT):
            return self.number()
        if tok.kind == STRING:
            self.advance()
            return ast.Literal(tok.value, T.STRING, pos=p)
        if tok.is_op("("):
            # a lambda with several parameters: (x, y) => ...
            if self._lambda_ahead():
                return self.lambda_()
            self.advance()
            inner = self.expr()
            self.expect_op(")")
            return inner
        if tok.kind == QUOTED:
            return self.column_or_call()
        if tok.kind != IDENT:
            raise self.error("an expression")
        word = tok.value
        if word in ("TRUE", "FALSE"):
            self.advance()
            return ast.Literal(word == "TRUE", T.BOOLEAN, pos=p)
        if word == "NULL":
            self.advance()
            return ast.Literal(None, None, pos=p)
        if word == "CASE":
            return self.case()
        if word == "CAST":
            self.advance()
            self.expect_op("(")
            operand = self.expr()
            self.expect_word("AS")
            target = self.type_()
            self.expect_op(")")
            return ast.Cast(operand, target, pos=p)
        if word == "ARRAY" and self.peek().is_op("["):
            self.advance()
            self.advance()
            items: list[ast.Expr] = []
            if not self.accept_op("]"):
                items.append(self.expr())
                while self.accept_op(","):
                    items.append(self.expr())
                self.expect_op("]")
            return ast.ArrayConstructor(tuple(items), pos=p)
        if word == "MAP" and self.peek().is_op("("):
            self.advance()
            self.advance()
            entries = self.items_until(")", lambda: self.assignment(self.expr))
            return ast.MapConstructor(tuple(entries), pos=p)
        if word == "STRUCT" and self.peek().is_op("("):
            self.advance()
            self.advance()
            fields = self.items_until(
                ")", lambda: self.assignment(lambda: self.identifier("a field name"))
            )
            return ast.StructConstructor(tuple(fields), pos=p)
        if self.peek().is_op("=>"):
            return self.lambda_()
        if word in _RESERVED and word not in ("LEFT", "RIGHT"):
            raise self.error("an expression")
        return self.column_or_call()

    def _lambda_ahead(self) -> bool:
        j = self.i + 1
        toks = self.tokens
        while toks[j].kind in (IDENT, QUOTED):
            j += 1
            if toks[j].is_op(","):
                j += 1
                continue
            return toks[j].is_op(")") and toks[j + 1].is_op("=>")
        return False

    def lambda_(self) -> ast.Expr:
        tok = self.tok
        params = []
        if self.accept_op("("):
            while True:
                params.append(self.identifier("a lambda parameter"))
                if self.accept_op(")"):
                    break
                self.expect_op(",")
        else:
            params.append(self.identifier("a lambda parameter"))
        self.expect_op("=>")
        return ast.Lambda(tuple(params), self.expr(), pos=self.pos(tok))

    def column_or_call(self) -> ast.Expr:
        tok = self.tok
        name = self.identifier()
        if self.tok.is_op("(") and tok.kind == IDENT:
            self.advance()
            if self.accept_op("*"):
                self.expect_op(")")
                return ast.FunctionCall(name, (), star=True, pos=self.pos(tok))
            distinct = bool(self.accept_word("DISTINCT"))
            args = self.items_until(")", self.expr)
            return ast.FunctionCall(name, tuple(args), distinct, pos=self.pos(tok))
        if self.tok.is_op(".") and self.peek().kind in (IDENT, QUOTED):
            self.advance()
            column = self.identifier()
            return ast.ColumnRef(column, name, pos=self.pos(tok))
        return ast.ColumnRef(name, pos=self.pos(tok))

    def case(self) -> ast.Expr:
        start = self.advance()
        operand = None
        if not self.tok.is_word("WHEN"):
            operand = self.expr()
        whens = []
        while self.accept_word("WHEN"):
            cond = self.expr()
            self.expect_word("THEN")
            whens.append((cond, self.expr()))
        if not whens:
            raise self.error("WHEN")
        default = None
        if self.accept_word("ELSE"):
            default = self.expr()
        self.expect_word("END")
        return ast.Case(operand, tuple(whens), default, pos=self.pos(start))

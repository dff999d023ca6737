"""A recursive-descent parser for ksqlDB's SQL. Every error names its line and column and
says what was expected there. This module parses statements and queries; their expressions
and types are parsed by `expression_parser.py`, which it builds on."""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping

from hispeed.errors import HispeedError, SqlError
from hispeed.sql import ast, flink
from hispeed.sql import types as T
from hispeed.sql.delete import delete
from hispeed.sql.expression_parser import RESERVED, ExpressionParser
from hispeed.sql.joins import comma_join
from hispeed.sql.lexer import DECIMAL, EOF, FLOAT, IDENT, INTEGER, QUOTED, STRING, Token
from hispeed.sql.order_by import order_by
from hispeed.sql.over import subquery, subquery_ahead
from hispeed.sql.window_join import join
from hispeed.sql.window_tvf import starts_window_tvf, window_tvf
from hispeed.sql.windows import MAX_DURATION_MS, window_properties

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


#: the WITH properties of CREATE that hold whole numbers, with the type ksqlDB's ConfigDef gives
#: each and the range that type (and a topic) allows
_NUMERIC_PROPERTIES = {
    "PARTITIONS": ("INT", 1, (1 << 31) - 1),
    "REPLICAS": ("SHORT", 1, (1 << 15) - 1),
    "RETENTION_MS": ("LONG", -(1 << 63), (1 << 63) - 1),
    "KEY_SCHEMA_ID": ("INT", -(1 << 31), (1 << 31) - 1),
    "VALUE_SCHEMA_ID": ("INT", -(1 << 31), (1 << 31) - 1),
}


#: the WITH properties of CREATE that hold text (ConfigDef's Type.STRING in ksqlDB)
_TEXT_PROPERTIES = (
    "KAFKA_TOPIC",
    "FORMAT",
    "KEY_FORMAT",
    "VALUE_FORMAT",
    "TIMESTAMP",
    "TIMESTAMP_FORMAT",
    "WINDOW_TYPE",
    "WINDOW_SIZE",
    "KEY_DELIMITER",
    "VALUE_DELIMITER",
    "KEY",
    "CLEANUP_POLICY",
)


def _checked_numbers(props: dict[str, ast.Property]) -> dict[str, ast.Property]:
    """The numeric properties as ints, as ksqlDB's ConfigDef reads them (a number, or a
    string holding one), and the text ones as text; anything else is an error in ConfigDef's
    words at the property."""
    for name, (kind, low, high) in _NUMERIC_PROPERTIES.items():
        prop = props.get(name)
        if prop is None:
            continue
        value = prop.value
        number: int | None = None
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str) and value.strip().lstrip("+-").isdigit():
            number = int(value.strip())
        shown = "''" if value == "" else str(value)
        if number is None:
            raise SqlError(
                f"Invalid value {shown} for configuration {name}: Not a number of type {kind}",
                *prop.pos,
            )
        if not low <= number <= high:
            raise SqlError(
                f"Invalid value {shown} for configuration {name}: must be from {low} to {high}",
                *prop.pos,
            )
        props[name] = ast.Property(number, pos=prop.pos)
    for name in _TEXT_PROPERTIES:
        prop = props.get(name)
        if prop is not None and not isinstance(prop.value, str):
            kind = "a boolean" if isinstance(prop.value, bool) else "a number"
            raise SqlError(
                f"Invalid value {prop.value} for configuration {name}: Expected value to be a "
                f"string, but it was {kind}",
                *prop.pos,
            )
    return props


#: the longest duration a window or join may span (100,000 years of 365.25 days), so that a
#: timestamp plus it stays a BIGINT


def parse(text: str, types: Mapping[str, T.SqlType] | None = None) -> list[ast.ParsedStatement]:
    """Parse one or more statements separated by ';'."""
    return list(parse_iter(text, types))


def parse_iter(
    text: str,
    types: Mapping[str, T.SqlType] | None = None,
    *,
    max_identifier_length: int | None = None,
) -> Iterator[ast.ParsedStatement]:
    """Parse statements one at a time, so that running one (CREATE TYPE) can change how the
    next parses: `types` is read as each statement is parsed. The whole text is split into
    tokens first, so lexical errors (an identifier over `max_identifier_length`) come before
    any statement."""
    try:
        parser = StatementParser(text, types if types is not None else {}, max_identifier_length)
    except SqlError:
        lone = _lone_analyze(text)
        if lone is None:
            raise
        return iter([lone])
    return parser.statements()


#: blanks and comments, then the word ANALYZE
_ANALYZE = re.compile(r"\A(?:\s+|--[^\n]*(?:\n|\Z)|/\*.*?\*/)*(ANALYZE)\b\s*", re.I | re.S)


def _lone_analyze(text: str) -> ast.ParsedStatement | None:
    """A text that is one ANALYZE statement whose DuckDB SQL this dialect's lexer cannot
    split into tokens (`x::INT`, `{'a': 1}`, `$1`): the whole text, up to a last `;`."""
    found = _ANALYZE.match(text)
    if found is None:
        return None
    body = text[found.end() :].rstrip().removesuffix(";").rstrip()
    if not body:
        return None

    def place(index: int) -> tuple[int, int]:
        before = text[:index]
        return before.count("\n") + 1, index - (before.rfind("\n") + 1) + 1

    line, column = place(found.end())
    first = place(found.start(1))
    statement = ast.Analyze(body, line, column, pos=first)
    return ast.ParsedStatement(statement, text[found.start(1) :].strip(), *first)


def parse_counted(
    text: str,
    types: Mapping[str, T.SqlType] | None = None,
    *,
    max_identifier_length: int | None = None,
) -> tuple[int, Iterator[ast.ParsedStatement]]:
    """`parse_iter`, with how many statements the text holds, counted by its semicolons
    (empty statements not counted) before any is parsed: a server refuses too many at once."""
    try:
        parser = StatementParser(text, types if types is not None else {}, max_identifier_length)
    except SqlError:
        lone = _lone_analyze(text)
        if lone is None:
            raise
        return 1, iter([lone])
    count = 0
    previous_ends = True  # at the start, or just after a ';'
    for tok in parser.tokens:
        ends = tok.kind == EOF or tok.is_op(";")
        if ends and not previous_ends:
            count += 1
        previous_ends = ends
    return count, parser.statements()


def parse_one(text: str, types: Mapping[str, T.SqlType] | None = None) -> ast.Statement:
    parsed = parse(text, types)
    if len(parsed) != 1:
        raise SqlError(f"expected one statement, found {len(parsed)}", 1, 1)
    return parsed[0].statement


def parse_query(text: str, types: Mapping[str, T.SqlType] | None = None) -> ast.Select:
    """The one SELECT of `text` (a pull or push query); anything else is an error."""
    parsed = list(parse_iter(text, types))
    if len(parsed) != 1 or not isinstance(parsed[0].statement, ast.QueryStatement):
        raise HispeedError("expected one SELECT statement")
    return parsed[0].statement.query


def parse_expression(text: str) -> ast.Expr:
    p = ExpressionParser(text, {})
    expr = p.expr()
    p.expect_eof()
    return expr


def parse_type(text: str, types: Mapping[str, T.SqlType] | None = None) -> T.SqlType:
    p = ExpressionParser(text, types or {})
    t = p.type_()
    p.expect_eof()
    return t


#: the words ksqlDB's SyntaxErrorValidator knows a statement starts with, in its order (the
#: first of equally near ones is the suggestion)
KSQL_COMMANDS = (
    "SELECT",
    "CREATE",
    "INSERT",
    "DESCRIBE",
    "PRINT",
    "EXPLAIN",
    "SHOW",
    "LIST",
    "TERMINATE",
    "PAUSE",
    "RESUME",
    "DROP",
    "SET",
    "DEFINE",
    "UNDEFINE",
    "UNSET",
    "ASSERT",
    "ALTER",
)


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions and substitutions each cost one)."""
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        prev, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (ca != cb))
    return row[len(b)]


class StatementParser(ExpressionParser):
    """Statements and queries, over the expression parser."""

    # -- statements --------------------------------------------------------------------------

    def statements(self) -> Iterator[ast.ParsedStatement]:
        while True:
            while self.accept_op(";") is not None:
                continue  # empty statements
            if self.tok.kind == EOF:
                break
            first = self.tok
            try:
                stmt = self.statement()
            except RecursionError:
                # enter() bounds nesting; this is the last guard should a statement's shape
                # still outrun the stack (a caller already deep in its own frames)
                self.depth = 0
                raise SqlError(
                    "Statement is too large to parse. This may be caused by having too many "
                    "nested expressions in the statement.",
                    first.line,
                    first.column,
                ) from None
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

    def analyze(self) -> ast.Analyze:
        """ANALYZE and DuckDB's SQL up to the `;` that ends the statement, taken as written
        (DuckDB parses it, not this parser)."""
        first = self.advance()
        body = self.tok
        if body.kind == EOF or body.is_op(";"):
            raise self.error("a query after ANALYZE, like ANALYZE SELECT ...")
        last = body
        while self.tok.kind != EOF and not self.tok.is_op(";"):
            last = self.advance()
        return ast.Analyze(
            self.text[body.start : last.end], body.line, body.column, pos=self.pos(first)
        )

    def statement(self) -> ast.Statement:
        tok = self.tok
        if tok.is_word("CREATE"):
            return self.create()
        if tok.is_word("INSERT"):
            return self.insert()
        if tok.is_word("DROP"):
            return self.drop()
        if tok.is_word("ALTER"):
            return self.alter()
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
        if tok.is_word("ANALYZE"):
            return self.analyze()
        if tok.is_word("DELETE"):
            return delete(self)
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
        if tok.is_word("ASSERT"):
            # ksqlDB's grammar: ASSERT [NOT EXISTS] (TOPIC ... | SCHEMA ...); any other word
            # after ASSERT is a syntax error at that word
            self.advance()
            if not self.tok.is_word("NOT", "TOPIC", "SCHEMA"):
                raise self.error("TOPIC, SCHEMA or NOT EXISTS")
            raise SqlError(
                "ASSERT TOPIC and ASSERT SCHEMA are not supported by hispeed",
                tok.line,
                tok.column,
            )
        if tok.kind != IDENT or tok.value not in KSQL_COMMANDS:
            raise self.unknown_statement(tok)
        raise self.error(
            "a statement (CREATE, INSERT, SELECT, ALTER, DROP, SHOW, LIST, DESCRIBE, "
            "EXPLAIN, TERMINATE, PRINT, SET, UNSET)"
        )

    def unknown_statement(self, tok: Token) -> SqlError:
        """ksqlDB's SyntaxErrorValidator for a statement that starts with no command's word:
        'Unknown statement' and the command nearest to it by edit distance."""
        text = self.text[tok.start : tok.end]
        nearest = min(KSQL_COMMANDS, key=lambda c: edit_distance(c, text.upper()))
        return SqlError(
            f"Syntax Error\nUnknown statement '{text}'\nDid you mean '{nearest}'?",
            tok.line,
            tok.column,
        )

    def create(self) -> ast.Statement:
        start = self.advance()
        if flink.is_flink_create(self):  # Flink SQL's DDL (sql/flink.py)
            return flink.create(self, start, self.select)
        or_replace = False
        if self.accept_word("OR"):
            self.expect_word("REPLACE")
            or_replace = True
        source = bool(self.accept_word("SOURCE"))
        sink = not source and bool(self.accept_word("SINK"))
        if (source or sink) and self.accept_word("CONNECTOR"):
            if_not_exists = self.if_not_exists()
            name = self.identifier("the connector's name")
            # a connector's configuration keys as written in quotes: Kafka Connect's are
            # case-sensitive ('transforms.addPrefix.type'); hispeed's own connectors read
            # them lower-cased (connectors/runner.py)
            props = self.with_properties(keep_case=True)
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
        properties = _checked_numbers(self.with_properties())
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
        # ksqlDB checks the window properties as it builds the statement
        window_properties({k: p.value for k, p in properties.items()})
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
            if (key and kind == "TABLE") or (primary and kind == "STREAM"):
                # ksqlDB refuses these as it builds the statement (CreateTable, CreateStream)
                wrong, right = ("KEY", "PRIMARY KEY") if key else ("PRIMARY KEY", "KEY")
                raise SqlError(
                    f"Column `{name}` is a '{wrong}' column: please use '{right}' for "
                    f"{kind.lower()}s.\nTables have PRIMARY KEYs, which are unique and NON "
                    "NULL.\nStreams have KEYs, which have no uniqueness or NON NULL constraints.",
                    tok.line,
                    tok.column,
                    located=True,
                )
            cols.append(ast.ColumnDef(name, col_type, key, primary, headers, pos=self.pos(tok)))
            if self.accept_op(")"):
                return tuple(cols)
            if not self.accept_op(","):
                # ANTLR's expected set at the loop of `tableElements` in ksqlDB's grammar
                raise self.expecting("{',', ')'}")

    def with_properties(self, keep_case: bool = False) -> dict[str, ast.Property]:
        """WITH's properties, names upper-cased; with `keep_case`, a quoted name (a string or
        a quoted identifier) as written and a bare one lower-cased (a connector's)."""
        props: dict[str, ast.Property] = {}
        if not self.accept_word("WITH"):
            return props
        self.expect_op("(")
        while True:
            tok = self.tok
            if tok.kind in (IDENT, QUOTED):
                key = self.advance().value
                key = key.upper() if not keep_case else key if tok.kind == QUOTED else key.lower()
            elif tok.kind == STRING:
                self._check_quoted_property(tok)
                key = self.advance().value
                key = key if keep_case else key.upper()
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
                if not math.isfinite(value):
                    raise SqlError(
                        f"Invalid value {vtok.value} for configuration {key}: the number is "
                        "out of range",
                        vtok.line,
                        vtok.column,
                    )
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
                f"Syntax Error\nSyntax error at or near '{text[curly]}': a typographic quote "
                f"inside the string '{text}'; write the property with straight quotes around "
                f"its value only: {fix}",
                tok.line,
                tok.column + 1 + curly,
            )
        raise SqlError(
            f"Syntax Error\nSyntax error at or near '{text}': a property is NAME='value', not "
            f"one quoted string; write {fix}",
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
            at = self.tok
            if self.accept_op("("):
                columns = self.items_until(")", lambda: self.identifier("a column name"))
            if columns and self.tok.is_word("SELECT"):  # Flink's (statements/flink.py)
                return flink.insert_select(target, columns, self.select(), start, target_tok, at)
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

    def alter(self) -> ast.Statement:
        start = self.advance()
        kind = self.expect_word("STREAM", "TABLE").value
        name = self.identifier(f"the name of the {kind.lower()} to alter")
        columns = []
        while True:
            self.expect_word("ADD")
            self.accept_word("COLUMN")
            tok = self.tok
            column = self.identifier("the name of the column to add")
            columns.append(ast.ColumnDef(column, self.type_(), pos=self.pos(tok)))
            if not self.accept_op(","):
                return ast.AlterSource(kind, name, tuple(columns), pos=self.pos(start))

    def drop(self) -> ast.Statement:
        start = self.advance()
        kind = self.expect_word("STREAM", "TABLE", "TYPE", "CONNECTOR", "VIEW").value
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
        # SHOW SOURCE CONNECTORS / SHOW SINK CONNECTORS: ksqlDB's scope of the list
        scope = self.tok.value if self.tok.is_word("SOURCE", "SINK") else None
        if scope is not None:
            self.advance()
            self.expect_word("CONNECTORS")
            return ast.Show("CONNECTORS", scope=scope, pos=self.pos(start))
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

    # -- queries -----------------------------------------------------------------------------

    def select(self) -> ast.Select:
        start = self.expect_word("SELECT")
        self.refuse_distinct()
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
                    self.tok.kind == IDENT and self.tok.value not in RESERVED
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
            group_by = self.expr_list("GROUP BY")
        if self.accept_word("PARTITION"):
            self.expect_word("BY")
            partition_by = self.expr_list("PARTITION BY")
        if self.accept_word("HAVING"):
            having = self.expr()
        order = order_by(self)
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
        if self.tok.kind != EOF and not self.tok.is_op(";") and not self.nested:
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
            order_by=order,
        )

    def expr_list(self, clause: str) -> tuple[ast.Expr, ...]:
        """GROUP BY / PARTITION BY expressions: values, not conditions (as ksqlDB's grammar).

        `GROUP BY (a, b)` is one parenthesized list; `GROUP BY a, (b, c)` is an error. An
        empty list `()` parses in ksqlDB's grammar and is refused as its GroupBy and
        PartitionBy nodes refuse it, when the statement is built.
        """
        if self.tok.is_op("(") and self.peek().is_op(")"):
            raise SqlError(
                f"Failed to prepare statement: {clause} requires at least one expression",
                *self.pos(self.tok),
            )
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
        left: ast.Relation = (
            window_tvf(self)
            if starts_window_tvf(self)
            else subquery(self)
            if subquery_ahead(self)
            else self.source_ref()
        )
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
            elif self.accept_op(","):
                left = comma_join(self, left, tok)
                continue
            if kind is None:
                return left
            left = join(self, left, kind, tok)  # with Flink's window join (sql/window_join.py)

    def source_ref(self) -> ast.SourceRef:
        tok = self.tok
        name = self.identifier("a stream or table name")
        return ast.SourceRef(name, self.optional_alias(), pos=self.pos(tok))

    def duration(self) -> int:
        tok = self.tok
        if tok.kind != INTEGER:
            raise self.error("a duration, like 10 SECONDS")
        amount = int(self.advance().value)
        unit = self.tok
        if unit.kind != IDENT or unit.value not in _DURATION_UNITS:
            raise self.error("a time unit (MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS)")
        self.advance()
        millis = amount * _DURATION_UNITS[unit.value]
        if millis > MAX_DURATION_MS:
            # past this, window bounds (a timestamp plus the duration) leave a BIGINT
            raise SqlError(
                f"Invalid duration: {tok.value} {unit.value} is longer than the longest a "
                f"window or join can span, {MAX_DURATION_MS} MILLISECONDS (100,000 years)",
                tok.line,
                tok.column,
            )
        return millis

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
        # Kafka Streams' own checks (TimeWindows, SessionWindows), which ksqlDB passes on
        assert size is not None  # read first, above
        if size <= 0:
            what = "Gap time" if kind == "SESSION" else "Window size (sizeMs)"
            raise SqlError(
                f"{what} must be larger than zero: {kind} windows of 0", start.line, start.column
            )
        if advance is not None and not 0 < advance <= size:
            raise SqlError(
                "Window advancement interval should be more than zero and less than window "
                f"duration: ADVANCE BY {advance} ms with SIZE {size} ms",
                start.line,
                start.column,
            )
        return ast.WindowSpec(kind, size, advance, grace, retention, pos=self.pos(start))

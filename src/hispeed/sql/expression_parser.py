"""The expression and type half of the recursive-descent parser for ksqlDB's SQL: the token
helpers every part of the parser shares, SQL types, and expressions from OR down to literals,
lambdas and CASE. The statement parser (`parser.py`) builds on it."""

from __future__ import annotations

import decimal as _decimal
import math
from collections.abc import Callable, Mapping
from dataclasses import fields
from typing import TypeVar

from hispeed.errors import HispeedError, SqlError
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.aggregate_clauses import filter_ahead, filter_clause
from hispeed.sql.joins import interval_literal
from hispeed.sql.lexer import DECIMAL, EOF, FLOAT, IDENT, INTEGER, QUOTED, STRING, Token, tokenize
from hispeed.sql.over import over_ahead, over_clause
from hispeed.sql.subquery import exists, in_subquery, scalar_subquery

_T = TypeVar("_T")
_K = TypeVar("_K")

#: how deep expressions and types may nest (parentheses, calls, CASE, NOT, signs, ARRAY<..>).
#: Not a setting: the bound is Python's own stack. Each level costs the parser about a dozen
#: frames and the later stages a few more, so 64 levels stay well inside the interpreter's
#: default recursion limit of 1000 wherever a statement is run (a server thread included).
MAX_NESTING_DEPTH = 64
#: how tall an expression's tree may grow, chains such as `a || b || c` included: the stages
#: after the parser walk it recursively at about two frames a level
MAX_EXPRESSION_HEIGHT = 250


def _too_large(detail: str, line: int, column: int) -> SqlError:
    return SqlError(
        "Statement is too large to parse. This may be caused by having too many nested "
        f"expressions in the statement: {detail}",
        line,
        column,
    )


def _children(node: ast.Expr) -> list[ast.Expr]:
    """The expressions directly inside `node` (in any field, tuples and pairs included)."""
    out: list[ast.Expr] = []
    todo: list[object] = [getattr(node, f.name) for f in fields(node)]
    while todo:
        value = todo.pop()
        if isinstance(value, ast.Expr):
            out.append(value)
        elif isinstance(value, tuple):
            todo.extend(value)
    return out


def check_height(expr: ast.Expr) -> None:
    """Refuse an expression taller than MAX_EXPRESSION_HEIGHT, at its deepest node. Walks
    without recursion, so that the check itself cannot run out of stack."""
    stack = [(expr, 1)]
    while stack:
        node, height = stack.pop()
        if height > MAX_EXPRESSION_HEIGHT:
            line, column = getattr(node, "pos", ast.NOPOS)
            raise _too_large(
                f"an expression more than {MAX_EXPRESSION_HEIGHT} levels tall", line, column
            )
        stack.extend((child, height + 1) for child in _children(node))


#: words that end an expression or cannot start an identifier in a select list
RESERVED = {
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


class ExpressionParser:
    """Tokens of one text, and the parsing of its types and expressions."""

    def __init__(
        self,
        text: str,
        types: Mapping[str, T.SqlType],
        max_identifier_length: int | None = None,
    ) -> None:
        self.text = text
        self.tokens = tokenize(text, max_identifier_length=max_identifier_length)
        self.i = 0
        self.types = types  # upper-case names; read live, see parse_iter
        self.depth = 0  # how many expressions or types are open around the current token
        self.nested = 0  # how many subqueries are open around the current token

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
        # ksqlDB's words (its SyntaxErrorValidator: "Syntax Error", then the offending
        # token), then what would have fitted there
        return SqlError(
            f"Syntax Error\nSyntax error at or near {tok.describe()} at line "
            f"{tok.line}:{tok.column}: expected {expected}",
            tok.line,
            tok.column,
        )

    def refuse_distinct(self) -> None:
        """After SELECT: DISTINCT (not a column of that name) is refused at its place."""
        if self.tok.is_word("DISTINCT") and not self.peek().is_op(",", "."):
            msg = "SELECT DISTINCT is not supported: GROUP BY the selected columns instead"
            raise SqlError(msg, self.tok.line, self.tok.column)

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

    def enter(self) -> None:
        """One level deeper into a nested expression or type; refused past MAX_NESTING_DEPTH
        with ksqlDB's words, at the token that went too deep (`leave` undoes it)."""
        self.depth += 1
        if self.depth > MAX_NESTING_DEPTH:
            tok = self.tok
            raise _too_large(
                f"more than {MAX_NESTING_DEPTH} levels of parentheses, calls, CASE, NOT or "
                f"signs at {tok.describe()}",
                tok.line,
                tok.column,
            )

    def leave(self) -> None:
        self.depth -= 1

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

    def optional_alias(self) -> str | None:
        """A relation's alias, `AS name` or a bare name that is no reserved word (nor EMIT)."""
        if self.accept_word("AS"):
            return self.identifier("an alias")
        tok = self.tok
        if tok.kind == QUOTED or (
            tok.kind == IDENT
            and tok.value not in RESERVED
            and not tok.is_word("EMIT")
            # ORDER is no keyword of ksqlDB's (an alias may be called so), but ORDER BY is
            and not (tok.is_word("ORDER") and self.peek().is_word("BY"))
        ):
            return self.identifier()
        return None

    @staticmethod
    def pos(tok: Token) -> ast.Pos:
        return (tok.line, tok.column)

    def string(self, what: str) -> str:
        if self.tok.kind == STRING:
            return self.advance().value
        raise self.error(what)

    def integer(self, what: str) -> int:
        if self.tok.kind != INTEGER:
            raise self.error(what)
        tok = self.advance()
        if int(tok.value) > 2**63 - 1:  # a LIMIT or PRINT INTERVAL past BIGINT's range
            raise SqlError(f"Invalid numeric literal: {tok.value}", tok.line, tok.column)
        return int(tok.value)

    # -- types -------------------------------------------------------------------------------

    def type_(self) -> T.SqlType:
        self.enter()
        try:
            return self._type()
        finally:
            self.leave()

    def _type(self) -> T.SqlType:
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
        if simple is None and name in self.types:
            simple = self.types[name]
        if simple is not None:
            self.type_parameters()
            return simple
        raise SqlError(
            f"unknown type {tok.value}: use BOOLEAN, INT, BIGINT, DOUBLE, DECIMAL(p, s), STRING, "
            "BYTES, TIMESTAMP, DATE, TIME, ARRAY<..>, MAP<..>, STRUCT<..>, or a type made with "
            "CREATE TYPE",
            tok.line,
            tok.column,
        )

    def type_parameters(self) -> None:
        """Skip the parameters a named type may carry, `VARCHAR(10)` or `VARCHAR(STRING)`.

        ksqlDB's grammar takes `baseType ('(' typeParameter (',' typeParameter)* ')')?` with a
        parameter a whole number or the word STRING, and its SqlTypeParser then ignores them;
        a wrong token is refused with ANTLR's expected set, as ksqlDB's SyntaxErrorValidator
        prints it."""
        if not self.accept_op("("):
            return
        while True:
            tok = self.tok
            if tok.kind == INTEGER or (tok.kind == IDENT and tok.is_word("STRING")):
                self.advance()
            else:
                raise self.expecting("{'STRING', INTEGER_VALUE}")
            if self.accept_op(")"):
                return
            if not self.accept_op(","):
                raise self.expecting("{',', ')'}")

    def expecting(self, tokens: str) -> SqlError:
        """ksqlDB's words for a token outside a short expected set (`Expecting {...}`)."""
        tok = self.tok
        return SqlError(f"Syntax Error\nExpecting {tokens}", tok.line, tok.column)

    # -- expressions -------------------------------------------------------------------------

    def expr(self) -> ast.Expr:
        self.enter()
        try:
            expr = self.or_()
        finally:
            self.leave()
        if self.depth == 0:  # a whole expression: its chains may have made it tall
            check_height(expr)
        return expr

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
            self.enter()
            try:
                return ast.UnaryOp("NOT", self.not_(), pos=self.pos(tok))
            finally:
                self.leave()
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
            if self.tok.is_op("(") and self.peek().is_word("SELECT"):
                return in_subquery(self, left, negated, tok)
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
            self.enter()
            try:
                operand = self.unary()
            finally:
                self.leave()
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
            # ksqlDB's ParserUtil.visitIntegerLiteral: refused as the AST is built
            raise SqlError(f"Invalid numeric literal: {text}", at.line, at.column, building=True)
        if tok.kind == FLOAT:
            double = float(text)
            if math.isinf(double):  # ksqlDB's ParserUtil.parseDouble
                raise SqlError(
                    f"Number overflows DOUBLE: {text}", at.line, at.column, building=True
                )
            return ast.Literal(double, T.DOUBLE, pos=self.pos(at))
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
            if self.peek().is_word("SELECT"):
                raise scalar_subquery(self)
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
        if word == "EXISTS" and self.peek().is_op("(") and self.peek(2).is_word("SELECT"):
            return exists(self)
        if word == "INTERVAL" and self.peek().kind in (STRING, INTEGER):
            return interval_literal(self)
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
        if word in RESERVED and word not in ("LEFT", "RIGHT"):
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
                if over_ahead(self):  # COUNT(*) OVER (...)
                    return over_clause(self, name, (), self.pos(tok))
                call = ast.FunctionCall(name, (), star=True, pos=self.pos(tok))
                return filter_clause(self, call) if filter_ahead(self) else call
            distinct = bool(self.accept_word("DISTINCT"))
            args = self.items_until(")", self.expr)
            if over_ahead(self) and not distinct:
                return over_clause(self, name, tuple(args), self.pos(tok))
            call = ast.FunctionCall(name, tuple(args), distinct, pos=self.pos(tok))
            return filter_clause(self, call) if filter_ahead(self) else call
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

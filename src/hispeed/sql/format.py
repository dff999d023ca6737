"""Expressions back to SQL text, as ksqlDB prints them in its messages (`(F1 * SUM(F2))`).

`SqlWriter` walks an expression; its leaves (literals, names, unary minus, LIKE, lambdas) are
methods a subclass may write otherwise: the stream API's writer (frames/render.py) writes
text that parses back to the same expression.
"""

from __future__ import annotations

from decimal import Decimal

from hispeed.sql import ast


class SqlWriter:
    """An expression as SQL text, every operation in parentheses."""

    def literal(self, e: ast.Literal) -> str:
        """A literal: ksqlDB's rendering (`null`, `true`, `'it''s'`, `1.5`)."""
        v = e.value
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return "'" + v.replace("'", "''") + "'"
        if isinstance(v, Decimal):
            return format(v, "f")
        return str(v)

    def name(self, name: str) -> str:
        """A column, source or field name: as resolved."""
        return name

    def not_equal(self) -> str:
        """The operator `!=` is written as."""
        return "<>"

    def minus(self, e: ast.UnaryOp) -> str:
        """A unary minus or plus."""
        return f"{e.op}{self.write(e.operand)}"

    def like(self, e: ast.Like) -> str:
        """`x LIKE pattern`."""
        return (
            f"({self.write(e.operand)} {'NOT ' if e.negated else ''}LIKE {self.write(e.pattern)})"
        )

    def lambda_(self, e: ast.Lambda) -> str:
        """`x => body` or `(x, y) => body`."""
        params = e.params[0] if len(e.params) == 1 else "(" + ", ".join(e.params) + ")"
        return f"{params} => {self.write(e.body)}"

    def unknown(self, e: ast.Expr) -> str:
        """A node this writer has no rendering for."""
        return type(e).__name__

    def write(self, e: ast.Expr) -> str:
        """The expression's text."""
        w = self.write
        if isinstance(e, ast.Literal):
            return self.literal(e)
        if isinstance(e, ast.ColumnRef):
            column = self.name(e.name)
            return f"{self.name(e.source)}.{column}" if e.source else column
        if isinstance(e, ast.Dereference):
            return f"{w(e.base)}->{self.name(e.field)}"
        if isinstance(e, ast.StructStar):
            return f"{w(e.base)}->*"
        if isinstance(e, ast.Subscript):
            return f"{w(e.base)}[{w(e.index)}]"
        if isinstance(e, ast.FunctionCall):
            shown = f" FILTER (WHERE {w(e.filter)})" if e.filter is not None else ""
            if e.star:
                return f"{e.name}(*){shown}"
            inner = ", ".join(w(a) for a in e.args)
            return f"{e.name}({'DISTINCT ' if e.distinct else ''}{inner}){shown}"
        if isinstance(e, ast.OverCall):
            window = []
            if e.partition_by:
                window.append("PARTITION BY " + ", ".join(w(p) for p in e.partition_by))
            if e.order_by:
                order = ", ".join(w(o) + (" DESC" if d else "") for o, d in e.order_by)
                window.append("ORDER BY " + order)
            if e.frame is not None:
                kind, size = e.frame
                bound = (
                    "UNBOUNDED"
                    if size is None
                    else str(size)
                    if kind == "ROWS"
                    else f"INTERVAL '{size}' MILLISECOND"
                )
                window.append(f"{kind} BETWEEN {bound} PRECEDING AND CURRENT ROW")
            inner = ", ".join(w(a) for a in e.args)
            return f"{e.name}({inner}) OVER ({' '.join(window)})"
        if isinstance(e, ast.Lambda):
            return self.lambda_(e)
        if isinstance(e, ast.BinaryOp):
            op = self.not_equal() if e.op == "!=" else e.op
            return f"({w(e.left)} {op} {w(e.right)})"
        if isinstance(e, ast.UnaryOp):
            return f"(NOT {w(e.operand)})" if e.op == "NOT" else self.minus(e)
        if isinstance(e, ast.IsNull):
            return f"({w(e.operand)} IS {'NOT ' if e.negated else ''}NULL)"
        if isinstance(e, ast.InList):
            items = ", ".join(w(i) for i in e.items)
            return f"({w(e.operand)} {'NOT ' if e.negated else ''}IN ({items}))"
        if isinstance(e, ast.Between):
            not_ = "NOT " if e.negated else ""
            return f"({w(e.operand)} {not_}BETWEEN {w(e.low)} AND {w(e.high)})"
        if isinstance(e, ast.Like):
            return self.like(e)
        if isinstance(e, ast.InSubquery):  # the subquery's text is not kept: named only
            return f"({w(e.operand)} {'NOT ' if e.negated else ''}IN (SELECT ...))"
        if isinstance(e, ast.Exists):
            return "(EXISTS (SELECT ...))"
        if isinstance(e, ast.Case):
            parts = ["(CASE"]
            if e.operand is not None:
                parts.append(w(e.operand))
            parts += [f"WHEN {w(c)} THEN {w(r)}" for c, r in e.whens]
            if e.default is not None:
                parts.append(f"ELSE {w(e.default)}")
            return " ".join(parts) + " END)"
        if isinstance(e, ast.Cast):
            return f"CAST({w(e.operand)} AS {e.type})"
        if isinstance(e, ast.ArrayConstructor):
            return "ARRAY[" + ", ".join(w(i) for i in e.items) + "]"
        if isinstance(e, ast.MapConstructor):
            return "MAP(" + ", ".join(f"{w(k)}:={w(v)}" for k, v in e.entries) + ")"
        if isinstance(e, ast.StructConstructor):
            return "STRUCT(" + ", ".join(f"{self.name(n)}:={w(v)}" for n, v in e.fields) + ")"
        return self.unknown(e)


_KSQL = SqlWriter()


def sql(e: ast.Expr) -> str:
    """ksqlDB's rendering of an expression: names as resolved, binary ops in parentheses."""
    return _KSQL.write(e)

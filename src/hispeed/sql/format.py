"""Expressions back to SQL text, as ksqlDB prints them in its messages (`(F1 * SUM(F2))`)."""

from __future__ import annotations

from decimal import Decimal

from hispeed.sql import ast


def sql(e: ast.Expr) -> str:
    """ksqlDB's rendering of an expression: names as resolved, binary ops in parentheses."""
    if isinstance(e, ast.Literal):
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
    if isinstance(e, ast.ColumnRef):
        return f"{e.source}.{e.name}" if e.source else e.name
    if isinstance(e, ast.Dereference):
        return f"{sql(e.base)}->{e.field}"
    if isinstance(e, ast.StructStar):
        return f"{sql(e.base)}->*"
    if isinstance(e, ast.Subscript):
        return f"{sql(e.base)}[{sql(e.index)}]"
    if isinstance(e, ast.FunctionCall):
        if e.star:
            return f"{e.name}(*)"
        inner = ", ".join(sql(a) for a in e.args)
        return f"{e.name}({'DISTINCT ' if e.distinct else ''}{inner})"
    if isinstance(e, ast.Lambda):
        params = e.params[0] if len(e.params) == 1 else "(" + ", ".join(e.params) + ")"
        return f"{params} => {sql(e.body)}"
    if isinstance(e, ast.BinaryOp):
        op = "<>" if e.op == "!=" else e.op
        return f"({sql(e.left)} {op} {sql(e.right)})"
    if isinstance(e, ast.UnaryOp):
        return f"(NOT {sql(e.operand)})" if e.op == "NOT" else f"{e.op}{sql(e.operand)}"
    if isinstance(e, ast.IsNull):
        return f"({sql(e.operand)} IS {'NOT ' if e.negated else ''}NULL)"
    if isinstance(e, ast.InList):
        items = ", ".join(sql(i) for i in e.items)
        return f"({sql(e.operand)} {'NOT ' if e.negated else ''}IN ({items}))"
    if isinstance(e, ast.Between):
        return (
            f"({sql(e.operand)} {'NOT ' if e.negated else ''}BETWEEN {sql(e.low)} AND "
            f"{sql(e.high)})"
        )
    if isinstance(e, ast.Like):
        return f"({sql(e.operand)} {'NOT ' if e.negated else ''}LIKE {sql(e.pattern)})"
    if isinstance(e, ast.Case):
        parts = ["(CASE"]
        if e.operand is not None:
            parts.append(sql(e.operand))
        parts += [f"WHEN {sql(c)} THEN {sql(r)}" for c, r in e.whens]
        if e.default is not None:
            parts.append(f"ELSE {sql(e.default)}")
        return " ".join(parts) + " END)"
    if isinstance(e, ast.Cast):
        return f"CAST({sql(e.operand)} AS {e.type})"
    if isinstance(e, ast.ArrayConstructor):
        return "ARRAY[" + ", ".join(sql(i) for i in e.items) + "]"
    if isinstance(e, ast.MapConstructor):
        return "MAP(" + ", ".join(f"{sql(k)}:={sql(v)}" for k, v in e.entries) + ")"
    if isinstance(e, ast.StructConstructor):
        return "STRUCT(" + ", ".join(f"{n}:={sql(v)}" for n, v in e.fields) + ")"
    return type(e).__name__

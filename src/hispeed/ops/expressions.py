"""Type an expression against the columns in scope and compile it into a vectorized evaluator.

`compile_expr` checks names and types once, when a query is planned; the evaluator it returns
computes a whole Arrow column per batch with pyarrow compute. SQL NULL semantics hold
throughout (Kleene AND/OR, NULL in gives NULL out). A row that cannot be computed (a bad
cast, an integer divided by zero) becomes NULL and its reason goes to `EvalContext.errors`.
"""

from __future__ import annotations

import decimal
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.errors import HispeedError, SqlError
from hispeed.functions._signatures import decimal_to_double
from hispeed.functions.registry import EvalContext, FunctionTypeError, lookup, rowwise
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.format import sql
from hispeed.sql.javatext import java_double
from hispeed.sql.types import SqlType

Evaluator = Callable[[pa.RecordBatch, EvalContext], pa.Array]


@dataclass(frozen=True)
class ScopeColumn:
    name: str  # the column's SQL name
    type: SqlType
    field: str  # the batch column that holds it
    source: str | None = None  # the alias or source name that qualifies it


@dataclass
class Scope:
    columns: list[ScopeColumn]
    lambdas: dict[str, ScopeColumn] = field(default_factory=dict)
    #: the clause being compiled, for messages: SELECT, WHERE, HAVING, PARTITION BY...
    clause: str = "SELECT"
    #: sub-expressions whose values a column already holds (table function calls)
    replaced: dict[ast.Expr, ScopeColumn] = field(default_factory=dict)

    def resolve(self, ref: ast.ColumnRef) -> ScopeColumn:
        if ref.source is None and ref.name in self.lambdas:
            return self.lambdas[ref.name]
        matches = [
            c
            for c in self.columns
            if c.name == ref.name and (ref.source is None or c.source == ref.source)
        ]
        if len(matches) == 1:
            return matches[0]
        line, col = ref.pos
        shown = f"{ref.source}.{ref.name}" if ref.source else ref.name
        if not matches:
            if ref.name in ("WINDOWSTART", "WINDOWEND") and self.clause == "WHERE":
                # WHERE runs before a window is assigned
                raise SqlError(f"Unknown column {ref.name}.", line, col)
            if ref.name in ("WINDOWSTART", "WINDOWEND") and ref.source is None:
                raise SqlError(
                    f"Window bounds column {ref.name} can only be used in the SELECT clause of "
                    "windowed aggregations",
                    line,
                    col,
                )
            if ref.source is not None and not any(c.source == ref.source for c in self.columns):
                sources = sorted(
                    {c.source for c in self.columns if c.source and not c.source.startswith("$")}
                )
                raise SqlError(
                    f"Failed to prepare statement: '{ref.source}' is not a valid stream/table "
                    f"name or alias. The sources here are: {', '.join(sources)}",
                    line,
                    col,
                )
            names = ", ".join(
                dict.fromkeys(
                    (f"{c.source}.{c.name}" if ref.source and c.source else c.name)
                    for c in self.columns
                    if not c.name.startswith("$")
                )
            )
            raise SqlError(
                f"{self.clause} column '{shown}' cannot be resolved. The columns here are: {names}",
                line,
                col,
            )
        raise SqlError(
            f"Column '{shown}' is ambiguous. Could be "
            + " or ".join(f"{c.source}.{ref.name}" for c in matches)
            + ".",
            line,
            col,
        )


@dataclass(frozen=True)
class Compiled:
    type: SqlType | None  # None: the NULL literal, of no type yet
    evaluate: Evaluator
    constant: bool = False

    def __call__(self, batch: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        out = self.evaluate(batch, ctx)
        if isinstance(out, pa.ChunkedArray):
            out = out.combine_chunks()
        return out


def _err(node: Any, message: str) -> SqlError:
    line, col = getattr(node, "pos", (0, 0))
    return SqlError(message, line or 1, col or 1)


def _null_array(t: SqlType | None, n: int) -> pa.Array:
    return pa.nulls(n, t.to_arrow() if t is not None else pa.null())


def broadcast(value: Any, t: SqlType | None, n: int) -> pa.Array:
    if value is None:
        return _null_array(t, n)
    assert t is not None
    arrow = t.to_arrow()
    if isinstance(value, bool | int | float) and not pa.types.is_decimal(arrow):
        return pa.array(np.full(n, value), arrow) if n else pa.array([], arrow)
    return pc.fill_null(pa.nulls(n, arrow), pa.scalar(value, arrow)) if n else pa.array([], arrow)


def cast_array(
    arr: pa.Array, source: SqlType | None, target: SqlType, ctx: EvalContext
) -> pa.Array:
    """CAST with ksqlDB's rules; rows that cannot convert become NULL and are reported."""
    arrow = target.to_arrow()
    if source is None or pa.types.is_null(arr.type):
        return pa.nulls(len(arr), arrow)
    if arr.type == arrow:
        return arr
    if target.name == "STRING":
        return _to_string(arr, source, ctx)
    if source.name == "STRING" and target.name == "BOOLEAN":
        lowered = pc.utf8_lower(pc.utf8_trim_whitespace(arr))
        return pc.if_else(
            pc.equal(lowered, "true"), True, pc.if_else(pc.is_null(lowered), None, False)
        )
    if source.name == "STRING" and target.is_numeric:
        trimmed = pc.utf8_trim_whitespace(arr)
        try:
            if target.name == "DECIMAL":
                return _rescale(pc.cast(trimmed, pa.decimal128(38, target.scale or 0)), target, ctx)
            return pc.cast(trimmed, arrow)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return rowwise(ctx, [trimmed], target, lambda s: _parse_number(s, target))
    if source.is_numeric and target.is_numeric:
        if target.name == "DECIMAL":
            return _rescale(arr, target, ctx)
        if target.is_integral and source.name in ("DOUBLE", "DECIMAL"):
            # Java truncates toward zero
            truncated = pc.trunc(arr if source.name == "DOUBLE" else decimal_to_double(arr))
            return pc.cast(truncated, arrow, safe=False)
        if source.name == "DECIMAL" and target.name == "DOUBLE":
            return decimal_to_double(arr)
        return pc.cast(arr, arrow, safe=False)
    if source.name == "STRING" and target.is_temporal:
        from hispeed.ops import _temporal

        return _temporal.parse_iso(arr, target, ctx)
    if source.is_temporal and target.is_temporal:
        return pc.cast(arr, arrow)
    if source.name == target.name and target.name in ("ARRAY", "MAP", "STRUCT"):
        return rowwise(ctx, [arr], target, lambda v: _cast_value(v, source, target))
    raise HispeedError(f"Cast of {source} to {target} is not supported")


def _parse_number(text: str, target: SqlType) -> Any:
    if target.is_integral:
        return int(text)
    if target.name == "DOUBLE":
        return float(text)
    return decimal.Decimal(text)


def _rescale(arr: pa.Array, target: SqlType, ctx: EvalContext) -> pa.Array:
    assert target.precision is not None and target.scale is not None
    scale = target.scale
    limit = decimal.Decimal(10) ** (target.precision - scale)
    quant = decimal.Decimal(1).scaleb(-scale)

    def one(v: Any) -> decimal.Decimal:
        d = decimal.Decimal(str(v)) if not isinstance(v, decimal.Decimal) else v
        q = d.quantize(quant, rounding=decimal.ROUND_HALF_UP)
        if abs(q) >= limit:
            raise ValueError(f"Numeric field overflow: {d} does not fit {target}")
        return q

    return rowwise(ctx, [arr], target, one)


def _cast_value(v: Any, source: SqlType, target: SqlType) -> Any:
    """One value CAST as Java does it, for the insides of arrays, maps and structs."""
    if v is None:
        return None
    if target.name == "ARRAY":
        assert source.element is not None and target.element is not None
        return [_cast_value(x, source.element, target.element) for x in v]
    if target.name == "MAP":
        assert source.key is not None and source.element is not None
        assert target.key is not None and target.element is not None
        items = v.items() if isinstance(v, dict) else v
        return [
            (_cast_value(k, source.key, target.key), _cast_value(x, source.element, target.element))
            for k, x in items
        ]
    if target.name == "STRUCT":
        out = {}
        for name, ftype in target.fields:
            src_name = next((n for n, _ in source.fields if n.upper() == name.upper()), None)
            src_type = source.field(src_name) if src_name is not None else None
            out[name] = (
                _cast_value(v.get(src_name), src_type, ftype)
                if src_name is not None and src_type is not None
                else None
            )
        return out
    if target.name == "STRING":
        return sql_text(v, source)
    if target.name in ("INTEGER", "BIGINT"):
        n = int(v) if not isinstance(v, str) else int(v.strip())
        bits = 32 if target.name == "INTEGER" else 64
        return (n + (1 << (bits - 1))) % (1 << bits) - (1 << (bits - 1))  # Java narrowing
    if target.name == "DOUBLE":
        return float(v)
    if target.name == "DECIMAL":
        assert target.scale is not None
        return decimal.Decimal(str(v)).quantize(
            decimal.Decimal(1).scaleb(-target.scale), rounding=decimal.ROUND_HALF_UP
        )
    if target.name == "BOOLEAN":
        return v if isinstance(v, bool) else str(v).strip().lower() == "true"
    return v


def _to_string(arr: pa.Array, source: SqlType, ctx: EvalContext) -> pa.Array:
    if source.name == "BOOLEAN":
        return pc.if_else(arr, "true", "false")
    if source.is_integral:
        return pc.cast(arr, pa.string())
    if source.name == "DOUBLE":
        return rowwise(ctx, [arr], T.STRING, java_double)
    if source.name == "DECIMAL":
        return rowwise(ctx, [arr], T.STRING, lambda d: format(d, "f"))
    if source.name == "BYTES":
        import base64

        return rowwise(ctx, [arr], T.STRING, lambda b: base64.b64encode(b).decode())
    if source.name in ("TIMESTAMP", "DATE", "TIME"):
        from hispeed.ops import _temporal

        return _temporal.to_iso(arr, source)
    return rowwise(ctx, [arr], T.STRING, lambda v: sql_text(v, source))


def sql_text(value: Any, t: SqlType) -> str:
    """How ksqlDB prints a value of a nested type when casting it to STRING."""
    if value is None:
        return "null"
    if t.name == "STRING":
        return str(value)
    if t.name == "BOOLEAN":
        return "true" if value else "false"
    if t.name == "DOUBLE":
        return java_double(value)
    if t.name == "DECIMAL":
        return format(value, "f")
    if t.name == "ARRAY":
        assert t.element is not None
        return "[" + ", ".join(sql_text(v, t.element) for v in value) + "]"
    if t.name == "MAP":
        assert t.element is not None and t.key is not None
        return (
            "{"
            + ", ".join(f"{sql_text(k, t.key)}={sql_text(v, t.element)}" for k, v in value)
            + "}"
        )
    if t.name == "STRUCT":
        return (
            "Struct{"
            + ",".join(
                f"{n}={sql_text(value.get(n), ft)}"
                for n, ft in t.fields
                if value.get(n) is not None
            )
            + "}"
        )
    return str(value)


# -- type rules -------------------------------------------------------------------------------


def common_type(types: Sequence[SqlType | None], node: Any, what: str) -> SqlType | None:
    """The one type values of `types` can all take (for CASE, IN, COALESCE, comparisons)."""
    known = [t for t in types if t is not None]
    if not known:
        return None
    result = known[0]
    for t in known[1:]:
        if t == result:
            continue
        if t.is_numeric and result.is_numeric:
            result = T.widest_numeric(result, t)
        elif {t.name, result.name} <= {"ARRAY", "MAP", "STRUCT"} and t.name == result.name:
            continue
        else:
            raise _err(node, f"{what} mixes {result} and {t}; cast one to the other")
    return result


def arithmetic_type(op: str, a: SqlType, b: SqlType, node: Any, text: str = "") -> SqlType:
    if not (a.is_numeric and b.is_numeric):
        if op == "+" and a.name == "STRING" and b.name == "STRING":
            return T.STRING
        raise _err(
            node,
            f"Error processing expression: {text}. Unsupported arithmetic types. {a.name} {b.name}",
        )
    if a.name == "DECIMAL" or b.name == "DECIMAL":
        if a.name == "DOUBLE" or b.name == "DOUBLE":
            return T.DOUBLE
        da = a if a.name == "DECIMAL" else T.integral_as_decimal(a)
        db = b if b.name == "DECIMAL" else T.integral_as_decimal(b)
        assert da.precision is not None and da.scale is not None
        assert db.precision is not None and db.scale is not None
        p1, s1, p2, s2 = da.precision, da.scale, db.precision, db.scale
        if op in ("+", "-"):
            s = max(s1, s2)
            p = max(p1 - s1, p2 - s2) + s + 1
        elif op == "*":
            p, s = p1 + p2 + 1, s1 + s2
        elif op == "/":
            s = max(6, s1 + p2 + 1)
            p = p1 - s1 + s2 + s
        else:  # %
            s = max(s1, s2)
            p = min(p1 - s1, p2 - s2) + s
        return T.decimal(min(p, 38), min(s, min(p, 38)))
    return T.widest_numeric(a, b)


# -- the compiler ------------------------------------------------------------------------------

Aggregates = dict[ast.Expr, ScopeColumn]


def compile_expr(expr: ast.Expr, scope: Scope, replaced: Aggregates | None = None) -> Compiled:
    """Type-check `expr` in `scope` and return its evaluator.

    `replaced` maps sub-expressions (aggregate calls, GROUP BY expressions) to columns that
    already hold their values.
    """
    return _Compiler(scope, replaced or scope.replaced).compile(expr)


class _Compiler:
    def __init__(self, scope: Scope, replaced: Aggregates) -> None:
        self.scope = scope
        self.replaced = replaced

    def compile(self, e: ast.Expr) -> Compiled:
        if e in self.replaced:
            return _column(self.replaced[e])
        method = getattr(self, "c_" + type(e).__name__, None)
        if method is None:
            raise _err(e, f"{type(e).__name__} is not supported here")
        result: Compiled = method(e)
        return result

    def c_StructStar(self, e: ast.StructStar) -> Compiled:
        raise _err(e, "`->*` may only stand alone in a select list, like SELECT s->* FROM ...")

    def c_Literal(self, e: ast.Literal) -> Compiled:
        value, t = e.value, e.type
        return Compiled(t, lambda b, ctx: broadcast(value, t, b.num_rows), constant=True)

    def c_ColumnRef(self, e: ast.ColumnRef) -> Compiled:
        return _column(self.scope.resolve(e))

    def c_Dereference(self, e: ast.Dereference) -> Compiled:
        base = self.compile(e.base)
        if base.type is None or base.type.name != "STRUCT":
            raise _err(e, f"'->' needs a STRUCT on its left, not {base.type}")
        names = [n for n, _ in base.type.fields]
        name = next((n for n in names if n == e.field), None) or next(
            (n for n in names if n.upper() == e.field.upper()), None
        )
        if name is None:
            raise _err(e, f"the struct has no field {e.field}; its fields are {', '.join(names)}")
        ftype = base.type.field(name)
        index = names.index(name)

        def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
            arr = base(b, ctx)
            return pc.struct_field(arr, [index])

        return Compiled(ftype, ev)

    def c_Subscript(self, e: ast.Subscript) -> Compiled:
        base = self.compile(e.base)
        index = self.compile(e.index)
        t = base.type
        if t is not None and t.name == "ARRAY":
            assert t.element is not None

            def ev_array(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
                arr, idx = base(b, ctx), index(b, ctx)

                def pick(values: list[Any], i: int) -> Any:
                    n = len(values)
                    pos = i - 1 if i > 0 else n + i
                    return values[pos] if 0 <= pos < n and i != 0 else None

                return rowwise(ctx, [arr, idx], t.element, pick)  # type: ignore[arg-type]

            return Compiled(t.element, ev_array)
        if t is not None and t.name == "MAP":
            assert t.element is not None

            def ev_map(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
                arr, key = base(b, ctx), index(b, ctx)
                if index.constant and len(key):
                    return pc.map_lookup(arr, key[0], "first")
                return rowwise(
                    ctx,
                    [arr, key],
                    t.element,  # type: ignore[arg-type]
                    lambda m, k: dict(m).get(k),
                )

            return Compiled(t.element, ev_map)
        raise _err(e, f"'[...]' needs an ARRAY or a MAP, not {t}")

    def c_UnaryOp(self, e: ast.UnaryOp) -> Compiled:
        inner = self.compile(e.operand)
        if e.op == "NOT":
            if inner.type is not None and inner.type.name != "BOOLEAN":
                raise _err(e, f"NOT needs a BOOLEAN, not {inner.type}")
            return Compiled(T.BOOLEAN, lambda b, ctx: pc.invert(_as_type(inner(b, ctx), T.BOOLEAN)))
        if inner.type is not None and not inner.type.is_numeric:
            raise _err(e, f"unary minus needs a number, not {inner.type}")
        return Compiled(inner.type, lambda b, ctx: pc.negate(inner(b, ctx)))

    def c_BinaryOp(self, e: ast.BinaryOp) -> Compiled:
        left, right = self.compile(e.left), self.compile(e.right)
        op = e.op
        if op in ("=", "!=", "<", "<=", ">", ">="):
            left = _coerce_literal(e.left, left, right.type) or left
            right = _coerce_literal(e.right, right, left.type) or right
            try:
                _comparable(left.type, right.type, e, op)
            except SqlError:
                raise _err(
                    e,
                    f"Cannot compare {sql(e.left)} ({left.type}) to {sql(e.right)} "
                    f"({right.type}) with {_OP_NAMES[op]}.",
                ) from None
        if op in ("AND", "OR"):
            for side in (left, right):
                if side.type is not None and side.type.name != "BOOLEAN":
                    raise _err(e, f"{op} needs BOOLEAN operands, not {side.type}")
            fn = pc.and_kleene if op == "AND" else pc.or_kleene
            return Compiled(
                T.BOOLEAN,
                lambda b, ctx: fn(
                    _as_type(left(b, ctx), T.BOOLEAN), _as_type(right(b, ctx), T.BOOLEAN)
                ),
            )
        if op in ("=", "!=", "<", "<=", ">", ">="):
            return self._comparison(e, op, left, right)
        lt, rt = left.type, right.type
        if lt is None or rt is None:
            # ksqlDB refuses arithmetic with an untyped NULL: it cannot tell the result's type
            raise _err(
                e,
                f"Error processing expression: {sql(e)}. Arithmetic on types "
                f"{lt if lt is not None else 'null'} and {rt if rt is not None else 'null'} "
                "are not supported.",
            )
        result = arithmetic_type(op, lt, rt, e, sql(e))
        if result.name == "STRING":
            return Compiled(
                T.STRING,
                lambda b, ctx: pc.binary_join_element_wise(left(b, ctx), right(b, ctx), ""),
            )
        return Compiled(result, _arithmetic(op, left, right, lt, rt, result))

    def _comparison(self, e: ast.BinaryOp, op: str, left: Compiled, right: Compiled) -> Compiled:
        fn = {
            "=": pc.equal,
            "!=": pc.not_equal,
            "<": pc.less,
            "<=": pc.less_equal,
            ">": pc.greater,
            ">=": pc.greater_equal,
        }[op]
        lt, rt = left.type, right.type
        common = _comparable(lt, rt, e, op)

        def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
            la, ra = left(b, ctx), right(b, ctx)
            if common is None:
                return pa.nulls(b.num_rows, pa.bool_())
            la = coerce(la, lt, common, ctx)
            ra = coerce(ra, rt, common, ctx)
            if common.name in ("ARRAY", "MAP", "STRUCT"):
                if op not in ("=", "!="):
                    raise HispeedError(f"cannot order values of type {common}")
                eq = rowwise(ctx, [la, ra], T.BOOLEAN, lambda x, y: x == y)
                return eq if op == "=" else pc.invert(eq)
            return fn(la, ra)

        return Compiled(T.BOOLEAN, ev)

    def c_IsNull(self, e: ast.IsNull) -> Compiled:
        inner = self.compile(e.operand)
        if e.negated:
            return Compiled(T.BOOLEAN, lambda b, ctx: pc.is_valid(inner(b, ctx)))
        return Compiled(T.BOOLEAN, lambda b, ctx: pc.is_null(inner(b, ctx)))

    def c_Between(self, e: ast.Between) -> Compiled:
        ge = ast.BinaryOp(">=", e.operand, e.low, pos=e.pos)
        le = ast.BinaryOp("<=", e.operand, e.high, pos=e.pos)
        both: ast.Expr = ast.BinaryOp("AND", ge, le, pos=e.pos)
        if e.negated:
            both = ast.UnaryOp("NOT", both, pos=e.pos)
        return self.compile(both)

    def c_InList(self, e: ast.InList) -> Compiled:
        operand = self.compile(e.operand)
        items = []
        for node in e.items:
            if (
                operand.type is not None
                and operand.type.name == "STRING"
                and isinstance(node, ast.Literal)
                and node.value is not None
                and not isinstance(node.value, str)
            ):
                # a number or boolean in a list of texts is compared as it is written
                node = ast.Literal(sql(node), T.STRING, pos=node.pos)
            if operand.type is not None:
                node = _typed_texts(node, operand.type)
            item = self.compile(node)
            coerced = _coerce_literal(node, item, operand.type, strict=True)
            item = coerced or item
            try:
                _comparable(operand.type, item.type, node, "IN")
                if not _same_shape(operand.type, item.type):
                    raise _err(node, "different shapes")
            except SqlError:
                raise _err(
                    node,
                    f"Invalid Predicate: operator does not exist: {operand.type} = {item.type} "
                    f"({sql(node)})\nHint: You might need to add explicit type casts.",
                ) from None
            items.append(item)
        common = common_type([operand.type] + [i.type for i in items], e, "IN")

        def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
            value = coerce(operand(b, ctx), operand.type, common, ctx)
            result = pa.array(np.zeros(b.num_rows, bool))
            for item in items:
                arr = coerce(item(b, ctx), item.type, common, ctx)
                result = pc.or_kleene(
                    result,
                    pc.equal(value, arr)
                    if common is None or common.name not in ("ARRAY", "MAP", "STRUCT")
                    else rowwise(ctx, [value, arr], T.BOOLEAN, lambda x, y: x == y),
                )
            # x IN (...) is false, not NULL, when no item matches: ksqlDB ignores NULL items
            result = pc.fill_null(result, False)
            result = pc.if_else(pc.is_null(value), None, result)
            return pc.invert(result) if e.negated else result

        return Compiled(T.BOOLEAN, ev)

    def c_Like(self, e: ast.Like) -> Compiled:
        operand = self.compile(e.operand)
        pattern = self.compile(e.pattern)
        if operand.type is not None and operand.type.name != "STRING":
            raise _err(e, f"LIKE needs a STRING, not {operand.type}")

        def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
            value = operand(b, ctx)
            pat = pattern(b, ctx)
            if pattern.constant and len(pat) and pat[0].is_valid:
                text = pat[0].as_py()
                if e.escape:
                    text = _escape_like(text, e.escape)
                out = pc.match_like(value, text)
            else:
                out = rowwise(ctx, [value, pat], T.BOOLEAN, _like_row)
            return pc.invert(out) if e.negated else out

        return Compiled(T.BOOLEAN, ev)

    def c_Case(self, e: ast.Case) -> Compiled:
        conds: list[Compiled] = []
        for cond, _ in e.whens:
            if e.operand is not None:
                conds.append(self.compile(ast.BinaryOp("=", e.operand, cond, pos=e.pos)))
            else:
                c = self.compile(cond)
                if c.type is not None and c.type.name != "BOOLEAN":
                    raise _err(cond, f"WHEN needs a BOOLEAN condition, not {c.type}")
                conds.append(c)
        results = [self.compile(r) for _, r in e.whens]
        default = self.compile(e.default) if e.default is not None else None
        all_results = results + ([default] if default is not None else [])
        if all(r.type is None for r in all_results):
            raise _err(e, "Invalid Case expression. All case branches have NULL type")
        t = common_type([r.type for r in all_results], e, "CASE")

        def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
            # Lazily, as SQL promises: each WHEN sees only the rows no earlier WHEN took, and
            # each branch is computed only for its own rows (so `WHEN x <> 0 THEN 10 / x`
            # never divides by zero).
            n = b.num_rows
            remaining = np.ones(n, bool)
            pieces: list[tuple[np.ndarray, pa.Array]] = []
            for cond, res in zip(conds, results, strict=True):
                rows = np.flatnonzero(remaining)
                if not len(rows):
                    break
                sub = _subset(b, rows)
                hit = np.asarray(
                    pc.fill_null(
                        _as_type(_on_rows(cond, sub, rows, ctx), T.BOOLEAN), False
                    ).to_numpy(zero_copy_only=False),
                    dtype=bool,
                )
                taken = rows[hit]
                if len(taken):
                    value = _on_rows(res, _subset(b, taken), taken, ctx)
                    pieces.append((taken, coerce(value, res.type, t, ctx)))
                remaining[taken] = False
            rest = np.flatnonzero(remaining)
            if default is not None and len(rest):
                value = _on_rows(default, _subset(b, rest), rest, ctx)
                pieces.append((rest, coerce(value, default.type, t, ctx)))
            return _scatter(pieces, n, t)

        return Compiled(t, ev)

    def c_Cast(self, e: ast.Cast) -> Compiled:
        inner = self.compile(e.operand)
        target = e.type
        if inner.type is not None and not _castable(inner.type, target):
            raise _err(e, f"Cast of {inner.type} to {target} is not supported")
        return Compiled(target, lambda b, ctx: cast_array(inner(b, ctx), inner.type, target, ctx))

    def c_ArrayConstructor(self, e: ast.ArrayConstructor) -> Compiled:
        if not e.items:
            raise _err(
                e,
                "Array constructor cannot be empty. Please supply at least one element "
                "(see https://github.com/confluentinc/ksql/issues/4239).",
            )
        items = self._unify_literals(list(e.items))
        if all(i.type is None for i in items):
            raise _err(
                e,
                "Cannot construct an array with all NULL elements (see "
                "https://github.com/confluentinc/ksql/issues/4239). As a workaround, "
                "you may cast a NULL value to the desired type.",
            )
        element = common_type([i.type for i in items], e, "ARRAY[...]")
        if element is None:
            raise _err(
                e,
                "an ARRAY[...] of only NULLs has no type; cast one item, like "
                "ARRAY[CAST(NULL AS INT)]",
            )
        t = T.array(element)

        def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
            cols = [coerce(i(b, ctx), i.type, element, ctx).to_pylist() for i in items]
            return pa.array(
                [list(row) for row in zip(*cols, strict=True)]
                if cols
                else [[] for _ in range(b.num_rows)],
                t.to_arrow(),
            )

        return Compiled(t, ev)

    def c_MapConstructor(self, e: ast.MapConstructor) -> Compiled:
        if not e.entries:
            raise _err(
                e,
                "Map constructor cannot be empty. Please supply at least one key value "
                "pair (see https://github.com/confluentinc/ksql/issues/4239).",
            )
        keys = self._unify_literals([k for k, _ in e.entries])
        values = self._unify_literals([v for _, v in e.entries])
        if all(k.type is None for k in keys):
            raise _err(
                e,
                "Cannot construct a map with all NULL keys (see "
                "https://github.com/confluentinc/ksql/issues/4239). As a workaround, "
                "you may cast a NULL key to the desired type.",
            )
        kt = common_type([k.type for k in keys], e, "MAP keys")
        vt = common_type([v.type for v in values], e, "MAP values")
        if kt is None or vt is None:
            raise _err(e, "a MAP(...) of only NULLs has no type; cast a key and a value")
        t = T.map_(kt, vt)

        def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
            kcols = [coerce(k(b, ctx), k.type, kt, ctx).to_pylist() for k in keys]
            vcols = [coerce(v(b, ctx), v.type, vt, ctx).to_pylist() for v in values]
            rows = []
            for i in range(b.num_rows):
                entries: dict[Any, Any] = {}
                for kc, vc in zip(kcols, vcols, strict=True):
                    if kc[i] is not None:
                        entries[kc[i]] = vc[i]
                rows.append(list(entries.items()))
            return pa.array(rows, t.to_arrow())

        return Compiled(t, ev)

    def _unify_literals(self, nodes: list[ast.Expr]) -> list[Compiled]:
        """Compile constructor items; STRING literals among numbers take the numbers' type."""
        compiled = [self.compile(n) for n in nodes]
        others = [
            c.type
            for c, n in zip(compiled, nodes, strict=True)
            if c.type is not None and not (isinstance(n, ast.Literal) and isinstance(n.value, str))
        ]
        target = others[0] if others else None
        if target is None or not (target.is_numeric or target.name == "BOOLEAN"):
            return compiled
        out = []
        for c, n in zip(compiled, nodes, strict=True):
            if isinstance(n, ast.Literal) and isinstance(n.value, str):
                coerced = _coerce_literal(n, c, target)
                if coerced is None:
                    raise _err(n, f'invalid input syntax for type {target.name}: "{n.value}".')
                c = coerced
            out.append(c)
        return out

    def c_StructConstructor(self, e: ast.StructConstructor) -> Compiled:
        names = [n.upper() for n, _ in e.fields]
        if len(set(names)) != len(names):
            raise _err(
                e,
                "Duplicate field names found in STRUCT: "
                + ", ".join(sorted({n for n in names if names.count(n) > 1})),
            )
        parts = [(name, self.compile(v)) for name, v in e.fields]
        fields = [(name, c.type or T.STRING) for name, c in parts]
        t = T.struct(fields)

        def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
            arrays = [
                coerce(c(b, ctx), c.type, ft, ctx)
                for (_, c), (_, ft) in zip(parts, fields, strict=True)
            ]
            if not arrays:
                return pa.array([{}] * b.num_rows, pa.struct([]))
            return pa.StructArray.from_arrays(arrays, names=[n for n, _ in fields])

        return Compiled(t, ev)

    def c_FunctionCall(self, e: ast.FunctionCall) -> Compiled:
        name = e.name.upper()
        if name in LAMBDA_FUNCTIONS:
            return self._higher_order(e, name)
        if (
            name in _UNIT_FUNCTIONS
            and e.args
            and isinstance(e.args[0], ast.ColumnRef)
            and e.args[0].source is None
            and e.args[0].name in _TIME_UNITS
        ):
            # DATEADD(DAYS, 1, d): the unit is a keyword, passed on as text
            unit = ast.Literal(e.args[0].name, T.STRING, pos=e.args[0].pos)
            e = ast.FunctionCall(e.name, (unit, *e.args[1:]), e.distinct, e.star, pos=e.pos)
        if name in ("IS_DISTINCT_FROM", "IS_NOT_DISTINCT_FROM"):
            left, right = (self.compile(a) for a in e.args)
            common = _comparable(left.type, right.type, e, "IS DISTINCT FROM")

            def distinct(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
                la = coerce(left(b, ctx), left.type, common, ctx)
                ra = coerce(right(b, ctx), right.type, common, ctx)
                same = pc.fill_null(pc.equal(la, ra), False)
                both_null = pc.and_(pc.is_null(la), pc.is_null(ra))
                equal = pc.or_(same, both_null)
                return equal if name == "IS_NOT_DISTINCT_FROM" else pc.invert(equal)

            return Compiled(T.BOOLEAN, distinct)
        fn = lookup(name)
        if fn is None:
            from hispeed.functions.aggregates import AGGREGATES

            if name in AGGREGATES:
                raise _err(
                    e,
                    f"aggregate function {name} is only allowed in the SELECT list "
                    "or HAVING of a query with GROUP BY",
                )
            raise _err(e, f"Can't find any functions with the name '{name}'")
        args = [self.compile(a) for a in e.args]
        if name in ("GREATEST", "LEAST") and args:
            args = _extreme_args(e, args)
        types = [a.type or T.STRING for a in args]
        try:
            result_type = fn.resolve(types)
        except FunctionTypeError as err:
            # a NULL argument fits any parameter: try it as each other type before refusing
            for guess in _NULL_GUESSES if any(a.type is None for a in args) else ():
                try:
                    result_type = fn.resolve([a.type or guess for a in args])
                except FunctionTypeError:
                    continue
                types = [a.type or guess for a in args]
                break
            else:
                shown = ", ".join(str(t) for t in types)
                raise _err(
                    e, f"Function '{e.name.lower()}' does not accept parameters ({shown}). {err}"
                ) from None

        def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
            arrays = [a(b, ctx) for a in args]
            arrays = [
                arr.cast(t.to_arrow()) if pa.types.is_null(arr.type) else arr
                for arr, t in zip(arrays, types, strict=True)
            ]
            out = fn.evaluate(ctx, arrays, types, result_type)
            n = b.num_rows
            if not args and len(out) != n:
                # a function of no arguments: the same value for every row, or a new one
                # each row if it is not deterministic (RANDOM, UUID)
                if fn.deterministic:
                    return out.take(pa.array(np.zeros(n, np.int64)))
                more = [fn.evaluate(ctx, arrays, types, result_type) for _ in range(n)]
                return pa.concat_arrays(more) if more else out.slice(0, 0)
            return out

        return Compiled(result_type, ev)

    # -- lambdas: TRANSFORM, FILTER, REDUCE over arrays and maps ------------------------------

    def _lambda_body(
        self, lam: ast.Expr, param_types: list[SqlType], name: str
    ) -> tuple[Compiled, list[str]]:
        """Compile a lambda's body with its parameters in scope; returns it and their fields."""
        if not isinstance(lam, ast.Lambda):
            raise _err(lam, f"{name} expects a lambda function here, like x => x + 1")
        if len(lam.params) != len(param_types):
            raise _err(
                lam,
                f"{name} expects a lambda of {len(param_types)} argument(s) here, not "
                f"{len(lam.params)}",
            )
        depth = len(self.scope.lambdas)
        fields = [f"$lambda{depth}.{p}" for p in lam.params]
        inner = dict(self.scope.lambdas)
        for p, t, f in zip(lam.params, param_types, fields, strict=True):
            inner[p] = ScopeColumn(p, t, f)
        child = _Compiler(Scope(self.scope.columns, inner, self.scope.clause), self.replaced)
        return child.compile(lam.body), fields

    def _higher_order(self, e: ast.FunctionCall, name: str) -> Compiled:
        if not e.args:
            raise _err(e, f"Function '{name.lower()}' does not accept parameters ().")
        coll = self.compile(e.args[0])
        t = coll.type
        if t is None or t.name not in ("ARRAY", "MAP"):
            raise _err(e, f"{name} takes an ARRAY or a MAP as its first argument, not {t}")
        is_map = t.name == "MAP"
        elem_types: list[SqlType] = (
            [t.key, t.element] if is_map else [t.element]  # type: ignore[list-item]
        )
        if name == "REDUCE":
            if len(e.args) != 3:
                raise _err(e, "REDUCE takes (collection, initial state, lambda)")
            init = self.compile(e.args[1])
            state_type = init.type or T.INTEGER
            body, fields = self._lambda_body(e.args[2], [state_type, *elem_types], name)
            return Compiled(state_type, _reduce(coll, init, body, fields, is_map, state_type))
        expected = 3 if (is_map and name == "TRANSFORM") else 2
        if len(e.args) != expected:
            raise _err(e, f"{name} over a {t.name} takes {expected} arguments")
        bodies = []
        all_fields: list[list[str]] = []
        for lam in e.args[1:]:
            body, fields = self._lambda_body(lam, elem_types, name)
            bodies.append(body)
            all_fields.append(fields)
        if name == "FILTER":
            if bodies[0].type is not None and bodies[0].type.name != "BOOLEAN":
                raise _err(e, f"FILTER needs a BOOLEAN lambda, not {bodies[0].type}")
            return Compiled(t, _filter(coll, bodies[0], all_fields[0], is_map, t))
        if is_map:
            out_type = T.map_(bodies[0].type or T.STRING, bodies[1].type or T.STRING)
        else:
            out_type = T.array(bodies[0].type or T.STRING)
        return Compiled(out_type, _transform(coll, bodies, all_fields, is_map, out_type))

    def c_Lambda(self, e: ast.Lambda) -> Compiled:
        raise _err(e, "a lambda is only allowed as an argument of TRANSFORM, FILTER or REDUCE")


LAMBDA_FUNCTIONS = ("TRANSFORM", "FILTER", "REDUCE")
_UNIT_FUNCTIONS = ("DATEADD", "DATESUB", "TIMEADD", "TIMESUB", "TIMESTAMPADD", "TIMESTAMPSUB")
_TIME_UNITS = {
    f"{u}{s}"
    for u in (
        "NANOSECOND",
        "MICROSECOND",
        "MILLISECOND",
        "SECOND",
        "MINUTE",
        "HOUR",
        "DAY",
        "WEEK",
        "MONTH",
        "YEAR",
    )
    for s in ("", "S")
}


def _elements(arr: pa.Array, is_map: bool) -> tuple[np.ndarray, list[pa.Array], np.ndarray]:
    """(offsets relative to 0, element arrays, parent row of each element) of a list/map column."""
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    offsets = np.asarray(arr.offsets.to_numpy(zero_copy_only=False), dtype=np.int64)
    start = offsets[0]
    offsets = offsets - start
    total = int(offsets[-1]) if len(offsets) else 0
    if is_map:
        parts = [arr.keys.slice(start, total), arr.items.slice(start, total)]
    else:
        parts = [arr.values.slice(start, total)]
    lengths = np.diff(offsets)
    if arr.null_count:
        lengths = np.where(np.asarray(arr.is_null()), 0, lengths)
    parent = np.repeat(np.arange(len(arr)), np.diff(offsets))
    return offsets, parts, parent


def _lambda_batch(
    batch: pa.RecordBatch, parent: np.ndarray, fields: list[str], params: list[pa.Array]
) -> pa.RecordBatch:
    outer = batch.take(pa.array(parent, pa.int64())) if batch.num_columns else None
    arrays = list(outer.columns) if outer is not None else []
    names = list(outer.schema.names) if outer is not None else []
    for f, a in zip(fields, params, strict=True):
        arrays.append(a)
        names.append(f)
    if not arrays:
        return pa.RecordBatch.from_pydict({})
    return pa.RecordBatch.from_arrays(arrays, names=names)


def _transform(
    coll: Compiled, bodies: list[Compiled], fields: list[list[str]], is_map: bool, out: SqlType
) -> Evaluator:
    def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        arr = coll(b, ctx)
        offsets, parts, parent = _elements(arr, is_map)
        results = [
            body(_lambda_batch(b, parent, f, parts), ctx)
            for body, f in zip(bodies, fields, strict=True)
        ]
        mask = arr.is_null() if arr.null_count else None
        offs = pa.array(offsets.astype(np.int32))
        if is_map:
            keys = coerce(results[0], bodies[0].type, out.key, ctx)
            items = coerce(results[1], bodies[1].type, out.element, ctx)
            made = pa.MapArray.from_arrays(offs, keys, items, mask=mask)
            return made.cast(out.to_arrow())
        values = coerce(results[0], bodies[0].type, out.element, ctx)
        return pa.ListArray.from_arrays(offs, values, mask=mask).cast(out.to_arrow())

    return ev


def _filter(
    coll: Compiled, body: Compiled, fields: list[str], is_map: bool, t: SqlType
) -> Evaluator:
    def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        arr = coll(b, ctx)
        offsets, parts, parent = _elements(arr, is_map)
        inner = _lambda_batch(b, parent, fields, parts)
        keep = np.asarray(
            pc.fill_null(_as_type(body(inner, ctx), T.BOOLEAN), False).to_numpy(
                zero_copy_only=False
            ),
            dtype=bool,
        )
        kept_before = np.concatenate(([0], np.cumsum(keep, dtype=np.int64)))
        new_offsets = kept_before[offsets].astype(np.int32)
        mask = arr.is_null() if arr.null_count else None
        kept = [pc.filter(p, pa.array(keep)) for p in parts]
        if is_map:
            made = pa.MapArray.from_arrays(pa.array(new_offsets), kept[0], kept[1], mask=mask)
        else:
            made = pa.ListArray.from_arrays(pa.array(new_offsets), kept[0], mask=mask)
        return made.cast(t.to_arrow())

    return ev


def _reduce(
    coll: Compiled,
    init: Compiled,
    body: Compiled,
    fields: list[str],
    is_map: bool,
    state_type: SqlType,
) -> Evaluator:
    def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        arr = coll(b, ctx)
        offsets, parts, _ = _elements(arr, is_map)
        lengths = np.diff(offsets)
        if arr.null_count:
            lengths = np.where(np.asarray(arr.is_null()), 0, lengths)
        state = coerce(init(b, ctx), init.type, state_type, ctx)
        for k in range(int(lengths.max()) if len(lengths) else 0):
            rows = np.nonzero(lengths > k)[0]
            at = pa.array(offsets[rows] + k, pa.int64())
            params = [state.take(pa.array(rows)), *(p.take(at) for p in parts)]
            inner = _lambda_batch(b, rows, fields, params)
            step = coerce(body(inner, ctx), body.type, state_type, ctx)
            values = state.to_pylist()
            for r, v in zip(rows.tolist(), step.to_pylist(), strict=True):
                values[r] = v
            state = pa.array(values, state_type.to_arrow())
        return state  # an empty or NULL collection reduces to the initial state

    return ev


def _subset(b: pa.RecordBatch, rows: np.ndarray) -> pa.RecordBatch:
    if len(rows) == b.num_rows:
        return b
    return b.take(pa.array(rows, pa.int64()))


def _on_rows(c: Compiled, sub: pa.RecordBatch, rows: np.ndarray, ctx: EvalContext) -> pa.Array:
    """Evaluate on a subset of the batch, reporting row errors by their rows in the batch."""
    inner = EvalContext()
    out = c(sub, inner)
    for i, message in inner.errors:
        ctx.error(int(rows[i]), message)
    return out


def _scatter(pieces: list[tuple[np.ndarray, pa.Array]], n: int, t: SqlType | None) -> pa.Array:
    """Put each piece's values at its rows; rows of no piece are NULL."""
    arrow = t.to_arrow() if t is not None else pa.null()
    if len(pieces) == 1 and len(pieces[0][0]) == n:
        return pieces[0][1]
    if not pieces:
        return pa.nulls(n, arrow)
    rows = np.concatenate([r for r, _ in pieces])
    values = pa.concat_arrays([v.cast(arrow) for _, v in pieces])
    where = np.full(n, -1, np.int64)
    where[rows] = np.arange(len(rows))
    return values.take(pa.array(where, mask=where < 0))


def _column(col: ScopeColumn) -> Compiled:
    name = col.field

    def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        return b.column(name)

    return Compiled(col.type, ev)


def _as_type(arr: pa.Array, t: SqlType) -> pa.Array:
    if pa.types.is_null(arr.type):
        return pa.nulls(len(arr), t.to_arrow())
    return arr


def coerce(
    arr: pa.Array, source: SqlType | None, target: SqlType | None, ctx: EvalContext
) -> pa.Array:
    """Widen a value to `target` for comparing or combining (INT -> BIGINT -> DECIMAL -> DOUBLE)."""
    if target is None:
        return arr
    if source is None or pa.types.is_null(arr.type):
        return pa.nulls(len(arr), target.to_arrow())
    if source == target:
        return arr
    if source.is_numeric and target.is_numeric:
        if target.name == "DECIMAL":
            return pc.cast(arr, target.to_arrow())
        if source.name == "DECIMAL" and target.name == "DOUBLE":
            return decimal_to_double(arr)
        return pc.cast(arr, target.to_arrow(), safe=False)
    if target.name == "STRING":
        return cast_array(arr, source, target, ctx)
    if source.name == "STRING" and target.is_temporal:
        return cast_array(arr, source, target, ctx)
    return arr


_OP_NAMES = {
    "=": "EQUAL",
    "!=": "NOT_EQUAL",
    "<": "LESS_THAN",
    "<=": "LESS_THAN_OR_EQUAL",
    ">": "GREATER_THAN",
    ">=": "GREATER_THAN_OR_EQUAL",
}


def _coerce_literal(
    node: ast.Expr, compiled: Compiled, target: SqlType | None, strict: bool = False
) -> Compiled | None:
    """A STRING literal compared with a number or a BOOLEAN becomes a literal of that type.

    With `strict` (IN lists), text that does not parse is an error, as in ksqlDB.
    """
    if not (isinstance(node, ast.Literal) and isinstance(node.value, str) and target is not None):
        return None
    if not (target.is_numeric or target.name == "BOOLEAN"):
        return None
    text = node.value.strip()
    try:
        if target.name == "BOOLEAN":
            if text.lower() not in ("true", "false"):
                raise ValueError(text)
            value: Any = text.lower() == "true"
        elif target.is_integral:
            exact = decimal.Decimal(text)
            if exact != exact.to_integral_value() or not exact.is_finite():
                raise ValueError(text)
            value = int(exact)
            if target.name == "INTEGER" and not -(2**31) <= value < 2**31:
                target = T.BIGINT  # too big for the column: compared as a BIGINT
        elif target.name == "DOUBLE":
            value = float(text)
        else:
            value = decimal.Decimal(text)
    except (ValueError, decimal.InvalidOperation):
        if strict:
            raise _err(
                node,
                f'Invalid Predicate: invalid input syntax for type {target.name}: "{node.value}".',
            ) from None
        return None
    return Compiled(target, lambda b, ctx: broadcast(value, target, b.num_rows), constant=True)


def _comparable(lt: SqlType | None, rt: SqlType | None, node: Any, op: str) -> SqlType | None:
    if lt is None or rt is None:
        return lt or rt
    if lt == rt:
        return lt
    if lt.is_numeric and rt.is_numeric:
        return T.widest_numeric(lt, rt)
    if (
        {lt.name, rt.name} == {"STRING", "TIMESTAMP"}
        or {lt.name, rt.name} == {"STRING", "DATE"}
        or {lt.name, rt.name} == {"STRING", "TIME"}
    ):
        return lt if lt.name != "STRING" else rt
    if lt.name == rt.name and lt.name in ("ARRAY", "MAP", "STRUCT"):
        return lt
    raise _err(node, f"Cannot compare {lt} to {rt} with {op}: cast one side, like CAST(x AS {lt})")


def _castable(source: SqlType, target: SqlType) -> bool:
    if source == target or target.name == "STRING":
        return True
    if source.name == "STRING":
        return target.name not in ("ARRAY", "MAP", "STRUCT", "BYTES")
    if source.is_numeric and target.is_numeric:
        return True
    if source.is_temporal and target.is_temporal:
        return {source.name, target.name} != {"DATE", "TIME"}
    return source.name == target.name and target.name in ("ARRAY", "MAP", "STRUCT")


def _arithmetic(
    op: str, left: Compiled, right: Compiled, lt: SqlType, rt: SqlType, result: SqlType
) -> Evaluator:
    def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        la = left(b, ctx)
        ra = right(b, ctx)
        if result.name == "DECIMAL":
            return _decimal_arith(op, la, ra, result, ctx)
        la = coerce(la, lt, result, ctx)
        ra = coerce(ra, rt, result, ctx)
        if op == "+":
            return pc.add(la, ra)
        if op == "-":
            return pc.subtract(la, ra)
        if op == "*":
            return pc.multiply(la, ra)
        if result.is_integral:
            zero = pc.fill_null(pc.equal(ra, 0), False)
            if pc.any(zero).as_py():
                for i in np.nonzero(np.asarray(zero))[0]:
                    ctx.error(int(i), "/ by zero" if op == "/" else "% by zero")
                ra = pc.if_else(zero, None, ra)
            if op == "/":
                # Java integer division truncates toward zero
                q = pc.divide(pc.cast(la, pa.float64()), pc.cast(ra, pa.float64()))
                return pc.cast(pc.trunc(q), result.to_arrow(), safe=False)
            rem = pc.subtract(
                la,
                pc.multiply(
                    pc.cast(
                        pc.trunc(pc.divide(pc.cast(la, pa.float64()), pc.cast(ra, pa.float64()))),
                        result.to_arrow(),
                        safe=False,
                    ),
                    ra,
                ),
            )
            return rem
        if op == "/":
            return pc.divide(la, ra)
        return rowwise(ctx, [la, ra], T.DOUBLE, lambda x, y: float(np.fmod(x, y)))

    return ev


def _as_decimal(arr: pa.Array) -> pa.Array:
    t = arr.type
    if pa.types.is_decimal(t):
        return arr
    return arr.cast(pa.decimal128(10 if t.bit_width <= 32 else 19, 0))


def _decimal_arith(
    op: str, la: pa.Array, ra: pa.Array, result: SqlType, ctx: EvalContext
) -> pa.Array:
    assert result.scale is not None and result.precision is not None
    if op not in ("+", "-", "*"):
        return _decimal_rows(op, la, ra, result, ctx)
    # whole columns in Arrow's decimal arithmetic, rounded half up to the result's scale;
    # Python's decimal only when Arrow cannot (a result past 38 digits)
    try:
        fn = {"+": pc.add, "-": pc.subtract, "*": pc.multiply}[op]
        exact = fn(_as_decimal(la), _as_decimal(ra))
        rounded = pc.round(exact, ndigits=result.scale, round_mode="half_up")
        return rounded.cast(pa.decimal128(result.precision, result.scale))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return _decimal_rows(op, la, ra, result, ctx)


def _decimal_rows(
    op: str, la: pa.Array, ra: pa.Array, result: SqlType, ctx: EvalContext
) -> pa.Array:
    """DECIMAL arithmetic row by row in Python's decimal, exact to 80 digits."""
    assert result.scale is not None
    quant = decimal.Decimal(1).scaleb(-result.scale)

    def one(x: Any, y: Any) -> decimal.Decimal:
        dx, dy = decimal.Decimal(x), decimal.Decimal(y)
        with decimal.localcontext() as c:
            c.prec = 80
            if op == "+":
                v = dx + dy
            elif op == "-":
                v = dx - dy
            elif op == "*":
                v = dx * dy
            elif op == "/":
                if dy == 0:
                    raise ZeroDivisionError("Division by zero")
                v = dx / dy
            else:
                v = dx % dy
            return v.quantize(quant, rounding=decimal.ROUND_HALF_UP)

    return rowwise(ctx, [la, ra], result, one)


def _escape_like(pattern: str, escape: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == escape and i + 1 < len(pattern):
            nxt = pattern[i + 1]
            out.append("\\" + nxt if nxt in "%_\\" else nxt)
            i += 2
            continue
        out.append("\\\\" if c == "\\" else c)
        i += 1
    return "".join(out)


def _like_row(value: str, pattern: str) -> bool:
    import re

    regex = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(regex, value, re.DOTALL) is not None


def to_json_text(value: Any) -> str:
    return json.dumps(value)


_TEMPORAL = ("DATE", "TIME", "TIMESTAMP")
#: the types a NULL argument is tried as, in order, when STRING does not fit the function
_NULL_GUESSES = (T.INTEGER, T.BIGINT, T.DOUBLE, T.BOOLEAN, T.BYTES, T.DATE, T.TIME, T.TIMESTAMP)


def _extreme_args(e: ast.FunctionCall, args: list[Compiled]) -> list[Compiled]:
    """GREATEST and LEAST resolve as ksqlDB's overloads do: NULLs take the others' type, text
    literals beside dates or times are read as such, and mixed numbers need a DOUBLE or all
    DECIMALs to pick one overload."""
    types = [a.type for a in args]
    known = [t for t in types if t is not None]
    shown = ", ".join(str(t) if t is not None else "null" for t in types)
    ambiguous = (
        f"Function '{e.name.lower()}' cannot be resolved due to ambiguous method parameters "
        f"({shown})."
    )
    if not known:
        raise _err(e, ambiguous)
    temporal = next((t for t in known if t.name in _TEMPORAL), None)
    if temporal is not None:
        literal_text = [
            i
            for i, (a, t) in enumerate(zip(e.args, types, strict=True))
            if t is not None and t.name == "STRING" and isinstance(a, ast.Literal)
        ]
        args = list(args)
        for i in literal_text:
            args[i] = _cast_compiled(args[i], T.STRING, temporal)
        types = [a.type for a in args]
        known = [t for t in types if t is not None]
    target = known[0]
    if len({str(t) for t in known}) > 1 and all(t.is_numeric for t in known):
        if any(t.name == "DOUBLE" for t in known):
            target = T.DOUBLE
        elif all(t.name == "DECIMAL" for t in known):
            target = known[0]
            for t in known[1:]:
                target = _widest_decimal(target, t)
        else:
            raise _err(e, ambiguous)
    return [a if a.type is not None else Compiled(target, a.evaluate, a.constant) for a in args]


def _widest_decimal(a: SqlType, b: SqlType) -> SqlType:
    assert a.precision is not None and a.scale is not None
    assert b.precision is not None and b.scale is not None
    scale = max(a.scale, b.scale)
    digits = max(a.precision - a.scale, b.precision - b.scale)
    return T.decimal(min(digits + scale, 38), scale)


def _cast_compiled(c: Compiled, src: SqlType, dst: SqlType) -> Compiled:
    def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        return coerce(c(b, ctx), src, dst, ctx)

    return Compiled(dst, ev, c.constant)


def _typed_texts(node: ast.Expr, target: SqlType) -> ast.Expr:
    """Text literals inside ARRAY[...], MAP(...) and STRUCT(...) constructors compared with a
    collection, read as the collection's element types (an IN list's rule, as ksqlDB's)."""
    if isinstance(node, ast.Literal) and isinstance(node.value, str):
        if target.is_numeric or target.name == "BOOLEAN":
            parsed = _coerce_literal(node, Compiled(T.STRING, lambda b, c: b), target, strict=True)
            assert parsed is not None
            value = parsed(pa.RecordBatch.from_pydict({"x": [0]}), EvalContext())[0].as_py()
            return ast.Literal(value, parsed.type, pos=node.pos)
        return node
    if isinstance(node, ast.ArrayConstructor) and target.name == "ARRAY":
        assert target.element is not None
        element = target.element
        return ast.ArrayConstructor(
            tuple(_typed_texts(i, element) for i in node.items), pos=node.pos
        )
    if isinstance(node, ast.MapConstructor) and target.name == "MAP":
        assert target.key is not None and target.element is not None
        kt, vt = target.key, target.element
        return ast.MapConstructor(
            tuple((_typed_texts(k, kt), _typed_texts(v, vt)) for k, v in node.entries),
            pos=node.pos,
        )
    if isinstance(node, ast.StructConstructor) and target.name == "STRUCT":
        fields = dict(target.fields)
        return ast.StructConstructor(
            tuple(
                (n, _typed_texts(v, fields[n.upper()]) if n.upper() in fields else v)
                for n, v in node.fields
            ),
            pos=node.pos,
        )
    return node


def _same_shape(a: SqlType | None, b: SqlType | None) -> bool:
    """Whether values of two types may be compared: numbers with numbers, and collections
    whose parts may be (STRUCTs by the fields they share)."""
    if a is None or b is None or a == b:
        return True
    if a.is_numeric and b.is_numeric:
        return True
    if a.name != b.name:
        return "STRING" in (a.name, b.name) and (a.is_temporal or b.is_temporal)
    if a.name == "ARRAY":
        return _same_shape(a.element, b.element)
    if a.name == "MAP":
        return _same_shape(a.key, b.key) and _same_shape(a.element, b.element)
    if a.name == "STRUCT":
        fa, fb = dict(a.fields), dict(b.fields)
        return all(_same_shape(fa[n], fb[n]) for n in set(fa) & set(fb))
    return True

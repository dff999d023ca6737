"""Type an expression against the columns in scope and compile it into a vectorized evaluator.

`compile_expr` checks names and types once, when a query is planned; the evaluator it returns
computes a whole Arrow column per batch with pyarrow compute. SQL NULL semantics hold
throughout (Kleene AND/OR, NULL in gives NULL out). A row that cannot be computed (a bad
cast, an integer divided by zero) becomes NULL and its reason goes to `EvalContext.errors`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.errors import HispeedError, SqlError
from hispeed.expr.arithmetic import arithmetic, moved_timestamp
from hispeed.expr.casts import as_type, broadcast, cast_of, castable, coerce
from hispeed.expr.lambdas import (
    LAMBDA_FUNCTIONS,
    filter_evaluator,
    reduce_evaluator,
    transform_evaluator,
)
from hispeed.expr.literals import coerce_literal, typed_texts
from hispeed.expr.scope import Compiled, Scope, ScopeColumn, error_at, not_here
from hispeed.expr.type_rules import (
    NULL_GUESSES,
    arithmetic_type,
    common_type,
    comparable,
    constructor_type,
    extreme_args,
    same_shape,
    valid_comparison,
)
from hispeed.functions.aggregates import AGGREGATES
from hispeed.functions.registry import (
    EvalContext,
    FunctionTypeError,
    declared_name,
    lookup,
    rowwise,
)
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.format import sql
from hispeed.sql.types import SqlType

Aggregates = dict[ast.Expr, ScopeColumn]


def _equal(la: pa.Array, ra: pa.Array, common: SqlType | None, ctx: EvalContext) -> pa.Array:
    """`la = ra` row by row, NULL where either side is NULL. Arrow has no `equal` kernel for
    lists, maps and structs, so those compare as Python values: ARRAYs element by element in
    order, MAPs by their entries, STRUCTs field by field, a NULL inside equal to a NULL there
    (Java's `equals`, which is what ksqlDB compares with)."""
    if common is None or common.name not in ("ARRAY", "MAP", "STRUCT"):
        return pc.equal(la, ra)
    return rowwise(ctx, [la, ra], T.BOOLEAN, lambda x, y: _plain(x, common) == _plain(y, common))


def _plain(value: Any, t: SqlType | None) -> Any:
    """A nested value of type `t` in a form Python compares as ksqlDB does: Arrow gives a MAP
    as a list of (key, value) pairs, whose order must not count."""
    if value is None or t is None:
        return value
    if t.name == "ARRAY":
        return [_plain(v, t.element) for v in value]
    if t.name == "MAP":
        return {k: _plain(v, t.element) for k, v in value}
    if t.name == "STRUCT":
        types = dict(t.fields)
        return {k: _plain(v, types.get(k)) for k, v in value.items()}
    return value


def compile_expr(expr: ast.Expr, scope: Scope, replaced: Aggregates | None = None) -> Compiled:
    """Type-check `expr` in `scope` and return its evaluator.

    `replaced` maps sub-expressions (aggregate calls, GROUP BY expressions) to columns that
    already hold their values.
    """
    own = not replaced or replaced is scope.replaced  # else compiled apart from the scope's
    return _Compiler(scope, replaced or scope.replaced, own).compile(expr)


class _Compiler:
    def __init__(self, scope: Scope, replaced: Aggregates, share: bool = True) -> None:
        self.scope = scope
        self.replaced = replaced
        self.share = share

    def compile(self, e: ast.Expr) -> Compiled:
        if e in self.replaced:
            return _column(self.replaced[e])
        key = (self.scope.clause, e)
        if self.share and key in self.scope.compiled:
            return self.scope.compiled[key]
        method = getattr(self, "c_" + type(e).__name__, None)
        if method is None:
            raise error_at(e, not_here(e))
        result: Compiled = method(e)
        if self.share and isinstance(e, _SHARED) and _deterministic(e):
            result = _shared(result)
            self.scope.compiled[key] = result
        return result

    def c_StructStar(self, e: ast.StructStar) -> Compiled:
        raise error_at(e, "`->*` may only stand alone in a select list, like SELECT s->* FROM ...")

    def c_Literal(self, e: ast.Literal) -> Compiled:
        value, t = e.value, e.type
        return Compiled(t, lambda b, ctx: broadcast(value, t, b.num_rows), constant=True)

    c_IntervalLiteral = c_Literal  # noqa: N815 (an INTERVAL: sql/joins.py)

    def c_ColumnRef(self, e: ast.ColumnRef) -> Compiled:
        return _column(self.scope.resolve(e))

    def c_Dereference(self, e: ast.Dereference) -> Compiled:
        base = self.compile(e.base)
        if base.type is None or base.type.name != "STRUCT":
            raise error_at(e, f"'->' needs a STRUCT on its left, not {base.type}")
        names = [n for n, _ in base.type.fields]
        name = next((n for n in names if n == e.field), None) or next(
            (n for n in names if n.upper() == e.field.upper()), None
        )
        if name is None:
            raise error_at(
                e, f"the struct has no field {e.field}; its fields are {', '.join(names)}"
            )
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
                if index.constant and len(idx) and pa.types.is_list(arr.type):
                    return element_at(arr, idx[0].as_py())

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
                if index.constant and len(key) and key[0].is_valid:
                    # map[NULL] is NULL (Arrow's map_lookup refuses a NULL key), and a key of
                    # another type than the map's takes the row-by-row path below
                    try:
                        return pc.map_lookup(arr, key[0], "first")
                    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                        pass
                return rowwise(
                    ctx,
                    [arr, key],
                    t.element,  # type: ignore[arg-type]
                    lambda m, k: dict(m).get(k),
                )

            return Compiled(t.element, ev_map)
        raise error_at(e, f"'[...]' needs an ARRAY or a MAP, not {t}")

    def c_UnaryOp(self, e: ast.UnaryOp) -> Compiled:
        inner = self.compile(e.operand)
        if e.op == "NOT":
            if inner.type is not None and inner.type.name != "BOOLEAN":
                raise error_at(e, f"NOT needs a BOOLEAN, not {inner.type}")
            return Compiled(T.BOOLEAN, lambda b, ctx: pc.invert(as_type(inner(b, ctx), T.BOOLEAN)))
        if inner.type is not None and not inner.type.is_numeric:
            raise error_at(e, f"unary minus needs a number, not {inner.type}")
        return Compiled(inner.type, lambda b, ctx: pc.negate(inner(b, ctx)))

    def c_BinaryOp(self, e: ast.BinaryOp) -> Compiled:
        left, right = self.compile(e.left), self.compile(e.right)
        op = e.op
        if op in ("=", "!=", "<", "<=", ">", ">="):
            check_comparison(e, op, left.type, right.type, self.scope.shown)
        if op in ("AND", "OR"):
            for side in (left, right):
                if side.type is not None and side.type.name != "BOOLEAN":
                    raise error_at(e, f"{op} needs BOOLEAN operands, not {side.type}")
            fn = pc.and_kleene if op == "AND" else pc.or_kleene
            return Compiled(
                T.BOOLEAN,
                lambda b, ctx: fn(
                    as_type(left(b, ctx), T.BOOLEAN), as_type(right(b, ctx), T.BOOLEAN)
                ),
            )
        if op in ("=", "!=", "<", "<=", ">", ">="):
            return self._comparison(e, op, left, right)
        lt, rt = left.type, right.type
        if lt is None or rt is None:
            # ksqlDB refuses arithmetic with an untyped NULL: it cannot tell the result's type
            raise error_at(
                e,
                f"Error processing expression: {sql(e)}. Arithmetic on types "
                f"{lt if lt is not None else 'null'} and {rt if rt is not None else 'null'} "
                "are not supported.",
            )
        if (moved := moved_timestamp(op, e, left)) is not None:
            return moved
        result = arithmetic_type(op, lt, rt, e, sql(e))
        if result.name == "STRING":
            return Compiled(
                T.STRING,
                lambda b, ctx: pc.binary_join_element_wise(left(b, ctx), right(b, ctx), ""),
            )
        return Compiled(result, arithmetic(op, left, right, lt, rt, result))

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
        common = comparable(lt, rt, e, op)

        def compared(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
            la, ra = left(b, ctx), right(b, ctx)
            if common is None:
                return pa.nulls(b.num_rows, pa.bool_())
            la = coerce(la, lt, common, ctx)
            ra = coerce(ra, rt, common, ctx)
            if common.name in ("ARRAY", "MAP", "STRUCT"):
                if op not in ("=", "!="):
                    raise HispeedError(f"cannot order values of type {common}")
                eq = _equal(la, ra, common, ctx)
                return eq if op == "=" else pc.invert(eq)
            return fn(la, ra)

        def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
            # a NULL side makes a comparison false, not NULL, in ksqlDB (its generated
            # code checks both sides for null first: SqlToJavaVisitor.nullCheckPrefix)
            return pc.fill_null(compared(b, ctx), False)

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
        running = operand.type
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
                node = typed_texts(node, operand.type)
            item = self.compile(node)
            coerced = coerce_literal(node, item, operand.type, strict=True)
            item = coerced or item
            try:
                comparable(operand.type, item.type, node, "IN")
                if not same_shape(operand.type, item.type):
                    raise error_at(node, "different shapes")
            except SqlError:
                # ksqlDB names the type the list had come to before this item (its
                # CoercionUtil widens the operand with each value it accepts)
                raise error_at(
                    node,
                    f"Invalid Predicate: operator does not exist: {running} = {item.type} "
                    f"({sql(node)})\nHint: You might need to add explicit type casts.",
                ) from None
            items.append(item)
            # collections of different element types have no common type: compared by shape
            with contextlib.suppress(SqlError):
                running = common_type([running, item.type], node, "IN") or running
        common = common_type([operand.type] + [i.type for i in items], e, "IN")

        def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
            value = coerce(operand(b, ctx), operand.type, common, ctx)
            result = pa.array(np.zeros(b.num_rows, bool))
            for item in items:
                arr = coerce(item(b, ctx), item.type, common, ctx)
                result = pc.or_kleene(
                    result,
                    _equal(value, arr, common, ctx),
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
            raise error_at(e, f"LIKE needs a STRING, not {operand.type}")
        if pattern.type is not None and pattern.type.name != "STRING":
            raise error_at(e.pattern, f"LIKE needs a STRING pattern, not {pattern.type}")

        def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
            value = operand(b, ctx)
            pat = pattern(b, ctx)
            if pattern.constant and len(pat) and pat[0].is_valid:
                text = pat[0].as_py()
                if e.escape:
                    text = _escape_like(text, e.escape)
                out = pc.match_like(value, text)
            else:
                out = rowwise(ctx, [value, pat], T.BOOLEAN, lambda v, p: _like_row(v, p, e.escape))
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
                    raise error_at(cond, f"WHEN needs a BOOLEAN condition, not {c.type}")
                conds.append(c)
        results = [self.compile(r) for _, r in e.whens]
        default = self.compile(e.default) if e.default is not None else None
        all_results = results + ([default] if default is not None else [])
        if all(r.type is None for r in all_results):
            raise error_at(e, "Invalid Case expression. All case branches have NULL type")
        t = common_type([r.type for r in all_results], e, "CASE")
        # the rows of each branch are taken with only the columns the CASE reads
        needed = self._fields(e)

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
                sub = _subset(b, rows, needed)
                hit = np.asarray(
                    pc.fill_null(
                        as_type(_on_rows(cond, sub, rows, ctx), T.BOOLEAN), False
                    ).to_numpy(zero_copy_only=False),
                    dtype=bool,
                )
                taken = rows[hit]
                if len(taken):
                    value = _on_rows(res, _subset(b, taken, needed), taken, ctx)
                    pieces.append((taken, coerce(value, res.type, t, ctx)))
                remaining[taken] = False
            rest = np.flatnonzero(remaining)
            if default is not None and len(rest):
                value = _on_rows(default, _subset(b, rest, needed), rest, ctx)
                pieces.append((rest, coerce(value, default.type, t, ctx)))
            return _scatter(pieces, n, t)

        return Compiled(t, ev)

    def _fields(self, e: ast.Expr) -> list[str] | None:
        """The batch fields `e` reads, or None when that is not known here (a lambda, whose
        body reads columns of batches of its own)."""
        found: set[str] = set()

        def walk(node: Any) -> bool:
            if isinstance(node, tuple):
                return all(walk(v) for v in node)
            if not isinstance(node, ast.Expr):
                return True
            if node in self.replaced:
                found.add(self.replaced[node].field)
                return True
            if isinstance(node, ast.Lambda):
                return False
            if isinstance(node, ast.ColumnRef):
                try:
                    found.add(self.scope.resolve(node).field)
                except SqlError:
                    return False
                return True
            return all(walk(getattr(node, f.name)) for f in dataclasses.fields(node))

        return sorted(found) if walk(e) else None

    def c_Cast(self, e: ast.Cast) -> Compiled:
        inner = self.compile(e.operand)
        target = e.type
        if inner.type is not None and not castable(inner.type, target):
            raise error_at(e, f"Cast of {inner.type} to {target} is not supported")
        column = e.operand.name if isinstance(e.operand, ast.ColumnRef) else ""
        return cast_of(inner, target, sql(e), column)

    def c_ArrayConstructor(self, e: ast.ArrayConstructor) -> Compiled:
        if not e.items:
            raise error_at(
                e,
                "Array constructor cannot be empty. Please supply at least one element "
                "(see https://github.com/confluentinc/ksql/issues/4239).",
            )
        items = self._unify_literals(list(e.items))
        if all(i.type is None for i in items):
            raise error_at(
                e,
                "Cannot construct an array with all NULL elements (see "
                "https://github.com/confluentinc/ksql/issues/4239). As a workaround, "
                "you may cast a NULL value to the desired type.",
            )
        element = constructor_type(list(e.items), [i.type for i in items], e, "ARRAY[...]")
        if element is None:
            raise error_at(
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
            raise error_at(
                e,
                "Map constructor cannot be empty. Please supply at least one key value "
                "pair (see https://github.com/confluentinc/ksql/issues/4239).",
            )
        keys = self._unify_literals([k for k, _ in e.entries])
        values = self._unify_literals([v for _, v in e.entries])
        if all(k.type is None for k in keys):
            raise error_at(
                e,
                "Cannot construct a map with all NULL keys (see "
                "https://github.com/confluentinc/ksql/issues/4239). As a workaround, "
                "you may cast a NULL key to the desired type.",
            )
        if all(v.type is None for v in values):  # ksqlDB's ExpressionTypeManager, as keys
            raise error_at(
                e,
                "Cannot construct a map with all NULL values (see "
                "https://github.com/confluentinc/ksql/issues/4239). As a workaround, "
                "you may cast a NULL value to the desired type.",
            )
        kt = constructor_type([k for k, _ in e.entries], [k.type for k in keys], e, "MAP keys")
        vt = constructor_type([v for _, v in e.entries], [v.type for v in values], e, "MAP values")
        if kt is None or vt is None:
            raise error_at(e, "a MAP(...) of only NULLs has no type; cast a key and a value")
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
                coerced = coerce_literal(n, c, target)
                if coerced is None:
                    raise error_at(n, f'invalid input syntax for type {target.name}: "{n.value}".')
                c = coerced
            out.append(c)
        return out

    def c_StructConstructor(self, e: ast.StructConstructor) -> Compiled:
        names = [n.upper() for n, _ in e.fields]
        if len(set(names)) != len(names):
            raise error_at(
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
        if (e.distinct or e.filter is not None) and name not in AGGREGATES:
            # an aggregate's own call never gets here (the aggregation replaces it)
            said = "DISTINCT" if e.distinct else "FILTER (WHERE ...)"
            raise error_at(e, f"{said} is for aggregate functions; {name} is not one")
        if name in LAMBDA_FUNCTIONS:
            return self._higher_order(e, name)
        if (
            name in UNIT_FUNCTIONS
            and e.args
            and isinstance(e.args[0], ast.ColumnRef)
            and e.args[0].source is None
            and e.args[0].name in TIME_UNITS
        ):
            # DATEADD(DAYS, 1, d): the unit is a keyword, passed on as text
            unit = ast.Literal(e.args[0].name, T.STRING, pos=e.args[0].pos)
            e = ast.FunctionCall(e.name, (unit, *e.args[1:]), e.distinct, e.star, pos=e.pos)
        if name in ("IS_DISTINCT_FROM", "IS_NOT_DISTINCT_FROM"):
            left, right = (self.compile(a) for a in e.args)
            check_comparison(e, name.replace("_", " "), left.type, right.type, self.scope.shown)
            common = comparable(left.type, right.type, e, "IS DISTINCT FROM")

            def distinct(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
                la = coerce(left(b, ctx), left.type, common, ctx)
                ra = coerce(right(b, ctx), right.type, common, ctx)
                same = pc.fill_null(_equal(la, ra, common, ctx), False)
                both_null = pc.and_(pc.is_null(la), pc.is_null(ra))
                equal = pc.or_(same, both_null)
                return equal if name == "IS_NOT_DISTINCT_FROM" else pc.invert(equal)

            return Compiled(T.BOOLEAN, distinct)
        fn = lookup(name)
        if fn is None:
            if name in AGGREGATES:
                raise error_at(
                    e,
                    f"aggregate function {name} is only allowed in the SELECT list "
                    "or HAVING of a query with GROUP BY",
                )
            raise error_at(e, f"Can't find any functions with the name '{name}'")
        args = [self.compile(a) for a in e.args]
        if name in ("GREATEST", "LEAST") and args:
            args = extreme_args(e, args)
        types = [a.type or T.STRING for a in args]
        try:
            result_type = fn.resolve(types)
        except FunctionTypeError as err:
            # a NULL argument fits any parameter: try it as each other type before refusing
            for guess in NULL_GUESSES if any(a.type is None for a in args) else ():
                try:
                    result_type = fn.resolve([a.type or guess for a in args])
                except FunctionTypeError:
                    continue
                types = [a.type or guess for a in args]
                break
            else:
                shown = ", ".join(str(t) for t in types)
                refusal = f"Function '{declared_name(e.name)}' does not accept parameters"
                raise error_at(e, f"{refusal} ({shown}). {err}") from None

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
            raise error_at(lam, f"{name} expects a lambda function here, like x => x + 1")
        if len(lam.params) != len(param_types):
            raise error_at(
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
            raise error_at(e, f"Function '{declared_name(name)}' does not accept parameters ().")
        coll = self.compile(e.args[0])
        t = coll.type
        if t is None or t.name not in ("ARRAY", "MAP"):
            raise error_at(e, f"{name} takes an ARRAY or a MAP as its first argument, not {t}")
        is_map = t.name == "MAP"
        elem_types: list[SqlType] = (
            [t.key, t.element] if is_map else [t.element]  # type: ignore[list-item]
        )
        if name == "REDUCE":
            if len(e.args) != 3:
                raise error_at(e, "REDUCE takes (collection, initial state, lambda)")
            init = self.compile(e.args[1])
            state_type = init.type or T.INTEGER
            body, fields = self._lambda_body(e.args[2], [state_type, *elem_types], name)
            return Compiled(
                state_type, reduce_evaluator(coll, init, body, fields, is_map, state_type)
            )
        expected = 3 if (is_map and name == "TRANSFORM") else 2
        if len(e.args) != expected:
            raise error_at(e, f"{name} over a {t.name} takes {expected} arguments")
        bodies = []
        all_fields: list[list[str]] = []
        for lam in e.args[1:]:
            body, fields = self._lambda_body(lam, elem_types, name)
            bodies.append(body)
            all_fields.append(fields)
        if name == "FILTER":
            if bodies[0].type is not None and bodies[0].type.name != "BOOLEAN":
                raise error_at(e, f"FILTER needs a BOOLEAN lambda, not {bodies[0].type}")
            return Compiled(t, filter_evaluator(coll, bodies[0], all_fields[0], is_map, t))
        if is_map:
            out_type = T.map_(bodies[0].type or T.STRING, bodies[1].type or T.STRING)
        else:
            out_type = T.array(bodies[0].type or T.STRING)
        return Compiled(out_type, transform_evaluator(coll, bodies, all_fields, is_map, out_type))

    def c_Lambda(self, e: ast.Lambda) -> Compiled:
        raise error_at(e, "a lambda is only allowed as an argument of TRANSFORM, FILTER or REDUCE")


UNIT_FUNCTIONS = ("DATEADD", "DATESUB", "TIMEADD", "TIMESUB", "TIMESTAMPADD", "TIMESTAMPSUB")


TIME_UNITS = {
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


def element_at(arr: pa.ListArray, i: int | None) -> pa.Array:
    """`arr[i]` for every row at once, as ksqlDB indexes arrays: from 1, or from the end when
    negative; NULL for a NULL array or index, an index past either end, and index 0."""
    n = len(arr)
    if i is None or i == 0 or n == 0:
        return pa.nulls(n, arr.type.value_type)
    offsets = arr.offsets.to_numpy().astype(np.int64)  # the slice's own n + 1 offsets
    lengths = offsets[1:] - offsets[:-1]
    at = offsets[:-1] + (i - 1) if i > 0 else offsets[1:] + i
    missing = lengths < abs(i)
    if arr.null_count:
        missing |= np.asarray(arr.is_null().to_numpy(zero_copy_only=False), dtype=bool)
    return arr.values.take(pa.array(np.where(missing, 0, at), mask=missing))


#: the expressions worth computing once per batch when written more than once
_SHARED = (
    ast.FunctionCall,
    ast.Cast,
    ast.Case,
    ast.Subscript,
    ast.BinaryOp,
    ast.Like,
    ast.InList,
)


def _deterministic(e: Any) -> bool:
    """Whether `e` gives the same column each time for the same batch: it calls no function
    that is not deterministic (RANDOM, UUID) or that the registry does not know (an aggregate
    or a lambda's own, whose values come from elsewhere)."""
    if isinstance(e, ast.FunctionCall):
        fn = lookup(e.name)
        if e.name.upper() not in LAMBDA_FUNCTIONS and (fn is None or not fn.deterministic):
            return False
    if isinstance(e, ast.Lambda):
        return False  # its parameters' columns are the caller's
    if isinstance(e, tuple):
        return all(_deterministic(v) for v in e)
    if not isinstance(e, ast.Expr):
        return True
    return all(_deterministic(getattr(e, f.name)) for f in dataclasses.fields(e))


def _shared(c: Compiled) -> Compiled:
    """`c` computed once per batch and context: a second call for the same batch gives the
    first result, and reports again the errors its rows gave (as computing it again would)."""
    slot = id(c)

    def ev(b: pa.RecordBatch, ctx: EvalContext) -> pa.Array:
        last = ctx.shared.get(slot)
        if last is not None and last[0] is b:
            ctx.errors.extend(last[2])
            out: pa.Array = last[1]
            return out
        before = len(ctx.errors)
        out = c(b, ctx)
        ctx.shared[slot] = (b, out, ctx.errors[before:])
        return out

    return Compiled(c.type, ev, c.constant)


def _subset(b: pa.RecordBatch, rows: np.ndarray, fields: list[str] | None) -> pa.RecordBatch:
    """The rows of `b` (with only `fields`, when they are known)."""
    if len(rows) == b.num_rows:
        return b
    if fields is not None:
        b = b.select(fields)
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


_OP_NAMES = {
    "=": "EQUAL",
    "!=": "NOT_EQUAL",
    "<": "LESS_THAN",
    "<=": "LESS_THAN_OR_EQUAL",
    ">": "GREATER_THAN",
    ">=": "GREATER_THAN_OR_EQUAL",
    "IS DISTINCT FROM": "IS_DISTINCT_FROM",
    "IS NOT DISTINCT FROM": "IS_NOT_DISTINCT_FROM",
}


def check_comparison(
    e: ast.Expr,
    op: str,
    lt: SqlType | None,
    rt: SqlType | None,
    shown: Callable[[ast.Expr], str] = sql,
) -> None:
    """Refuse a comparison ksqlDB refuses, with its message: one with an untyped NULL side,
    or types its ComparisonUtil does not let meet (see `valid_comparison`)."""
    if lt is None or rt is None:
        symbol = "<>" if op == "!=" else op
        raise error_at(
            e,
            f"Comparison with NULL not supported: {lt.name if lt else 'NULL'} {symbol} "
            f"{rt.name if rt else 'NULL'}\nUse 'IS NULL' or 'IS NOT NULL' instead.",
        )
    if not valid_comparison(lt, op, rt):
        left, right = (e.left, e.right) if isinstance(e, ast.BinaryOp) else e.args  # type: ignore[attr-defined]
        raise error_at(
            e,
            f"Cannot compare {shown(left)} ({lt}) to {shown(right)} ({rt}) with {_OP_NAMES[op]}.",
        )


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


def _like_row(value: str, pattern: str, escape: str | None = None) -> bool:
    """ksqlDB's LikeEvaluator: % any text, _ one character, and the character after the
    escape character taken literally (a pattern may not end with the escape character)."""
    parts = []
    escaped = False
    for c in pattern:
        if escaped:
            parts.append(re.escape(c))
            escaped = False
        elif c == escape:
            escaped = True
        else:
            parts.append(".*" if c == "%" else "." if c == "_" else re.escape(c))
    if escaped:
        raise HispeedError("LIKE pattern must not end with escape character")
    return re.fullmatch("".join(parts), value, re.DOTALL) is not None

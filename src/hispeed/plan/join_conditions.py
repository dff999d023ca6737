"""A join's condition past ksqlDB's one equality: several conditions, time bounds, comma joins.

ksqlDB joins on exactly one equality (its issue 2344). Here an ON clause is a conjunction:
one equality between the two sides becomes the join key (for a table on the right, the one
on its primary key), and the rest is the step's residual condition, which decides whether
two rows match. For an inner join that is a filter over the joined rows, and goes to WHERE
(where it runs a batch at a time, and over tables retracts a row that stops passing); for an
outer join it must decide matching itself, so an unmatched row still comes out, padded with
NULLs: the step carries it (`JoinStep.residual`) and the join operators ask it per pair.

A stream-stream join without WITHIN takes its window from time bounds in its condition, as
Flink's interval joins do: `a.t BETWEEN b.t - INTERVAL '5' MINUTE AND b.t` (or a pair of
`>=`/`<=`), where each `t` is its source's record time (ROWTIME, or the column its TIMESTAMP
property names): that is ksqlDB's `WITHIN (0 MINUTES, 5 MINUTES)`.

A comma join (`FROM a, b WHERE a.x = b.y AND ...`, Flink's and standard SQL's inner join)
takes its condition from the WHERE conjuncts over the sides joined so far.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from hispeed.catalog import Source
from hispeed.errors import SqlError
from hispeed.expr.scope import Compiled, Scope
from hispeed.functions.registry import EvalContext
from hispeed.plan.scope import walk
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.format import sql


def conjuncts(e: ast.Expr | None) -> list[ast.Expr]:
    """The terms of `e`'s top-level AND chain, in the order written."""
    if e is None:
        return []
    if isinstance(e, ast.BinaryOp) and e.op == "AND":
        return [*conjuncts(e.left), *conjuncts(e.right)]
    return [e]


def conjunction(terms: list[ast.Expr]) -> ast.Expr | None:
    """The AND of `terms` (None for none)."""
    if not terms:
        return None
    out = terms[0]
    for t in terms[1:]:
        out = ast.BinaryOp("AND", out, t, pos=getattr(out, "pos", (0, 0)))
    return out


def labels_in(e: ast.Expr, scope: Scope) -> set[str]:
    """The labels of the sides whose columns `e` reads."""
    return {str(scope.resolve(x).source) for x in walk(e) if isinstance(x, ast.ColumnRef)}


def comma_condition(
    where: ast.Expr | None, before: set[str], right: str, scope: Scope
) -> ast.Expr | None:
    """A comma join's condition: the WHERE conjuncts that read the right side and otherwise
    only sides joined before it (they stay in WHERE too: for an inner join, running them
    again is only a filter they all pass)."""
    terms = []
    for term in conjuncts(where):
        try:
            used = labels_in(term, scope)
        except SqlError:  # a column WHERE cannot name is WHERE's error to give
            continue
        if right in used and used <= before | {right}:
            terms.append(term)
    return conjunction(terms)


@dataclass
class Split:
    """An ON clause taken apart: the key equality's (left, right) and what else it says."""

    left: ast.Expr
    right: ast.Expr
    #: the equality the key comes from, as written
    equality: ast.BinaryOp
    #: the other conditions, None if none
    residual: ast.Expr | None


def split_conjunction(
    terms: list[ast.Expr],
    on: ast.Expr,
    left_labels: set[str],
    right: Source,
    right_label: str,
    scope: Scope,
    err: Any,
) -> Split:
    """The key equality among `terms` (an ON clause of several conditions) and the rest.

    An equality joins the sides when one operand reads only earlier sides and the other only
    the right side; a table on the right is joined on its primary key, so the equality on
    that key is chosen when there is one."""
    keyed: list[tuple[ast.BinaryOp, ast.Expr, ast.Expr]] = []
    for term in terms:
        if not (isinstance(term, ast.BinaryOp) and term.op == "="):
            continue
        la, lb = labels_in(term.left, scope), labels_in(term.right, scope)
        if la and la <= left_labels and lb == {right_label}:
            keyed.append((term, term.left, term.right))
        elif lb and lb <= left_labels and la == {right_label}:
            keyed.append((term, term.right, term.left))
    if not keyed:
        raise err(
            on,
            "Invalid join condition: a join needs an equality between a column (or an "
            f"expression) of `{right_label}` and one of the sources before it, like "
            f"{sorted(left_labels)[0]}.ID = {right_label}.ID. Got {sql(on)}.",
        )
    composite = _composite_key(keyed, right, right_label, scope, on)
    if composite is not None:
        return Split(
            composite[0],
            composite[1],
            composite[2],
            conjunction([t for t in terms if not any(t is k for k in composite[3])]),
        )
    chosen = keyed[0]
    if right.kind == "TABLE" and len(right.key_columns) == 1:
        pk = right.key_columns[0].name
        for k in keyed:
            ref = k[2]
            if isinstance(ref, ast.ColumnRef) and scope.resolve(ref).field == (
                f"{right_label}.{pk}"
            ):
                chosen = k
                break
    rest = [t for t in terms if t is not chosen[0]]
    return Split(chosen[1], chosen[2], chosen[0], conjunction(rest))


def _composite_key(
    keyed: list[tuple[ast.BinaryOp, ast.Expr, ast.Expr]],
    right: Source,
    right_label: str,
    scope: Scope,
    on: ast.Expr,
) -> tuple[ast.Expr, ast.Expr, ast.BinaryOp, list[ast.Expr]] | None:
    """A table with a key of several columns, each equal to an expression of the sources
    before it: the join key is the STRUCT of those columns (in the key's order) and of what
    they equal, and the equalities it is made of. None for any other join."""
    names = [c.name for c in right.key_columns]
    if right.kind != "TABLE" or len(names) < 2:
        return None
    found: dict[str, tuple[ast.BinaryOp, ast.Expr, ast.Expr]] = {}
    for k in keyed:
        ref = k[2]
        if not isinstance(ref, ast.ColumnRef):
            continue
        field = scope.resolve(ref).field
        for name in names:
            if field == f"{right_label}.{name}" and name not in found:
                found[name] = k
    if len(found) != len(names):
        return None
    pos = getattr(on, "pos", (0, 0))
    left = ast.StructConstructor(tuple((n, found[n][1]) for n in names), pos=pos)
    right_e = ast.StructConstructor(tuple((n, found[n][2]) for n in names), pos=pos)
    equality = ast.BinaryOp("=", left, right_e, pos=pos)
    return left, right_e, equality, [found[n][0] for n in names]


# -- time bounds -------------------------------------------------------------------------------


@dataclass
class _Timed:
    """`column + offset`, a side's column moved by constant milliseconds."""

    label: str
    ref: ast.ColumnRef
    offset: int


def _timed(e: ast.Expr, scope: Scope) -> _Timed | None:
    if isinstance(e, ast.ColumnRef):
        return _Timed(str(scope.resolve(e).source), e, 0)
    if isinstance(e, ast.BinaryOp) and e.op in ("+", "-"):
        const = _constant(e.right)
        inner = _timed(e.left, scope)
        if const is not None and inner is not None:
            inner.offset += const if e.op == "+" else -const
            return inner
        if e.op == "+":
            const = _constant(e.left)
            inner = _timed(e.right, scope)
            if const is not None and inner is not None:
                inner.offset += const
                return inner
    return None


def _constant(e: ast.Expr) -> int | None:
    if isinstance(e, ast.Literal) and isinstance(e.value, int) and not isinstance(e.value, bool):
        return e.value
    if isinstance(e, ast.UnaryOp) and e.op == "-":
        inner = _constant(e.operand)
        return None if inner is None else -inner
    return None


#: a comparison `x op y` as bounds on x - y: (lower inclusive shift, upper inclusive shift)
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<="}


def _comparisons(term: ast.Expr) -> list[tuple[ast.Expr, str, ast.Expr]]:
    if isinstance(term, ast.Between) and not term.negated:
        return [(term.operand, ">=", term.low), (term.operand, "<=", term.high)]
    if isinstance(term, ast.BinaryOp) and term.op in _FLIP:
        return [(term.left, term.op, term.right)]
    if isinstance(term, ast.BinaryOp) and term.op == "=":
        # equal record times (two window aggregations' rows of one window): a window of 0
        return [(term.left, ">=", term.right), (term.left, "<=", term.right)]
    return []


@dataclass
class TimeBounds:
    """A stream-stream join's window from its condition: WITHIN (before, after)."""

    before_ms: int
    after_ms: int
    #: the conditions the window stands for (they need not run again)
    terms: list[ast.Expr]


def time_bounds(
    terms: list[ast.Expr],
    left: list[tuple[str, Source]],
    right: tuple[str, Source],
    scope: Scope,
    err: Any,
    own: list[ast.Expr],
) -> TimeBounds | None:
    """The window that comparisons of the two sides' times among `terms` give, if any.

    Bounds on `left time - right time` (lo <= d <= hi) mean a left record at t joins right
    records from t - hi to t - lo: WITHIN (hi, -lo). A comparison of two sides' columns of
    which one is not its source's record time is refused when no window comes (`own`: the
    terms of the ON clause, whose comparisons were meant as bounds), as is a window with one
    bound."""
    times = {label: _record_time(src) for label, src in [*left, right]}
    lo: int | None = None
    hi: int | None = None
    used: list[ast.Expr] = []
    offending: _Timed | None = None
    for term in terms:
        found = False
        for a, op, b in _comparisons(term):
            ta, tb = _timed(a, scope), _timed(b, scope)
            if ta is None or tb is None or ta.label == tb.label:
                continue
            if right[0] not in (ta.label, tb.label):
                continue
            untimed = [t for t in (ta, tb) if scope.resolve(t.ref).name not in times[t.label]]
            if untimed:
                equality = isinstance(term, ast.BinaryOp) and term.op == "="
                if offending is None and not equality and any(term is t for t in own):
                    offending = untimed[0]
                continue
            if ta.label == right[0]:  # as bounds on left - right
                ta, tb, op = tb, ta, _FLIP[op]
            # ta.col + ta.off  op  tb.col + tb.off  =>  d  op  tb.off - ta.off
            shift = tb.offset - ta.offset
            if op in ("<", "<="):
                bound = shift - (1 if op == "<" else 0)
                hi = bound if hi is None else min(hi, bound)
            else:
                bound = shift + (1 if op == ">" else 0)
                lo = bound if lo is None else max(lo, bound)
            found = True
        if found:
            used.append(term)
    if (not used or lo is None or hi is None) and offending is not None:
        # a window is needed, and this cannot give it
        t = offending
        shown = " or ".join(sorted(times[t.label]))
        raise err(
            t.ref,
            f"Invalid interval join: {sql(t.ref)} is not the time of `{t.label}`'s "
            f"records ({shown}), so it cannot bound the join's window. Compare the "
            "sources' record times, or give WITHIN.",
        )
    if not used:
        return None
    if lo is None or hi is None:
        raise err(
            used[0],
            "Invalid interval join: the condition bounds the time between the two sides' "
            "records on one side only; give both bounds, like a.t BETWEEN b.t - INTERVAL '5' "
            "MINUTE AND b.t, or give WITHIN.",
        )
    if lo > hi:
        raise err(used[0], "Invalid interval join: its time bounds leave no time to join in.")
    return TimeBounds(hi, -lo, used)


def _record_time(source: Source) -> set[str]:
    names = {"ROWTIME"}
    if source.timestamp:
        names.add(source.timestamp.upper())
    return names


# -- the residual at run time ------------------------------------------------------------------


def row_predicate(compiled: Compiled, scope: Scope) -> Callable[[list[dict[str, Any]]], list[bool]]:
    """A residual condition as the join operators ask it: joined rows (dicts by field) in,
    whether each matches out (NULL does not)."""
    fields = [(c.field, c.type.to_arrow()) for c in scope.columns if c.type is not None]
    schema = pa.schema(dict(fields))

    def matches(rows: list[dict[str, Any]]) -> list[bool]:
        if not rows:
            return []
        batch = pa.RecordBatch.from_pylist(rows, schema=schema)
        return [v is True for v in compiled(batch, EvalContext()).to_pylist()]

    return matches


def check_boolean(compiled: Compiled, e: ast.Expr, err: Any) -> None:
    """Refuse a condition that is not a BOOLEAN."""
    if compiled.type is not None and compiled.type != T.BOOLEAN:
        raise err(e, f"Invalid join condition: {sql(e)} is {compiled.type}, not BOOLEAN.")

"""Plan a join: its sides, the key each step joins on, the joined columns and their names.

A join is planned left-deep, as ksqlDB builds it: `A JOIN B ... JOIN C` joins A with B, then
that result with C. The query's other clauses (WHERE, the select list, GROUP BY) then run
over the joined rows as over a single source, whose columns are every side's columns,
qualified by the side's alias (`T.ID`, the field `T.ID` of the joined frame), plus the
result's own ROWTIME, ROWPARTITION, ROWOFFSET and key (`$J.ROWTIME`, ...).

Names follow ksqlDB: an unaliased qualified column `t.id` is named `T_ID`, `*` stands for
each side's columns named that way, and the result is keyed by the join expression: by a
column that is the expression on one side, or, when neither is a plain column or the join is
FULL OUTER, by a synthetic column `ROWKEY` that must be selected.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hispeed.catalog import Catalog, Source
from hispeed.errors import SqlError
from hispeed.formats.base import Column
from hispeed.ops.expressions import Compiled, Scope, ScopeColumn
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.format import sql

#: the joined frame's own columns are `$J.<name>`
LABEL = "$J"
ROWKEY = "ROWKEY"


@dataclass
class JoinSide:
    source: Source
    label: str


@dataclass
class JoinStep:
    """One binary join: the result so far (sides 0 .. right - 1) with side `right`."""

    kind: str  # INNER LEFT RIGHT FULL
    right: int
    left_key: Compiled  # over the fields of sides 0 .. right - 1
    right_key: Compiled  # over the fields of side `right`
    left_kind: str  # STREAM or TABLE
    right_kind: str
    before_ms: int = 0
    after_ms: int = 0
    #: stream-stream joins: how long after a window closes records may still join it; None
    #: when no GRACE PERIOD is given (then unmatched rows of outer joins are sent at once)
    grace_ms: int | None = None
    #: a table-table join on the right table's key from a left value column
    foreign_key: bool = False

    @property
    def result(self) -> str:
        return "TABLE" if self.left_kind == "TABLE" and self.right_kind == "TABLE" else "STREAM"


@dataclass
class JoinPlan:
    sides: list[JoinSide]
    steps: list[JoinStep]
    key_type: T.SqlType
    #: fields of the result key: the join expression's columns, or `$J.ROWKEY`
    key_fields: list[str]
    synthetic_key: bool

    @property
    def kind(self) -> str:
        return self.steps[-1].result


class JoinScope(Scope):
    """Every side's columns; unqualified ROWTIME (and the like) and ROWKEY are the result's."""

    def resolve(self, ref: ast.ColumnRef) -> ScopeColumn:
        if ref.source is None and ref.name not in self.lambdas:
            own = [c for c in self.columns if c.source == LABEL and c.name == ref.name]
            if own:
                return own[0]
        return super().resolve(ref)


def plan_relation(
    join: ast.Join, catalog: Catalog, compile_: Any, err: Any
) -> tuple[JoinPlan, JoinScope, Source]:
    """The join plan, the scope of the joined columns and a Source describing the result."""
    from hispeed.plan.planner import PSEUDO_COLUMNS, source_scope

    refs: list[tuple[ast.SourceRef, ast.Join | None]] = []
    node: ast.Relation = join
    while isinstance(node, ast.Join):
        refs.append((node.right, node))
        node = node.left
    assert isinstance(node, ast.SourceRef)
    refs.append((node, None))
    refs.reverse()
    sides: list[JoinSide] = []
    labels: set[str] = set()
    for ref, _ in refs:
        line, col = ref.pos
        source = catalog.get(ref.name, line=line or 1, column=col or 1)
        if ref.label in labels:
            raise err(
                ref,
                f"Can not join '{ref.name}' to '{ref.name}': self joins need an alias for each "
                "side, like FROM s AS a JOIN s AS b",
            )
        labels.add(ref.label)
        sides.append(JoinSide(source, ref.label))
    columns: list[ScopeColumn] = []
    for side in sides:
        columns += source_scope(side.source, side.label).columns
    scope = JoinScope(columns)
    steps: list[JoinStep] = []
    kind = sides[0].source.kind
    candidates: list[str] = []  # fields equal to the current key
    synthetic = False
    key_type: T.SqlType | None = None
    for i, (_, jn) in enumerate(refs[1:], start=1):
        assert jn is not None
        right = sides[i]
        left_labels = {s.label for s in sides[:i]}
        left_e, right_e = _split_on(jn.on, left_labels, right.label, scope, err)
        left_key = compile_(left_e, scope, "JOIN")
        right_key = compile_(right_e, scope, "JOIN")
        lt, rt = left_key.type, right_key.type
        if lt is None or rt is None or lt != rt:
            raise err(
                jn.on,
                f"Invalid join condition: types don't match. Got {sql(left_e)}{{{lt}}} = "
                f"{sql(right_e)}{{{rt}}}.",
            )
        step = _step(jn, i, left_key, right_key, kind, right.source, err)
        right_field = _column_field(right_e, scope)
        left_field = _column_field(left_e, scope)
        if step.right_kind == "TABLE" and step.left_kind == "TABLE":
            right_pk = [f"{right.label}.{c.name}" for c in right.source.key_columns]
            if right_field is None or [right_field] != right_pk:
                raise err(
                    jn.on,
                    f"Invalid join condition: table-table joins require to join on the primary "
                    f"key of the right input table. Got {sql(left_e)} = {sql(right_e)}.",
                )
            left_pk = (
                [f"{sides[0].label}.{c.name}" for c in sides[0].source.key_columns]
                if i == 1
                else candidates
            )
            step.foreign_key = left_field is None or left_field not in left_pk
        elif step.right_kind == "TABLE":
            right_pk = [f"{right.label}.{c.name}" for c in right.source.key_columns]
            if right_field is None or [right_field] != right_pk:
                raise err(
                    jn.on,
                    f"Invalid comparison expression '{sql(right_e)}' in join "
                    f"'{sql(jn.on)}'. Joins must only contain a field comparison.",
                )
        steps.append(step)
        if step.foreign_key:
            if i == 1:
                candidates = [f"{sides[0].label}.{c.name}" for c in sides[0].source.key_columns]
            key_type = key_type or (
                sides[0].source.key_columns[0].type if sides[0].source.key_columns else lt
            )
        elif step.kind == "FULL" or (left_field is None and right_field is None):
            candidates, synthetic, key_type = [f"{LABEL}.{ROWKEY}"], True, lt
        elif left_field is not None and left_field in candidates:
            candidates = [*candidates, *([right_field] if right_field else [])]
        else:
            candidates = [f for f in (left_field, right_field) if f is not None]
            synthetic, key_type = False, lt
        kind = step.result
    assert key_type is not None
    plan = JoinPlan(sides, steps, key_type, candidates, synthetic)
    result_cols = [ScopeColumn(n, t, f"{LABEL}.{n}", LABEL) for n, t in PSEUDO_COLUMNS.items()]
    if synthetic:
        result_cols.append(ScopeColumn(ROWKEY, key_type, f"{LABEL}.{ROWKEY}", LABEL))
    scope.columns += result_cols
    first = sides[0].source  # the result's formats are the left side's, as in ksqlDB
    result = Source(
        name=" JOIN ".join(s.source.name for s in sides),
        kind=plan.kind,
        key_columns=[Column(ROWKEY, key_type)],
        value_columns=[],
        topic=first.topic,
        key_format=first.key_format,
        value_format=first.value_format,
        key_properties=dict(first.key_properties),
        value_properties=dict(first.value_properties),
    )
    return plan, scope, result


def _step(
    node: ast.Join,
    i: int,
    left_key: Compiled,
    right_key: Compiled,
    left_kind: str,
    right: Source,
    err: Any,
) -> JoinStep:
    right_kind = right.kind
    within = node.within
    if left_kind == "TABLE" and right_kind == "STREAM":
        raise err(
            node,
            "Join between invalid operands requested: left type: KTABLE, right type: KSTREAM",
        )
    if left_kind == "STREAM" and right_kind == "STREAM":
        if within is None:
            raise err(
                node,
                "Stream-Stream joins must have a WITHIN clause specified. None was provided. "
                "To learn about how to specify a WITHIN clause with a stream-stream join, "
                "please visit: https://docs.confluent.io/current/ksql/docs/syntax-reference.html"
                "#create-stream-as-select",
            )
        return JoinStep(
            node.kind,
            i,
            left_key,
            right_key,
            left_kind,
            right_kind,
            within.before_ms,
            within.after_ms,
            within.grace_ms,
        )
    if within is not None:
        raise err(
            node,
            "A window definition was provided for a Stream-Table join. These joins are not "
            "windowed. Please drop the window definition (ie. the WITHIN clause) and try to "
            "execute your join again.",
        )
    if left_kind == "STREAM" and node.kind in ("RIGHT", "FULL"):
        shown = "FULL OUTER" if node.kind == "FULL" else node.kind
        raise err(
            node,
            f"Invalid join type: {shown} join not supported for stream-table join. "
            "Only INNER and LEFT joins are supported.",
        )
    return JoinStep(node.kind, i, left_key, right_key, left_kind, right_kind)


def _labels_in(e: ast.Expr, scope: Scope) -> set[str]:
    from hispeed.plan.planner import _walk

    found: set[str] = set()
    for x in _walk(e):
        if isinstance(x, ast.ColumnRef):
            found.add(str(scope.resolve(x).source))
    return found


def _split_on(
    on: ast.Expr, left_labels: set[str], right_label: str, scope: Scope, err: Any
) -> tuple[ast.Expr, ast.Expr]:
    """The ON clause's (left expression, right expression)."""
    if not isinstance(on, ast.BinaryOp) or on.op != "=":
        raise err(
            on,
            f"Unsupported join expression: {sql(on)}; joins need an equality, like ON a.id = b.id",
        )
    a, b = on.left, on.right
    la, lb = _labels_in(a, scope), _labels_in(b, scope)
    for side, used in ((a, la), (b, lb)):
        if not used:
            raise err(
                on,
                f"Invalid comparison expression '{sql(side)}' in join '{sql(on)}'. Each side "
                "of the join comparision must contain references from exactly one source.",
            )
    if la <= left_labels and lb == {right_label}:
        return a, b
    if lb <= left_labels and la == {right_label}:
        return b, a
    raise err(
        on,
        f"Invalid comparison expression '{sql(on)}' in join '{sql(on)}'. Each side of the "
        "join comparision must contain references from exactly one source.",
    )


def _column_field(e: ast.Expr, scope: Scope) -> str | None:
    """The field a join expression reads when it is a plain column, else None."""
    if isinstance(e, ast.ColumnRef):
        return scope.resolve(e).field
    return None


def expand_items(select: ast.Select, plan: JoinPlan, err: Any) -> list[ast.SelectItem]:
    """The select list with `*` spelled out and every column named as ksqlDB names it."""
    items: list[ast.SelectItem] = []
    for item in select.items:
        if isinstance(item, ast.AllColumns):
            sides = plan.sides
            if item.source is not None:
                sides = [s for s in plan.sides if s.label == item.source]
                if not sides:
                    raise err(item, f"unknown source {item.source} in {item.source}.*")
            elif plan.synthetic_key:
                items.append(ast.SelectItem(ast.ColumnRef(ROWKEY, pos=item.pos), pos=item.pos))
            for side in sides:
                items += [
                    ast.SelectItem(
                        ast.ColumnRef(c.name, side.label, pos=item.pos),
                        f"{side.label}_{c.name}",
                        pos=item.pos,
                    )
                    for c in side.source.columns
                ]
            continue
        e = item.expr
        if item.alias is None and isinstance(e, ast.ColumnRef) and e.source is not None:
            item = dataclasses.replace(item, alias=f"{e.source}_{e.name}")
        items.append(item)
    return items


def key_item(
    items: list[ast.SelectItem], plan: JoinPlan, scope: Scope
) -> tuple[int | None, list[int]]:
    """(the select item that is the result's key, other items that are the same column)."""
    found: list[int] = []
    for i, item in enumerate(items):
        e = item.expr
        if isinstance(e, ast.ColumnRef):
            try:
                f = scope.resolve(e).field
            except SqlError:
                continue
            if f in plan.key_fields:
                found.append(i)
    if not found:
        return None, []
    return found[0], found[1:]


def missing_key_message(sink: str | None, plan: JoinPlan) -> str:
    built = f"`{sink}`" if sink else "the result"
    if plan.synthetic_key:
        return (
            f"Key missing from projection (ie, SELECT). The query used to build {built} must "
            f"include the join expression {ROWKEY} in its projection (eg, SELECT {ROWKEY}...)."
            f"\n{ROWKEY} was added as a synthetic key column because the join criteria did "
            "not match any source column. This expression must be included in the projection "
            "and may be aliased."
        )
    names = plan.key_fields
    if len(names) == 1:
        listed, what = names[0], "join expression"
    elif len(names) == 2:
        listed, what = f"{names[0]} or {names[1]}", "join expressions"
    else:
        listed, what = ", ".join(names[:-1]) + " or " + names[-1], "join expressions"
    return (
        f"Key missing from projection (ie, SELECT). The query used to build {built} must "
        f"include the {what} {listed} in its projection (eg, SELECT {names[0]}...)."
    )

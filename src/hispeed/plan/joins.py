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
from typing import Any

from hispeed.catalog import Catalog, Source
from hispeed.errors import SqlError
from hispeed.expr.compiler import compile_expr
from hispeed.expr.scope import Compiled, Scope, ScopeColumn
from hispeed.formats.base import Column
from hispeed.plan import join_conditions as conditions
from hispeed.plan import nonkey_joins as nonkey
from hispeed.plan import temporal
from hispeed.plan.columns import key_more_than_once, synthetic_join_key
from hispeed.plan.model import (
    LABEL,
    PSEUDO_COLUMNS,
    ROWKEY,
    WINDOW_COLUMNS,
    JoinPlan,
    JoinSide,
    JoinStep,
)
from hispeed.plan.scope import source_scope, walk
from hispeed.plan.windowed_joins import (
    check_windowed_stream_key,
    mixed_reason,
    outer_reason,
    stream_to_windowed_tables,
    windowed_stream_to_tables,
    windowed_table_to_tables,
)
from hispeed.sql import ast
from hispeed.sql import types as T
from hispeed.sql.flink import JoinedSubquery
from hispeed.sql.format import sql


class JoinScope(Scope):
    """Every side's columns; unqualified ROWTIME (and the like) and ROWKEY are the result's."""

    def resolve(self, ref: ast.ColumnRef) -> ScopeColumn:
        if ref.source is None and ref.name not in self.lambdas:
            own = [c for c in self.columns if c.source == LABEL and c.name == ref.name]
            if own:
                return own[0]
        return super().resolve(ref)


def plan_relation(
    join: ast.Join, catalog: Catalog, compile_: Any, err: Any, where: ast.Expr | None = None
) -> tuple[JoinPlan, JoinScope, Source]:
    """The join plan, the scope of the joined columns and a Source describing the result.

    `where`: the query's WHERE, whose conjuncts give a comma join its condition and an inner
    stream-stream join its time bounds (plan/join_conditions.py)."""
    refs: list[tuple[ast.SourceRef, ast.Join | None]] = []
    node: ast.Relation = join
    while isinstance(node, ast.Join):
        refs.append((node.right, node))
        node = node.left
    if not isinstance(node, ast.SourceRef):
        # a subquery or a window table function as a join's input: refused where it stands
        # (it was an AssertionError's traceback)
        raise err(
            node,
            "a join's first input is a stream or table by name: a subquery or a window "
            "table function as a join's input is not supported (make it a stream or table of "
            "its own with CREATE ... AS SELECT, then join that)",
        )
    refs.append((node, None))
    refs.reverse()
    for ref, _ in refs:
        if isinstance(ref, JoinedSubquery):
            raise err(
                ref,
                "a subquery as a join's input is supported in Flink statements (INSERT INTO "
                "a Flink table, CREATE VIEW), which make it a view of its own; here, make it a "
                "stream or table with CREATE ... AS SELECT, then join that",
            )
    sides: list[JoinSide] = []
    for ref, _ in refs:
        line, col = ref.pos
        source = catalog.get(ref.name, line=line or 1, column=col or 1)
        if any(s.label == ref.label for s in sides):
            # the same source twice needs an alias for each (hispeed joins it with itself)
            raise err(
                ref,
                "N-way joins do not support multiple occurrences of the same source. "
                f"Source: '{ref.name}'. Give each occurrence its own alias to join a source "
                "with itself, like FROM s AS a JOIN s AS b",
            )
        sides.append(JoinSide(source, ref.label))
    _check_sources(join, sides, err)
    columns: list[ScopeColumn] = []
    for side in sides:
        columns += source_scope(side.source, side.label).columns
    scope = JoinScope(columns, clause="JOIN ON", flat_names=True)
    steps: list[JoinStep] = []
    kind = sides[0].source.kind
    candidates: list[str] = []  # fields equal to the current key, in ksqlDB's order
    equal: list[str] = []  # fields equal to the current key
    equivalent: list[tuple[str, str | None]] = []  # (expression, its field if a column)
    synthetic = False
    key_type: T.SqlType | None = None
    pair: list[str] | None = None  # the key fields after a join on non-key columns
    # every ON clause's sources are checked before any join's keys, as ksqlDB does
    splits = []
    ons: list[ast.Join] = []  # each join with its condition (a comma join's from WHERE)
    for i, (_, jn) in enumerate(refs[1:], start=1):
        assert jn is not None
        left_labels = {s.label for s in sides[:i]}
        jn = _with_condition(jn, where, left_labels, sides[i].label, scope, err)
        ons.append(jn)
        splits.append(_split(jn.on, left_labels, sides[i], scope, err))
    filters: list[ast.Expr] = []
    for i, jn in enumerate(ons, start=1):
        right = sides[i]
        split = splits[i - 1]
        left_e, right_e = split.left, split.right
        jn = _bounded(jn, split, where, sides, i, scope, err)
        if split.residual is not None:  # the key equality is what follows checks
            jn = dataclasses.replace(jn, on=split.equality)
        left_key = compile_(left_e, scope, "JOIN ON")
        right_key = compile_(right_e, scope, "JOIN ON")
        lt, rt = left_key.type, right_key.type
        written = (left_key, right_key) if _operands(jn.on)[0] is left_e else (right_key, left_key)
        shown = " = ".join(_shown(x, scope) for x in _operands(jn.on))
        if lt is None or rt is None or lt != rt:
            a, b = _operands(jn.on)
            fix = (
                f" Cast one side to the other's type, like CAST({_shown(a, scope)} AS "
                f"{written[1].type})"
                if lt is not None and rt is not None
                else ""
            )
            raise err(
                jn.on,
                f"Invalid join condition: types don't match. Got {_shown(a, scope)}"
                f"{{{written[0].type}}} = {_shown(b, scope)}{{{written[1].type}}}.{fix}",
            )
        left_label = _label_of(left_e, scope)
        step = _step(jn, i, left_key, right_key, kind, right, left_label, err)
        step = temporal.versioned(step, jn, right, scope, err)  # FOR SYSTEM_TIME AS OF
        right_field = _column_field(right_e, scope)
        left_field = _column_field(left_e, scope)
        right_pk = [f"{right.label}.{c.name}" for c in right.source.key_columns]
        if right.source.window is not None and kind == "STREAM" and sides[0].source.window:
            keyed = [f"{s.label}.{c.name}" for s in sides for c in s.source.key_columns]
            if left_field not in keyed or right_field not in keyed:
                raise err(
                    jn.on,
                    "Implicit repartitioning of windowed sources is not supported. See "
                    "https://github.com/confluentinc/ksql/issues/4385.",
                )
        check_windowed_stream_key(jn, sides, left_field, err)  # #4736
        if step.left_kind == "TABLE" and not _is_key(right_e, right, scope):
            # many to many, keyed by both tables' keys (#9352: plan/nonkey_joins.py)
            nonkey.check_step(jn, steps, sides[: i + 1], shown, err)
            step.pair_key = (nonkey.left_key(sides, pair), nonkey.right_key(right))
            step.condition = shown
        elif step.left_kind == "TABLE":
            if windowed_table_to_tables(sides):  # a window looks rows up: foreign keys (#4736)
                step.foreign_key = True
            elif i == 1:
                step.foreign_key = not _is_key(left_e, sides[0], scope)
            else:
                step.foreign_key = left_field is None or left_field not in equal
            if step.foreign_key:
                _check_foreign_key(
                    jn,
                    i,
                    shown,
                    left_label,
                    right.label,
                    err,
                    right.source.window is not None,
                    outer_reason(jn, sides),
                )
        elif step.right_kind == "TABLE" and not _is_key(right_e, right, scope):
            raise err(
                jn.on,
                "Invalid join condition: stream-table joins require to join on the table's "
                f"primary key. Got {shown}.",
            )
        owner = next(
            (x for x in sides[:i] if left_field and left_field.startswith(x.label + ".")), None
        )
        if split.residual is not None:
            # checked as ON's, whichever way it runs
            conditions.check_boolean(
                compile_(split.residual, scope, "JOIN ON"), split.residual, err
            )
            later = [j.kind for j in ons[i:]]
            if step.kind == "INNER" and all(k in ("INNER", "LEFT") for k in later):
                filters.append(split.residual)  # a filter over the joined rows: WHERE's
            else:
                step.residual = _residual(split.residual, step, right, scope, compile_, err)
        if (
            not step.foreign_key
            and step.left_kind == "STREAM"
            and owner is not None
            and left_field in [f"{owner.label}.{c.name}" for c in owner.source.key_columns]
            and right_field in right_pk
        ):
            step.copartitioned = (owner.source.name, right.source.name)
        steps.append(step)
        if step.pair_key is not None:
            pair = [*step.pair_key[0], *step.pair_key[1]]
            equal = []  # the table joins after it look their rows up for each pair
            continue
        if pair is not None:
            continue  # a foreign-key lookup for each pair: the pair stays the key
        if step.foreign_key and i > 1:
            # a later foreign-key step looks its right row up: the result stays keyed as
            # the rows it looks up for (issue 8576: several foreign keys in one query)
            continue
        if steps[0].foreign_key:
            # the key stays the left table's; later steps join on it, and a single-column
            # key may be selected as any column joined to it
            if i == 1:
                candidates = [f"{sides[0].label}.{c.name}" for c in sides[0].source.key_columns]
            elif right_field and len(candidates) == 1:
                candidates = [*candidates, right_field]
            key_type = sides[0].source.key_columns[0].type
            equal = [*candidates, *([right_field] if right_field else [])]
            continue
        # the expressions equal to the key (ksqlDB's equivalence set): the left input's set
        # goes on when this join's left expression is in it
        left_repr, right_repr = _shown(left_e, scope), _shown(right_e, scope)
        if step.kind == "FULL":
            equivalent = []
        elif left_repr in [r for r, _ in equivalent]:
            equivalent = [*equivalent, (right_repr, right_field)]
        else:
            equivalent = [(left_repr, left_field), (right_repr, right_field)]
        viable = list(dict.fromkeys(f for _, f in equivalent if f is not None))
        if viable:
            candidates, synthetic = viable, False
        else:  # no column is the key: a synthetic ROWKEY holds it
            candidates, synthetic = [f"{LABEL}.{ROWKEY}"], True
        key_type = lt
        kind = step.result
        equal = candidates
    if pair is not None:
        candidates, synthetic, key_type = pair, False, nonkey.key_type()
    assert key_type is not None
    # named apart from every joined source's columns, as ksqlDB's JoinNode names it
    key_name = synthetic_join_key(c.name for side in sides for c in side.source.columns)
    if _has_map(key_type):  # refused by name before any projection, as ksqlDB does
        name = key_name if synthetic else candidates[0].replace(".", "_", 1)
        raise err(
            join,
            "Map keys, including types that contain maps, are not supported as they may lead "
            f"to unexpected behavior due to inconsistent serialization. Key column name: "
            f"`{name}`. Column type: {key_type}. See "
            "https://github.com/confluentinc/ksql/issues/6621 for more.",
        )
    _check_windowed_key_formats(join, sides, err)
    plan = JoinPlan(sides, steps, key_type, candidates, synthetic, key_name)
    if plan.text_key:  # a key of several columns: the frame's key is their text
        plan.key_type = key_type = nonkey.key_type()
    plan.filter = conditions.conjunction(filters)
    scope.clause = "SELECT"
    scope.columns += [ScopeColumn(n, t, f"{LABEL}.{n}", LABEL) for n, t in PSEUDO_COLUMNS.items()]
    if synthetic:
        scope.columns.append(ScopeColumn(key_name, key_type, f"{LABEL}.{ROWKEY}", LABEL))
    first = sides[0].source  # the result's formats are the left side's, as in ksqlDB
    result = Source(
        name=first.name,
        kind=plan.kind,
        key_columns=[Column(key_name if synthetic else ROWKEY, key_type)],
        value_columns=[],
        topic=first.topic,
        key_format=first.key_format,
        value_format=first.value_format,
        key_properties=dict(first.key_properties),
        value_properties=dict(first.value_properties),
        window=first.window,  # windowed sides join on key and window: the result keeps it
    )
    return plan, scope, result


def with_filter(select: ast.Select, plan: JoinPlan) -> ast.Select:
    """`select` with its inner joins' conditions past their keys added to its WHERE."""
    if plan.filter is None:
        return select
    terms = [*conditions.conjuncts(select.where), plan.filter]
    return dataclasses.replace(select, where=conditions.conjunction(terms))


def _has_map(t: T.SqlType) -> bool:
    if t.name == "MAP":
        return True
    parts = [t.element, t.key, *(ft for _, ft in t.fields)]
    return any(p is not None and _has_map(p) for p in parts)


_KIND_WORDS = {
    "INNER": "[INNER] JOIN",
    "LEFT": "LEFT [OUTER] JOIN",
    "RIGHT": "RIGHT [OUTER] JOIN",
    "FULL": "[FULL] OUTER JOIN",
}


#: the group of window kinds each kind joins (ksqlDB's JoinNode: SESSION with SESSION,
#: HOPPING and TUMBLING with each other); CUMULATE's windows, keyed by end and start, with
#: CUMULATE's only
_JOINS_WITH = {
    "SESSION": "SESSION",
    "HOPPING": "HOPPING",
    "TUMBLING": "HOPPING",
    "CUMULATING": "CUMULATING",
}


def _joins_with(kind: str) -> str:
    return _JOINS_WITH.get(kind, kind)


def _check_sources(join: ast.Join, sides: list[JoinSide], err: Any) -> None:
    kafka = [s.source.name for s in sides if s.source.value_format == "KAFKA"]
    if kafka:
        raise err(
            join,
            f"Source(s) {', '.join(kafka)} are using the 'KAFKA' value format. This format "
            "does not yet support JOIN.",
        )
    if any(f(sides) for f in (stream_to_windowed_tables, windowed_table_to_tables)):  # #4736
        return
    if windowed_stream_to_tables(sides):
        return
    windowed = [s for s in sides if s.source.window is not None]
    plain = [s for s in sides if s.source.window is None]
    # ksqlDB's JoinNode: each kind joins the kinds of its group only (the first windowed
    # source against each other one names the pair that does not match)
    kinds = [s.source.window.kind for s in windowed if s.source.window is not None]
    other = next((k for k in kinds if _joins_with(k) != _joins_with(kinds[0])), None)
    if other is not None:
        kinds = [kinds[0], other]
        cumulating = (
            "\nCumulating windowed sources can only be joined to other cumulating windowed sources"
            if "CUMULATING" in kinds
            else ""
        )
        raise err(
            join,
            f"Incompatible windowed sources.\nLeft source: {kinds[0]}\nRight source: {kinds[1]}\n"
            "Session windowed sources can only be joined to other session windowed sources, "
            "and may still not result in expected behaviour as session bounds must be an "
            "exact match for the join to work\nHopping and tumbling windowed sources can "
            "only be joined to other hopping and tumbling windowed sources" + cumulating,
        )
    if windowed and plain:
        w, p = windowed[0], plain[0]
        assert w.source.window is not None
        raise err(
            join,
            "Can not join windowed source to non-windowed source.\n"
            f"`{w.source.name}` is {w.source.window.kind} windowed\n"
            f"`{p.source.name}` is not windowed\n{mixed_reason(sides)}",
        )


#: the key formats whose ksqlDB Format has the SCHEMA_INFERENCE feature (AvroFormat,
#: JsonSchemaFormat, ProtobufFormat)
_SCHEMA_INFERENCE_FORMATS = frozenset({"AVRO", "JSON_SR", "PROTOBUF"})


def check_window_bounds(select: ast.Select, err: Any) -> None:
    """Refuse an unqualified WINDOWSTART or WINDOWEND in a windowed aggregation of a join.

    After a windowed GROUP BY every joined source's schema has the bounds, so ksqlDB's
    ColumnReferenceValidator finds them in more than one and cannot resolve them (its issue
    5931), checking the clauses in its order: WHERE, GROUP BY, HAVING, then SELECT."""
    if select.window is None:
        return
    clauses: list[tuple[str, ast.Expr]] = []
    if select.where is not None:
        clauses.append(("WHERE", select.where))
    clauses += [("GROUP BY", g) for g in select.group_by]
    if select.having is not None:
        clauses.append(("HAVING", select.having))
    clauses += [("SELECT", i.expr) for i in select.items if isinstance(i, ast.SelectItem)]
    for clause, e in clauses:
        for x in walk(e):
            if isinstance(x, ast.ColumnRef) and x.source is None and x.name in WINDOW_COLUMNS:
                raise err(x, f"{clause} column '{x.name}' cannot be resolved.", located=True)


def _check_windowed_key_formats(join: ast.Join, sides: list[JoinSide], err: Any) -> None:
    """Refuse joining windowed sources whose key formats differ (window type or size, format).

    ksqlDB joins in the left side's key format (JoinNode.resolveKeyFormats); a side in another
    format is re-keyed into it (PreJoinRepartitionNode), which its SchemaKStream.selectKey
    refuses for a windowed source."""
    first = sides[0].source
    if first.key_format in _SCHEMA_INFERENCE_FORMATS or stream_to_windowed_tables(sides):
        # a key format with schema inference always repartitions (PreJoinRepartitionNode's
        # forceRepartition): ksqlDB re-keys even a windowed side then
        return

    def key_format(source: Source) -> tuple[Any, ...]:
        return (source.key_format, sorted(source.key_properties.items()), source.window)

    for side in sides[1:]:
        if side.source.window is not None and key_format(side.source) != key_format(first):
            raise err(
                join,
                "Implicit repartitioning of windowed sources is not supported. See "
                "https://github.com/confluentinc/ksql/issues/4385.",
            )


def _check_foreign_key(
    jn: ast.Join,
    i: int,
    shown: str,
    left: str,
    right: str,
    err: Any,
    windowed: bool = False,
    why: str = "",
) -> None:
    """Refuse the foreign-key joins not run, in ksqlDB's words (and `why`, hispeed's)."""
    if windowed:
        raise err(jn, "Foreign-key table-table joins are not supported on windowed tables.")
    if jn.kind == "RIGHT":
        raise err(jn, "RIGHT OUTER JOIN on a foreign key is not supported" + (why and f". {why}"))
    if jn.kind == "FULL":
        raise err(
            jn,
            "Invalid join type: full-outer join not supported for foreign-key table-table "
            f"join. Got {left} [FULL] OUTER JOIN {right}." + (why and f" {why}"),
        )


def _operands(on: ast.Expr) -> tuple[ast.Expr, ast.Expr]:
    assert isinstance(on, ast.BinaryOp)
    return on.left, on.right


def _label_of(e: ast.Expr, scope: Scope) -> str:
    return sorted(_labels_in(e, scope))[0]


def _shown(e: ast.Expr, scope: Scope) -> str:
    """`e` in ksqlDB's messages: every column qualified by its source."""

    def fix(x: Any) -> Any:
        if isinstance(x, ast.ColumnRef):
            return dataclasses.replace(x, source=scope.resolve(x).source)
        if isinstance(x, ast.Expr):
            changes = {k: fix(v) for k, v in vars(x).items() if k != "pos"}
            return dataclasses.replace(x, **changes)
        if isinstance(x, tuple):
            return tuple(fix(v) for v in x)
        return x

    return sql(fix(e))


def _step(
    node: ast.Join,
    i: int,
    left_key: Compiled,
    right_key: Compiled,
    left_kind: str,
    right: JoinSide,
    left_label: str,
    err: Any,
) -> JoinStep:
    right_kind = right.source.kind
    within = node.within
    if left_kind == "TABLE" and right_kind == "STREAM":
        raise err(
            node,
            "Invalid join order: table-stream joins are not supported; only stream-table "
            f"joins. Got {left_label} {_KIND_WORDS[node.kind]} {right.label}.",
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
            pad_null_keys=within.interval,
        )
    if within is not None:
        what = "Stream-Table" if left_kind == "STREAM" else "Table-Table"
        raise err(
            node,
            f"A window definition was provided for a {what} join. These joins are not "
            "windowed. Please drop the window definition (ie. the WITHIN clause) and try to "
            "execute your join again.",
        )
    if left_kind == "STREAM" and node.kind in ("RIGHT", "FULL"):
        shown = "full-outer" if node.kind == "FULL" else "right"
        raise err(
            node,
            f"Invalid join type: {shown} join not supported for stream-table join. "
            f"Got {left_label} {_KIND_WORDS[node.kind]} {right.label}.",
        )
    return JoinStep(node.kind, i, left_key, right_key, left_kind, right_kind)


def _with_condition(
    jn: ast.Join, where: ast.Expr | None, before: set[str], right: str, scope: Scope, err: Any
) -> ast.Join:
    """`jn`, a comma join given its condition from WHERE."""
    if not jn.comma:
        return jn
    on = conditions.comma_condition(where, before, right, scope)
    if on is None:
        raise err(
            jn,
            f"Invalid join: nothing in WHERE joins `{right}` to the sources before it. A "
            "comma join needs a condition like WHERE a.id = b.id (Flink's and standard SQL's "
            "inner join), or write it as JOIN ... ON.",
        )
    return dataclasses.replace(jn, on=on)


def _split(
    on: ast.Expr, left_labels: set[str], right: JoinSide, scope: Scope, err: Any
) -> conditions.Split:
    """The ON clause's key equality (left expression, right expression) and the rest."""
    terms = conditions.conjuncts(on)
    if len(terms) == 1:  # ksqlDB's one equality, with its messages
        a, b = _split_on(on, left_labels, right.label, scope, err)
        assert isinstance(on, ast.BinaryOp)
        return conditions.Split(a, b, on, None)
    refs = [x for x in walk(on) if isinstance(x, ast.ColumnRef)]
    for ref in sorted(refs, key=lambda r: r.source is None):  # unknown qualifiers first
        scope.resolve(ref)
    for term in terms:
        used = _labels_in(term, scope)
        if not used <= left_labels | {right.label}:
            other = sorted(used - left_labels - {right.label})[0]
            raise err(
                term,
                f"Invalid join condition: {sql(term)} names `{other}`, which is joined after "
                f"`{right.label}`; a join's ON may name only its source and those before it.",
            )
    return conditions.split_conjunction(
        terms, on, left_labels, right.source, right.label, scope, err
    )


def _bounded(
    jn: ast.Join,
    split: conditions.Split,
    where: ast.Expr | None,
    sides: list[JoinSide],
    i: int,
    scope: Scope,
    err: Any,
) -> ast.Join:
    """A stream-stream join without WITHIN given the window its time bounds say (taken out
    of the residual condition, which the window then enforces)."""
    if jn.within is not None or sides[i].source.kind != "STREAM":
        return jn
    if any(s.source.kind != "STREAM" for s in sides[:i]):
        return jn
    terms = conditions.conjuncts(split.residual)
    extra = []
    if jn.kind == "INNER" and not jn.comma:  # an inner join's WHERE is its condition too
        extra = [t for t in conditions.conjuncts(where) if t not in terms]
    left = [(s.label, s.source) for s in sides[:i]]
    right = (sides[i].label, sides[i].source)
    # the key equality too: equal record times (two window aggregations joined on their
    # windows' ends) are a window of 0, and stay the key
    try:
        bounds = conditions.time_bounds(
            [*terms, *_over(extra, sides, i, scope), split.equality], left, right, scope, err, terms
        )
    except SqlError:
        if jn.unbounded_ms is None or jn.kind != "INNER":
            raise
        bounds = None  # a regular join of Flink's: the comparisons stay a filter
    if bounds is None:
        if jn.unbounded_ms is not None and jn.kind == "INNER":
            # Flink's regular join of two streams: each side kept for the state's TTL
            ms = jn.unbounded_ms
            return dataclasses.replace(jn, within=ast.WithinSpec(ms, ms, ms))
        return jn
    rest = [t for t in terms if not any(t is u for u in bounds.terms)]
    split.residual = conditions.conjunction(rest)
    # an outer join's unmatched rows wait for their window to close, as in Flink's interval
    # join (no grace: ksqlDB's legacy semantics would send them at once, and again joined);
    # an inner join sends nothing unmatched, and keeps ksqlDB's default (24 hours' grace),
    # so that a side that lags behind the other still finds its matches
    grace = None if jn.kind == "INNER" else 0
    within = ast.WithinSpec(bounds.before_ms, bounds.after_ms, grace, interval=True)
    return dataclasses.replace(jn, within=within)


def _over(terms: list[ast.Expr], sides: list[JoinSide], i: int, scope: Scope) -> list[ast.Expr]:
    """The terms that read side i and sides before it only (WHERE's own errors aside)."""
    labels = {s.label for s in sides[: i + 1]}
    out = []
    for t in terms:
        try:
            used = _labels_in(t, scope)
        except SqlError:
            continue
        if sides[i].label in used and used <= labels:
            out.append(t)
    return out


def _residual(
    residual: ast.Expr, step: JoinStep, right: JoinSide, scope: Scope, compile_: Any, err: Any
) -> Any:
    """The row predicate of an outer join's conditions past its key."""
    if step.left_kind == "TABLE" and step.kind == "FULL" and step.pair_key is None:
        # a pair that fails would be two rows of one key: a table cannot hold both (a
        # non-key join's unmatched rows have keys of their own)
        raise err(
            residual,
            "Invalid join condition: a FULL OUTER join of tables joins on its key alone; "
            f"move {sql(residual)} to WHERE, or join LEFT or RIGHT.",
        )
    return conditions.row_predicate(compile_(residual, scope, "JOIN ON"), scope)


def _labels_in(e: ast.Expr, scope: Scope) -> set[str]:
    found: set[str] = set()
    for x in walk(e):
        if isinstance(x, ast.ColumnRef):
            found.add(str(scope.resolve(x).source))
    return found


def _split_on(
    on: ast.Expr, left_labels: set[str], right_label: str, scope: Scope, err: Any
) -> tuple[ast.Expr, ast.Expr]:
    """The ON clause's (left expression, right expression)."""
    refs = [x for x in walk(on) if isinstance(x, ast.ColumnRef)]
    for ref in sorted(refs, key=lambda r: r.source is None):  # unknown qualifiers first
        scope.resolve(ref)
    if isinstance(on, ast.BinaryOp) and on.op == "AND":
        raise err(
            on,
            "Invalid join condition: joins on multiple conditions are not yet supported. "
            f"Got {_shown(on, scope)}.",
        )
    if not isinstance(on, ast.BinaryOp) or on.op != "=":
        raise err(on, "Only equality join criteria is supported.")
    a, b = on.left, on.right
    la, lb = _labels_in(a, scope), _labels_in(b, scope)
    for side, used in ((a, la), (b, lb)):
        if len(used) != 1:
            raise err(
                on,
                f"Invalid comparison expression '{sql(side)}' in join '{sql(on)}'. Each side "
                "of the join comparision must contain references from exactly one source.",
            )
    if la == lb:
        raise err(
            on,
            "Each side of the join must reference exactly one source and not the same "
            f"source. Left side references `{min(la)}` and right references `{min(lb)}`",
        )
    if la <= left_labels and lb == {right_label}:
        return a, b
    if lb <= left_labels and la == {right_label}:
        return b, a
    raise err(
        on,
        f"A join criteria is expected to reference the source (`{right_label}`) in the FROM "
        f"clause, instead the right source references `{min(lb)}` and the left source "
        f"references `{min(la)}`",
    )


def qualified(e: Any, plan: JoinPlan, scope: Scope, bound: frozenset[str] = frozenset()) -> Any:
    """`e` with each unqualified column that one joined source has qualified by that source,
    as ksqlDB's AstSanitizer rewrites the statement before analysing it (so `A` and `L.A` are
    one expression); lambda parameters (`bound`) and unknown or shared names stay as written."""
    if isinstance(e, ast.ColumnRef):
        if e.source is not None or e.name in bound:
            return e
        labels = {side.label for side in plan.sides}
        owners = {c.source for c in scope.columns if c.name == e.name and c.source in labels}
        return dataclasses.replace(e, source=owners.pop()) if len(owners) == 1 else e
    if isinstance(e, ast.Lambda):
        body = qualified(e.body, plan, scope, bound | set(e.params))
        return e if body is e.body else dataclasses.replace(e, body=body)
    if isinstance(e, ast.Expr):
        changes = {k: qualified(v, plan, scope, bound) for k, v in vars(e).items() if k != "pos"}
        changes = {k: v for k, v in changes.items() if v is not getattr(e, k)}
        return dataclasses.replace(e, **changes) if changes else e
    if isinstance(e, tuple):
        items = tuple(qualified(v, plan, scope, bound) for v in e)
        return items if any(a is not b for a, b in zip(items, e, strict=True)) else e
    return e


def _column_field(e: ast.Expr, scope: Scope) -> str | None:
    """The field a join expression reads when it is a plain column, else None."""
    if isinstance(e, ast.ColumnRef):
        return scope.resolve(e).field
    return None


def _is_key(e: ast.Expr, side: JoinSide, scope: Scope) -> bool:
    """Whether `e` is the side's primary key: its column, or the STRUCT of its columns in
    their order that a join on a key of several columns compares (plan/join_conditions.py)."""
    pk = [f"{side.label}.{c.name}" for c in side.source.key_columns]
    if isinstance(e, ast.StructConstructor) and len(pk) > 1:
        return [_column_field(x, scope) for _, x in e.fields] == pk
    return [_column_field(e, scope)] == pk


def expand_items(select: ast.Select, plan: JoinPlan, err: Any) -> list[ast.SelectItem]:
    """The select list with `*` spelled out and every column named as ksqlDB names it.

    With PARTITION BY, ksqlDB spells `*` out differently: per side, the value columns, then
    ROWTIME, ROWPARTITION and ROWOFFSET, then the key columns."""
    items: list[ast.SelectItem] = []
    for item in select.items:
        if isinstance(item, ast.AllColumns):
            sides = plan.sides
            if item.source is not None:
                sides = [s for s in plan.sides if s.label == item.source]
                if not sides:
                    # ksqlDB's AstBuilder refuses the qualifier as it builds the statement
                    raise err(
                        item,
                        f"Failed to prepare statement: '{item.source}' is not a valid "
                        "stream/table name or alias.",
                    )
            elif plan.synthetic_key:
                key = ast.ColumnRef(plan.key_name, pos=item.pos)
                items.append(ast.SelectItem(key, pos=item.pos))
            for side in sides:
                names = [c.name for c in side.source.columns]
                if side.source.window is not None:  # a windowed side's bounds follow its key
                    keys = [c.name for c in side.source.key_columns]
                    names = [*keys, "WINDOWSTART", "WINDOWEND", *names[len(keys) :]]
                if select.partition_by:
                    src = side.source
                    names = [
                        *(c.name for c in src.value_columns),
                        *(c.name for c, _ in src.header_columns),
                        *PSEUDO_COLUMNS,
                        *(c.name for c in src.key_columns),
                    ]
                items += [
                    ast.SelectItem(
                        ast.ColumnRef(name, side.label, pos=item.pos),
                        f"{side.label}_{name}",
                        pos=item.pos,
                    )
                    for name in names
                ]
            continue
        e = item.expr
        if item.alias is None and isinstance(e, ast.ColumnRef) and e.source is not None:
            # a column only one side has keeps its name; others are prefixed by their side
            owners = [s for s in plan.sides if s.source.column(e.name) is not None]
            if len(owners) > 1 or e.name in PSEUDO_COLUMNS:
                item = dataclasses.replace(item, alias=f"{e.source}_{e.name}")
        items.append(item)
    return items


def key_items(items: list[ast.SelectItem], plan: JoinPlan, scope: Scope) -> list[int]:
    """The select items that are the result's key: the first key column (in ksqlDB's order
    of the join's equal columns) that is selected; for a foreign-key join, the left table's
    key columns."""
    fields = [_item_field(item, scope) for item in items]
    first = plan.sides[0].source
    if plan.paired or (plan.steps[0].foreign_key and len(first.key_columns) > 1):
        return [fields.index(f) for f in plan.key_fields if f in fields]
    for f in plan.key_fields:
        if f in fields:
            return [fields.index(f)]
    return []


def _item_field(item: ast.SelectItem, scope: Scope) -> str | None:
    if not isinstance(item.expr, ast.ColumnRef):
        return None
    try:
        return scope.resolve(item.expr).field
    except SqlError:
        return None


def check_key(
    items: list[ast.SelectItem],
    names: list[str],
    at: list[int],
    plan: JoinPlan,
    scope: Scope,
    sink: str | None,
) -> str | None:
    """What is wrong with the key columns of a persistent query's select list, if anything."""
    built = f"`{sink}`" if sink else "the result"
    fields = [_item_field(item, scope) for item in items]
    if plan.paired:
        problem = nonkey.missing_key(plan, fields)
        if problem is not None:
            return problem
    elif plan.steps[-1].foreign_key:
        # the last join's key decides (ksqlDB's JoinNode.validateKeyPresent at the final
        # join): a foreign-key join needs the leftmost table's primary key columns
        first = plan.sides[0]
        keys = [f"{first.label}.{c.name}" for c in first.source.key_columns]
        missing = [f.split(".", 1)[1] for f in keys if f not in fields]
        if len(first.source.key_columns) == 1 and at:
            missing = []  # the key is selected as a column joined to it
        if missing:
            s = "s" if len(missing) > 1 else ""
            return (
                f"Primary key column{s} missing in projection. For foreign-key table-table "
                "joins, the projection must include all primary key columns from the left "
                f"input table (`{first.label}`). Missing column{s}: "
                + ", ".join(f"`{m}`" for m in missing)
                + "."
            )
    elif not at:
        if plan.synthetic_key:
            return (
                "Key missing from projection (ie, SELECT). See https://cnfl.io/2LV7ouS.\n"
                f"The query used to build {built} must include the join expression "
                f"{plan.key_name} in its projection (eg, SELECT {plan.key_name}...).\n"
                f"{plan.key_name} was added as a "
                "synthetic key column because the join criteria did not match any source "
                "column. This expression must be included in the projection and may be "
                "aliased."
            )
        keys = plan.key_fields
        listed = keys[0] if len(keys) == 1 else ", ".join(keys[:-1]) + " or " + keys[-1]
        what = "join expression" if len(keys) == 1 else "join expressions"
        return (
            "Key missing from projection (ie, SELECT). \nThe query used to build "
            f"{built} must include the {what} {listed} in its projection (eg, SELECT "
            f"{keys[0]}...)."
        )
    for i in at:
        same = sorted(names[j] for j, f in enumerate(fields) if f == fields[i])
        if len(same) > 1:
            shown = (
                fields[i].replace(".", "_", 1)  # type: ignore[union-attr]
                if plan.steps[0].foreign_key
                else names[i]
            )
            return key_more_than_once(shown, same)
    return None


def result_key(scope: Scope, plan: JoinPlan) -> Compiled:
    """An evaluator of the result's key (the frame's `$J.ROWKEY`)."""
    scope.columns.append(ScopeColumn("$KEY", plan.key_type, f"{LABEL}.{ROWKEY}", "$KEY"))
    try:
        return compile_expr(ast.ColumnRef("$KEY", "$KEY"), scope)
    finally:
        scope.columns.pop()

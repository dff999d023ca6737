"""Plan a table-table join on columns that are not the right table's key (ksqlDB's issue 9352).

ksqlDB joins a table only on the right table's primary key (a key join, or a foreign-key
join from any left column). hispeed also joins on any other column of the right table,
`t1 JOIN t2 ON t1.a = t2.b`: a many-to-many join (ops/join_nonkey.py). Its result is keyed by
both inputs' keys, the left input's key columns then the right table's, so a persistent
query must select all of them (as ksqlDB's foreign-key join must select the left table's),
in a key format of several columns.

INNER, LEFT, RIGHT and FULL OUTER: a row of an outer side that matches nothing is keyed by
its own key and NULLs for the other side's. The joins before it must be INNER or LEFT, or
joins on non-key columns, so that the left input is keyed by its first table's key (or by
the pair of an earlier join on non-key columns); the table joins after it look their rows up
for each pair, as foreign-key joins do.
"""

from __future__ import annotations

from typing import Any

from hispeed.plan.model import JoinPlan, JoinSide, JoinStep
from hispeed.sql import ast
from hispeed.sql import types as T


def refusal(shown: str) -> str:
    """ksqlDB's words for a table joined on a column other than its key (TableTableJoin)."""
    return (
        "Invalid join condition: table-table joins require to join on the primary key of the "
        f"right input table. Got {shown}."
    )


def check_step(
    jn: ast.Join, before: list[JoinStep], sides: list[JoinSide], shown: str, err: Any
) -> None:
    """Refuse the non-key joins hispeed does not run, with ksqlDB's words first (`before`:
    the join steps before it; `sides`: its sources and those before it)."""
    why = None
    if any(s.kind not in ("INNER", "LEFT") and s.pair_key is None for s in before):
        why = "a join on a non-key column may follow only INNER and LEFT joins (and RIGHT "
        why += "and FULL OUTER joins on non-key columns)."
    elif any(side.source.window is not None for side in sides):
        why = "a join on a non-key column is not supported on windowed tables (a window's "
        why += "row would pair with every row of its value, windows and keys mixed in one "
        why += "key): join a windowed table on the other table's primary key, which gives "
        why += "each window its key's row."
    if why is not None:
        raise err(jn, f"{refusal(shown)} hispeed joins on other columns too, but {why}")


def left_key(plan_sides: list[JoinSide], pair: list[str] | None) -> list[str]:
    """The fields keying the left input of a non-key join: an earlier non-key join's pair,
    else the first table's primary key (every join before it is INNER or LEFT)."""
    if pair is not None:
        return pair
    first = plan_sides[0]
    return [f"{first.label}.{c.name}" for c in first.source.key_columns]


def right_key(right: JoinSide) -> list[str]:
    """The right table's primary key fields."""
    return [f"{right.label}.{c.name}" for c in right.source.key_columns]


def key_type() -> T.SqlType:
    """The type of the frame's `$J.ROWKEY` for a key of several columns (a non-key join's
    pair): their text (ops/join.py), one value a row, which the operators after the join (a
    WHERE over the table, an aggregation) tell rows apart by. The sink's key is the key
    columns selected."""
    return T.STRING


def missing_key(plan: JoinPlan, fields: list[str | None]) -> str | None:
    """What a persistent query's projection lacks of a non-key join's key, if anything."""
    missing = [f for f in plan.key_fields if f not in fields]
    if not missing:
        return None
    step = next(s for s in reversed(plan.steps) if s.pair_key is not None)
    s = "s" if len(missing) > 1 else ""
    listed = ", ".join(f"`{m.split('.', 1)[1]}` of `{m.split('.', 1)[0]}`" for m in missing)
    return (
        f"{refusal(step.condition)} hispeed joins on other columns too, keyed by both tables' "
        "primary keys (a left row may join many right rows): the projection must include "
        f"the primary key columns of both tables. Missing column{s}: {listed}."
    )


def kafka_key_problem(plan: JoinPlan, key_format: str) -> str | None:
    """Why a non-key join's result cannot go to a sink in `key_format`, if it cannot."""
    if not plan.paired or key_format.upper() != "KAFKA":
        return None
    step = next(s for s in reversed(plan.steps) if s.pair_key is not None)
    return (
        f"{refusal(step.condition)} hispeed joins on other columns too, keyed by both tables' "
        "primary keys, which the KAFKA key format cannot hold (one column only): give the "
        "result a key format of several columns, like WITH (KEY_FORMAT='JSON')."
    )

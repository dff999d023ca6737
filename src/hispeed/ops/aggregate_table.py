"""GROUP BY over a table, a batch at a time: the changes the reference path keeps, made once.

Over a table each record replaces its key's row: the old row's values are taken back from
their group's states (`undo`) and the new row's added (`add`), record by record
(`Aggregator._table_update`, the reference). When not every record's change is output (the
record cache on, ksqlDB's default) the batch's changes are coalesced to the last change of
each group, in the order of those last changes. This path walks the records as the reference
does, calling each aggregate's `undo` and `add` on the same states with the same values in
the same order (so even a DOUBLE sum rounds as it does there), but makes a group's change only
once, after its last record, instead of a change per record (its results, a `Change`) that the
coalescing then throws away. Nexmark q4's average per category over the table of each
auction's highest bid was a third of its aggregation's time in those changes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from hispeed.ops.changes import Change
from hispeed.plan.model import AggregateCall, QueryPlan


def eligible(plan: QueryPlan) -> bool:
    """Whether the aggregation may take this path (a GROUP BY over a table, not windowed;
    the aggregator also asks that only the groups' last changes be output)."""
    agg = plan.aggregation
    return plan.source.kind == "TABLE" and agg is not None and agg.window is None


def table_changes(
    calls: Sequence[AggregateCall],
    results_of: Callable[[list[Any]], list[Any]],
    table_rows: dict[Any, Any],
    states: dict[Any, Any],
    dirty: set[tuple[str, Any]],
    source_keys: Sequence[Any],
    groups: Sequence[tuple[Any, ...]],
    args: list[list[list[Any]]],
    present: Sequence[bool],
    headers: Sequence[Any] | None,
) -> list[Change]:
    """Apply a batch of table records and return the coalesced changes.

    Record `i` replaces the row of `source_keys[i]` by one in group `groups[i]` with the
    calls' arguments `args[call][arg][i]`, or deletes it (`present[i]` false: a tombstone, a
    row WHERE drops, a NULL group). `table_rows` (source key -> (group, arguments)),
    `states` ((group, None) -> the calls' states) and `dirty` are the reference path's and
    change as it changes them; `results_of` makes the calls' results of a group's states."""
    adds = [call.logic.add for call in calls]
    undos = [call.logic.undo for call in calls]
    inits = [call.logic.init for call in calls]
    # each group's last change: (its record, 0 for taking a row back, 1 for adding one); a
    # record that moves a row changes the old group before the new one
    last: dict[tuple[Any, ...], tuple[int, int]] = {}
    for i, source_key in enumerate(source_keys):
        row_args = [[a[i] for a in call_args] for call_args in args]
        old = table_rows.pop(source_key, None)
        dirty.add(("T", source_key))
        if old is not None:
            old_group, old_args = old
            key = (old_group, None)
            before = states.get(key) or [init() for init in inits]
            # the row time takes this record's time, not the old row's
            undo_args = [*old_args[:-1], row_args[-1]]
            states[key] = [undo(s, a) for undo, s, a in zip(undos, before, undo_args, strict=True)]
            last[old_group] = (i, 0)
        if not present[i]:
            continue
        group = groups[i]
        key = (group, None)
        before = states.get(key) or [init() for init in inits]
        states[key] = [add(s, a) for add, s, a in zip(adds, before, row_args, strict=True)]
        table_rows[source_key] = (group, row_args)
        last[group] = (i, 1)
    changes: list[Change] = []
    for group, (i, _) in sorted(last.items(), key=lambda item: item[1]):
        key = (group, None)
        dirty.add(("S", key))
        results = results_of(states[key])
        changes.append(
            Change(group, None, results, results[-1], headers[i] if headers is not None else None)
        )
    return changes


__all__ = ["eligible", "table_changes"]

"""The contract every physical operator keeps: frames in, changes out, through a context.

An operator is handed a decoded frame (and which of its rows are tombstones) and an
`OperatorContext`; it puts the records it outputs, the processing-log entries of the rows it
could not compute and the state changes to commit in the context's `Outputs`, and advances the
stream time the context carries. It never reaches back into the task that drives it: the
query task (runtime/task.py) makes a context for each batch, hands it down, and commits what
the operators collected in one transaction.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import pyarrow as pa

from hispeed.errors import HispeedError
from hispeed.functions.registry import EvalContext
from hispeed.log.base import HEADERS_TYPE, PolledBatch
from hispeed.plan.model import field_name

if TYPE_CHECKING:
    from hispeed.ops.watermark import Idleness


def positive_setting(name: str, value: Any, default: int, unit: str = "") -> int:
    """A setting that is a whole number above 0 (`default` when None): anything else, a
    fraction included, is refused naming it (`unit`, e.g. "rows", said in the message)."""
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if number < 1 or (isinstance(value, float) and not value.is_integer()):
        what = f"a whole number of {unit} above 0" if unit else "a whole number above 0"
        raise HispeedError(f"{name} must be {what}, not {value!r}")
    return number


def rows_setting(properties: Mapping[str, Any], name: str, default: int) -> int:
    """A bound on rows an operator keeps, from an engine's or query's properties."""
    return positive_setting(name, properties.get(name), default, "rows")


@dataclass
class Outputs:
    """What a batch's operators give: records for the sink, processing-log entries, and the
    state's changes for the changelog, all committed together."""

    keys: list[Any] = field(default_factory=list)  # pa arrays of key bytes
    values: list[Any] = field(default_factory=list)
    timestamps: list[Any] = field(default_factory=list)
    #: the headers of each part's records (HEADERS_TYPE), None for a part without any
    headers: list[Any] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    changelog: dict[bytes, bytes | None] = field(default_factory=dict)

    def add(
        self,
        keys: pa.Array,
        values: pa.Array,
        timestamps: pa.Array,
        headers: pa.Array | None = None,
    ) -> None:
        """Add encoded records (key bytes, value bytes, timestamps, headers) for the sink."""
        if len(keys):
            self.keys.append(keys)
            self.values.append(values)
            self.timestamps.append(timestamps)
            self.headers.append(headers)

    def record_batch(self) -> pa.RecordBatch:
        """The outputs as one batch to append: key, value, timestamp and, if any output has
        them, headers."""
        columns = {
            "key": pa.concat_arrays(self.keys),
            "value": pa.concat_arrays(self.values),
            "timestamp": pa.concat_arrays(self.timestamps),
        }
        if any(h is not None for h in self.headers):
            columns["headers"] = pa.concat_arrays(
                [
                    h if h is not None else pa.nulls(len(k), HEADERS_TYPE)
                    for h, k in zip(self.headers, self.keys, strict=True)
                ]
            )
        return pa.record_batch(columns)


@dataclass
class OperatorContext:
    """What an operator is handed with a batch: where its outputs and errors go, and the
    stream time it reads and advances (per input partition)."""

    query_id: str
    #: the polled batch being processed (its topic and partition name the errors)
    item: PolledBatch
    out: Outputs
    #: the query's stream time per input partition, which the operator advances
    stream_time: dict[int, int]
    #: which input partitions hold a window table function's watermark back
    #: (ops/watermark.py); None: every partition read so far
    idle: Idleness | None = None

    @property
    def partition(self) -> int:
        """The input partition of the batch."""
        return self.item.partition.partition

    def report(self, ctx: EvalContext, frame: pa.RecordBatch, label: str) -> None:
        """Send the errors `ctx` collected computing `frame`'s rows to the processing log,
        each with the offset of its row's record."""
        if not ctx.errors:
            return
        offsets = frame.column(field_name(label, "ROWOFFSET"))
        item = self.item
        for row, message in ctx.errors:
            self.out.errors.append(
                {
                    "type": "RECORD_PROCESSING_ERROR",
                    "query": self.query_id,
                    "message": message,
                    "topic": item.partition.topic,
                    "partition": item.partition.partition,
                    "offset": offsets[row].as_py() if row < len(offsets) else None,
                }
            )


class Operator(Protocol):
    """A physical operator: a decoded frame in, its changes out through `context`."""

    def process(
        self, frame: pa.RecordBatch, tombstones: np.ndarray, context: OperatorContext
    ) -> None:
        """Process `frame` (`tombstones`: which rows are deletions): put what it outputs, the
        errors and the state changes in `context.out`, and advance its `stream_time`."""

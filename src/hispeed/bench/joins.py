"""Join figures for `hispeed bench engine`: events per second through the join operators.

`stream_table_join`: Nexmark-like bids joined with a table of 10,000 auctions (loaded
first, untimed). `stream_stream_join`: bids joined with a stream of auction announcements
`WITHIN 10 SECONDS`, both sides interleaved batch by batch in event time. As in
`bench/engine.py`, each query is a real persistent query planned by a real `Engine`; its task
gets ready-made frames (the decoded form of polled batches) through its own join runtime,
WHERE, projection and output encoding, and the outputs are discarded instead of committed.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from hispeed.bench.engine import (
    EVENTS_PER_S,
    START_MS,
    make_bids,
    scratch_engine,
    start_queries,
)
from hispeed.log.base import PolledBatch, TopicPartition
from hispeed.log.records import RECORD_SCHEMA
from hispeed.ops.base import Outputs
from hispeed.plan.model import field_name
from hispeed.runtime.task import QueryTask

Progress = Callable[[str, int], Any] | None

BIDS = (
    "CREATE STREAM jbids (auction BIGINT KEY, bidder BIGINT, price BIGINT, channel STRING, "
    "url STRING, dateTime BIGINT) WITH (kafka_topic='jbids', value_format='JSON', partitions=1);"
)
AUCTIONS = (
    "CREATE TABLE auctions (id BIGINT PRIMARY KEY, seller BIGINT, category BIGINT) "
    "WITH (kafka_topic='auctions', value_format='JSON', partitions=1);"
)
NEW_AUCTIONS = (
    "CREATE STREAM new_auctions (id BIGINT KEY, seller BIGINT, category BIGINT) "
    "WITH (kafka_topic='new_auctions', value_format='JSON', partitions=1);"
)
QUERIES = {
    "stream_table_join": (
        "CREATE STREAM st_join AS SELECT b.auction, price, seller, category "
        "FROM jbids b JOIN auctions a ON b.auction = a.id;"
    ),
    "stream_stream_join": (
        "CREATE STREAM ss_join AS SELECT b.auction, price, seller FROM jbids b "
        "JOIN new_auctions a WITHIN 10 SECONDS ON b.auction = a.id;"
    ),
}


def _frame(label: str, columns: dict[str, np.ndarray[Any, Any]], stamps: Any, first: int) -> Any:
    n = len(stamps)
    arrays: dict[str, pa.Array] = {}
    for name, values in columns.items():
        arrow = pa.string() if values.dtype == object else pa.int64()
        arrays[field_name(label, name)] = pa.array(values, arrow)
    arrays[field_name(label, "ROWTIME")] = pa.array(stamps, pa.int64())
    arrays[field_name(label, "ROWPARTITION")] = pa.array(np.zeros(n, np.int32))
    arrays[field_name(label, "ROWOFFSET")] = pa.array(np.arange(first, first + n, dtype=np.int64))
    return pa.RecordBatch.from_pydict(arrays)


def _auctions(label: str, ids: np.ndarray[Any, Any], stamps: Any, first: int) -> Any:
    rng = np.random.default_rng(first)
    return _frame(
        label,
        {
            "ID": ids,
            "SELLER": rng.integers(0, 1_000, len(ids), dtype=np.int64),
            "CATEGORY": rng.integers(0, 20, len(ids), dtype=np.int64),
        },
        stamps,
        first,
    )


def _feed(task: QueryTask, side: int, frame: pa.RecordBatch) -> None:
    """Run one ready-made frame of `side` through the task's own code path."""
    join = task.join
    assert join is not None
    topic = join.join.sides[side].source.topic
    decoder = join.decoders[side]
    saved = decoder.decode
    decoder.decode = lambda item, errors: (frame, np.zeros(frame.num_rows, bool))  # type: ignore[method-assign]
    # the polled records as the log gives them (offsets first, as the join reads them), with
    # no payload: the decoder above hands back the ready-made frame instead of decoding them
    label = join.join.sides[side].label
    n = frame.num_rows
    raw = pa.RecordBatch.from_arrays(
        [
            frame.column(field_name(label, "ROWOFFSET")),
            frame.column(field_name(label, "ROWTIME")),
            pa.nulls(n, pa.binary()),
            pa.nulls(n, pa.binary()),
            pa.nulls(n, RECORD_SCHEMA.field("headers").type),
        ],
        schema=RECORD_SCHEMA,
    )
    try:
        task.process(PolledBatch(TopicPartition(topic, 0), raw), Outputs())
    finally:
        decoder.decode = saved  # type: ignore[method-assign]


def run(
    events: int = 1_000_000,
    batch_size: int = 100_000,
    auctions: int = 10_000,
    directory: str | None = None,
    progress: Progress = None,
) -> dict[str, int]:
    """Events per second (bids, plus auction events for the stream-stream join)."""
    with scratch_engine(directory, "joins") as engine:
        for ddl in (BIDS, AUCTIONS, NEW_AUCTIONS):
            engine.execute(ddl)
        tasks = start_queries(engine, QUERIES)
        return {
            "stream_table_join": _stream_table(
                tasks["stream_table_join"], events, batch_size, auctions, progress
            ),
            "stream_stream_join": _stream_stream(
                tasks["stream_stream_join"], events, batch_size, auctions, progress
            ),
        }


def _bid_frames(label: str, events: int, batch_size: int, auctions: int) -> list[pa.RecordBatch]:
    frames = []
    for first in range(0, events, batch_size):
        bids = make_bids(min(batch_size, events - first), auctions, first)
        stamps = bids["DATETIME"]
        frames.append(_frame(label, bids, stamps, first))
    return frames


def _stream_table(
    task: QueryTask, events: int, batch_size: int, auctions: int, progress: Progress
) -> int:
    join = task.join
    assert join is not None
    table_label = join.join.sides[1].label
    ids = np.arange(auctions, dtype=np.int64)
    _feed(task, 1, _auctions(table_label, ids, np.full(auctions, START_MS), 0))  # untimed
    frames = _bid_frames(join.join.sides[0].label, events, batch_size, auctions)
    t0 = time.perf_counter()
    for i, frame in enumerate(frames):
        _feed(task, 0, frame)
        if progress:
            progress("stream_table_join", i + 1)
    return round(events / (time.perf_counter() - t0))


def _stream_stream(
    task: QueryTask, events: int, batch_size: int, auctions: int, progress: Progress
) -> int:
    """Bids and auction announcements interleaved: each batch of bids follows the auctions
    announced during the same stretch of event time (one per 50 bids)."""
    join = task.join
    assert join is not None
    bid_frames = _bid_frames(join.join.sides[0].label, events, batch_size, auctions)
    right_label = join.join.sides[1].label
    announced = 0
    pairs = []
    for i, frame in enumerate(bid_frames):
        n = max(frame.num_rows // 50, 1)
        first = i * batch_size
        stamps = START_MS + (first + np.arange(n) * 50) * 1000 // EVENTS_PER_S
        ids = np.random.default_rng(i).integers(0, auctions, n, dtype=np.int64)
        pairs.append((_auctions(right_label, ids, stamps, announced), frame))
        announced += n
    t0 = time.perf_counter()
    for i, (right, left) in enumerate(pairs):
        _feed(task, 1, right)
        _feed(task, 0, left)
        if progress:
            progress("stream_stream_join", i + 1)
    return round((events + announced) / (time.perf_counter() - t0))

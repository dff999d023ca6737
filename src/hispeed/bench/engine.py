"""`hispeed bench engine`: events per second through the SQL engine's operators, on one core.

Nexmark-like bids are generated as columns, in batches, in this process. Each query is a real
persistent query planned by a real `Engine`; the bench hands its task ready-made frames (the
decoded form of a polled batch) and runs the task's own code path (`QueryTask.process`:
filter, projection, window assignment, aggregation, output encoding), then discards the
outputs instead of committing them to the log. `tumbling_json` starts from the log: the bids
are first appended to a topic as JSON (not timed), then the query's task polls, decodes and
aggregates them (timed), its commits discarded likewise; `tumbling_avro` the same over Avro
records in Confluent's wire format (as confluent-kafka's AvroSerializer writes them).
`api_tumbling` is `tumbling` written with the Python stream API (`hispeed.frames`: the same
plan), `api_map` a per-record `.map` that passes each bid on (`passthrough`), `api_process` a
`.process` keeping each auction's bids and top price in its state (`running_top`: a Python
call per auction of a batch, a state read and write each). `*_per_cpu_s`:
events per CPU-second of this process over the same run (`time.process_time()`), beside the
wall-clock rate, which a busy machine makes noisy.
"""

from __future__ import annotations

import io
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fastavro
import msgspec
import numpy as np
import pyarrow as pa

from hispeed.engine import Engine
from hispeed.frames import KeyState, Timers, col, window
from hispeed.log.base import PolledBatch, TopicPartition
from hispeed.ops.base import Outputs
from hispeed.plan.model import field_name
from hispeed.runtime.task import QueryTask

Progress = Callable[[str, int], Any] | None

COLUMNS = "auction BIGINT, bidder BIGINT, price BIGINT, channel STRING, url STRING, dateTime BIGINT"
QUERIES = {
    "q0": "CREATE STREAM q0 AS SELECT * FROM bids;",
    "q1": (
        "CREATE STREAM q1 AS SELECT auction, bidder, price * 0.908 AS price, dateTime FROM bids;"
    ),
    "q2": "CREATE STREAM q2 AS SELECT auction, price FROM bids WHERE auction % 123 = 0;",
    "tumbling": (
        "CREATE TABLE tumbling AS SELECT auction, COUNT(*) AS bids, MAX(price) AS top "
        "FROM bids WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 1 SECONDS) GROUP BY auction;"
    ),
    "hopping": (
        "CREATE TABLE hopping AS SELECT auction, COUNT(*) AS bids, MAX(price) AS top "
        "FROM bids WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 2 SECONDS, "
        "GRACE PERIOD 1 SECONDS) GROUP BY auction;"
    ),
    "session": (
        "CREATE TABLE session AS SELECT bidder, COUNT(*) AS bids, MAX(price) AS top "
        "FROM bids WINDOW SESSION (10 SECONDS, GRACE PERIOD 1 SECONDS) GROUP BY bidder;"
    ),
    "tumbling_json": (
        "CREATE TABLE tumbling_json AS SELECT auction, COUNT(*) AS bids, MAX(price) AS top "
        "FROM bids_json WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 1 SECONDS) "
        "GROUP BY auction;"
    ),
    "tumbling_avro": (
        "CREATE TABLE tumbling_avro AS SELECT auction, COUNT(*) AS bids, MAX(price) AS top "
        "FROM bids_avro WINDOW TUMBLING (SIZE 10 SECONDS, GRACE PERIOD 1 SECONDS) "
        "GROUP BY auction;"
    ),
}


def passthrough(row: dict[str, Any]) -> dict[str, Any]:
    """`api_map`'s function: each bid as it is (what a per-record `.map` costs, no more)."""
    return row


def running_top(
    key: Any, records: list[dict[str, Any]], state: KeyState, timers: Timers
) -> list[dict[str, Any]]:
    """`api_process`'s function: per auction, a record per bid with the auction's bids so far
    and its top price (what COUNT(*) and MAX(price) of an unwindowed table keep), the two
    kept in the key's state."""
    n, top = state.get("n", 0), state.get("top", 0)
    out = []
    for r in records:
        n += 1
        top = max(top, r["PRICE"])
        out.append({"BIDS": n, "TOP": top})
    state.put("n", n)
    state.put("top", top)
    return out


def api_queries(engine: Engine) -> dict[str, str]:
    """The stream API's queries (`hispeed.frames`), started; the query id of each by name:
    `api_tumbling` is `tumbling` written in Python (the same plan), `api_map` a trivial
    per-record `.map` over the bids, `api_process` stateful processing (`.process`) keyed by
    auction."""
    bids = engine.frame("bids")
    return {
        "api_tumbling": bids.group_by("auction", window=window.tumbling("10s", grace="1s"))
        .agg(bids=col("*").count(), top=col("price").max())
        .to_table("api_tumbling"),
        "api_map": bids.map(passthrough).to_stream("api_map"),
        "api_process": bids.process(
            running_top, schema={"bids": "BIGINT", "top": "BIGINT"}, key="auction"
        ).to_stream("api_process"),
    }


#: the streams over topics the log-reading queries poll, and their value formats
LOG_STREAMS = {"bids_json": "JSON", "bids_avro": "AVRO"}
#: event time advances 10,000 events a second, as Nexmark's default rate
EVENTS_PER_S = 10_000
START_MS = 1_700_000_000_000
CHANNELS = np.array(["Google", "Facebook", "Baidu", "Apple"], dtype=object)


def make_bids(
    n: int, auctions: int, first: int = 0, seed: int = 0
) -> dict[str, np.ndarray[Any, Any]]:
    """n Nexmark-like bids (events first .. first + n - 1), as columns, without a Python loop.

    A bidder bids during a few seconds of event time (new bidders keep arriving), so sessions
    per bidder open, grow and close.
    """
    rng = np.random.default_rng(seed + first)
    ids = np.arange(first, first + n, dtype=np.int64)
    auction = rng.integers(0, auctions, n, dtype=np.int64)
    bidder = ids // 50 + rng.integers(0, 1_000, n, dtype=np.int64)
    price = rng.integers(100, 100_000, n, dtype=np.int64)
    channel = CHANNELS[rng.integers(0, len(CHANNELS), n)]
    url = np.char.add("https://www.nexmark.com/item.htm?query=1&channel_id=", auction.astype(str))
    stamps = START_MS + ids * 1000 // EVENTS_PER_S
    return {
        "AUCTION": auction,
        "BIDDER": bidder,
        "PRICE": price,
        "CHANNEL": channel,
        "URL": url.astype(object),
        "DATETIME": stamps,
    }


def _frame(label: str, bids: dict[str, np.ndarray[Any, Any]], first: int) -> pa.RecordBatch:
    n = len(bids["AUCTION"])
    arrays: dict[str, pa.Array] = {}
    for name, values in bids.items():
        arrow = pa.string() if values.dtype == object else pa.int64()
        arrays[field_name(label, name)] = pa.array(values, arrow)
    arrays[field_name(label, "ROWTIME")] = pa.array(bids["DATETIME"])
    arrays[field_name(label, "ROWPARTITION")] = pa.array(np.zeros(n, np.int32))
    arrays[field_name(label, "ROWOFFSET")] = pa.array(np.arange(first, first + n, dtype=np.int64))
    return pa.RecordBatch.from_pydict(arrays)


def _frames_per_s(
    task: QueryTask, frames: list[pa.RecordBatch], phase: str, progress: Progress
) -> tuple[int, int]:
    """Run the task's own processing over ready-made frames; events per second of wall
    clock, and per CPU-second of this process (the steadier figure on a busy machine)."""
    queue: list[tuple[pa.RecordBatch, np.ndarray[Any, Any]]] = []

    def decode(item: PolledBatch, out: Outputs) -> tuple[pa.RecordBatch, np.ndarray[Any, Any]]:
        return queue.pop()

    task.decode = decode  # type: ignore[method-assign]
    partition = TopicPartition(task.source.topic, 0)
    events = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    for i, frame in enumerate(frames):
        queue.append((frame, np.zeros(frame.num_rows, bool)))
        item = PolledBatch(partition, frame)
        task.process(item, Outputs())  # the sink discards what the query emits
        events += frame.num_rows
        if progress:
            progress(phase, i + 1)
    cpu = max(time.process_time() - c0, 1e-9)
    return round(events / (time.perf_counter() - t0)), round(events / cpu)


def _avro_writer(engine: Engine, topic: str) -> Callable[[dict[str, Any]], bytes]:
    """Writes a bid as a producer with Confluent's AvroSerializer would: framed, with the
    schema the stream registered for its topic (fastavro, not hispeed's format)."""
    held = engine.schema_registry.latest(f"{topic}-value")
    assert held is not None, "CREATE STREAM registers the stream's schema"
    schema = fastavro.parse_schema(json.loads(held.schema.schema))
    head = b"\x00" + held.id.to_bytes(4, "big")
    out = io.BytesIO()

    def write(record: dict[str, Any]) -> bytes:
        out.seek(0)
        out.truncate()
        fastavro.schemaless_writer(out, schema, record)
        return head + out.getvalue()

    return write


def _log_per_s(
    engine: Engine,
    task: QueryTask,
    events: int,
    batch_size: int,
    auctions: int,
    phase: str,
    progress: Progress,
) -> int:
    """Append the bids to the topic as JSON or Avro (untimed), then time the task polling
    and decoding them."""
    encoder = msgspec.json.Encoder()
    avro = LOG_STREAMS[task.source.name.lower()] == "AVRO"
    write = _avro_writer(engine, task.source.topic) if avro else encoder.encode
    for first in range(0, events, batch_size):
        bids = make_bids(min(batch_size, events - first), auctions, first)
        names = [n for n in bids if n != "DATETIME"]
        columns = [bids[n].tolist() for n in names]
        values = [write(dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]
        batch = pa.record_batch(
            {
                "key": pa.nulls(len(values), pa.binary()),
                "value": pa.array(values, pa.binary()),
                "timestamp": pa.array(bids["DATETIME"]),
            }
        )
        engine.log.append(task.source.topic, batch, partition=0)

    def commit(out: Outputs, positions: dict[TopicPartition, int]) -> None:
        """Discard the outputs (the consumer's position has moved on already)."""

    task.commit = commit  # type: ignore[method-assign]
    done = 0
    rounds = 0
    t0 = time.perf_counter()
    while done < events:
        got = task.poll(0, max_records=batch_size)
        if not got:
            break
        done += got
        rounds += 1
        if progress:
            progress(phase, rounds)
    return round(done / (time.perf_counter() - t0))


@contextmanager
def scratch_engine(directory: str | None, name: str) -> Iterator[Engine]:
    """An engine on a temporary data directory, removed afterwards (every bench's set-up)."""
    root = tempfile.mkdtemp(prefix=f"hispeed-bench-{name}-", dir=directory)
    try:
        with Engine(Path(root) / "data", fsync="never") as engine:
            yield engine
    finally:
        shutil.rmtree(root, ignore_errors=True)


def start_queries(engine: Engine, queries: dict[str, str]) -> dict[str, QueryTask]:
    """Run each persistent query's statement; the task of each, by name."""
    tasks: dict[str, QueryTask] = {}
    for name, sql in queries.items():
        (result,) = engine.execute(sql)
        task = engine.tasks[str(result.query_id)]
        assert isinstance(task, QueryTask), "the engine bench runs on the embedded log"
        tasks[name] = task
    return tasks


#: the queries whose events per CPU-second are reported beside their wall-clock rate
CPU_FIGURES = ("q0", "tumbling", "api_tumbling", "api_map", "api_process")


def run(
    events: int = 1_000_000,
    batch_size: int = 100_000,
    auctions: int = 10_000,
    directory: str | None = None,
    progress: Progress = None,
) -> dict[str, int]:
    """Events per second for each query in QUERIES (see the module docstring)."""
    with scratch_engine(directory, "engine") as engine:
        for stream, fmt in {"bids": "JSON", **LOG_STREAMS}.items():
            engine.execute(
                f"CREATE STREAM {stream} ({COLUMNS}) WITH (kafka_topic='{stream}', "
                f"value_format='{fmt}', partitions=1);"
            )
        tasks = start_queries(engine, QUERIES)
        for name, query_id in api_queries(engine).items():
            task = engine.tasks[query_id]
            assert isinstance(task, QueryTask), "the engine bench runs on the embedded log"
            tasks[name] = task
        label = next(iter(tasks.values())).plan.label
        frames = [
            _frame(label, make_bids(min(batch_size, events - f), auctions, f), f)
            for f in range(0, events, batch_size)
        ]
        results: dict[str, int] = {}
        for name, task in tasks.items():
            if task.source.name.lower() in LOG_STREAMS:
                results[name] = _log_per_s(
                    engine, task, events, batch_size, auctions, name, progress
                )
            else:
                results[name], per_cpu = _frames_per_s(task, frames, name, progress)
                if name in CPU_FIGURES:
                    results[f"{name}_per_cpu_s"] = per_cpu
        return results

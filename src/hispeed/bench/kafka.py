"""`hispeed bench kafka`: Kafka mode's throughput on a real broker.

- produce: `KafkaLog.append` of Arrow batches (10,000 records of 100-byte values with 8-byte
  keys, routed by murmur2 over 4 partitions), each append acknowledged (acks=all, idempotent);
- consume: a group consumer polling those records into Arrow batches, 10,000 at most per poll
  as a query task polls, until it has read them all; records per second of wall time and per
  second of this process's CPU time (`resource.getrusage`, every thread: librdkafka's too);
- tumbling: the engine bench's TUMBLING query (`bench/engine.py`: Nexmark-like bids, 10,000
  auctions, `COUNT(*)` and `MAX(price)` per auction and 10 s window) end to end from a Kafka
  topic. The bids are produced first (not timed) as JSON values keyed by the auction (KAFKA
  BIGINT keys), so the aggregation is partition-local and runs split by input partition
  (`runtime/distributed.py`). The workers are separate processes (`python -m
  hispeed.bench.kafka WORKER-SPEC`), each an Engine on a KafkaLog of the one application, its
  query loop the one `hispeed server` runs (`Engine.start`). Once every worker is up (the
  statements replayed from the command topic, the query's consumer subscribed) the clock
  starts; it stops when the query group's committed offsets reach the end of every input
  partition: every bid read, aggregated, its outputs and changelog written and its offsets
  committed, in Kafka transactions. Each worker reports its CPU time over that span; the
  figures are events per second of wall time, and per second of the workers' summed CPU time.

Without a bootstrap the bench starts a broker of its own (`hispeed.testing.kafka`, on a free
loopback port, stopped at the end); on a given broker it works under a topic prefix of its own
and deletes its topics afterwards.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import msgspec
import numpy as np
import pyarrow as pa

from hispeed.bench.engine import QUERIES, make_bids
from hispeed.bench.log import make_batch
from hispeed.log.base import TopicPartition
from hispeed.log.kafka import KafkaLog
from hispeed.runtime.task import query_group

Progress = Callable[[str, int], Any] | None

PARTITIONS = 4
AUCTIONS = 10_000
#: records per poll, as a query task on Kafka polls (`DistributedTask.poll`)
POLL_RECORDS = 10_000
#: every topic of the bench: the records carry times of November 2023, kept whatever the
#: broker's retention
KEEP = {"retention.ms": -1}
STREAM = (
    "CREATE STREAM bids (auction BIGINT KEY, bidder BIGINT, price BIGINT, channel STRING, "
    "url STRING, dateTime BIGINT) WITH (kafka_topic='bids', value_format='JSON', "
    f"partitions={PARTITIONS});"
)
QUERY = QUERIES["tumbling"]


def cpu_seconds() -> float:
    """CPU time of this process so far, user and system, every thread."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def process_cpu_seconds(pid: int) -> float | None:
    """CPU time of another process (Linux /proc), or None when it cannot be read."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _per_s(count: int, seconds: float) -> int:
    return round(count / seconds) if seconds > 0 else 0


# -- produce and consume ------------------------------------------------------------------------


def _produce(log: KafkaLog, records: int, batch_size: int, progress: Progress) -> dict[str, int]:
    batch = make_batch(batch_size, 100)
    batches = max(records // batch_size, 1)
    log.create_topic("records", PARTITIONS)
    log.create_topic("warmup", 1)
    for _ in range(10):  # the producer's connection and idempotence id; the broker's JIT
        log.append("warmup", batch)
    c0, t0 = cpu_seconds(), time.perf_counter()
    for i in range(batches):
        log.append("records", batch)
        if progress:
            progress("produce", i + 1)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    n = batches * batch_size
    return {
        "produce_records_per_s": _per_s(n, wall),
        "produce_records_per_s_per_core": _per_s(n, cpu),
    }


def _consume(log: KafkaLog, records: int, progress: Progress) -> dict[str, int]:
    pa.array([b""], pa.binary())  # pyarrow's first conversion of a list imports pandas
    consumer = log.consumer("records", group="bench-consume", auto_offset_reset="earliest")
    try:
        # the group's first assignment is not timed; what arrived with it is read again
        for tp in consumer.assignment():
            consumer.seek(tp, log.offsets(tp.topic, tp.partition)[0])
        got = 0
        polls = 0
        c0, t0 = cpu_seconds(), time.perf_counter()
        deadline = time.monotonic() + 60 + records / 10_000
        while got < records:
            got += sum(p.batch.num_rows for p in consumer.poll(1.0, max_records=POLL_RECORDS))
            polls += 1
            if progress and polls % 10 == 0:
                progress("consume", polls)
            if time.monotonic() > deadline:
                raise RuntimeError(f"the consumer read {got} of {records} records, then stalled")
        wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    finally:
        consumer.close()
    return {
        "consume_records_per_s": _per_s(got, wall),
        "consume_records_per_s_per_core": _per_s(got, cpu),
    }


# -- the tumbling query -------------------------------------------------------------------------


def _bids_batch(first: int, n: int) -> pa.RecordBatch:
    """Bids `first`.. as records: the auction as a KAFKA BIGINT key (8 bytes big-endian), the
    other columns as a flat JSON object, the event time as the record's timestamp."""
    bids = make_bids(n, AUCTIONS, first)
    names = [name for name in bids if name != "AUCTION"]
    encode = msgspec.json.Encoder().encode
    columns = [bids[name].tolist() for name in names]
    values = [encode(dict(zip(names, row, strict=True))) for row in zip(*columns, strict=True)]
    keys = pa.Array.from_buffers(
        pa.binary(),
        n,
        [
            None,
            pa.py_buffer(np.arange(0, 8 * (n + 1), 8, dtype=np.int32)),
            pa.py_buffer(bids["AUCTION"].astype(">i8").tobytes()),
        ],
    )
    return pa.record_batch(
        {
            "key": keys,
            "value": pa.array(values, pa.binary()),
            "timestamp": pa.array(bids["DATETIME"]),
        }
    )


def _produce_bids(log: KafkaLog, events: int, progress: Progress) -> dict[TopicPartition, int]:
    """The bids to topic bids (not timed); the end offset of each of its partitions."""
    log.create_topic("bids", PARTITIONS)
    step = 100_000
    for i, first in enumerate(range(0, events, step)):
        log.append("bids", _bids_batch(first, min(step, events - first)))
        if progress:
            progress("produce bids", i + 1)
    return {TopicPartition("bids", p): log.offsets("bids", p)[1] for p in range(PARTITIONS)}


class _Worker:
    """A worker process (`python -m hispeed.bench.kafka SPEC`), spoken to a line at a time."""

    def __init__(self, spec: dict[str, Any], logs: Path) -> None:
        self.name = spec["worker"]
        self.stderr_path = logs / f"{self.name}.log"
        self._stderr = self.stderr_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "hispeed.bench.kafka", json.dumps(spec)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )

    def _stdin(self) -> IO[str]:
        assert self.proc.stdin is not None
        return self.proc.stdin

    def say(self, word: str) -> None:
        self._stdin().write(word + "\n")
        self._stdin().flush()

    def hear(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(10)
            raise RuntimeError(
                f"bench worker {self.name} exited ({self.proc.returncode}): {self.tail()}"
            )
        reply: dict[str, Any] = json.loads(line)
        return reply

    def tail(self) -> str:
        self._stderr.flush()
        return self.stderr_path.read_text(errors="replace")[-2000:]

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self._stdin().close()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._stderr.close()


def _tumbling(
    bootstrap: str,
    prefix: str,
    workers: int,
    ends: dict[TopicPartition, int],
    broker_pid: int | None,
    progress: Progress,
) -> dict[str, Any]:
    """The query on `workers` worker processes of a new application, timed as the module says."""
    from hispeed.engine import Engine

    app = f"bench{uuid.uuid4().hex[:8]}"
    events = sum(ends.values())
    # the statements go to the application's command topic; this engine leaves before the
    # workers start (its query's consumer never polls, so never holds partitions)
    setup_log = KafkaLog(bootstrap, prefix=prefix, app_id=app, topic_config=KEEP)
    with Engine(log_=setup_log, worker_id="setup") as setup:
        setup.execute(STREAM)
        (result,) = setup.execute(QUERY)
        group = query_group(str(result.query_id))
    label = f"tumbling, {workers} worker{'s' if workers > 1 else ''}"
    monitor = KafkaLog(bootstrap, prefix=prefix, app_id=app)
    with tempfile.TemporaryDirectory(prefix="hispeed-bench-kafka-") as logs:
        started: list[_Worker] = []
        try:
            for i in range(workers):
                spec = {"bootstrap": bootstrap, "prefix": prefix, "app": app, "worker": f"w{i + 1}"}
                started.append(_Worker(spec, Path(logs)))
            for worker in started:
                worker.hear()  # up: the statements replayed, the query's consumer subscribed
            broker0 = process_cpu_seconds(broker_pid) if broker_pid else None
            t0 = time.perf_counter()
            for worker in started:
                worker.say("go")
            first_commit: float | None = None
            deadline = time.monotonic() + 120 + events / 5_000
            while True:
                committed = monitor.committed_offsets(group, "bids")
                done = sum(min(committed.get(tp, 0), end) for tp, end in ends.items())
                if done and first_commit is None:
                    first_commit = time.perf_counter() - t0
                if progress:
                    progress(label, done // 10_000)
                if all(committed.get(tp, 0) >= end for tp, end in ends.items()):
                    break
                for worker in started:
                    if worker.proc.poll() is not None:
                        raise RuntimeError(f"bench worker {worker.name} exited: {worker.tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the query committed {done} of {events} events, then stalled"
                    )
                time.sleep(0.05)  # asking costs the broker too: not much more often
            wall = time.perf_counter() - t0
            broker1 = process_cpu_seconds(broker_pid) if broker_pid else None
            for worker in started:
                worker.say("stop")
            reports = [worker.hear() for worker in started]
        finally:
            for worker in started:
                worker.close()
            monitor.close()
    cpu = sum(r["cpu_s"] for r in reports)
    suffix = "1_worker" if workers == 1 else f"{workers}_workers"
    results: dict[str, Any] = {
        f"tumbling_events_per_s_{suffix}": _per_s(events, wall),
        f"tumbling_events_per_s_per_core_{suffix}": _per_s(events, cpu),
        f"tumbling_{suffix}_first_commit_ms": round(1000 * (first_commit or wall)),
    }
    for r in reports:
        results[f"tumbling_{suffix}_{r['worker']}_cpu_ms"] = round(1000 * r["cpu_s"])
        results[f"tumbling_{suffix}_{r['worker']}_events"] = r["records"]
    results[f"tumbling_{suffix}_output_records"] = sum(r["outputs"] for r in reports)
    if broker0 is not None and broker1 is not None:
        results[f"tumbling_{suffix}_broker_cpu_ms"] = round(1000 * (broker1 - broker0))
    return results


def worker_main(spec: dict[str, Any]) -> None:
    """One worker of the bench's application: up, then "go" on stdin starts the query loop,
    "stop" ends it; replies are JSON lines on stdout."""
    from hispeed.engine import Engine

    app, name = spec["app"], spec["worker"]
    log_ = KafkaLog(
        spec["bootstrap"],
        prefix=spec["prefix"],
        app_id=app,
        transactional_id=f"hispeed-{app}-{name}",
        topic_config=KEEP,
    )
    engine = Engine(log_=log_, worker_id=name)  # replays the stream and the query
    pa.array([b""], pa.binary())  # pyarrow's first conversion of a list imports pandas

    def say(reply: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps(reply) + "\n")
        sys.stdout.flush()

    try:
        say({"worker": name, "up": True})
        if sys.stdin.readline().strip() != "go":
            return
        c0 = cpu_seconds()
        engine.start()
        sys.stdin.readline()  # "stop", or the bench has gone
        cpu = cpu_seconds() - c0
        records = sum(task.records_in for task in engine.tasks.values())
        outputs = sum(task.records_out for task in engine.tasks.values())
        say({"worker": name, "cpu_s": cpu, "records": records, "outputs": outputs})
    finally:
        engine.close()


# -- all of it -----------------------------------------------------------------------------------


@contextlib.contextmanager
def _broker(bootstrap: str | None) -> Iterator[tuple[str, int | None]]:
    """The given broker, or one of the bench's own (its full-speed JVM, records kept forever)."""
    if bootstrap is not None:
        yield bootstrap, None
        return
    from hispeed.testing.kafka import KEEPING_SETTINGS, kafka_broker

    with kafka_broker(settings=KEEPING_SETTINGS, jvm_options=()) as broker:
        yield broker.bootstrap, broker.pid


def run(
    records: int = 1_000_000,
    bootstrap: str | None = None,
    batch_size: int = 10_000,
    progress: Progress = None,
) -> dict[str, Any]:
    """Every figure of the module's notes, on `bootstrap` or on a broker of the bench's own."""
    records = max(records // batch_size, 1) * batch_size
    prefix = f"bench{uuid.uuid4().hex[:8]}-"
    with _broker(bootstrap) as (servers, broker_pid):
        log = KafkaLog(servers, prefix=prefix, topic_config=KEEP, timeout=60)
        try:
            results: dict[str, Any] = {"records": records, "partitions": PARTITIONS}
            results |= _produce(log, records, batch_size, progress)
            results |= _consume(log, records, progress)
            ends = _produce_bids(log, records, progress)
            for workers in (1, 2):
                results |= _tumbling(servers, prefix, workers, ends, broker_pid, progress)
            return results
        finally:
            if bootstrap is not None:
                with contextlib.suppress(Exception):
                    log.delete_namespace()
            log.close()


if __name__ == "__main__":
    worker_main(json.loads(sys.argv[1]))

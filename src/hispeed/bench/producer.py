"""The Python producer paths and what the log stores per record, measured in this process.

- `insert_rows`: `Engine.insert(name, row)` in a loop, one row a call, into a JSON stream,
  until every row is in the log (`flush()`); rows/s of wall clock and per CPU second of this
  process (every thread of it: the engine's included). `insert_rows_*` with rows gathered
  for 5 ms (`Engine(insert_linger_ms=5)`), `insert_each_rows_*` with the default settings
  (each row appended alone before `insert` returns: `Log.append_one`).
- `producer_rows`: `Engine.producer().produce(topic, value, key=...)` of pre-encoded JSON
  values, until `flush()` returns; the same two rates.
- `bytes_on_disk`: what the log's files (segments and their indexes) hold beyond each
  record's key and value, per record: for single-record appends, for the group committer's
  groups of 50 one-record appends (50 concurrent callers), and for the producer's batches.

`run()` gives them all as one flat dict (what `hispeed bench ingest --json` prints with its
own figures). The machine may be shared: the per-CPU-second figures are the ones to compare.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hispeed.engine import Engine
from hispeed.log.embedded import EmbeddedLog

Progress = Callable[[str, int], None]

#: a reading as the course's devices send it
VALUE = '{"DEVICE": "device%03d", "TEMPERATURE": %d.5, "HUMIDITY": 40}'
STREAM = (
    "CREATE STREAM readings (device STRING KEY, temperature DOUBLE, humidity INT) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions={partitions});"
)


@contextmanager
def _clock() -> Iterator[dict[str, float]]:
    """Wall and CPU seconds (this process, all threads) of the block."""
    out: dict[str, float] = {}
    wall, cpu = time.perf_counter(), time.process_time()
    yield out
    out["wall_s"] = time.perf_counter() - wall
    out["cpu_s"] = time.process_time() - cpu


def _rates(prefix: str, n: int, took: dict[str, float]) -> dict[str, Any]:
    return {
        f"{prefix}_per_s": round(n / took["wall_s"]),
        f"{prefix}_per_cpu_s": round(n / took["cpu_s"]) if took["cpu_s"] > 0 else None,
        f"{prefix}_wall_s": round(took["wall_s"], 3),
        f"{prefix}_cpu_s": round(took["cpu_s"], 3),
    }


def insert_rows(
    rows: int = 200_000, partitions: int = 1, linger_ms: float = 5.0, prefix: str = "insert_rows"
) -> dict[str, Any]:
    """`Engine.insert` of single rows in a loop (see the module's docstring)."""
    with tempfile.TemporaryDirectory(prefix="hispeed-bench-insert-") as tmp:
        engine = Engine(Path(tmp) / "data", insert_linger_ms=linger_ms)
        try:
            engine.execute(STREAM.format(partitions=partitions))
            devices = [f"device{i:03d}" for i in range(100)]
            with _clock() as took:
                for i in range(rows):
                    engine.insert(
                        "readings",
                        {"DEVICE": devices[i % 100], "TEMPERATURE": i * 0.5, "HUMIDITY": i % 90},
                    )
                engine.flush()
            stored = engine.log.describe_topic("readings").records
        finally:
            engine.close()
    if stored != rows:
        raise RuntimeError(f"insert bench: {stored} of {rows} rows reached the log")
    return {prefix: rows, **_rates(prefix, rows, took)}


def producer_rows(records: int = 2_000_000, partitions: int = 4) -> dict[str, Any]:
    """`Engine.producer()` of pre-encoded records (see the module's docstring)."""
    values = [(VALUE % (i, i % 40)).encode() for i in range(1000)]
    keys = [f"device{i:03d}".encode() for i in range(1000)]
    with tempfile.TemporaryDirectory(prefix="hispeed-bench-producer-") as tmp:
        engine = Engine(Path(tmp) / "data")
        try:
            engine.log.create_topic("produced", partitions)
            producer = engine.producer()
            produce = producer.produce
            with _clock() as took:
                for i in range(records):
                    j = i % 1000
                    produce("produced", values[j], keys[j])
                left = producer.flush()
            batches = producer.batches
            producer.close()
            stored = engine.log.describe_topic("produced").records
        finally:
            engine.close()
    if left or stored != records:
        raise RuntimeError(f"producer bench: {stored} of {records} records reached the log")
    return {
        "producer_records": records,
        "producer_batches": batches,
        **_rates("producer_rows", records, took),
    }


def _overhead(directory: Path, records: int, key_value_bytes: int) -> float:
    files = [*directory.rglob("*.seg"), *directory.rglob("*.idx")]
    return round((sum(p.stat().st_size for p in files) - key_value_bytes) / records, 1)


def bytes_on_disk(records: int = 20_000, group: int = 50) -> dict[str, Any]:
    """Bytes per record beyond key and value (see the module's docstring)."""
    keys = [f"device{i % 100:03d}".encode() for i in range(records)]
    values = [(VALUE % (i % 1000, i % 40)).encode() for i in range(records)]
    key_value = sum(map(len, keys)) + sum(map(len, values))
    out: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="hispeed-bench-bytes-") as tmp:
        log = EmbeddedLog(Path(tmp) / "d", fsync="never", cleaner_interval_s=None)
        try:
            for name in ("single", "grouped", "produced"):
                log.create_topic(name, 1)
            for k, v in zip(keys, values, strict=True):
                log.append("single", [(k, v)])
            committer = log.group_committer()
            for start in range(0, records, group):
                # `group` callers of one record each, as concurrent requests hand them over
                futures = [
                    log.append_future("grouped", [(keys[i], values[i])])
                    for i in range(start, min(start + group, records))
                ]
                for f in futures:
                    f.result()
            from hispeed.log.producer import Producer

            with Producer(log) as producer:
                for k, v in zip(keys, values, strict=True):
                    producer.produce("produced", v, k)
            root = Path(tmp) / "d" / "log" / "topics"
            out["bytes_per_record_single_append"] = _overhead(root / "single", records, key_value)
            out[f"bytes_per_record_group_commit_{group}"] = _overhead(
                root / "grouped", records, key_value
            )
            out["group_commit_groups"] = committer.groups
            out["bytes_per_record_producer"] = _overhead(root / "produced", records, key_value)
        finally:
            log.close()
    return out


def run(progress: Progress | None = None, scale: float = 1.0) -> dict[str, Any]:
    """Every figure of the module's docstring, as one flat dict (`scale` shrinks the runs)."""
    report = progress or (lambda phase, done: None)
    results: dict[str, Any] = {}
    report("insert() single rows", 0)
    results |= insert_rows(max(int(200_000 * scale), 1000))
    results |= insert_rows(max(int(200_000 * scale), 1000), linger_ms=0, prefix="insert_each_rows")
    report("producer API", 0)
    results |= producer_rows(max(int(2_000_000 * scale), 10_000))
    report("bytes on disk per record", 0)
    results |= bytes_on_disk(max(int(20_000 * scale), 1000))
    return results


if __name__ == "__main__":
    print(json.dumps(run(progress=lambda phase, _: print(phase, flush=True)), indent=2))

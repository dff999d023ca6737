"""`hispeed bench analyze`: a full scan with GROUP BY over a stream's history, through
`Engine.analyze` (DuckDB over the log's decoded Arrow data), on one DuckDB thread.

A stream of `records` click events (KAFKA string keys, JSON values of a page, a duration
and an amount) is appended to the embedded log in batches (not timed). Then the same
query, `SELECT page, count(*), sum(amount), max(ms) FROM clicks GROUP BY page`, runs:

- `uncached_*`: with the decoded-chunk cache off, so each record's JSON is decoded;
- `first_scan_*`: with the cache on and empty (decoding, and writing each full chunk);
- `scan_*` (the headline): again, answered from the cached chunks.

Each figure is records per wall second and per CPU second of this process
(`time.process_time`, DuckDB's threads included): the CPU figure is the one to compare
on a busy machine.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.bench.engine import scratch_engine

Progress = Callable[[str, int], Any] | None

STREAM = (
    "CREATE STREAM clicks (user_id STRING KEY, page STRING, ms INT, amount DOUBLE) "
    "WITH (kafka_topic='clicks', value_format='JSON', partitions=1);"
)
QUERY = (
    "SELECT page, count(*) AS n, sum(amount) AS total, max(ms) AS slowest FROM clicks GROUP BY page"
)
PAGES = 50
_CHUNK = 200_000


def _batch(first: int, n: int, rng: np.random.Generator) -> pa.RecordBatch:
    """n click records as the log stores them, their JSON built column-wise."""
    users = pa.array(rng.integers(0, 100_000, n).astype(str)).cast(pa.string())
    pages = pa.array(rng.integers(0, PAGES, n).astype(str)).cast(pa.string())
    ms = pa.array(rng.integers(0, 5_000, n).astype(str)).cast(pa.string())
    amount = pa.array((rng.integers(0, 100_000, n) / 100).astype(str)).cast(pa.string())
    value = pc.binary_join_element_wise(
        '{"PAGE":"p', pages, '","MS":', ms, ',"AMOUNT":', amount, "}", ""
    )
    return pa.RecordBatch.from_arrays(
        [
            pc.binary_join_element_wise("user", users, "").cast(pa.binary()),
            value.cast(pa.binary()),
            pa.array(np.arange(first, first + n, dtype=np.int64) + 1_700_000_000_000),
        ],
        names=["key", "value", "timestamp"],
    )


def _timed(run: Callable[[], Any]) -> tuple[Any, float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def run(
    records: int = 10_000_000, directory: str | None = None, progress: Progress = None
) -> dict[str, Any]:
    """Records scanned per second (wall and CPU) by a GROUP BY over `records` records."""
    rng = np.random.default_rng(0)
    with scratch_engine(directory, "analyze") as engine:
        # every record kept, whatever the server-wide retention says
        engine.log.create_topic("clicks", 1, {"retention.bytes": -1, "retention.ms": -1})
        engine.execute(STREAM)
        for first in range(0, records, _CHUNK):
            engine.log.append(
                "clicks", _batch(first, min(_CHUNK, records - first), rng), partition=0
            )
            if progress is not None:
                progress("analyze: load", first // _CHUNK + 1)
        engine.properties["analyze.threads"] = 1
        results: dict[str, Any] = {"records": records}

        def scan(name: str) -> None:
            table, wall, cpu = _timed(lambda: engine.analyze(QUERY))
            assert sum(table.column("n").to_pylist()) == records, "the scan missed records"
            results[f"{name}records_per_s"] = round(records / wall)
            results[f"{name}records_per_cpu_s"] = round(records / cpu)
            results[f"{name}wall_s"] = round(wall, 3)
            results[f"{name}cpu_s"] = round(cpu, 3)
            results["rows"] = table.num_rows
            if progress is not None:
                progress(f"analyze: {name or 'cached '}scan", 1)

        engine.properties["analyze.cache.bytes"] = 0
        scan("uncached_scan_")
        engine.properties["analyze.cache.bytes"] = 4 << 30
        scan("first_scan_")
        scan("scan_")
    return results


__all__ = ["QUERY", "run"]

"""`hispeed bench engine`'s pull-query figure: key lookups per second through `Engine.query`.

A source table of `keys` users (KAFKA string keys, JSON values) is appended to the embedded
log (not timed). The first pull query builds the table's in-memory view (timed apart, as
`pull_view_build_ms`); then `lookups` queries `SELECT * FROM users WHERE id = '<key>'`, each
for a random key and each a new SQL text, run through the public API on one thread.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from hispeed.bench.engine import scratch_engine

Progress = Callable[[str, int], Any] | None

TABLE = (
    "CREATE SOURCE TABLE users (id STRING PRIMARY KEY, name STRING, score BIGINT) "
    "WITH (kafka_topic='users', value_format='JSON', partitions=1);"
)
_CHUNK = 100_000


def run(
    keys: int = 1_000_000,
    lookups: int = 100_000,
    directory: str | None = None,
    progress: Progress = None,
) -> dict[str, int]:
    """Key lookups per second against a table of `keys` rows (and the view's build time)."""
    with scratch_engine(directory, "pull") as engine:
        engine.execute(TABLE)
        encoder = msgspec.json.Encoder()
        for first in range(0, keys, _CHUNK):
            ids = range(first, min(first + _CHUNK, keys))
            batch = pa.RecordBatch.from_arrays(
                [
                    pa.array([f"user{i}".encode() for i in ids], pa.binary()),
                    pa.array(
                        [encoder.encode({"NAME": f"name {i}", "SCORE": i}) for i in ids],
                        pa.binary(),
                    ),
                    pa.array(np.full(len(ids), 1_700_000_000_000, np.int64)),
                ],
                names=["key", "value", "timestamp"],
            )
            engine.log.append("users", batch, partition=0)
            if progress is not None:
                progress("pull: load", min(first + _CHUNK, keys))
        started = time.perf_counter()
        first_row = engine.query("SELECT * FROM users WHERE id = 'user0';")
        built = time.perf_counter() - started
        assert first_row, "the pull bench's table is empty"
        rng = np.random.default_rng(0)
        wanted = [
            f"SELECT * FROM users WHERE id = 'user{k}';" for k in rng.integers(0, keys, lookups)
        ]
        found = 0
        started = time.perf_counter()
        for sql in wanted:
            found += len(engine.query(sql))
        elapsed = time.perf_counter() - started
        assert found == lookups, f"{lookups - found} lookups found nothing"
        if progress is not None:
            progress("pull: lookups", lookups)
        return {
            "pull_lookups_per_s": int(lookups / elapsed),
            "pull_view_build_ms": int(built * 1000),
        }

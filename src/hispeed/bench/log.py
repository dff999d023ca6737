"""`hispeed bench log`: append and read throughput of the embedded log."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa

from hispeed.log.embedded import EmbeddedLog


def make_batch(n: int, value_size: int, seed: int = 0) -> pa.RecordBatch:
    """n records: 8-byte keys, random `value_size`-byte values, built without a Python loop."""
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 256, n * value_size, dtype=np.uint8)
    value_offsets = np.arange(0, (n + 1) * value_size, value_size, dtype=np.int32)
    keys = np.char.zfill(np.arange(n).astype(str), 8).astype("S8")
    key_offsets = np.arange(0, (n + 1) * 8, 8, dtype=np.int32)
    key_arr = pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(key_offsets), pa.py_buffer(keys.tobytes())]
    )
    value_arr = pa.Array.from_buffers(
        pa.binary(), n, [None, pa.py_buffer(value_offsets), pa.py_buffer(values.tobytes())]
    )
    ts = pa.array(np.full(n, 1_700_000_000_000, dtype=np.int64))
    return pa.RecordBatch.from_arrays([key_arr, value_arr, ts], names=["key", "value", "timestamp"])


Progress = Callable[[str, int], Any] | None


def _appends_per_s(
    log: EmbeddedLog,
    records: Any,
    batches: int,
    partition: int | None,
    phase: str,
    progress: Progress,
) -> int:
    """Append `records` `batches` times to topic bench; records per second."""
    size = len(records) if isinstance(records, list) else records.num_rows
    t0 = time.perf_counter()
    for i in range(batches):
        log.append("bench", records, partition=partition)
        if progress:
            progress(phase, i + 1)
    return round(batches * size / (time.perf_counter() - t0))


def run(
    records: int = 2_000_000,
    batch_size: int = 10_000,
    value_size: int = 100,
    directory: str | None = None,
    progress: Progress = None,
) -> dict[str, Any]:
    """Measure appends (fsync never, then fsync after each batch) and reads on one partition.

    The secondary figures (fsync always, keyed over 8 partitions, Python tuples) append a
    quarter as many records.
    """
    batches = max(records // batch_size, 1)
    records = batches * batch_size
    quarter = max(batches // 4, 1)
    batch = make_batch(batch_size, value_size)
    pairs = list(zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True))
    root = tempfile.mkdtemp(prefix="hispeed-bench-", dir=directory)

    def open_log(name: str, fsync: str, partitions: int) -> EmbeddedLog:
        log = EmbeddedLog(os.path.join(root, name), fsync=fsync, cleaner_interval_s=None)
        log.create_topic("bench", partitions)
        return log

    try:
        results: dict[str, Any] = {
            "records": records,
            "batch_size": batch_size,
            "value_bytes": value_size,
        }
        with open_log("never", "never", 1) as log:
            results["append_records_per_s"] = _appends_per_s(
                log, batch, batches, 0, "append", progress
            )
            t0 = time.perf_counter()
            offset, got = 0, 0
            while offset < records:
                for b in log.read("bench", 0, offset, max_records=batch_size * 10):
                    got += b.num_rows
                    offset = b.column(0)[b.num_rows - 1].as_py() + 1
                if progress:
                    progress("read", offset // batch_size)
            results["read_records_per_s"] = round(got / (time.perf_counter() - t0))
        with open_log("always", "always", 1) as log:
            results["append_fsync_batch_records_per_s"] = _appends_per_s(
                log, batch, quarter, 0, "append+fsync", progress
            )
        with open_log("keyed", "never", 8) as log:
            results["append_keyed_8_partitions_records_per_s"] = _appends_per_s(
                log, batch, quarter, None, "append keyed", progress
            )
        with open_log("python", "never", 1) as log:
            results["append_python_tuples_records_per_s"] = _appends_per_s(
                log, pairs, quarter, 0, "append python tuples", progress
            )
        return results
    finally:
        shutil.rmtree(root, ignore_errors=True)

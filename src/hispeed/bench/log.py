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


def run(
    records: int = 2_000_000,
    batch_size: int = 10_000,
    value_size: int = 100,
    directory: str | None = None,
    progress: Callable[[str, int], Any] | None = None,
) -> dict[str, Any]:
    """Measure appends (fsync never, then fsync after each batch) and reads on one partition."""
    batches = max(records // batch_size, 1)
    records = batches * batch_size
    batch = make_batch(batch_size, value_size)
    root = tempfile.mkdtemp(prefix="hispeed-bench-", dir=directory)
    try:
        results: dict[str, Any] = {
            "records": records,
            "batch_size": batch_size,
            "value_bytes": value_size,
        }
        with EmbeddedLog(
            os.path.join(root, "never"), fsync="never", cleaner_interval_s=None
        ) as log:
            log.create_topic("bench", 1)
            t0 = time.perf_counter()
            for i in range(batches):
                log.append("bench", batch, partition=0)
                if progress:
                    progress("append", i + 1)
            results["append_records_per_s"] = round(records / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            offset, got = 0, 0
            while offset < records:
                for b in log.read("bench", 0, offset, max_records=batch_size * 10):
                    got += b.num_rows
                    offset = b.column(0)[b.num_rows - 1].as_py() + 1
                if progress:
                    progress("read", offset // batch_size)
            results["read_records_per_s"] = round(got / (time.perf_counter() - t0))
        fsync_batches = max(batches // 4, 1)
        with EmbeddedLog(
            os.path.join(root, "always"), fsync="always", cleaner_interval_s=None
        ) as log:
            log.create_topic("bench", 1)
            t0 = time.perf_counter()
            for i in range(fsync_batches):
                log.append("bench", batch, partition=0)
                if progress:
                    progress("append+fsync", i + 1)
            elapsed = time.perf_counter() - t0
            results["append_fsync_batch_records_per_s"] = round(
                fsync_batches * batch_size / elapsed
            )
        keyed = max(batches // 4, 1)
        with EmbeddedLog(
            os.path.join(root, "keyed"), fsync="never", cleaner_interval_s=None
        ) as log:
            log.create_topic("bench", 8)
            t0 = time.perf_counter()
            for i in range(keyed):
                log.append("bench", batch)
                if progress:
                    progress("append keyed", i + 1)
            results["append_keyed_8_partitions_records_per_s"] = round(
                keyed * batch_size / (time.perf_counter() - t0)
            )
        pairs = list(zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True))
        with EmbeddedLog(
            os.path.join(root, "python"), fsync="never", cleaner_interval_s=None
        ) as log:
            log.create_topic("bench", 1)
            t0 = time.perf_counter()
            for i in range(keyed):
                log.append("bench", pairs, partition=0)
                if progress:
                    progress("append python tuples", i + 1)
            results["append_python_tuples_records_per_s"] = round(
                keyed * batch_size / (time.perf_counter() - t0)
            )
        return results
    finally:
        shutil.rmtree(root, ignore_errors=True)

"""A query's batch runs with the cyclic garbage collector paused (hispeed/gc_pause.py, around
`QueryTask.run`): its many small objects would otherwise set the collector off again and
again, each time walking every live object of the process (15-40% of Nexmark q4's CPU time).
The collector is back on after the batch, and what the query computes is the same."""

from __future__ import annotations

import gc
from pathlib import Path

import msgspec
import pyarrow as pa

from hispeed.engine import Engine
from hispeed.udf import udf, unregister


def test_a_batch_runs_with_the_collector_paused_and_it_is_back_after(tmp_path: Path) -> None:
    seen: list[bool] = []

    @udf
    def collector_on(v: int) -> bool:
        seen.append(gc.isenabled())
        return gc.isenabled()

    engine = Engine(tmp_path, fsync="never")
    try:
        engine.execute(
            "CREATE STREAM s (k STRING, v BIGINT) "
            "WITH (kafka_topic='s', value_format='JSON', partitions=1);"
        )
        # a projection: no operator of its own pauses the collector
        engine.execute("CREATE STREAM o AS SELECT k, v, COLLECTOR_ON(v) AS c FROM s;")
        n = 500
        encoder = msgspec.json.Encoder()
        engine.log.append(
            "s",
            pa.record_batch(
                {
                    "key": pa.nulls(n, pa.binary()),
                    "value": pa.array(
                        [encoder.encode({"K": f"k{i % 3}", "V": i}) for i in range(n)],
                        pa.binary(),
                    ),
                    "timestamp": pa.array(range(n), pa.int64()),
                }
            ),
            partition=0,
        )
        assert gc.isenabled()
        engine.drain()
        assert gc.isenabled()  # on again after the batches
        assert len(seen) >= n
        assert not any(seen)
        written = engine.log.read_table("O", 0).column("value").to_pylist()
        got = [msgspec.json.decode(v) for v in written]
        assert got == [{"K": f"k{i % 3}", "V": i, "C": False} for i in range(n)]
    finally:
        engine.close()
        unregister("COLLECTOR_ON")

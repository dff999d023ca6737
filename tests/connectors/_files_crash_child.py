"""A hispeed process for the file connectors' crash test: a directory source reads the input
files into a topic and a Parquet sink writes the topic out, in small files. It prints
"progress" as records come in and go out, and "done" once every input record is in the
log and the sink has written all it read. The test kills it with SIGKILL, then starts it
again on the same directories."""

from __future__ import annotations

import faulthandler
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq

from hispeed.engine import Engine

TOTAL = 3000
#: records per input file; the files alternate between JSON lines and CSV
PER_FILE = 100


def rows(i: int) -> list[dict[str, object]]:
    """The records of input file i."""
    return [
        {"id": n, "device": f"d{n % 17}", "reading": n * 0.25, "note": f"n{n}, {i}"}
        for n in range(i * PER_FILE, (i + 1) * PER_FILE)
    ]


def written(lake: Path) -> int:
    """How many records the Parquet files hold."""
    return sum(pq.read_metadata(p).num_rows for p in lake.glob("*.parquet"))


def main(data_dir: str, incoming: str, lake: str) -> None:
    faulthandler.dump_traceback_later(100, exit=True)  # a hang shows where, in the test
    engine = Engine(data_dir, fsync="always")
    # every statement with IF NOT EXISTS: a kill may land between two of them
    engine.execute(
        # the key is the text of 'id' ('key.column'), so a STRING key column
        "CREATE STREAM IF NOT EXISTS drops (k STRING KEY, id INT, device STRING, "
        "reading DOUBLE, note STRING) WITH (kafka_topic='drops', value_format='JSON', "
        "partitions=1);"
        "CREATE SOURCE CONNECTOR IF NOT EXISTS inbox WITH ('connector.class'='directory', "
        f"'path'='{incoming}', 'kafka.topic'='drops', 'key.column'='id', "
        "'file.stable.ms'='0', 'batch.bytes'='2048');"
        "CREATE SINK CONNECTOR IF NOT EXISTS lake WITH ('connector.class'='parquet', "
        f"'source'='DROPS', 'path'='{lake}', 'flush.records'='40', 'flush.ms'='50');"
    )
    engine.start()
    seen = (-1, -1)
    while True:
        now = (engine.log.offsets("drops", 0)[1], written(Path(lake)))
        if now != seen:
            # the test kills after a number of these: a moment set by progress, not the clock
            print(f"progress {now[0]} {now[1]}", flush=True)
            seen = now
        if now[0] >= TOTAL:
            # all in; all out once the sink has read everything (lag 0) and written what
            # it read (nothing pending): then the files are what they will be
            info = engine.connectors.describe("LAKE")
            if info["lag"] == 0 and info["details"]["pending"] == 0:
                break
        time.sleep(0.005)
    print("done", flush=True)
    engine.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3])

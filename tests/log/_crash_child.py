"""Append forever with fsync always, printing an ack line after each append returns.

Run by test_crash.py and SIGKILLed at random moments. Usage: _crash_child.py DATA_DIR FIRST_BATCH
"""

from __future__ import annotations

import random
import sys

from hispeed.log import EmbeddedLog, TopicPartition


def value(batch: int, j: int) -> bytes:
    return f"b{batch}-r{j}-".encode().ljust(100, b".")


def main() -> None:
    data_dir, batch = sys.argv[1], int(sys.argv[2])
    rng = random.Random(batch)
    log = EmbeddedLog(data_dir, fsync="always", cleaner_interval_s=None)
    log.create_topic("t", 1, {"segment.bytes": "262144"}, exist_ok=True)
    print("ready", flush=True)
    while True:
        n = rng.randint(1, 400)
        records = [(f"k{j % 17}".encode(), value(batch, j)) for j in range(n)]
        if batch % 5 == 0:
            txn = log.transaction()
            txn.append("t", records, partition=0)
            txn.commit_offsets("g", {TopicPartition("src", 0): batch})
            first = txn.commit()[TopicPartition("t", 0)][0]
        else:
            first = int(log.append("t", records, partition=0).offsets[0])
        print(f"ack {batch} {first} {n}", flush=True)
        batch += 1


if __name__ == "__main__":
    main()

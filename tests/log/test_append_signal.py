"""The append signal readers wait on: appends mark it without a lock while nobody waits, and
no reader waiting on it misses an append (concurrent appenders and waiters)."""

from __future__ import annotations

import threading
import time

from hispeed.log import EmbeddedLog
from tests.conftest import LogFactory

APPENDERS = 4
PER_APPENDER = 300
WAITERS = 4
#: a reader that waits this long for an append that was made lost its wake-up
LOST = 10.0


def total(log: EmbeddedLog, topic: str) -> int:
    return sum(log.offsets(topic, p)[1] for p in range(len(log.describe_topic(topic).partitions)))


def test_no_waiting_reader_misses_an_append(log_factory: LogFactory) -> None:
    log = log_factory()
    log.create_topic("t", partitions=2)
    expected = APPENDERS * PER_APPENDER
    start = threading.Barrier(APPENDERS + WAITERS)
    lost: list[str] = []
    seen_all: list[int] = []

    def append(n: int) -> None:
        start.wait()
        for i in range(PER_APPENDER):
            log.append("t", [(f"k{n}".encode(), f"{i}".encode())])

    def wait() -> None:
        start.wait()
        while True:
            seen = log.appends  # read the mark before looking, as a consumer's poll does
            have = total(log, "t")
            if have == expected:
                seen_all.append(have)
                return
            began = time.monotonic()
            log.wait_for_append(seen, LOST)
            if time.monotonic() - began >= LOST:
                lost.append(f"a reader saw {have} of {expected} and was not woken")
                return

    threads = [threading.Thread(target=append, args=(n,)) for n in range(APPENDERS)]
    threads += [threading.Thread(target=wait) for _ in range(WAITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert lost == []
    assert seen_all == [expected] * WAITERS


def test_consumers_polling_while_threads_append_get_every_record(log_factory: LogFactory) -> None:
    log = log_factory()
    log.create_topic("t", partitions=3)
    expected = APPENDERS * PER_APPENDER
    consumers = [log.consumer("t", auto_offset_reset="earliest") for _ in range(2)]
    got = [0] * len(consumers)

    def read(i: int) -> None:
        while got[i] < expected:
            began = time.monotonic()
            batches = consumers[i].poll(timeout=LOST)
            if time.monotonic() - began >= LOST:
                return  # a poll that long with records on their way: its wake-up was lost
            got[i] += sum(b.batch.num_rows for b in batches)

    def append(n: int) -> None:
        for i in range(PER_APPENDER):
            log.append("t", [(f"k{n}".encode(), f"{i}".encode())])

    readers = [threading.Thread(target=read, args=(i,)) for i in range(len(consumers))]
    writers = [threading.Thread(target=append, args=(n,)) for n in range(APPENDERS)]
    for t in readers + writers:
        t.start()
    for t in writers + readers:
        t.join()
    for c in consumers:
        c.close()
    assert got == [expected] * len(consumers)


def test_close_wakes_a_waiting_reader(log_factory: LogFactory) -> None:
    log = log_factory()
    log.create_topic("t")
    seen = log.appends
    waiting = threading.Event()
    result: list[bool] = []

    def wait() -> None:
        waiting.set()
        result.append(log.wait_for_append(seen, LOST))

    t = threading.Thread(target=wait)
    t.start()
    waiting.wait()
    log.close()
    t.join(LOST)
    assert result == [False]

"""The group committer (`Log.append_async`, `Log.append_future`) against single appends: the
same records land in the same partitions, each caller's in its own order, at the offsets each
caller is told; concurrent callers from threads and from asyncio are gathered into groups."""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from pathlib import Path

import pytest

from hispeed.errors import InvalidRecordError, LogError
from hispeed.log import EmbeddedLog, Log
from tests.conftest import LogFactory
from tests.log.conftest import NewStorage


def records_of(log: Log, topic: str) -> dict[int, list[tuple[int, bytes, bytes]]]:
    """(offset, key, value) of every record, by partition."""
    out: dict[int, list[tuple[int, bytes, bytes]]] = {}
    for p in range(len(log.describe_topic(topic).partitions)):
        table = log.read_table(topic, p)
        out[p] = list(
            zip(
                table.column("offset").to_pylist(),
                table.column("key").to_pylist(),
                table.column("value").to_pylist(),
                strict=True,
            )
        )
    return out


def calls(n: int, prefix: str = "c") -> list[list[tuple[bytes, bytes]]]:
    """n appends of one to three keyed records each."""
    return [
        [
            (f"key-{(i * 7 + j) % 23}".encode(), f"{prefix}{i}-{j}".encode())
            for j in range(i % 3 + 1)
        ]
        for i in range(n)
    ]


def test_grouped_appends_land_as_single_appends_do(log_factory: LogFactory, tmp_path: Path) -> None:
    """Appends queued in order from one thread: every partition holds the same records at the
    same offsets as when they are appended one by one, and each call is told the same places."""
    batches = calls(300)
    single = log_factory(tmp_path / "single")
    single.create_topic("t", 4)
    expected = [single.append("t", b).pairs() for b in batches]

    grouped = log_factory(tmp_path / "grouped", linger_ms=20)
    grouped.create_topic("t", 4)
    futures = [grouped.append_future("t", b) for b in batches]
    got = [f.result(timeout=30).pairs() for f in futures]

    assert got == expected
    assert records_of(grouped, "t") == records_of(single, "t")
    committer = grouped.group_committer()
    assert committer.requests == 300
    assert committer.groups < 300  # they were gathered, not written one by one


def check_callers(
    log: Log, topic: str, sent: dict[str, list[list[tuple[bytes, bytes]]]], got: dict[str, list]
) -> None:
    """Each caller's records are where it was told, in its own order within each partition,
    and the log holds exactly the records sent."""
    stored = records_of(log, topic)
    at = {(p, off): (k, v) for p, rows in stored.items() for off, k, v in rows}
    assert len(at) == sum(len(b) for calls_ in sent.values() for b in calls_)
    for caller, batches in sent.items():
        seen: dict[int, list[int]] = defaultdict(list)
        for batch, pairs in zip(batches, got[caller], strict=True):
            assert len(pairs) == len(batch)
            for record, (p, off) in zip(batch, pairs, strict=True):
                assert at[(p, off)] == record
                seen[p].append(off)
        for offsets in seen.values():
            assert offsets == sorted(offsets)


def test_threads_each_acknowledged_with_their_own_offsets(log_factory: LogFactory) -> None:
    log = log_factory(linger_ms=2)
    log.create_topic("t", 3)
    sent = {f"t{n}": calls(120, prefix=f"t{n}-") for n in range(8)}
    got: dict[str, list] = {}

    def run(name: str) -> None:
        # each caller waits for its acknowledgement before the next, as a request handler does
        got[name] = [log.append_future("t", b).result(timeout=30).pairs() for b in sent[name]]

    threads = [threading.Thread(target=run, args=(name,)) for name in sent]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    check_callers(log, "t", sent, got)


def test_asyncio_callers_are_gathered(log_factory: LogFactory) -> None:
    log = log_factory(linger_ms=5)
    log.create_topic("t", 2)
    sent = {f"a{n}": calls(20, prefix=f"a{n}-") for n in range(50)}

    async def caller(name: str) -> list:
        return [(await log.append_async("t", b)).pairs() for b in sent[name]]

    async def main() -> list[list]:
        return await asyncio.gather(*(caller(name) for name in sent))

    got = dict(zip(sent, asyncio.run(main()), strict=True))
    check_callers(log, "t", sent, got)
    committer = log.group_committer()
    assert committer.requests == 50 * 20
    assert committer.groups < committer.requests


def test_a_refused_call_fails_alone(log_factory: LogFactory) -> None:
    """A compacted topic needs keys: the call without one fails, its group's others land."""
    log = log_factory(linger_ms=50)
    log.create_topic("c", 1, {"cleanup.policy": "compact"})
    good1 = log.append_future("c", [(b"a", b"1")])
    bad = log.append_future("c", [(None, b"no key")])
    good2 = log.append_future("c", [(b"b", b"2")])
    assert good1.result(timeout=30).pairs() == [(0, 0)]
    with pytest.raises(InvalidRecordError, match="needs a key"):
        bad.result(timeout=30)
    assert good2.result(timeout=30).pairs() == [(0, 1)]
    assert [v for _o, _k, v in records_of(log, "c")[0]] == [b"1", b"2"]


def test_arrow_and_python_records_in_one_group(log_factory: LogFactory) -> None:
    import pyarrow as pa

    log = log_factory(linger_ms=50)
    log.create_topic("t", 1)
    f1 = log.append_future("t", [{"key": b"k", "value": b"py", "timestamp": 5}])
    f2 = log.append_future(
        "t", pa.table({"key": [b"k2"], "value": [b"arrow"], "timestamp": pa.array([6], pa.int64())})
    )
    assert f1.result(timeout=30).pairs() == [(0, 0)]
    assert f2.result(timeout=30).pairs() == [(0, 1)]
    table = log.read_table("t", 0)
    assert table.column("value").to_pylist() == [b"py", b"arrow"]
    assert table.column("timestamp").to_pylist() == [5, 6]


def test_close_writes_what_is_queued(log_factory: LogFactory, tmp_path: Path) -> None:
    log = log_factory(tmp_path / "d", linger_ms=60_000)  # only closing sends them
    log.create_topic("t", 1)
    futures = [log.append_future("t", [(b"k", f"{i}".encode())]) for i in range(10)]
    log.close()
    assert [f.result(timeout=0).offsets[0] for f in futures] == list(range(10))
    with pytest.raises(LogError, match="closed"):
        log.append_future("t", [(b"k", b"late")])
    again = log_factory(tmp_path / "d")
    assert len(again.read_table("t", 0)) == 10


def test_fsync_always_syncs_once_per_group(log_factory: LogFactory) -> None:
    """Under fsync=always an acknowledged record is on disk, and a group pays one fsync."""
    log: EmbeddedLog = log_factory(fsync="always", linger_ms=50)
    log.create_topic("t", 1)
    part = log.partition("t", 0)
    synced = 0
    original = part.fsync

    def counting_fsync() -> None:
        nonlocal synced
        synced += 1
        original()

    part.fsync = counting_fsync  # type: ignore[method-assign]
    futures = [log.append_future("t", [(b"k", b"v")]) for _ in range(40)]
    for f in futures:
        f.result(timeout=30)
    assert synced == log.group_committer().groups
    assert synced < 40


def test_group_commit_on_every_backend(storage: NewStorage) -> None:
    log = storage()()
    log.create_topic("g", 2)
    sent = {"x": calls(30, prefix="x-")}
    futures = [log.append_future("g", b) for b in sent["x"]]
    got = {"x": [f.result(timeout=60).pairs() for f in futures]}
    check_callers(log, "g", sent, got)

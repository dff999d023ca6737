"""`Log.append_one`, `Engine.insert`'s path into the embedded log: one record written with no
Arrow on the way, byte for byte the frame `append` writes for the same record, on the same
partition and offset. And `EmbeddedLog.append_pairs`, the server's path for its gathered
one-record requests: the same partitions, offsets, bytes on disk and refusals as `append` of
the same (key, value) pairs, whether it takes its own way (a few records of bytes bound for
one partition) or `append`'s."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hispeed.errors import InvalidRecordError
from hispeed.log import EmbeddedLog
from hispeed.log.base import Log

#: (key, value, timestamp): null keys, tombstones, empty bytes, a large value, unicode bytes
RECORDS: list[tuple[bytes | None, bytes | None, int | None]] = [
    (b"k", b"v", 5),
    (b"k", None, 4),
    (None, b"no key", 9),
    (b"", b"", 9),
    (b"big", b"x" * 70_000, 1 << 40),
    ("unicode ✓".encode(), b'{"A":1}', 0),
    *[(f"k{i % 5}".encode(), f"r{i}".encode(), 1000 + i) for i in range(40)],
    *[(None, f"n{i}".encode(), 2000 + i) for i in range(6)],
]


def files(log: EmbeddedLog, topic: str) -> dict[str, bytes]:
    root = log.root / "topics" / topic
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.suffix in (".seg", ".idx")
    }


@pytest.mark.parametrize("partitions", [1, 3])
def test_append_one_writes_what_append_writes(tmp_path: Path, partitions: int) -> None:
    clock = lambda: 123_456  # noqa: E731 (records with no timestamp are stamped alike)
    fast = EmbeddedLog(tmp_path / "fast", fsync="never", cleaner_interval_s=None, clock=clock)
    ref = EmbeddedLog(tmp_path / "ref", fsync="never", cleaner_interval_s=None, clock=clock)
    try:
        for log in (fast, ref):
            log.create_topic("t", partitions, {"index.interval.bytes": 100})
        for key, value, ts in [*RECORDS, (b"k", b"now", None)]:
            got = fast.append_one("t", key, value, ts)
            want = ref.append("t", [{"key": key, "value": value, "timestamp": ts}])
            assert got == (int(want.partitions[0]), int(want.offsets[0]))
        assert files(fast, "t") == files(ref, "t")  # the same frames and index entries
        for p in range(partitions):
            assert fast.read_table("t", p).equals(ref.read_table("t", p))
    finally:
        fast.close()
        ref.close()


def test_append_one_is_read_back_after_a_restart(tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path / "d", fsync="always", cleaner_interval_s=None) as log:
        log.create_topic("t", 2)
        placed = [log.append_one("t", k, v, ts) for k, v, ts in RECORDS]
    with EmbeddedLog(tmp_path / "d", cleaner_interval_s=None) as log:
        for (key, value, ts), (p, offset) in zip(RECORDS, placed, strict=True):
            row = log.read_table("t", p).slice(offset, 1).to_pylist()[0]
            assert (row["offset"], row["key"], row["value"], row["timestamp"]) == (
                offset,
                key,
                value,
                ts,
            )


def test_append_one_checks_what_append_checks(tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path / "d", fsync="never", cleaner_interval_s=None) as log:
        log.create_topic("c", 1, {"cleanup.policy": "compact"})
        with pytest.raises(InvalidRecordError, match="compacted, so every record needs a key"):
            log.append_one("c", None, b"v")
        with pytest.raises(InvalidRecordError, match="bytes"):
            log.append_one("c", b"k", "text")  # type: ignore[arg-type]
        assert log.describe_topic("c").records == 0


def test_the_default_append_one_goes_through_append(tmp_path: Path) -> None:
    """A backend without its own `append_one` (Kafka's) gets `append` of one record."""

    class Plain(EmbeddedLog):
        append_one = Log.append_one

    with Plain(tmp_path / "d", fsync="never", cleaner_interval_s=None) as log:
        log.create_topic("t", 3)
        placed = [log.append_one("t", k, v, ts) for k, v, ts in RECORDS]
        got = {
            (p, o): (r["key"], r["value"], r["timestamp"])
            for p in range(3)
            for o, r in enumerate(log.read_table("t", p).to_pylist())
        }
    assert [got[pl] for pl in placed] == RECORDS


def test_appended_headers_null_or_given_read_back_alike(tmp_path: Path) -> None:
    """Records without headers (their column built as all nulls) and with them, in one
    append and in appends of their own: each reads back with exactly its own headers."""
    from hispeed.log.records import Record

    records = [
        Record(b"v0", b"k0"),
        Record(b"v1", b"k1", headers=[("h", b"x"), ("g", "y")]),
        Record(b"v2", b"k2"),
    ]
    with EmbeddedLog(tmp_path, fsync="never") as log_:
        log_.create_topic("t", 1)
        log_.append("t", records)
        for r in records:
            log_.append("t", [r])
        log_.append("t", [(b"k3", b"v3"), (b"k4", b"v4")])
        table = log_.read_table("t", 0)
    expected = [None, [{"key": "h", "value": b"x"}, {"key": "g", "value": b"y"}], None]
    assert table.column("headers").to_pylist() == [*expected, *expected, None, None]
    assert table.column("value").to_pylist() == [b"v0", b"v1", b"v2"] * 2 + [b"v3", b"v4"]


Pairs = list[tuple[bytes | None, bytes | None]]

#: groups as the server gathers them: one record, several, null keys and values, empty bytes,
#: a large value, 64 records (the most a compact frame holds) and 65 (`append`'s way), and
#: records that are not all bytes (text: `append` encodes it)
GROUPS: list[Pairs] = [
    [(b"k", b"v")],
    [(b"d1", b'{"a":1}'), (b"d2", b'{"a":2}'), (None, b"no key"), (b"k", None)],
    [(b"", b""), (b"big", b"x" * 70_000)],
    [(f"k{i % 7}".encode(), f"r{i}".encode()) for i in range(64)],
    [(f"k{i % 7}".encode(), f"s{i}".encode()) for i in range(65)],
    [(b"k", "text ✓")],  # type: ignore[list-item]
    [(None, b"last")],
]


@pytest.fixture
def logs(tmp_path: Path) -> Iterator[tuple[EmbeddedLog, EmbeddedLog]]:
    clock = lambda: 123_456  # noqa: E731 (both stamp their records alike)
    fast = EmbeddedLog(tmp_path / "fast", fsync="never", cleaner_interval_s=None, clock=clock)
    ref = EmbeddedLog(tmp_path / "ref", fsync="never", cleaner_interval_s=None, clock=clock)
    yield fast, ref
    fast.close()
    ref.close()


@pytest.mark.parametrize(("partitions", "named"), [(1, None), (3, None), (3, 2)])
def test_append_pairs_writes_what_append_writes(
    logs: tuple[EmbeddedLog, EmbeddedLog], partitions: int, named: int | None
) -> None:
    fast, ref = logs
    for log in logs:
        log.create_topic("t", partitions, {"index.interval.bytes": 100, "segment.bytes": 4096})
    for pairs in GROUPS:
        got = fast.append_pairs("t", pairs, named)
        want = ref.append("t", pairs, partition=named)
        assert got == (want.partitions.tolist(), want.offsets.tolist())
    assert files(fast, "t") == files(ref, "t")  # the same frames, segments and index
    for p in range(partitions):
        assert fast.read_table("t", p).equals(ref.read_table("t", p))


def test_append_pairs_refuses_what_append_refuses(logs: tuple[EmbeddedLog, EmbeddedLog]) -> None:
    fast, _ = logs
    fast.create_topic("c", 1, {"cleanup.policy": "compact"})
    with pytest.raises(InvalidRecordError, match="compacted, so every record needs a key"):
        fast.append_pairs("c", [(b"k", b"v"), (None, b"v")])
    with pytest.raises(InvalidRecordError, match="bytes or str"):
        fast.append_pairs("c", [(b"k", 5)])  # type: ignore[list-item]
    assert fast.describe_topic("c").records == 0
    fast.append_pairs("c", [(b"k", b"v")])
    assert fast.describe_topic("c").records == 1

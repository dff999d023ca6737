"""`EmbeddedLog.append_pairs`, the server's path for its gathered one-record requests: the
same partitions, offsets and bytes on disk as `append` of the same (key, value) pairs, and the
same refusals, whether it takes its own way (a few records of bytes bound for one partition)
or `append`'s."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hispeed.errors import InvalidRecordError
from hispeed.log import EmbeddedLog

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


def _files(log: EmbeddedLog, topic: str) -> dict[str, bytes]:
    root = log.root / "topics" / topic
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.suffix in (".seg", ".idx")
    }


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
    assert _files(fast, "t") == _files(ref, "t")  # the same frames, segments and index
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

"""The changelog of DISTINCT calls' multisets as chunks (state/multisets.py) against the sets
themselves: what a batch writes is what it added, the sets rewritten whole when their chunks
are too many, and the records (as compaction leaves them) restore the same sets."""

from __future__ import annotations

import pickle
from collections import Counter
from typing import Any

import pytest

from hispeed.state.multisets import (
    CHUNK_KIND,
    MAX_CHUNKS,
    Chunked,
    ChunkMissingError,
    MultisetChunks,
)


def _compacted(changelog: dict[bytes, bytes | None], batch: dict[bytes, bytes | None]) -> None:
    """A batch's records into the changelog as compaction leaves it (deleted keys go)."""
    for k, v in batch.items():
        if v is None:
            changelog.pop(k, None)
        else:
            changelog[k] = v


def _restored(changelog: dict[bytes, bytes | None], positions: list[int]) -> dict[Any, Any]:
    chunks = MultisetChunks(positions)
    states: dict[Any, Any] = {}
    for k, v in changelog.items():
        name = pickle.loads(k)
        if name[0] == CHUNK_KIND:
            chunks.restore(name, pickle.loads(v or b""))
        else:
            states[name] = pickle.loads(v or b"")
    chunks.assemble(states)
    assert not chunks.stale
    return states


def test_chunks_restore_the_sets_and_stay_bounded() -> None:
    """Two sets a state, values added batch by batch (many again and again): every
    batch's records, restored, give the sets; the changelog holds a bounded number of
    chunks and entries however many batches there were."""
    chunks = MultisetChunks([1, 2])
    changelog: dict[bytes, bytes | None] = {}
    state: list[Any] = [0, Counter(), Counter()]
    key = (("g",), None)
    for batch in range(3 * MAX_CHUNKS):
        new = [batch % 7, batch, batch + 1]  # 0..6 again and again
        state[1].update(new)
        state[2].update(new[:1])
        chunks.note_added(key, 1, new)
        chunks.note_added(key, 2, new[:1])
        state[0] += 1
        records: dict[bytes, bytes | None] = {}
        record = chunks.encode(key, state, records)
        records[pickle.dumps(key)] = pickle.dumps(record)
        _compacted(changelog, records)
        assert _restored(changelog, [1, 2]) == {key: state}, f"after batch {batch}"
        assert len(changelog) <= MAX_CHUNKS + 1
        entries = sum(
            sum(map(len, pickle.loads(v or b"").values()))
            for k, v in changelog.items()
            if pickle.loads(k)[0] == CHUNK_KIND
        )
        assert entries <= 2 * (len(state[1]) + len(state[2])) + 3 + 32


def test_a_group_unchanged_since_keeps_its_chunks() -> None:
    chunks = MultisetChunks([0])
    key = (("g",), None)
    records: dict[bytes, bytes | None] = {}
    chunks.note_added(key, 0, ["x"])
    assert chunks.encode(key, [Counter({"x": 1})], records) == [Chunked(1)]
    again: dict[bytes, bytes | None] = {}
    assert chunks.encode(key, [Counter({"x": 1})], again) == [Chunked(1)]
    assert again == {}


def test_a_record_whose_chunk_is_gone_is_refused() -> None:
    chunks = MultisetChunks([0])
    chunks.restore((CHUNK_KIND, (("g",), None), 0), {0: ["x"]})
    with pytest.raises(ChunkMissingError, match="chunk 1 of its distinct values"):
        chunks.assemble({(("g",), None): [Chunked(2)]})


def test_sets_written_whole_restore_and_orphan_chunks_are_deleted() -> None:
    """A state record that holds its set whole (as before chunks, or written by the record
    cache off since) restores as it is; the chunks left of it are deleted."""
    chunks = MultisetChunks([0])
    key = (("g",), None)
    chunks.restore((CHUNK_KIND, key, 0), {0: ["old"]})
    chunks.restore((CHUNK_KIND, (("gone",), None), 0), {0: ["old"]})
    states: dict[Any, Any] = {key: [Counter({"new": 2})]}
    chunks.assemble(states)
    assert states == {key: [Counter({"new": 2})]}
    records: dict[bytes, bytes | None] = {}
    chunks.flush_stale(records)
    assert records == {
        pickle.dumps((CHUNK_KIND, key, 0)): None,
        pickle.dumps((CHUNK_KIND, (("gone",), None), 0)): None,
    }
    # its next change writes the set whole, as chunk 0
    chunks.note_added(key, 0, ["more"])
    states[key][0].update(["more"])
    records = {}
    assert chunks.encode(key, states[key], records) == [Chunked(1)]
    assert pickle.loads(records[pickle.dumps((CHUNK_KIND, key, 0))] or b"") == {
        0: {"new": 2, "more": 1}
    }

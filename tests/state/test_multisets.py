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


def _unpickled(records: dict[bytes, bytes | None]) -> dict[Any, Any]:
    return {pickle.loads(k): None if v is None else pickle.loads(v) for k, v in records.items()}


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


def test_encoding_many_groups_at_once_writes_what_one_by_one_writes() -> None:
    """`encode_all` (the by-group path's, every changed group at once) writes the records
    and chunks `encode` writes group by group, also with values noted one by one before it
    and a group whose sets took nothing; restored, they give the sets."""
    one, many = MultisetChunks([0, 2]), MultisetChunks([0, 2])
    by_one: dict[bytes, bytes | None] = {}
    by_many: dict[bytes, bytes | None] = {}
    keys = [(("a",), None), (("b",), None), (("c",), None)]
    states_one = {k: [Counter(), 0, Counter()] for k in keys}
    states_many = {k: [Counter(), 0, Counter()] for k in keys}
    for batch in range(3 * MAX_CHUNKS):
        added: list[dict[int, list[Any]] | None] = []
        for i, key in enumerate(keys):
            new = {0: [batch % 5, batch], 2: [batch % 3]} if (batch + i) % 4 else None
            added.append(new)
            for states in (states_one[key], states_many[key]):
                states[1] += 1
                for p, values in (new or {}).items():
                    states[p].update(values)
            for p, values in (new or {}).items():
                one.note_added(key, p, values)
        many.note_added(keys[0], 0, ["early"])  # noted one by one before: joins the batch's
        one.note_added(keys[0], 0, ["early"])
        states_one[keys[0]][0].update(["early"])
        states_many[keys[0]][0].update(["early"])
        records_one: dict[bytes, bytes | None] = {}
        for key in keys:
            record = one.encode(key, states_one[key], records_one)
            records_one[pickle.dumps(key)] = pickle.dumps(record)
        records_many: dict[bytes, bytes | None] = {}
        sizes = [sum(map(len, a.values())) if a else 0 for a in added]
        encoded = many.encode_all(keys, [states_many[k] for k in keys], added, sizes, records_many)
        for key, record in zip(keys, encoded, strict=True):
            records_many[pickle.dumps(key)] = pickle.dumps(record)
        assert _unpickled(records_many) == _unpickled(records_one), f"batch {batch}"
        _compacted(by_one, records_one)
        _compacted(by_many, records_many)
        assert _restored(by_many, [0, 2]) == states_many == states_one

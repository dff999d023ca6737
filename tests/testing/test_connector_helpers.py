"""The helpers connector authors test with (`hispeed.testing.connectors`)."""

from __future__ import annotations

import json

import pytest

from hispeed.connectors.datagen import DataGen
from hispeed.testing.connectors import collect, sink_batch


def test_sink_batch_is_shaped_as_the_runner_makes_them() -> None:
    batch = sink_batch([{"ID": "a", "X": 1}, None], keys=["a", "b"], first_offset=5)
    assert batch.offsets == [5, 6]
    assert batch.keys == ["a", "b"]
    assert batch.rows == [{"ID": "a", "X": 1}, None]
    assert batch.timestamps[1] - batch.timestamps[0] == 1
    assert len(batch) == 2
    with pytest.raises(ValueError, match="1 keys for 2 rows"):
        sink_batch([{}, {}], keys=["a"])


def test_collect_resumes_a_source_after_its_position() -> None:
    first = collect(DataGen("g", {"generator": "rand", "rate": "1000", "limit": "3"}), 3)
    assert [r.position for r in first] == [0, 1, 2]
    config = {"generator": "rand", "rate": "1000", "limit": "6"}
    rest = collect(DataGen("g", config), 3, position=2)
    assert [r.position for r in rest] == [3, 4, 5]
    assert json.loads(rest[0].value or b"null") is not None


def test_collect_fails_when_the_records_do_not_come() -> None:
    with pytest.raises(AssertionError, match=r"2 of 3 records within 0\.5s"):
        collect(DataGen("g", {"generator": "rand", "rate": "1000", "limit": "2"}), 3, timeout=0.5)

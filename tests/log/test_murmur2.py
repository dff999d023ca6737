from __future__ import annotations

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hispeed.log.murmur2 import murmur2, murmur2_array, partition_for_key, partitions_for_keys

# Apache Kafka's own vectors (UtilsTest.testMurmur2): the Java client's murmur2 of these bytes.
KAFKA_VECTORS = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize(("key", "expected"), KAFKA_VECTORS.items())
def test_murmur2_matches_kafka(key: bytes, expected: int) -> None:
    assert murmur2(key) == expected


def test_vectorized_murmur2_matches_kafka() -> None:
    hashed = murmur2_array(pa.array(list(KAFKA_VECTORS), pa.binary()))
    assert hashed.tolist() == list(KAFKA_VECTORS.values())


@pytest.mark.parametrize(
    ("key", "partitions", "expected"),
    [
        # toPositive(murmur2(key)) % partitions, as Kafka's BuiltInPartitioner computes it
        (b"foobar", 50, (-790332482 & 0x7FFFFFFF) % 50),
        (b"foobar", 50, 16),
        (b"21", 6, (-973932308 & 0x7FFFFFFF) % 6),
        (b"abc", 12, 479470107 % 12),
        (b"a-little-bit-long-string", 3, (-985981536 & 0x7FFFFFFF) % 3),
    ],
)
def test_partition_for_key_matches_kafka(key: bytes, partitions: int, expected: int) -> None:
    assert partition_for_key(key, partitions) == expected
    assert partitions_for_keys(pa.array([key]), partitions).tolist() == [expected]


@given(st.lists(st.one_of(st.none(), st.binary(max_size=40)), max_size=200), st.integers(1, 64))
def test_vectorized_partitioner_agrees_with_reference(keys: list[bytes | None], n: int) -> None:
    got = partitions_for_keys(pa.array(keys, pa.binary()), n).tolist()
    assert got == [-1 if k is None else partition_for_key(k, n) for k in keys]


def test_vectorized_handles_sliced_and_string_arrays() -> None:
    keys = pa.array(["x", "foobar", "21", "abc"]).slice(1)
    assert murmur2_array(keys).tolist() == [KAFKA_VECTORS[b"foobar"], -973932308, 479470107]

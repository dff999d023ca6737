"""Kafka's default partitioner: murmur2 of the key bytes, so a key lands where Kafka puts it.

`partition = (murmur2(key) & 0x7fffffff) % partitions`, as in the Java client's
`Utils.toPositive(Utils.murmur2(keyBytes)) % numPartitions`.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import pyarrow as pa

_SEED = 0x9747B28C
_M = 0x5BD1E995
_MASK = 0xFFFFFFFF


def murmur2(data: bytes) -> int:
    """Hash one key as the Java client does; returns a signed 32-bit int (the reference path)."""
    length = len(data)
    h = (_SEED ^ length) & _MASK
    full = length & ~3
    for i in range(0, full, 4):
        k = data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24)
        k = (k * _M) & _MASK
        k ^= k >> 24
        k = (k * _M) & _MASK
        h = (h * _M) & _MASK
        h ^= k
    rest = length & 3
    if rest == 3:
        h ^= data[full + 2] << 16
    if rest >= 2:
        h ^= data[full + 1] << 8
    if rest >= 1:
        h ^= data[full]
        h = (h * _M) & _MASK
    h ^= h >> 13
    h = (h * _M) & _MASK
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def murmur2_array(keys: pa.Array) -> npt.NDArray[np.int32]:
    """Hash a whole binary column at once: keys of one length go through numpy together.

    Null keys hash to 0 here; callers place them separately.
    """
    n = len(keys)
    out = np.zeros(n, dtype=np.uint32)
    if n == 0:
        return out.view(np.int32)
    if keys.type != pa.binary():
        keys = keys.cast(pa.binary())
    buffers = keys.buffers()
    offsets = np.frombuffer(buffers[1], dtype=np.int32, count=n + 1, offset=keys.offset * 4)
    data = (
        np.frombuffer(buffers[2], dtype=np.uint8)
        if buffers[2] is not None
        else np.zeros(0, np.uint8)
    )
    starts = offsets[:-1].astype(np.int64)
    lengths = (offsets[1:] - offsets[:-1]).astype(np.int64)
    m = np.uint32(_M)
    for length in np.unique(lengths):
        idx = np.nonzero(lengths == length)[0]
        length = int(length)
        h = np.full(len(idx), (_SEED ^ length) & _MASK, dtype=np.uint32)
        if length:
            first = int(starts[idx[0]])
            if len(idx) == n and np.array_equal(starts, first + np.arange(n) * length):
                rows = data[first : first + n * length].reshape(n, length)
            else:
                rows = data[starts[idx][:, None] + np.arange(length, dtype=np.int64)]
        full = length & ~3
        if full:
            words = np.ascontiguousarray(rows[:, :full]).view("<u4")
            for i in range(full // 4):
                k = words[:, i] * m
                k ^= k >> np.uint32(24)
                k *= m
                h *= m
                h ^= k
        rest = length & 3
        if rest == 3:
            h ^= rows[:, full + 2].astype(np.uint32) << np.uint32(16)
        if rest >= 2:
            h ^= rows[:, full + 1].astype(np.uint32) << np.uint32(8)
        if rest >= 1:
            h ^= rows[:, full].astype(np.uint32)
            h *= m
        h ^= h >> np.uint32(13)
        h *= m
        h ^= h >> np.uint32(15)
        out[idx] = h
    return out.view(np.int32)


def partition_for_key(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner picks for a non-null key."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def partitions_for_keys(keys: pa.Array, partitions: int) -> npt.NDArray[np.int32]:
    """Vectorized `partition_for_key` over a binary column (null keys get -1)."""
    hashed = murmur2_array(keys).view(np.uint32) & np.uint32(0x7FFFFFFF)
    result = (hashed % np.uint32(partitions)).astype(np.int32)
    if keys.null_count:
        result[np.asarray(keys.is_null())] = -1
    return result

"""The compact payload of a small frame: a few records without Arrow IPC's fixed cost.

An Arrow IPC record-batch message costs about 600 bytes whatever it holds (the batch's
metadata, buffer descriptors, padding): for the one-record appends of many small producers
that is ten times the record. A frame of few records stores its payload as one MessagePack
array of columns instead (MessagePack's small integers and byte strings cost one or two bytes
of framing each, as the varints of Kafka's record batch do):

    [offset deltas | nil, timestamp deltas | nil, keys, values, headers | nil]

- offset deltas: each record's offset minus the frame's base offset; nil when they are
  0, 1, 2, ... (the usual case: compaction alone leaves gaps);
- timestamp deltas: the frame's max_ts (in its header) minus each record's timestamp; nil
  when every record has max_ts;
- keys, values: byte strings, nil for a null key or a tombstone;
- headers: per record nil or a list of [name, value | nil]; nil when no record has headers.

A single record with a key and a value costs 10 bytes beyond them, 54 with the frame header.
The frame header, its CRC32C and everything recovery does with frames are the same for both
payload kinds; the header's flags say which one a frame holds. Reads decode runs of compact
frames into one Arrow batch (`CompactRun`), so many small frames read as fast as a few big.
"""

from __future__ import annotations

import itertools
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa

from hispeed.log.records import HEADERS_TYPE, RECORD_SCHEMA

_Headers = list[tuple[str, bytes | None]]
_Payload = tuple[
    list[int] | None,
    list[int] | None,
    list[bytes | None],
    list[bytes | None],
    list[_Headers | None] | None,
]
_encoder = msgspec.msgpack.Encoder()
_decoder = msgspec.msgpack.Decoder(_Payload)


class CompactFrameError(ValueError):
    """A compact payload that does not decode, or disagrees with its frame's header."""


def encode_compact(batch: pa.RecordBatch, base: int, max_ts: int) -> bytes:
    """The compact payload of a batch of RECORD_SCHEMA (its frame starts at `base`, and its
    newest timestamp is `max_ts`)."""
    n = batch.num_rows
    offsets: list[int] = batch.column(0).to_pylist()
    offset_deltas = None if offsets[-1] - base == n - 1 else [o - base for o in offsets]
    stamps: list[int] = batch.column(1).to_pylist()
    stamp_deltas = None if all(t == max_ts for t in stamps) else [max_ts - t for t in stamps]
    headers_col = batch.column(4)
    headers: list[_Headers | None] | None = None
    if headers_col.null_count != n:
        headers = [
            None if hs is None else [(h["key"], h["value"]) for h in hs]
            for hs in headers_col.to_pylist()
        ]
    return _encoder.encode(
        (
            offset_deltas,
            stamp_deltas,
            batch.column(2).to_pylist(),
            batch.column(3).to_pylist(),
            headers,
        )
    )


def encode_compact_lists(keys: list[bytes | None], values: list[bytes | None]) -> bytes:
    """`encode_compact` of a batch of these keys and values, with consecutive offsets, one
    timestamp (its frame's max_ts) and no headers."""
    return _encoder.encode((None, None, keys, values, None))


class CompactRun:
    """The records of consecutive compact frames, gathered to become one Arrow batch."""

    def __init__(self) -> None:
        self.offsets: list[int] = []
        self.stamps: list[int] = []
        self.keys: list[bytes | None] = []
        self.values: list[bytes | None] = []
        self.headers: list[_Headers | None] = []
        self.any_headers = False

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, payload: Any, base: int, last: int, count: int, max_ts: int) -> None:
        """Decode one frame's payload and check it against its header (its CRC32C passed)."""
        try:
            offset_deltas, stamp_deltas, keys, values, headers = _decoder.decode(payload)
        except msgspec.DecodeError as e:
            raise CompactFrameError(f"undecodable compact frame ({e})") from None
        n = len(keys)
        if n != count or len(values) != n or n == 0:
            raise CompactFrameError(f"compact frame holds {n} records; its header says {count}")
        if offset_deltas is None:
            offsets = list(range(base, base + n))
        else:
            if len(offset_deltas) != n or offset_deltas[0] != 0:
                raise CompactFrameError("compact frame's offsets disagree with its header")
            offsets = [base + d for d in offset_deltas]
            if any(b <= a for a, b in itertools.pairwise(offsets)):
                raise CompactFrameError("compact frame's offsets do not increase")
        if offsets[-1] != last:
            raise CompactFrameError(
                f"compact frame ends at offset {offsets[-1]}; its header says {last}"
            )
        if stamp_deltas is None:
            stamps = [max_ts] * n
        else:
            if len(stamp_deltas) != n or min(stamp_deltas) < 0:
                raise CompactFrameError("compact frame's timestamps disagree with its header")
            stamps = [max_ts - d for d in stamp_deltas]
        if headers is not None and len(headers) != n:
            raise CompactFrameError("compact frame's headers disagree with its records")
        # all checked: only now does the run take the records
        if headers is None:
            self.headers += [None] * n
        else:
            self.headers += headers
            self.any_headers = True
        self.offsets += offsets
        self.stamps += stamps
        self.keys += keys
        self.values += values

    def to_batch(self) -> pa.RecordBatch:
        """The gathered records as one batch of RECORD_SCHEMA."""
        n = len(self.keys)
        if self.any_headers:
            headers = pa.array(
                [
                    None if hs is None else [{"key": k, "value": v} for k, v in hs]
                    for hs in self.headers
                ],
                HEADERS_TYPE,
            )
        else:
            headers = pa.nulls(n, HEADERS_TYPE)
        return pa.RecordBatch.from_arrays(
            [
                pa.array(np.array(self.offsets, dtype=np.int64)),
                pa.array(np.array(self.stamps, dtype=np.int64)),
                pa.array(self.keys, pa.binary()),
                pa.array(self.values, pa.binary()),
                headers,
            ],
            schema=RECORD_SCHEMA,
        )


def compact_span(payload: Any) -> tuple[int, int]:
    """(records, last offset minus the base offset) of a compact payload, from its bytes
    alone: what recovery asks when the frame's header is damaged."""
    offset_deltas, _stamps, keys, values, _headers = _decoder.decode(payload)
    n = len(keys)
    if n == 0 or len(values) != n or (offset_deltas is not None and len(offset_deltas) != n):
        raise CompactFrameError("compact payload's columns disagree")
    return n, (n - 1 if offset_deltas is None else offset_deltas[-1])


def decode_compact(payload: Any, base: int, last: int, count: int, max_ts: int) -> pa.RecordBatch:
    """One compact frame's records as a batch of RECORD_SCHEMA."""
    run = CompactRun()
    run.add(payload, base, last, count, max_ts)
    return run.to_batch()

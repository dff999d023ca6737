"""Segment files: record batches framed with length and CRC32C, plus a sparse index.

A segment file is a run of frames. Each frame is a payload behind a 44-byte header. The
payload is one Arrow IPC record-batch message (no schema: the schema is fixed,
`RECORD_SCHEMA`), or, for a frame of at most `COMPACT_MAX_RECORDS` records, the compact
encoding of `_compact.py` (about 10 bytes beyond each record's key and value where Arrow IPC
costs some 600 a frame); the header's flags say which. The header:

    magic    4s   b"HSF1"
    length   u32  payload bytes
    crc      u32  CRC32C of header[12:44] + payload
    base     i64  first offset in the frame
    last     i64  last offset in the frame
    count    u32  records in the frame
    max_ts   i64  largest timestamp in the frame (ms)
    flags    u32  0: Arrow IPC payload; 1 (FLAG_COMPACT): compact payload; others invalid

The index file beside it holds (frame base offset, byte position, running max timestamp)
every `index.interval.bytes` or more, so a read seeks near its offset and scans few headers.
The index of the active segment is rebuilt on recovery; a closed segment's is trusted when
it is consistent with the file and rebuilt otherwise.

Damage. Recovery tells a torn tail from a damaged frame. A torn tail is the last append cut
short by a crash: fewer bytes than a header, a header whose length runs past the end of the
file, or a header whose payload never reached the disk (zeros); it was never acknowledged
under the fsync policy, and recovery cuts it off. Anything else that fails its framing or its
CRC32C is a damaged frame (a complete frame that was acknowledged): it is never cut off. When
only its magic or length field is damaged and the CRC32C still verifies the rest, recovery
rewrites those 8 bytes and nothing is lost. Otherwise the bytes stay where they are as a
`Damage`, with the exact offsets they held (those between the good frames around them); the
partition reserves those offsets (appends go on after them, so no offset is ever given twice)
and a read that reaches them raises `CorruptLogError` naming the file, the byte and the
offsets, while a read that starts past them goes on. `Segment.repair` moves damaged bytes
into a quarantine file beside the segment.
"""

from __future__ import annotations

import bisect
import contextlib
import logging
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import crc32c
import pyarrow as pa

from hispeed.errors import CorruptLogError
from hispeed.log._compact import (
    CompactFrameError,
    CompactRun,
    compact_span,
    decode_compact,
    encode_compact,
    encode_compact_lists,
)
from hispeed.log.records import RECORD_SCHEMA

log = logging.getLogger(__name__)

MAGIC = b"HSF1"
HEADER = struct.Struct("<4sIIqqIqI")
HEADER_SIZE = HEADER.size
#: the header's parts: length and CRC32C, then what the CRC32C covers with the payload
_SIZE_CRC = struct.Struct("<II")
_TAIL = struct.Struct("<qqIqI")
INDEX_ENTRY = struct.Struct("<qqq")
#: the flag of a frame whose payload is compact (`_compact.py`), not Arrow IPC
FLAG_COMPACT = 1
#: frames of at most this many records are written compact: below it Arrow IPC's fixed cost
#: (about 600 bytes) outweighs the records; above it Arrow IPC reads with no per-record work
COMPACT_MAX_RECORDS = 64
#: the most records a read gathers from consecutive compact frames into one batch
RUN_MAX_RECORDS = 8192

_SCHEMA_PREFIX = len(RECORD_SCHEMA.serialize())


@dataclass(frozen=True, slots=True)
class FrameHeader:
    position: int
    length: int
    crc: int
    base: int
    last: int
    count: int
    max_ts: int
    flags: int = 0

    @property
    def compact(self) -> bool:
        return bool(self.flags & FLAG_COMPACT)

    @property
    def end(self) -> int:
        """Byte position just past this frame."""
        return self.position + HEADER_SIZE + self.length


def encode_frame(batch: pa.RecordBatch, compression: str | None) -> tuple[bytes, pa.Buffer | bytes]:
    """Serialize a batch (RECORD_SCHEMA, at least one row) into (header, payload): compact
    when it has at most COMPACT_MAX_RECORDS records, Arrow IPC (compressed as the topic
    says) otherwise."""
    offsets = batch.column(0)
    base = offsets[0].as_py()
    last = offsets[len(offsets) - 1].as_py()
    max_ts = pa.compute.max(batch.column(1)).as_py()
    payload: pa.Buffer | bytes
    if batch.num_rows <= COMPACT_MAX_RECORDS:
        flags = FLAG_COMPACT
        payload = encode_compact(batch, base, max_ts)
    else:
        flags = 0
        sink = pa.BufferOutputStream()
        options = pa.ipc.IpcWriteOptions(compression=compression)
        with pa.ipc.new_stream(sink, RECORD_SCHEMA, options=options) as writer:
            writer.write_batch(batch)
        whole = sink.getvalue()
        # The stream is schema + batch + end-of-stream marker (8 bytes); keep the batch message.
        payload = whole.slice(_SCHEMA_PREFIX, whole.size - _SCHEMA_PREFIX - 8)
    return frame_header(payload, base, last, batch.num_rows, max_ts, flags), payload


def frame_header(
    payload: bytes | pa.Buffer, base: int, last: int, count: int, max_ts: int, flags: int
) -> bytes:
    """The header of a frame holding `payload` (its CRC32C over the header's tail and it)."""
    size = len(payload)
    tail = _TAIL.pack(base, last, count, max_ts, flags)
    crc = crc32c.crc32c(payload, value=crc32c.crc32c(tail))
    return MAGIC + _SIZE_CRC.pack(size, crc) + tail


def encode_lists(
    keys: list[bytes | None], values: list[bytes | None], base: int, timestamp: int
) -> bytes:
    """Records of one timestamp and no headers as one compact frame, header and payload, the
    bytes `encode_frame` gives for such a batch of at most COMPACT_MAX_RECORDS, with no Arrow
    on the way."""
    payload = encode_compact_lists(keys, values)
    n = len(keys)
    return frame_header(payload, base, base + n - 1, n, timestamp, FLAG_COMPACT) + payload


def decode_payload(payload: bytes | pa.Buffer) -> pa.RecordBatch:
    """An Arrow IPC payload's batch."""
    message = pa.ipc.read_message(pa.py_buffer(payload))
    return pa.ipc.read_record_batch(message, RECORD_SCHEMA)


def decode_frame(header: FrameHeader, payload: bytes | pa.Buffer) -> pa.RecordBatch:
    """A frame's batch, whichever kind of payload it holds (its CRC already checked)."""
    if header.compact:
        return decode_compact(payload, header.base, header.last, header.count, header.max_ts)
    return decode_payload(payload)


def _parse_header(raw: bytes | memoryview, position: int) -> FrameHeader | None:
    """The header at `position`, or None when the bytes are not a frame header."""
    if len(raw) < HEADER_SIZE:
        return None
    magic, length, crc, base, last, count, max_ts, flags = HEADER.unpack_from(raw)
    if magic != MAGIC or last < base or count == 0 or count > last - base + 1:
        return None
    if flags & ~FLAG_COMPACT:
        return None
    return FrameHeader(position, length, crc, base, last, count, max_ts, flags)


def _crc_ok(header_raw: bytes, payload: bytes, crc: int) -> bool:
    return crc32c.crc32c(payload, value=crc32c.crc32c(header_raw[12:HEADER_SIZE])) == crc


@dataclass(frozen=True, slots=True)
class Damage:
    """Bytes of a segment that are not whole, checksummed frames, and the offsets they held."""

    position: int  # the first damaged byte (where a frame should have started)
    end: int  # the byte just past them: the next good frame, or the end of the file
    first_offset: int
    #: the last offset they may hold; None when only the next segment's base bounds it
    last_offset: int | None
    reason: str
    #: False when the offsets are an upper bound from the bytes (the frame's own are unreadable)
    exact: bool = True

    def error(self, path: Path) -> CorruptLogError:
        return CorruptLogError(
            str(path), self.position, self.reason, self.first_offset, last_offset=self.last_offset
        )

    def bounded(self, upper: int | None) -> Damage:
        """This damage with its last offset bounded by the next segment's base, if unknown."""
        if self.last_offset is not None or upper is None:
            return self
        return Damage(self.position, self.end, self.first_offset, upper - 1, self.reason)


_CHUNK = 1 << 20
#: frames smaller than this are written from one joined buffer rather than with writev
_JOIN_BELOW = 4096


class _ReadAhead:
    """Reads of a segment's bytes served from one read of the next 64 KiB: a run of small
    frames costs a system call per 64 KiB rather than two per frame. One per walk (readers
    share the segment); only bytes below `size` (whole frames, never rewritten) are read."""

    __slots__ = ("_buffer", "_fd", "_size", "_start")

    def __init__(self, fd: int, size: int) -> None:
        self._fd, self._size = fd, size
        self._buffer = memoryview(b"")
        self._start = 0

    def read(self, n: int, position: int) -> memoryview:
        """Up to `n` bytes at `position` (fewer only at the end of the file)."""
        offset = position - self._start
        if offset < 0 or offset + n > len(self._buffer):
            want = max(n, min(_READ_AHEAD, self._size - position))
            self._buffer = memoryview(os.pread(self._fd, want, position))
            self._start, offset = position, 0
        return self._buffer[offset : offset + n]


_READ_AHEAD = 64 * 1024


def _run_header(headers: list[FrameHeader]) -> FrameHeader:
    """One header spanning consecutive frames (what a read reports for a run of them)."""
    first, last = headers[0], headers[-1]
    return FrameHeader(
        first.position,
        last.end - first.position - HEADER_SIZE,
        0,
        first.base,
        last.last,
        sum(h.count for h in headers),
        max(h.max_ts for h in headers),
        FLAG_COMPACT,
    )


class Segment:
    """One segment file of a partition, named by the first offset it may hold."""

    def __init__(self, path: Path, index_interval: int = 4096) -> None:
        self.path = path
        self.index_path = path.with_suffix(".idx")
        self.base_offset = int(path.stem)
        self.index_interval = index_interval
        self.size = 0
        self.next_offset = self.base_offset
        self.max_timestamp = -1
        self.frames = 0
        self._index_offsets: list[int] = []
        self._index_positions: list[int] = []
        self._index_max_ts: list[int] = []
        self._last_indexed_position = -(1 << 62)
        self._fd = -1
        self._write_fd = -1
        self._index_file: object | None = None
        #: damage found when the segment was opened, by position
        self.damages: dict[int, Damage] = {}

    # -- opening ------------------------------------------------------------------------

    @classmethod
    def create(cls, directory: Path, base_offset: int, index_interval: int = 4096) -> Segment:
        seg = cls(directory / f"{base_offset:020d}.seg", index_interval)
        seg.path.touch(exist_ok=False)
        seg.index_path.write_bytes(b"")
        seg._open_fds(writable=True)
        return seg

    @classmethod
    def open(cls, path: Path, *, active: bool, index_interval: int = 4096) -> Segment:
        seg = cls(path, index_interval)
        seg._open_fds(writable=active)
        seg.size = os.fstat(seg._fd).st_size
        if active:
            seg._recover()
        elif not seg._load_index():
            seg._rebuild_index(verify=False)
        return seg

    @property
    def damaged(self) -> bool:
        """Whether opening found damaged frames in this segment (reads may find more)."""
        return bool(self.damages)

    def _open_fds(self, writable: bool) -> None:
        self._fd = os.open(self.path, os.O_RDONLY)
        if writable:
            self._write_fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
            self._index_file = open(self.index_path, "ab")  # noqa: SIM115 (lives with the segment)

    def _load_index(self) -> bool:
        """Read the index file; False when it is missing or disagrees with the segment file."""
        try:
            raw = self.index_path.read_bytes()
        except FileNotFoundError:
            return False
        if len(raw) % INDEX_ENTRY.size or (self.size and not raw):
            return False
        entries = list(INDEX_ENTRY.iter_unpack(raw))
        positions = [p for _, p, _ in entries]
        if positions != sorted(positions) or (positions and positions[-1] >= self.size):
            return False
        self._index_offsets = [o for o, _, _ in entries]
        self._index_positions = positions
        self._index_max_ts = [t for _, _, t in entries]
        # Headers after the last index entry give the segment's end and newest timestamp.
        position = positions[-1] if positions else 0
        self.max_timestamp = self._index_max_ts[-1] if entries else -1
        if positions:
            self._last_indexed_position = positions[-1]
        while position < self.size:
            header = self._read_header(position)
            if header is None or header.end > self.size:
                return False
            self.next_offset = header.last + 1
            self.max_timestamp = max(self.max_timestamp, header.max_ts)
            self.frames += 1
            position = header.end
        return True

    def _rebuild_index(self, verify: bool) -> None:
        """Scan every frame to rebuild the index, noting damage and passing over it.

        With verify (the active segment on recovery), check every CRC, cut a torn tail, and
        restore a frame whose only damage is its magic or length field.
        """
        self._index_offsets, self._index_positions, self._index_max_ts = [], [], []
        self._last_indexed_position = -(1 << 62)
        self.next_offset, self.max_timestamp, self.frames = self.base_offset, -1, 0
        self.damages = {}
        position = 0
        prev_last = self.base_offset - 1
        while position < self.size:
            raw = os.pread(self._fd, HEADER_SIZE, position)
            header = _parse_header(raw, position)
            problem = self._frame_problem(header, prev_last, self.size)
            if problem is None and verify:
                assert header is not None
                payload = os.pread(self._fd, header.length, position + HEADER_SIZE)
                if not _crc_ok(raw, payload, header.crc):
                    problem = "CRC32C mismatch"
            if problem is None:
                assert header is not None
                self._note_frame(header)
                prev_last = header.last
                position = header.end
                continue
            following = self._next_good_frame(position + 1, prev_last + 1, self.size)
            region_end = following.position if following else self.size
            if verify and self._restore_header(position, region_end):
                continue  # read the frame again, now whole
            if verify and following is None and self._is_torn(position):
                self._truncate_torn_tail(position, problem)
                break
            if following is not None:
                damage = Damage(position, region_end, prev_last + 1, following.base - 1, problem)
            elif verify:  # the active segment's tail: nothing after it bounds its offsets
                last, exact = self._tail_offsets(position, prev_last + 1)
                damage = Damage(position, region_end, prev_last + 1, last, problem, exact)
            else:
                damage = Damage(position, region_end, prev_last + 1, None, problem)
            self.damages[position] = damage
            if damage.last_offset is not None:
                prev_last = max(prev_last, damage.last_offset)
                self.next_offset = prev_last + 1
            position = region_end
        if self._write_fd >= 0:
            self._rewrite_index_file()

    @staticmethod
    def _frame_problem(header: FrameHeader | None, prev_last: int, size: int) -> str | None:
        """What is wrong with a frame's header where a frame must start, or None."""
        if header is None:
            return "bad frame header"
        if header.end > size:
            return f"frame of {header.length} bytes runs past the end of the file"
        if header.base <= prev_last:
            return f"offset {header.base} goes backwards (expected > {prev_last})"
        return None

    def _recover(self) -> None:
        self._rebuild_index(verify=True)

    def _next_good_frame(self, start: int, min_base: int, size: int) -> FrameHeader | None:
        """The first whole, checksummed frame at or after byte `start` with offsets from
        `min_base`: where good data resumes after damage."""
        at = start
        while at < size:
            chunk = os.pread(self._fd, min(_CHUNK, size - at) + len(MAGIC) - 1, at)
            found = chunk.find(MAGIC)
            while found >= 0:
                header = self._read_header(at + found)
                if header is not None and header.base >= min_base and header.end <= size:
                    raw = os.pread(self._fd, HEADER_SIZE + header.length, header.position)
                    if _crc_ok(raw[:HEADER_SIZE], raw[HEADER_SIZE:], header.crc):
                        return header
                found = chunk.find(MAGIC, found + 1)
            at += _CHUNK
        return None

    def _restore_header(self, position: int, end: int) -> bool:
        """Rewrite the magic and length of the frame in [position, end) when they are all that
        is damaged: its CRC32C, which covers everything else, proves the rest whole."""
        if end - position < HEADER_SIZE:
            return False
        raw = os.pread(self._fd, end - position, position)
        magic, length, crc = struct.unpack_from("<4sII", raw)
        if (magic, length) == (MAGIC, end - position - HEADER_SIZE):
            return False
        if not _crc_ok(raw[:HEADER_SIZE], raw[HEADER_SIZE:], crc):
            return False
        if _parse_header(MAGIC + raw[4:HEADER_SIZE], position) is None:
            return False
        fixed = MAGIC + struct.pack("<I", end - position - HEADER_SIZE)
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.pwrite(fd, fixed, position)
            os.fsync(fd)
        finally:
            os.close(fd)
        log.warning(
            "%s: restored the damaged magic/length field of the frame at byte %d "
            "(its CRC32C verifies the rest); nothing was lost",
            self.path,
            position,
        )
        return True

    def _is_torn(self, position: int) -> bool:
        """Whether the bytes from `position` to the end are an append cut short by a crash:
        shorter than a header, shorter than the header's length says, or a header whose
        payload never reached the disk. A complete frame that fails its CRC is not torn."""
        region = os.pread(self._fd, self.size - position, position)
        if len(region) < HEADER_SIZE or not any(region[HEADER_SIZE:]):
            return True
        magic, length = struct.unpack_from("<4sI", region)
        return bool(magic == MAGIC and HEADER_SIZE + length > len(region))

    def _tail_offsets(self, position: int, first: int) -> tuple[int, bool]:
        """The last offset a damaged last frame held, and whether it is exact.

        The payload (when it still decodes) or the header (when its fields agree with
        themselves) say it; a single damaged byte spares one or the other (a compact payload
        holds offsets relative to the base: with the header's base or last, whichever fits
        the frames before). Failing both, an
        upper bound from the frame's size (16 bytes at least per uncompressed Arrow record,
        3 per compact one).
        """
        region = os.pread(self._fd, self.size - position, position)
        candidates = []
        with contextlib.suppress(Exception):  # damaged bytes may fail to decode in any way
            offsets = decode_payload(region[HEADER_SIZE:]).column(0).to_pylist()
            if offsets and offsets[0] >= first and offsets == sorted(set(offsets)):
                candidates.append(offsets[-1])
        if len(region) >= HEADER_SIZE:
            _m, _l, _c, base, last, count, _t, flags = HEADER.unpack_from(region)
            if base >= first and 0 < count == last - base + 1 < (1 << 31):
                candidates.append(last)
            if not candidates:  # a damaged field: a compact payload knows its own span
                with contextlib.suppress(Exception):  # (damaged bytes fail in any way)
                    n, span = compact_span(region[HEADER_SIZE:])
                    if base == first:  # ...from an intact base (frames follow each other)
                        candidates.append(base + span)
                    elif count == n and last - span >= first:  # ...or to an intact last
                        candidates.append(last)
        else:
            flags = -1
        if candidates:
            return max(candidates), True
        # an uncompressed Arrow record takes 16 bytes at least, a compact one 3 (a null key
        # and an empty value): unless the flags say Arrow, bound by the smaller
        smallest = 16 if flags == 0 else 3
        return first + max(len(region) - HEADER_SIZE, smallest) // smallest - 1, False

    def _truncate_torn_tail(self, position: int, problem: str) -> None:
        log.warning(
            "%s: truncating a torn tail of %d bytes at byte %d (%s): an append cut short by a "
            "crash, from offset %d, which was never acknowledged under the fsync policy",
            self.path,
            self.size - position,
            position,
            problem,
            self.next_offset,
        )
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, position)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.size = position
        if self._write_fd >= 0:
            self._rewrite_index_file()

    def _rewrite_index_file(self) -> None:
        assert self._index_file is not None
        self._index_file.close()  # type: ignore[attr-defined]
        with open(self.index_path, "wb") as f:
            for entry in zip(
                self._index_offsets, self._index_positions, self._index_max_ts, strict=True
            ):
                f.write(INDEX_ENTRY.pack(*entry))
        self._index_file = open(self.index_path, "ab")  # noqa: SIM115

    # -- writing ------------------------------------------------------------------------

    def _note_frame(self, header: FrameHeader) -> bool:
        """Track a frame that now ends the segment; True when it got an index entry."""
        return self._note(header.position, header.base, header.last, header.max_ts)

    def _note(self, position: int, base: int, last: int, max_ts: int) -> bool:
        self.next_offset = last + 1
        if max_ts > self.max_timestamp:
            self.max_timestamp = max_ts
        self.frames += 1
        if position - self._last_indexed_position >= self.index_interval:
            self._index_offsets.append(base)
            self._index_positions.append(position)
            self._index_max_ts.append(self.max_timestamp)
            self._last_indexed_position = position
            return True
        return False

    def append(self, header: bytes, payload: bytes | pa.Buffer) -> None:
        """Write one encoded frame (made by `encode_frame`) at the end of the
        segment."""
        total = len(header) + len(payload)
        if type(payload) is bytes and total <= _JOIN_BELOW:  # one copy is cheaper than writev
            written = os.write(self._write_fd, header + payload)
        else:
            written = os.writev(self._write_fd, [header, payload])
        if written != total:  # a short write leaves a torn tail; recovery removes it
            raise OSError(f"short write to {self.path}: {written} of {total} bytes")
        # (the header is ours, checked when made: only its fields are read back)
        _magic, _length, _crc, base, last, _count, max_ts, _flags = HEADER.unpack(header)
        position = self.size
        self.size += total
        if self._note(position, base, last, max_ts):
            assert self._index_file is not None
            self._index_file.write(  # type: ignore[attr-defined]
                INDEX_ENTRY.pack(base, position, self.max_timestamp)
            )

    def append_frame(self, frame: bytes, base: int, last: int, max_ts: int) -> None:
        """`append` of a whole frame made by `encode_lists` (header and payload joined), whose
        fields the caller gives."""
        written = os.write(self._write_fd, frame)
        if written != len(frame):  # a short write leaves a torn tail; recovery removes it
            raise OSError(f"short write to {self.path}: {written} of {len(frame)} bytes")
        position = self.size
        self.size += written
        if self._note(position, base, last, max_ts):
            assert self._index_file is not None
            self._index_file.write(  # type: ignore[attr-defined]
                INDEX_ENTRY.pack(base, position, self.max_timestamp)
            )

    def fsync(self) -> None:
        if self._write_fd >= 0:
            os.fsync(self._write_fd)

    def seal(self) -> None:
        """Stop writing: flush and fsync the index, close the write handles."""
        if self._write_fd >= 0:
            assert self._index_file is not None
            self._index_file.flush()  # type: ignore[attr-defined]
            os.fsync(self._index_file.fileno())  # type: ignore[attr-defined]
            self._index_file.close()  # type: ignore[attr-defined]
            os.fsync(self._write_fd)
            os.close(self._write_fd)
            self._write_fd = -1
            self._index_file = None

    def close(self) -> None:
        if self._write_fd >= 0:
            assert self._index_file is not None
            self._index_file.close()  # type: ignore[attr-defined]
            os.close(self._write_fd)
            self._write_fd = -1
            self._index_file = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def delete(self) -> None:
        """Remove the files. Open descriptors stay valid for readers until the object goes."""
        self.path.unlink(missing_ok=True)
        self.index_path.unlink(missing_ok=True)

    def __del__(self) -> None:
        if "_write_fd" not in self.__dict__:
            return  # __init__ failed before any file was opened
        with contextlib.suppress(OSError):
            self.close()

    # -- reading ------------------------------------------------------------------------

    def _read_header(self, position: int) -> FrameHeader | None:
        return _parse_header(os.pread(self._fd, HEADER_SIZE, position), position)

    def frames_from(self, offset: int, size: int | None = None) -> Iterator[FrameHeader]:
        """Headers of the frames that hold offsets >= `offset`, first to last (unchecked)."""
        for header, _ in self._walk(offset, size, None, read=False):
            yield header

    def batches(
        self,
        offset: int,
        size: int | None = None,
        upper: int | None = None,
        max_records: int | None = None,
    ) -> Iterator[tuple[FrameHeader, pa.RecordBatch]]:
        """(header, batch) of the frames holding offsets >= `offset`, each checked.

        Consecutive compact frames come as one batch (up to RUN_MAX_RECORDS records, or
        `max_records` when the caller wants no more), under a header that spans them.
        Damage holding only offsets below `offset` is passed over; damage that may hold
        `offset` or later raises `CorruptLogError` with its offsets, after the batch of the
        good frames before it. `upper` is the next segment's base offset, which bounds damage
        at the end of this one.
        """
        for header, batch in self._walk(offset, size, upper, read=True, max_records=max_records):
            assert batch is not None
            yield header, batch

    def _walk(
        self,
        offset: int,
        size: int | None,
        upper: int | None,
        *,
        read: bool,
        max_records: int | None = None,
    ) -> Iterator[tuple[FrameHeader, pa.RecordBatch | None]]:
        size = self.size if size is None else size
        run_limit = min(RUN_MAX_RECORDS, max_records or RUN_MAX_RECORDS)
        i = bisect.bisect_right(self._index_offsets, offset) - 1
        if i >= 0:  # the index entry's frame starts at its offset: all below is accounted for
            position, prev_last = self._index_positions[i], self._index_offsets[i] - 1
        else:
            position, prev_last = 0, self.base_offset - 1
        run = CompactRun()
        run_headers: list[FrameHeader] = []
        ahead = _ReadAhead(self._fd, size)  # small frames: one read for many
        #: the frame last passed over on its header alone (and the offset before it): a
        #: damaged length there (the CRC32C does not cover it) sends the walk to a wrong
        #: position, so a problem right after it is traced back to it
        passed: tuple[FrameHeader, int] | None = None
        while position < size:
            header = _parse_header(ahead.read(HEADER_SIZE, position), position)
            problem = self._frame_problem(header, prev_last, size)
            if problem is None:
                assert header is not None
                if header.last < offset:
                    passed = (header, prev_last)
                    prev_last, position = header.last, header.end
                    continue
                passed = None
                if not read:
                    yield header, None
                    prev_last, position = header.last, header.end
                    continue
                if header.compact:
                    problem = self._add_compact(run, header, ahead)
                    if problem is None:
                        run_headers.append(header)
                        prev_last, position = header.last, header.end
                        if len(run) >= run_limit:
                            yield _run_header(run_headers), run.to_batch()
                            run, run_headers = CompactRun(), []
                        continue
                else:
                    if run_headers:
                        yield _run_header(run_headers), run.to_batch()
                        run, run_headers = CompactRun(), []
                    batch, problem = self._checked(header)
                    if batch is not None:
                        yield header, batch
                        prev_last, position = header.last, header.end
                        continue
            assert problem is not None
            if passed is not None and not self._crc_holds(passed[0]):
                wrong, prev_last = passed
                position, problem = wrong.position, "CRC32C mismatch"
            passed = None
            if run_headers:  # the good records before the damage first
                yield _run_header(run_headers), run.to_batch()
                run, run_headers = CompactRun(), []
            damage = self.damage_at(position, prev_last, size, problem).bounded(upper)
            if damage.last_offset is None or damage.last_offset >= offset:
                raise damage.error(self.path)
            prev_last, position = max(prev_last, damage.last_offset), damage.end
        if run_headers:
            yield _run_header(run_headers), run.to_batch()

    def _add_compact(self, run: CompactRun, header: FrameHeader, ahead: _ReadAhead) -> str | None:
        """Check a compact frame and add its records to `run`; what is wrong, or None."""
        raw = ahead.read(HEADER_SIZE + header.length, header.position)
        if len(raw) != HEADER_SIZE + header.length:
            return "frame cut short"
        view = memoryview(raw)
        if not _crc_ok(raw, view[HEADER_SIZE:], header.crc):  # type: ignore[arg-type]
            return "CRC32C mismatch"
        try:
            run.add(view[HEADER_SIZE:], header.base, header.last, header.count, header.max_ts)
        except CompactFrameError as e:
            return str(e)
        return None

    def damage_at(self, position: int, prev_last: int, size: int, problem: str) -> Damage:
        """The damage starting at byte `position`, after a frame ending at offset `prev_last`."""
        known = self.damages.get(position)
        if known is not None:
            return known
        following = self._next_good_frame(position + 1, prev_last + 1, size)
        if following is None:
            return Damage(position, size, prev_last + 1, None, problem)
        return Damage(position, following.position, prev_last + 1, following.base - 1, problem)

    def _crc_holds(self, header: FrameHeader) -> bool:
        """Whether the frame's bytes, as long as its header says, match its CRC32C."""
        raw = os.pread(self._fd, HEADER_SIZE + header.length, header.position)
        if len(raw) != HEADER_SIZE + header.length:
            return False
        return _crc_ok(raw[:HEADER_SIZE], raw[HEADER_SIZE:], header.crc)

    def _checked(self, header: FrameHeader) -> tuple[pa.RecordBatch | None, str | None]:
        """The frame's batch after checking its CRC and decoding it, or what is wrong."""
        # the payload goes straight into a buffer of Arrow's own (64-byte aligned): decoded
        # at the header's 44-byte offset, every column would sit misaligned, and Arrow's
        # compute (compaction's group_by) warns and copies on each batch
        head = bytearray(HEADER_SIZE)
        body = pa.allocate_buffer(header.length)
        got = os.preadv(self._fd, [head, memoryview(body)], header.position)
        if got != HEADER_SIZE + header.length:
            return None, "frame cut short"
        if not _crc_ok(bytes(head), memoryview(body), header.crc):  # type: ignore[arg-type]
            return None, "CRC32C mismatch"
        try:
            return decode_frame(header, body), None
        except CompactFrameError as e:
            return None, str(e)
        except (pa.ArrowInvalid, OSError) as e:
            return None, f"undecodable record batch ({e})"

    def read_frame(self, header: FrameHeader) -> pa.RecordBatch:
        """The frame's batch, after checking its CRC."""
        batch, problem = self._checked(header)
        if batch is None:
            assert problem is not None
            raise CorruptLogError(
                str(self.path), header.position, problem, header.base, last_offset=header.last
            )
        return batch

    def verify(self, upper: int | None = None) -> int:
        """Check every frame's CRC and decode it; returns the records found."""
        return sum(batch.num_rows for _, batch in self.batches(-1, upper=upper))

    # -- repairing ----------------------------------------------------------------------

    def find_damage(self, upper: int | None, restore: bool = False) -> list[Damage]:
        """Every damaged run of bytes, found by checking and decoding every frame; with
        restore, frames whose only damage is their magic or length field are mended."""
        found: list[Damage] = []
        position, prev_last = 0, self.base_offset - 1
        while position < self.size:
            header = self._read_header(position)
            problem = self._frame_problem(header, prev_last, self.size)
            if problem is None:
                assert header is not None
                batch, problem = self._checked(header)
                if batch is not None:
                    prev_last, position = header.last, header.end
                    continue
            assert problem is not None
            damage = self.damage_at(position, prev_last, self.size, problem).bounded(upper)
            if restore and self._restore_header(position, damage.end):
                self.damages.pop(position, None)
                continue
            if damage.last_offset is None:  # the last segment's end: ask its bytes
                last, exact = self._tail_offsets(position, prev_last + 1)
                damage = Damage(position, damage.end, damage.first_offset, last, problem, exact)
            else:
                last = damage.last_offset
            found.append(damage)
            prev_last, position = max(prev_last, last), damage.end
        return found

    def rewrite_without(self, damages: list[Damage]) -> Path:
        """Move the damaged bytes into quarantine files beside the segment and write the
        segment's good frames to a new file; returns it (the caller swaps it in)."""
        good = self.path.with_suffix(".repairing")
        with open(good, "wb") as out:
            position = 0
            for damage in damages:
                out.write(os.pread(self._fd, damage.position - position, position))
                kept = self.quarantine_path(damage)
                with open(kept, "wb") as q:
                    q.write(os.pread(self._fd, damage.end - damage.position, damage.position))
                    q.flush()
                    os.fsync(q.fileno())
                position = damage.end
            out.write(os.pread(self._fd, self.size - position, position))
            out.flush()
            os.fsync(out.fileno())
        return good

    def quarantine_path(self, damage: Damage) -> Path:
        """Where `rewrite_without` keeps the bytes of `damage`."""
        return self.path.with_name(f"{self.path.stem}.at-{damage.position}.quarantine")

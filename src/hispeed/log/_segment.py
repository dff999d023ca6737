"""Segment files: Arrow IPC record batches framed with length and CRC32C, plus a sparse index.

A segment file is a run of frames. Each frame is one Arrow IPC record-batch message
(no schema: the schema is fixed, `RECORD_SCHEMA`) behind a 44-byte header:

    magic    4s   b"HSF1"
    length   u32  payload bytes
    crc      u32  CRC32C of header[12:44] + payload
    base     i64  first offset in the frame
    last     i64  last offset in the frame
    count    u32  records in the frame
    max_ts   i64  largest timestamp in the frame (ms)
    flags    u32  reserved, 0

The index file beside it holds (frame base offset, byte position, running max timestamp)
every `index.interval.bytes` or more, so a read seeks near its offset and scans few headers.
The index of the active segment is rebuilt on recovery; a closed segment's is trusted when
it is consistent with the file and rebuilt otherwise.
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
from hispeed.log.base import RECORD_SCHEMA

log = logging.getLogger(__name__)

MAGIC = b"HSF1"
HEADER = struct.Struct("<4sIIqqIqI")
HEADER_SIZE = HEADER.size
INDEX_ENTRY = struct.Struct("<qqq")

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

    @property
    def end(self) -> int:
        """Byte position just past this frame."""
        return self.position + HEADER_SIZE + self.length


def encode_frame(batch: pa.RecordBatch, compression: str | None) -> tuple[bytes, pa.Buffer]:
    """Serialize a batch (RECORD_SCHEMA, at least one row) into (header, payload)."""
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression=compression)
    with pa.ipc.new_stream(sink, RECORD_SCHEMA, options=options) as writer:
        writer.write_batch(batch)
    whole = sink.getvalue()
    # The stream is schema + batch + end-of-stream marker (8 bytes); keep the batch message.
    payload = whole.slice(_SCHEMA_PREFIX, whole.size - _SCHEMA_PREFIX - 8)
    offsets = batch.column(0)
    base = offsets[0].as_py()
    last = offsets[len(offsets) - 1].as_py()
    max_ts = pa.compute.max(batch.column(1)).as_py()
    tail = HEADER.pack(MAGIC, payload.size, 0, base, last, batch.num_rows, max_ts, 0)[12:]
    crc = crc32c.crc32c(payload, value=crc32c.crc32c(tail))
    header = MAGIC + struct.pack("<II", payload.size, crc) + tail
    return header, payload


def decode_payload(payload: bytes | pa.Buffer) -> pa.RecordBatch:
    message = pa.ipc.read_message(pa.py_buffer(payload))
    return pa.ipc.read_record_batch(message, RECORD_SCHEMA)


def _parse_header(raw: bytes, position: int) -> FrameHeader | None:
    """The header at `position`, or None when the bytes are not a frame header."""
    if len(raw) < HEADER_SIZE:
        return None
    magic, length, crc, base, last, count, max_ts, _flags = HEADER.unpack_from(raw)
    if magic != MAGIC or last < base or count == 0 or count > last - base + 1:
        return None
    return FrameHeader(position, length, crc, base, last, count, max_ts)


def _crc_ok(header_raw: bytes, payload: bytes, crc: int) -> bool:
    return crc32c.crc32c(payload, value=crc32c.crc32c(header_raw[12:HEADER_SIZE])) == crc


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
        """Scan every frame to rebuild the index; with verify, check CRCs and cut a torn tail."""
        self._index_offsets, self._index_positions, self._index_max_ts = [], [], []
        self._last_indexed_position = -(1 << 62)
        self.next_offset, self.max_timestamp, self.frames = self.base_offset, -1, 0
        position = 0
        while position < self.size:
            problem = None
            raw = os.pread(self._fd, HEADER_SIZE, position)
            header = _parse_header(raw, position)
            if header is None:
                problem = "bad frame header"
            elif header.end > self.size:
                problem = f"frame of {header.length} bytes runs past the end of the file"
            elif header.base < self.next_offset:
                problem = f"offset {header.base} goes backwards (expected >= {self.next_offset})"
            elif verify:
                payload = os.pread(self._fd, header.length, position + HEADER_SIZE)
                if not _crc_ok(raw, payload, header.crc):
                    problem = "CRC32C mismatch"
            if problem is not None:
                if verify and not self._valid_frame_after(position + 1):
                    self._truncate_torn_tail(position, problem)
                    return
                raise CorruptLogError(str(self.path), position, problem, self.next_offset)
            assert header is not None
            self._note_frame(header)
            position = header.end
        if self._write_fd >= 0:
            self._rewrite_index_file()

    def _recover(self) -> None:
        self._rebuild_index(verify=True)

    def _valid_frame_after(self, start: int) -> bool:
        """Whether a whole, checksummed frame starts anywhere at or after `start`.

        A bad frame with good frames after it is corruption; a bad frame at the end is a torn tail.
        """
        rest = os.pread(self._fd, self.size - start, start)
        at = rest.find(MAGIC)
        while at >= 0:
            header = _parse_header(rest[at : at + HEADER_SIZE], start + at)
            if header is not None and at + HEADER_SIZE + header.length <= len(rest):
                payload = rest[at + HEADER_SIZE : at + HEADER_SIZE + header.length]
                if _crc_ok(rest[at : at + HEADER_SIZE], payload, header.crc):
                    return True
            at = rest.find(MAGIC, at + 1)
        return False

    def _truncate_torn_tail(self, position: int, problem: str) -> None:
        log.warning(
            "%s: truncating a torn tail of %d bytes at byte %d (%s); records from offset %d "
            "were never acknowledged under the fsync policy",
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
        self.next_offset = header.last + 1
        self.max_timestamp = max(self.max_timestamp, header.max_ts)
        self.frames += 1
        if header.position - self._last_indexed_position >= self.index_interval:
            self._index_offsets.append(header.base)
            self._index_positions.append(header.position)
            self._index_max_ts.append(self.max_timestamp)
            self._last_indexed_position = header.position
            return True
        return False

    def append(self, header: bytes, payload: bytes | pa.Buffer) -> None:
        """Write one encoded frame at the end of the segment."""
        written = os.writev(self._write_fd, [header, payload])
        total = len(header) + len(payload)
        if written != total:  # a short write leaves a torn tail; recovery removes it
            raise OSError(f"short write to {self.path}: {written} of {total} bytes")
        parsed = _parse_header(header, self.size)
        assert parsed is not None
        self.size += total
        if self._note_frame(parsed):
            assert self._index_file is not None
            self._index_file.write(  # type: ignore[attr-defined]
                INDEX_ENTRY.pack(parsed.base, parsed.position, self.max_timestamp)
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
        with contextlib.suppress(OSError):
            self.close()

    # -- reading ------------------------------------------------------------------------

    def _read_header(self, position: int) -> FrameHeader | None:
        return _parse_header(os.pread(self._fd, HEADER_SIZE, position), position)

    def frames_from(self, offset: int, size: int | None = None) -> Iterator[FrameHeader]:
        """Headers of the frames that hold offsets >= `offset`, first to last."""
        size = self.size if size is None else size
        i = bisect.bisect_right(self._index_offsets, offset) - 1
        position = self._index_positions[i] if i >= 0 else 0
        while position < size:
            header = self._read_header(position)
            if header is None or header.end > size:
                raise CorruptLogError(str(self.path), position, "bad frame header", offset)
            if header.last >= offset:
                yield header
            position = header.end

    def read_frame(self, header: FrameHeader) -> pa.RecordBatch:
        """The frame's batch, after checking its CRC."""
        # the payload goes straight into a buffer of Arrow's own (64-byte aligned): decoded
        # at the header's 44-byte offset, every column would sit misaligned, and Arrow's
        # compute (compaction's group_by) warns and copies on each batch
        head = bytearray(HEADER_SIZE)
        body = pa.allocate_buffer(header.length)
        got = os.preadv(self._fd, [head, memoryview(body)], header.position)
        if got != HEADER_SIZE + header.length:
            raise CorruptLogError(str(self.path), header.position, "frame cut short", header.base)
        if not _crc_ok(bytes(head), memoryview(body), header.crc):  # type: ignore[arg-type]
            raise CorruptLogError(str(self.path), header.position, "CRC32C mismatch", header.base)
        try:
            return decode_payload(body)
        except (pa.ArrowInvalid, OSError) as e:
            raise CorruptLogError(
                str(self.path), header.position, f"undecodable record batch ({e})", header.base
            ) from None

    def verify(self) -> int:
        """Check every frame's CRC and decode it; returns the records found."""
        records = 0
        for header in self.frames_from(-1):
            records += self.read_frame(header).num_rows
        return records

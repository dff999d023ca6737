"""Files in: one file followed as it grows (`'connector.class'='file'`), or a directory whose
new files are each read once (`'connector.class'='directory'`).

    CREATE SOURCE CONNECTOR app_log WITH ('connector.class'='file',
      'file.path'='/var/log/app/events.jsonl', 'kafka.topic'='events');
    CREATE SOURCE CONNECTOR drops WITH ('connector.class'='directory',
      'path'='/data/incoming', 'file.pattern'='*.csv', 'kafka.topic'='orders');

Each record's value is a JSON object: a JSON line as it is, a CSV row by its header's names,
a Parquet row by its columns'. Files are read a chunk at a time into Arrow batches
(`_file_read`), and each chunk's position (the file, the byte offset after its last whole
line, the line count) is committed with its records in one transaction, so a restart goes
on after the last committed chunk: nothing is read twice, nothing is skipped. A line that
cannot be read goes to the processing log with the file's name and the line's number.

The file source follows appends (`'file.tail'='true'`, the default), a rotation (the path
renamed away and made anew: the rest of the old file is read, then the new one from its
start; also across a restart, finding the old file by its inode in the same directory) and a
truncation (read again from the start). The directory source takes a file only once its
last change is 'file.stable.ms' old (so a file still being written is not read half), or at
once when its name matches the pattern only after a rename (write `x.csv.tmp`, rename to
`x.csv`); names starting with '.' or '_' are never read.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hispeed.connectors._file_read import (
    DEFAULT_BATCH_BYTES,
    EMPTY,
    MAX_BATCH_BYTES,
    MIN_BATCH_BYTES,
    LineReader,
    RecordShape,
    flag,
    format_of,
    parquet_records,
    whole_number,
)
from hispeed.connectors.base import (
    ConnectorError,
    RetriableError,
    SourceBatch,
    SourceConnector,
    register,
)

#: how long an idle poll waits before looking at the file (or directory) again
IDLE_S = 0.05
#: 'file.stable.ms' by default: a file unchanged this long is complete
DEFAULT_STABLE_MS = 1000


class OpenFile:
    """One CSV or JSON-lines file being read: its handle, where the reading is, its lines."""

    def __init__(
        self, path: Path, reader: LineReader, batch_bytes: int, offset: int = 0, line: int = 0
    ) -> None:
        self.path = path
        self.fh = open(path, "rb")  # noqa: SIM115  (held open while the file is read)
        self.ino = os.fstat(self.fh.fileno()).st_ino
        self.reader = reader
        self.batch_bytes = batch_bytes
        self.offset = offset
        self.line = line

    def size(self) -> int:
        """The file's size now (through the handle: the file even after a rename)."""
        return os.fstat(self.fh.fileno()).st_size

    def close(self) -> None:
        """Let go of the file."""
        self.fh.close()

    def next_chunk(self, final: bool) -> tuple[pa.RecordBatch, list[dict[str, Any]]] | None:
        """The records of the next whole lines (and, when `final`, of a last line with no
        line end), or None when there are none yet."""
        data = self._read(final)
        if data is None:
            return None
        if self._wants_header():
            if self.offset > 0:  # resumed after the header: read it again
                head = self._first_line()
                if head is not None:
                    self.reader.header(head)
            else:
                head, found, data = data.partition(b"\n")
                self.reader.header(head.rstrip(b"\r"))
                self.offset += len(head) + len(found)
                self.line += 1
        self.offset += len(data)
        if data and not data.endswith(b"\n"):  # a last line with no end (only when final)
            data += b"\n"
        first = self.line + 1
        self.line += data.count(b"\n")
        return self.reader.read(data, first)

    def _wants_header(self) -> bool:
        return self.reader.fmt == "csv" and self.reader.shape.header and self.reader.columns is None

    def _read(self, final: bool) -> bytes | None:
        """Whole lines from the offset on (at most about 'batch.bytes', more for a longer
        line): the bytes, or None if there is no whole line yet."""
        size = self.batch_bytes
        while True:
            data = os.pread(self.fh.fileno(), size, self.offset)
            if not data:
                return None
            cut = data.rfind(b"\n")
            if cut >= 0:
                return data[: cut + 1]
            if len(data) < size:  # no line end up to the end of the file
                return data if final else None
            if size >= MAX_BATCH_BYTES:
                return data  # a line this long is read in pieces (each a bad record)
            size *= 2

    def _first_line(self) -> bytes | None:
        data = os.pread(self.fh.fileno(), MAX_BATCH_BYTES, 0)
        head, found, _ = data.partition(b"\n")
        return head.rstrip(b"\r") if found else None


def _batch_bytes(config: Mapping[str, str], what: str) -> int:
    try:
        return whole_number(
            config, "batch.bytes", DEFAULT_BATCH_BYTES, MIN_BATCH_BYTES, MAX_BATCH_BYTES
        )
    except ConnectorError as e:
        raise ConnectorError(f"{what}: {e}") from None


@register
class FileSource(SourceConnector):
    """Read one CSV or JSON-lines file, following it as it grows and is rotated."""

    names = ("file", "file-source", "FileSource")

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        super().__init__(name, config)
        what = f"connector {name}"
        raw = self.config.get("file.path") or self.config.get("path")
        if not raw:
            raise ConnectorError(f"{what} needs 'file.path' (the file to read)")
        self.path = Path(raw)
        self.fmt = format_of(self.path.name, self.config.get("file.format"), what)
        if self.fmt == "parquet":
            raise ConnectorError(
                f"{what}: a Parquet file is read whole, not followed: use "
                "'connector.class'='directory' for Parquet files"
            )
        self.shape = RecordShape.from_config(self.config, what)
        try:
            self.tail = flag(self.config, "file.tail", True)
        except ConnectorError as e:
            raise ConnectorError(f"{what}: {e}") from None
        self.batch_bytes = _batch_bytes(self.config, what)
        self.current: OpenFile | None = None
        #: the file that was at the path before a rotation, read to its end first
        self.rotated: OpenFile | None = None

    def _open(self, path: Path, offset: int = 0, line: int = 0) -> OpenFile | None:
        try:
            reader = LineReader(self.fmt, self.shape, str(path))
            return OpenFile(path, reader, self.batch_bytes, offset, line)
        except FileNotFoundError:
            return None

    def start(self, position: Any) -> None:
        if not position:
            return
        ino, offset, line = int(position["ino"]), int(position["offset"]), int(position["line"])
        with contextlib.suppress(FileNotFoundError):
            st = self.path.stat()
            if st.st_ino == ino and st.st_size >= offset:
                self.current = self._open(self.path, offset, line)
                return
        # rotated while hispeed was down: the old file, under its new name beside it
        with os.scandir(self.path.parent) as entries:
            for entry in entries:
                with contextlib.suppress(OSError):
                    if entry.inode() == ino and entry.is_file() and entry.stat().st_size >= offset:
                        self.rotated = self._open(Path(entry.path), offset, line)
                        return

    def poll(self, timeout: float) -> list[SourceBatch]:
        if self.rotated is not None:
            chunk = self.rotated.next_chunk(final=True)
            if chunk is not None:
                return [self._batch(chunk, self.rotated)]
            self.rotated.close()
            self.rotated = None
        if self.current is None:
            self.current = self._open(self.path)
            if self.current is None:
                time.sleep(min(timeout, IDLE_S))
                return []
        chunk = self.current.next_chunk(final=not self.tail)
        if chunk is not None:
            return [self._batch(chunk, self.current)]
        if self.tail and self._moved_on():
            return []
        time.sleep(min(timeout, IDLE_S))
        return []

    def _moved_on(self) -> bool:
        """Whether the path was rotated or truncated (and the reading set up again)."""
        assert self.current is not None
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return False  # renamed away, its successor not made yet: wait for it
        if st.st_ino != self.current.ino:
            self.rotated = self.current  # its rest (a last line without an end) first
            self.current = None
            return True
        if st.st_size < self.current.offset:  # truncated (copytruncate): from the start
            self.current.offset = 0
            self.current.line = 0
            self.current.reader.columns = None
            return True
        return False

    def _batch(
        self, chunk: tuple[pa.RecordBatch, list[dict[str, Any]]], source: OpenFile
    ) -> SourceBatch:
        records, errors = chunk
        position = {"ino": source.ino, "offset": source.offset, "line": source.line}
        return SourceBatch(records, position, errors=errors)

    def stop(self) -> None:
        for f in (self.current, self.rotated):
            if f is not None:
                f.close()
        self.current = self.rotated = None

    def details(self) -> dict[str, Any]:
        current = self.current or self.rotated
        return {
            "file": str(self.path),
            "format": self.fmt,
            "tail": self.tail,
            "offset": None if current is None else current.offset,
            "line": None if current is None else current.line,
        }


@register
class DirectorySource(SourceConnector):
    """Read each new file of a directory once: CSV, JSON lines or Parquet."""

    names = ("directory", "directory-source", "DirectorySource")

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        super().__init__(name, config)
        what = f"connector {name}"
        raw = self.config.get("path") or self.config.get("file.path")
        if not raw:
            raise ConnectorError(f"{what} needs 'path' (the directory to read)")
        self.dir = Path(raw)
        self.pattern = self.config.get("file.pattern", "*")
        self.given_format = self.config.get("file.format") or None
        if self.given_format:
            format_of("", self.given_format, what)  # checked now, not at the first file
        self.shape = RecordShape.from_config(self.config, what)
        self.batch_bytes = _batch_bytes(self.config, what)
        try:
            self.stable_ns = 1_000_000 * whole_number(
                self.config, "file.stable.ms", DEFAULT_STABLE_MS, 0, 86_400_000
            )
        except ConnectorError as e:
            raise ConnectorError(f"{what}: {e}") from None
        self.what = what
        #: names read to their end (committed with the position; forgotten once deleted)
        self.done: set[str] = set()
        self.file: str | None = None
        self.offset = 0
        self.line = 0
        self.open: OpenFile | None = None
        self.parquet: pq.ParquetFile | None = None

    def start(self, position: Any) -> None:
        if not position:
            return
        self.done = set(position.get("done", []))
        self.file = position.get("file")
        self.offset = int(position.get("offset", 0))
        self.line = int(position.get("line", 0))

    def _position(self) -> dict[str, Any]:
        return {
            "done": sorted(self.done),
            "file": self.file,
            "offset": self.offset,
            "line": self.line,
        }

    def _candidates(self) -> list[str]:
        """Names of complete files not read yet, oldest first."""
        found: list[tuple[int, str]] = []
        listed: set[str] = set()
        now = time.time_ns()
        try:
            with os.scandir(self.dir) as it:
                entries = list(it)
        except FileNotFoundError:
            return []
        for entry in entries:
            name = entry.name
            if name.startswith((".", "_")) or not fnmatch.fnmatchcase(name, self.pattern):
                continue
            try:
                if not entry.is_file():
                    continue
                mtime = entry.stat().st_mtime_ns
            except OSError:
                continue  # gone meanwhile
            listed.add(name)
            if name not in self.done and now - mtime >= self.stable_ns:
                found.append((mtime, name))
        # a file deleted is forgotten, so the position stays the size of the directory
        self.done &= listed
        return [name for _, name in sorted(found)]

    def poll(self, timeout: float) -> list[SourceBatch]:
        if self.file is None:
            names = self._candidates()
            if not names:
                time.sleep(min(timeout, IDLE_S))
                return []
            self.file, self.offset, self.line = names[0], 0, 0
        try:
            records, errors, finished = self._read()
        except (FileNotFoundError, pa.ArrowException) as e:
            # a file that cannot be read (gone, not Parquet after all): said, and passed by
            records, errors, finished = EMPTY, [{"message": str(e), "file": self._path()}], True
        except OSError as e:  # (no permission, an I/O error) may pass: tried again
            self._close()
            raise RetriableError(f"{self.what}: reading {self._path()}: {e}") from e
        if finished:
            self._close()
            assert self.file is not None
            self.done.add(self.file)
            self.file, self.offset, self.line = None, 0, 0
        return [SourceBatch(records, self._position(), errors=errors)]

    def _path(self) -> str:
        assert self.file is not None
        return str(self.dir / self.file)

    def _read(self) -> tuple[pa.RecordBatch, list[dict[str, Any]], bool]:
        """The next chunk of the current file, and whether the file is finished."""
        assert self.file is not None
        fmt = format_of(self.file, self.given_format, self.what)
        path = self._path()
        if fmt == "parquet":
            if self.parquet is None:
                self.parquet = pq.ParquetFile(path)
            groups = self.parquet.num_row_groups
            if self.offset >= groups:
                return EMPTY, [], True
            records, errors = parquet_records(self.parquet, self.offset, self.shape, path)
            self.offset += 1
            return records, errors, self.offset >= groups
        if self.open is None:
            reader = LineReader(fmt, self.shape, path)
            self.open = OpenFile(Path(path), reader, self.batch_bytes, self.offset, self.line)
        chunk = self.open.next_chunk(final=True)
        self.offset, self.line = self.open.offset, self.open.line
        if chunk is None:
            return EMPTY, [], True
        return chunk[0], chunk[1], self.offset >= self.open.size()

    def _close(self) -> None:
        if self.open is not None:
            self.open.close()
            self.open = None
        if self.parquet is not None:
            self.parquet.close()
            self.parquet = None

    def stop(self) -> None:
        self._close()

    def details(self) -> dict[str, Any]:
        return {"path": str(self.dir), "pattern": self.pattern, "done": len(self.done)}


__all__ = ["DirectorySource", "FileSource", "OpenFile"]

"""Files out: CSV or JSON lines appended to a file (`'connector.class'='file-sink'`), and Parquet
files written exactly once (`'connector.class'='parquet'`).

    CREATE SINK CONNECTOR alerts_out WITH ('connector.class'='file-sink', 'source'='ALERTS',
      'file.path'='/data/out/alerts.jsonl', 'file.rotate.bytes'='104857600');
    CREATE SINK CONNECTOR archive WITH ('connector.class'='parquet', 'source'='READINGS',
      'path'='/data/lake/readings', 'flush.records'='100000', 'flush.ms'='60000');

`FileSink` appends each batch with one write (JSON: one object per line, the record's
columns by name; CSV: a header line first, then the columns in the stream's order) and
rotates the file (renamed to `NAME.000001.EXT`, numbered up) when it reaches
'file.rotate.bytes' or is 'file.rotate.ms' old. At least once: a crash between a write and
the commit of its offsets writes that batch again after the restart.

`ParquetSink` gathers each partition's records (as Arrow columns, typed as the stream
declares them) and writes them as one file per 'flush.records' records or 'flush.ms' of
time, named by what it holds: `TOPIC+PARTITION+FIRST+LAST.parquet` (offsets, 20 digits).
A file is written under a temporary name (a leading '.') and renamed when complete, so a
reader sees whole files only. After a restart the sink reads where its files end from their
names and the runner starts each partition there (`resume_offsets`): records after the last
file are read again, records in a file are skipped, so every record is in exactly one file,
whatever the moment of a crash.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hispeed.connectors._file_read import format_of, whole_number
from hispeed.connectors.base import (
    ConnectorError,
    RetriableError,
    SinkBatch,
    SinkConnector,
    register,
)
from hispeed.log.base import TopicPartition

#: 'flush.records' and 'flush.ms' of the Parquet sink by default
DEFAULT_FLUSH_RECORDS = 100_000
DEFAULT_FLUSH_MS = 60_000
#: a file's name: TOPIC+PARTITION+FIRST+LAST.parquet ('+' is in no topic's name)
PARQUET_NAME = re.compile(
    r"^(?P<topic>.+)\+(?P<partition>\d+)\+(?P<first>\d{20})\+(?P<last>\d{20})\.parquet$"
)
COMPRESSIONS = ("none", "snappy", "gzip", "zstd", "lz4", "brotli")


def _number(config: Mapping[str, str], key: str, default: int, high: int, what: str) -> int:
    try:
        return whole_number(config, key, default, 0, high)
    except ConnectorError as e:
        raise ConnectorError(f"{what}: {e}") from None


def _fsync_dir(path: Path) -> None:
    """Make a rename in `path` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@register
class FileSink(SinkConnector):
    """Append records to a CSV or JSON-lines file, rotating it by size or age."""

    # not 'file': that is the file source's name, and a name is one class's
    names = ("file-sink", "FileSink")

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        super().__init__(name, config)
        what = f"connector {name}"
        raw = self.config.get("file.path") or self.config.get("path")
        if not raw:
            raise ConnectorError(f"{what} needs 'file.path' (the file to append to)")
        self.path = Path(raw)
        self.fmt = format_of(self.path.name, self.config.get("file.format"), what)
        if self.fmt == "parquet":
            raise ConnectorError(
                f"{what}: Parquet files are written by 'connector.class'='parquet', which "
                "writes each record once"
            )
        self.rotate_bytes = _number(self.config, "file.rotate.bytes", 0, 1 << 50, what)
        self.rotate_ms = _number(self.config, "file.rotate.ms", 0, 1 << 40, what)
        delimiter = self.config.get("csv.delimiter", ",")
        self.delimiter = "\t" if delimiter in ("\\t", "tab") else delimiter
        if len(self.delimiter) != 1:
            raise ConnectorError(f"{what}: 'csv.delimiter' must be one character")
        self.columns: list[str] | None = None
        self.fd = -1
        self.size = 0
        self.opened = 0.0
        self.rotations = 0

    def start(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._open()
        except OSError as e:
            raise RetriableError(f"connector {self.name}: cannot open {self.path}: {e}") from e

    def _open(self) -> None:
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        st = os.fstat(self.fd)
        self.size = st.st_size
        # a file carried over from before a restart keeps its age (its creation is unknown:
        # its last change is the closest there is)
        self.opened = st.st_mtime if self.size else time.time()
        if self.fmt == "csv" and self.size and self.columns is None:
            with open(self.path, newline="") as f:
                header = next(csv.reader(f, delimiter=self.delimiter), None)
            self.columns = header

    def _close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _due(self) -> bool:
        if not self.size:
            return False
        if self.rotate_bytes and self.size >= self.rotate_bytes:
            return True
        return bool(self.rotate_ms) and (time.time() - self.opened) * 1000 >= self.rotate_ms

    def _rotate(self) -> None:
        """Rename the file to the next free number and start a new one."""
        self._close()
        pattern = re.compile(re.escape(self.path.stem) + r"\.(\d+)" + re.escape(self.path.suffix))
        numbers = [
            int(m.group(1))
            for p in self.path.parent.iterdir()
            if (m := pattern.fullmatch(p.name)) is not None
        ]
        target = self.path.with_name(
            f"{self.path.stem}.{max(numbers, default=0) + 1:06d}{self.path.suffix}"
        )
        os.rename(self.path, target)
        self.rotations += 1
        self._open()

    def write(self, batch: SinkBatch) -> None:
        rows: list[dict[str, Any]] = []
        csv_out = self.fmt == "csv"
        for i, r in enumerate(batch.rows):
            row = r if r is not None else self._tombstone(batch, i)
            if row is None:
                continue
            if csv_out:
                if self.columns is None:
                    self.columns = list(row)
                # a CSV file has one header: a value under a name not in it would be lost
                extra = [c for c, v in row.items() if v is not None and c not in self.columns]
                if extra:
                    batch.fail(i, self._not_in_header(extra))
                    continue
            rows.append(row)
        if not rows:
            return
        try:
            if self.fd < 0:
                self._open()
            if self._due():
                self._rotate()
            data = self._csv(rows) if self.fmt == "csv" else self._json(rows)
            view = memoryview(data)
            while view:  # one append; a short write (a full disk) goes on where it stopped
                view = view[os.write(self.fd, view) :]
            self.size += len(data)
        except OSError as e:
            self._close()  # opened again on the retry, at the file's true end
            raise RetriableError(f"connector {self.name}: writing {self.path}: {e}") from e

    def _not_in_header(self, extra: list[str]) -> str:
        assert self.columns is not None
        return (
            f"connector {self.name}: the record has {', '.join(extra)}, not among the columns of "
            f"{self.path.name}'s CSV header ({', '.join(self.columns)}); a CSV file keeps one "
            "header: write JSON lines ('file.format'='json') for records whose columns vary"
        )

    def _tombstone(self, batch: SinkBatch, i: int) -> dict[str, Any] | None:
        """A deleted table row: its key columns, the rest null (nothing for a topic read
        without a schema, whose key has no column)."""
        if not batch.key_columns:
            return None
        key = batch.keys[i]
        if len(batch.key_columns) == 1:
            return {batch.key_columns[0]: key}
        return dict(key) if isinstance(key, dict) else None

    def _json(self, rows: list[dict[str, Any]]) -> bytes:
        encode = msgspec.json.encode
        return b"".join(encode(r) + b"\n" for r in rows)

    def _csv(self, rows: list[dict[str, Any]]) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, delimiter=self.delimiter, lineterminator="\n")
        if self.columns is None:
            self.columns = list(rows[0])
        if self.size == 0:
            writer.writerow(self.columns)
        columns = self.columns
        encode = msgspec.json.encode
        for r in rows:
            writer.writerow(
                [
                    encode(v).decode() if isinstance(v, dict | list) else v
                    for v in (r.get(c) for c in columns)
                ]
            )
        return out.getvalue().encode()

    def flush(self) -> None:
        if self.fd >= 0 and self._due():
            try:
                self._rotate()
            except OSError as e:
                raise RetriableError(f"connector {self.name}: rotating {self.path}: {e}") from e

    def stop(self) -> None:
        self._close()

    def details(self) -> dict[str, Any]:
        return {
            "file": str(self.path),
            "format": self.fmt,
            "bytes": self.size,
            "rotations": self.rotations,
            "delivery": "at least once",
        }


class _Pending:
    """A partition's records not yet in a file."""

    def __init__(self) -> None:
        self.tables: list[pa.Table] = []
        self.rows = 0
        self.first = -1
        self.last = -1
        self.since = 0.0


@register
class ParquetSink(SinkConnector):
    """Write records as Parquet files, each record in exactly one file."""

    names = ("parquet", "parquet-sink", "ParquetSink")
    rows_needed = False  # it writes the runner's Arrow columns

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        super().__init__(name, config)
        what = f"connector {name}"
        raw = self.config.get("path") or self.config.get("file.path")
        if not raw:
            raise ConnectorError(f"{what} needs 'path' (the directory to write files in)")
        self.dir = Path(raw)
        self.flush_records = _number(
            self.config, "flush.records", DEFAULT_FLUSH_RECORDS, 1 << 40, what
        )
        self.flush_ms = _number(self.config, "flush.ms", DEFAULT_FLUSH_MS, 1 << 40, what)
        self.compression = self.config.get("parquet.compression", "snappy").strip().lower()
        if self.compression not in COMPRESSIONS:
            raise ConnectorError(
                f"{what}: 'parquet.compression' must be one of {', '.join(COMPRESSIONS)}, "
                f"not {self.compression!r}"
            )
        #: each partition's next offset to write (after the last one in a file)
        self.next: dict[TopicPartition, int] = {}
        self.pending: dict[TopicPartition, _Pending] = {}
        self.files = 0

    def start(self) -> None:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            with os.scandir(self.dir) as it:
                entries = list(it)
            for entry in entries:
                if entry.name.startswith(".") and entry.name.endswith(".parquet.tmp"):
                    os.unlink(entry.path)  # a file a crash left half-written
                    continue
                m = PARQUET_NAME.match(entry.name)
                if m is not None:
                    tp = TopicPartition(m["topic"], int(m["partition"]))
                    self.next[tp] = max(self.next.get(tp, 0), int(m["last"]) + 1)
        except OSError as e:
            raise RetriableError(f"connector {self.name}: cannot use {self.dir}: {e}") from e

    def resume_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        # from where the files end: what was read before but not written is read again
        self.pending.clear()
        return {tp: self.next.get(tp, 0) for tp in partitions}

    def write(self, batch: SinkBatch) -> None:
        tp = TopicPartition(batch.topic, batch.partition)
        start = self.next.get(tp, 0)
        pending = self.pending.get(tp)
        if pending is not None and pending.last >= 0:
            start = pending.last + 1
        if batch.columns is not None:  # the records as typed columns (rows not made)
            offsets = np.asarray(batch.offsets, np.int64)
            wanted = offsets >= start
            if batch.deleted is not None:  # a deletion: not written
                wanted &= ~np.asarray(batch.deleted, bool)
            keep = np.flatnonzero(wanted)
            if not len(keep):
                return
            table = batch.columns.take(pa.array(keep))
        else:
            keep = np.flatnonzero(
                [
                    o >= start and r is not None
                    for o, r in zip(batch.offsets, batch.rows, strict=True)
                ]
            )
            if not len(keep):
                return
            table = pa.Table.from_pylist([batch.rows[i] for i in keep])
        if pending is None:
            pending = self.pending[tp] = _Pending()
        if not pending.rows:
            pending.first = batch.offsets[int(keep[0])]
            pending.since = time.monotonic()
        pending.tables.append(table)
        pending.rows += table.num_rows
        pending.last = batch.offsets[-1]
        if pending.rows >= self.flush_records:
            self._write(tp, pending)

    def flush(self) -> None:
        now = time.monotonic()
        for tp, pending in list(self.pending.items()):
            if pending.rows and (now - pending.since) * 1000 >= self.flush_ms:
                self._write(tp, pending)

    def _write(self, tp: TopicPartition, pending: _Pending) -> None:
        """Write a partition's pending records as one file: a temporary name, then the
        name that says which offsets it holds."""
        name = f"{tp.topic}+{tp.partition}+{pending.first:020d}+{pending.last:020d}.parquet"
        tmp = self.dir / f".{name}.tmp"
        try:
            table = pa.concat_tables(pending.tables, promote_options="permissive")
            with open(tmp, "wb") as f:
                pq.write_table(
                    table,
                    f,
                    compression=None if self.compression == "none" else self.compression,
                )
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, self.dir / name)
            _fsync_dir(self.dir)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise RetriableError(f"connector {self.name}: writing {name}: {e}") from e
        self.next[tp] = pending.last + 1
        self.files += 1
        del self.pending[tp]

    def stop(self) -> None:
        for tp, pending in list(self.pending.items()):
            if pending.rows:
                # if it cannot be written, it is read again after the restart: the files
                # say where they end
                with contextlib.suppress(RetriableError):
                    self._write(tp, pending)

    def details(self) -> dict[str, Any]:
        return {
            "path": str(self.dir),
            "files": self.files,
            "pending": sum(p.rows for p in self.pending.values()),
            "delivery": "exactly once",
        }


__all__ = ["FileSink", "ParquetSink"]

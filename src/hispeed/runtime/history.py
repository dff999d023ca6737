"""A source's whole retained history as a stream of typed Arrow batches, for analytical SQL.

`HistoryScan` reads every partition of a stream's or table's topic from its first retained
offset to its end, decodes each read batch through the source's formats (the same vectorized
`SourceDecoder` a query uses) and yields batches of the catalog's column types plus ROWTIME,
ROWPARTITION and ROWOFFSET. Nothing is held but the batch in flight, so a topic bigger than
memory scans.

Decoding a text format (JSON) costs far more than the analytical work after it. With a cache
directory, the decoded batches of each full chunk of `CHUNK_OFFSETS` offsets are written once
as an Arrow IPC file and read back memory-mapped (no decoding, no copy) by later scans; the
cache keeps at most `cache_bytes`, the least recently used chunks going first. A chunk is
cached only when every offset of it is below the partition's end and the topic is not
compacted (compaction would change what a cached chunk should hold); each cached chunk keeps
the offset, time and a hash of its first record, checked against the log before use, so a
topic deleted and made again under the same name is never answered from the old one's cache.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.ipc as ipc

from hispeed.catalog import Source
from hispeed.errors import HispeedError, OffsetOutOfRangeError
from hispeed.log.base import Log, PolledBatch, TopicPartition
from hispeed.ops.decode import SourceDecoder
from hispeed.plan.model import PSEUDO_COLUMNS, WINDOW_COLUMNS, field_name
from hispeed.registry import SchemaRegistry

log = logging.getLogger(__name__)

#: a table's hidden column: True where the record is a tombstone (its key was deleted)
DELETED = "__hispeed_deleted"
#: offsets per cached chunk: chunk k of a partition holds offsets [k * CHUNK_OFFSETS, (k+1) * ...)
CHUNK_OFFSETS = 1 << 20
#: bytes of frames asked of the log per read: whole frames come back (at least one, however
#: big), so each frame is read and CRC-checked once, whatever number of records it holds
READ_BYTES = 1 << 20

Progress = Callable[[int], None]


@dataclass(frozen=True)
class CacheSettings:
    """Where decoded chunks are kept and how many bytes they may take (0: no cache)."""

    directory: Path | None
    max_bytes: int

    @property
    def enabled(self) -> bool:
        return self.directory is not None and self.max_bytes > 0


class HistoryScan:
    """Every retained record of one source as Arrow batches of the catalog's types."""

    def __init__(
        self,
        log_: Log,
        source: Source,
        registry: SchemaRegistry | None,
        cache: CacheSettings | None = None,
        progress: Progress | None = None,
    ) -> None:
        self.log = log_
        self.source = source
        self.registry = registry
        self.cache = cache if cache is not None and cache.enabled else None
        self.progress = progress
        #: what ended the last scan, if an error did
        self.failure: HispeedError | None = None
        self.table = source.kind == "TABLE"
        fields = [pa.field(c.name, c.type.to_arrow()) for c in source.columns]
        fields += [pa.field(n, t.to_arrow()) for n, t in PSEUDO_COLUMNS.items()]
        if source.window is not None:
            fields += [pa.field(n, t.to_arrow()) for n, t in WINDOW_COLUMNS.items()]
        if self.table:
            fields.append(pa.field(DELETED, pa.bool_()))
        #: the batches' schema: the source's columns, the pseudo columns (and, for a table,
        #: whether each record deletes its key)
        self.schema = pa.schema(fields)
        info = log_.describe_topic(source.topic)
        self.partitions = len(info.partitions)
        self.compacted = info.config.compacts

    def ranges(self) -> list[tuple[int, int]]:
        """Each partition's (start, end) offsets now."""
        return [self.log.offsets(self.source.topic, p) for p in range(self.partitions)]

    def total(self) -> int:
        """Offsets a scan started now reads (records, less any compacted away)."""
        return sum(end - start for start, end in self.ranges())

    def reader(self) -> pa.RecordBatchReader:
        """A fresh scan as a RecordBatchReader (read once; ask again for another scan)."""
        return pa.RecordBatchReader.from_batches(self.schema, self.batches())

    def __arrow_c_stream__(self, requested_schema: object = None) -> Any:
        """The Arrow PyCapsule stream interface: DuckDB (or any consumer) gets a fresh scan
        each time it asks, so a query may read the same source twice (a self-join)."""
        return self.reader().__arrow_c_stream__(requested_schema)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The records of every partition in offset order, partition after partition.

        An error is kept in `failure` too, for a consumer (DuckDB) that reports it in its own
        words: the caller raises it as it was."""
        try:
            yield from self._batches()
        except HispeedError as e:
            self.failure = e
            raise

    def _batches(self) -> Iterator[pa.RecordBatch]:
        for p, (start, end) in enumerate(self.ranges()):
            pos = start
            while pos < end:
                k = pos // CHUNK_OFFSETS
                chunk_end = min((k + 1) * CHUNK_OFFSETS, end)
                whole = pos == k * CHUNK_OFFSETS and chunk_end == (k + 1) * CHUNK_OFFSETS
                if whole and self.cache is not None and not self.compacted:
                    yield from self._cached_chunk(p, k)
                else:
                    yield from self._decoded(p, pos, chunk_end)
                pos = chunk_end

    # -- decoding ---------------------------------------------------------------------------

    def _decoded(self, partition: int, start: int, end: int) -> Iterator[pa.RecordBatch]:
        """Records of offsets [start, end) of a partition, read and decoded."""
        topic = self.source.topic
        decoder = SourceDecoder(self.source, "", "analyze", registry=self.registry)
        tp = TopicPartition(topic, partition)
        pos = start
        while pos < end:
            try:
                raw = self.log.read(
                    topic, partition, pos, max_records=end - pos, max_bytes=READ_BYTES
                )
            except OffsetOutOfRangeError as e:
                if e.start <= pos:
                    raise
                # retention let the oldest records go while the scan ran: what is retained
                # now is the history
                pos = e.start
                continue
            after = pos
            for batch in raw:
                offsets = batch.column("offset").to_numpy()
                cut = int(np.searchsorted(offsets, end))
                if cut < batch.num_rows:
                    batch = batch.slice(0, cut)
                if batch.num_rows == 0:
                    continue
                after = int(offsets[batch.num_rows - 1]) + 1
                yield self._typed(*decoder.decode(PolledBatch(tp, batch), []))
                if self.progress is not None:
                    self.progress(batch.num_rows)
            if after <= pos:  # nothing more below `end` (offsets of aborted records, say)
                break
            pos = after

    def _typed(self, frame: pa.RecordBatch, tombstones: np.ndarray) -> pa.RecordBatch:
        """A decoded frame as a batch of `schema` (columns renamed, types as declared)."""
        arrays = []
        for f in self.schema:
            if f.name == DELETED:
                arrays.append(pa.array(tombstones, pa.bool_()))
                continue
            column = frame.column(field_name("", f.name))
            if not column.type.equals(f.type):
                column = column.cast(f.type)
            arrays.append(column)
        return pa.RecordBatch.from_arrays(arrays, schema=self.schema)

    # -- the cache --------------------------------------------------------------------------

    def _chunk_path(self, partition: int, k: int) -> Path:
        assert self.cache is not None and self.cache.directory is not None
        src = self.source
        shape = json.dumps(
            [
                src.kind,
                src.key_format,
                src.value_format,
                sorted((str(a), str(b)) for a, b in src.key_properties.items()),
                sorted((str(a), str(b)) for a, b in src.value_properties.items()),
                [(c.name, str(c.type)) for c in src.key_columns],
                [(c.name, str(c.type)) for c in src.value_columns],
                [(c.name, str(c.type), h) for c, h in src.header_columns],
                src.timestamp,
                src.timestamp_format,
                None if src.window is None else [src.window.kind, src.window.size_ms],
            ]
        )
        # the decoded columns depend on the source's declaration, not only on its topic
        digest = hashlib.blake2b(shape.encode(), digest_size=10).hexdigest()
        return self.cache.directory / src.topic / digest / f"p{partition}-{k}.arrow"

    def _fingerprint(self, partition: int, k: int) -> str | None:
        """The offset, time and value hash of the chunk's first record in the log now."""
        try:
            raw = self.log.read(self.source.topic, partition, k * CHUNK_OFFSETS, max_records=1)
        except OffsetOutOfRangeError:  # let go by retention just now: not cached
            return None
        if not raw or raw[0].num_rows == 0:
            return None
        first = raw[0].slice(0, 1).to_pylist()[0]
        value = hashlib.blake2b(first["value"] or b"", digest_size=8).hexdigest()
        return f"{first['offset']}:{first['timestamp']}:{value}"

    def _cached_chunk(self, partition: int, k: int) -> Iterator[pa.RecordBatch]:
        path = self._chunk_path(partition, k)
        fingerprint = self._fingerprint(partition, k)
        if fingerprint is not None and path.exists():
            try:
                source = pa.memory_map(str(path))
                reader = ipc.open_file(source)
                meta = reader.schema.metadata or {}
                if meta.get(b"first") == fingerprint.encode() and reader.schema.equals(
                    self.schema, check_metadata=False
                ):
                    os.utime(path)  # recently used: evicted last
                    for i in range(reader.num_record_batches):
                        batch = reader.get_batch(i)
                        yield batch
                        if self.progress is not None:
                            self.progress(batch.num_rows)
                    return
            except (OSError, pa.ArrowInvalid) as e:  # damaged or partly written: decode again
                log.warning("analyze cache: %s is unreadable (%s); decoding again", path, e)
        batches = []
        for batch in self._decoded(partition, k * CHUNK_OFFSETS, (k + 1) * CHUNK_OFFSETS):
            batches.append(batch)
            yield batch
        if fingerprint is not None:
            self._store(path, batches, fingerprint)

    def _store(self, path: Path, batches: list[pa.RecordBatch], fingerprint: str) -> None:
        assert self.cache is not None and self.cache.directory is not None
        size = sum(b.nbytes for b in batches)
        if size > self.cache.max_bytes:
            return
        schema = self.schema.with_metadata({"first": fingerprint})
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_suffix(".part")
            with pa.OSFile(str(partial), "wb") as sink, ipc.new_file(sink, schema) as writer:
                for batch in batches:
                    writer.write_batch(batch)
            partial.replace(path)  # whole or absent: a crash never leaves half a chunk
        except OSError as e:  # a full disk, say: the scan answered anyway
            log.warning("analyze cache: could not write %s: %s", path, e)
            return
        evict(self.cache.directory, self.cache.max_bytes)


def evict(directory: Path, max_bytes: int) -> None:
    """Delete the least recently used chunks until the cache holds at most `max_bytes`."""
    chunks = []
    for path in directory.rglob("*.arrow"):
        try:
            st = path.stat()
        except OSError:
            continue
        chunks.append((st.st_mtime, st.st_size, path))
    total = sum(size for _, size, _ in chunks)
    for _, size, path in sorted(chunks):
        if total <= max_bytes:
            break
        try:
            path.unlink()
        except OSError:
            continue
        total -= size


__all__ = ["CHUNK_OFFSETS", "DELETED", "CacheSettings", "HistoryScan", "evict"]

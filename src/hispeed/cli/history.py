"""`hispeed analyze` and `hispeed topic export`: a data directory's history for analysis.

Both open the engine's catalog on the data directory (its connectors not started: they only
read) and scan history from the log with a progress bar on a terminal's stderr.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import click

from hispeed.cli.shell import format_table
from hispeed.config import Settings
from hispeed.errors import HispeedError

if TYPE_CHECKING:  # imported when a command runs: `hispeed` starts fast
    import pyarrow as pa

    from hispeed.engine import Engine
    from hispeed.runtime.history import HistoryScan


class ProgressBar:
    """A one-line bar of records scanned on a terminal (nothing when not a terminal)."""

    WIDTH = 30

    def __init__(self, label: str, stream: TextIO | None = None, every: float = 0.1) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.shown = self.stream.isatty()
        self.every = every
        self.last = 0.0
        self.drawn = False

    def __call__(self, done: int, total: int) -> None:
        """Draw the bar at `done` of `total` records (at most every `every` s)."""
        now = time.monotonic()
        if not self.shown or (now - self.last < self.every and done < total):
            return
        self.last = now
        share = done / total if total else 1.0
        filled = int(share * self.WIDTH)
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.stream.write(f"\r{self.label} [{bar}] {share:4.0%} {done:,}/{total:,} records")
        self.stream.flush()
        self.drawn = True

    def close(self) -> None:
        """Clear the bar's line."""
        if self.drawn:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


@contextlib.contextmanager
def _engine(settings: Settings) -> Iterator[Engine]:
    """The data directory's engine: its catalog and log, its connectors not started."""
    from hispeed.engine import Engine

    with Engine(
        log_=settings.open_log(),
        udf_modules=settings.udf_modules,
        start_connectors=False,
        properties={"analyze.cache.bytes": settings.analyze_cache_bytes},
    ) as engine:
        yield engine


@click.command("analyze")
@click.argument("sql")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "json", "csv"]),
    default="table",
    show_default=True,
    help="How to print the rows (json: one object a line).",
)
@click.pass_obj
def analyze(obj: Any, sql: str, fmt: str) -> None:
    """Run analytical SQL (DuckDB's) over the data directory's streams and tables."""
    settings: Settings = obj.settings
    bar = ProgressBar("scanning")
    with _engine(settings) as engine:
        try:
            table = engine.analyze(sql, progress=bar)
        finally:
            bar.close()
    if fmt == "json":
        for row in table.to_pylist():
            click.echo(json.dumps(row, default=str))
    elif fmt == "csv":
        import pyarrow as pa
        import pyarrow.csv as pcsv

        sink = pa.BufferOutputStream()
        pcsv.write_csv(table, sink)
        click.echo(sink.getvalue().to_pybytes().decode(), nl=False)
    else:
        rows = [[row[c] for c in table.column_names] for row in table.to_pylist()]
        for line in format_table(table.column_names, rows):
            click.echo(line)


@click.command("export")
@click.argument("name")
@click.option(
    "--parquet",
    "directory",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Write NAME.parquet into this directory.",
)
@click.pass_obj
def export(obj: Any, name: str, directory: Path) -> None:
    """Write a stream's or table's history (typed columns; or a topic's raw records) as Parquet.

    NAME is a stream or table (its columns as the catalog types them, with ROWTIME,
    ROWPARTITION and ROWOFFSET; a table's tombstones flagged in __hispeed_deleted) or a topic
    that no source reads (its raw records: partition, offset, timestamp, key, value, headers).
    """
    from hispeed.runtime.analytic import cache_settings
    from hispeed.runtime.history import HistoryScan

    settings: Settings = obj.settings
    directory.mkdir(parents=True, exist_ok=True)
    bar = ProgressBar(f"exporting {name}")
    with _engine(settings) as engine:
        catalog = engine.catalog.sources
        source = catalog.get(name.upper()) or next(
            (s for s in catalog.values() if s.topic == name), None
        )
        try:
            if source is not None:
                scan = HistoryScan(
                    engine.log, source, engine.schema_registry, cache_settings(engine.context)
                )
                path = directory / f"{source.name}.parquet"
                written = _write(path, scan.schema, _counted(scan, bar))
                what = f"{source.kind.lower()} {source.name}"
            elif name in engine.log.list_topics(internal=True):
                path = directory / f"{name}.parquet"
                written = _write(path, raw_schema(), _raw(engine, name, bar))
                what = f"topic {name}"
            else:
                raise HispeedError(f"no stream, table or topic is called {name}")
        finally:
            bar.close()
    click.echo(f"exported {written:,} records of {what} to {path}")


def raw_schema() -> pa.Schema:
    """A topic's records as `export` writes them when no source reads it."""
    import pyarrow as pa

    from hispeed.log.base import RECORD_SCHEMA

    return pa.schema([pa.field("partition", pa.int32()), *RECORD_SCHEMA])


def _counted(scan: HistoryScan, bar: ProgressBar) -> Iterator[pa.RecordBatch]:
    total = scan.total()
    done = 0
    bar(0, total)

    def step(n: int) -> None:
        nonlocal done
        done += n
        bar(done, max(done, total))

    scan.progress = step
    yield from scan.batches()


def _raw(engine: Engine, topic: str, bar: ProgressBar) -> Iterator[pa.RecordBatch]:
    import pyarrow as pa

    schema = raw_schema()
    log = engine.log
    partitions = len(log.describe_topic(topic).partitions)
    ranges = [log.offsets(topic, p) for p in range(partitions)]
    total = sum(end - start for start, end in ranges)
    done = 0
    for p, (start, end) in enumerate(ranges):
        pos = start
        while pos < end:
            batches = log.read(topic, p, pos, max_records=65_536)
            if not batches:
                break
            for batch in batches:
                column = pa.array([p] * batch.num_rows, pa.int32())
                yield pa.RecordBatch.from_arrays([column, *batch.columns], schema=schema)
                done += batch.num_rows
                bar(done, max(done, total))
            pos = int(batches[-1].column("offset")[-1].as_py()) + 1


def _write(path: Path, schema: pa.Schema, batches: Iterator[pa.RecordBatch]) -> int:
    """Write batches to a Parquet file as they come (whole or absent); records written."""
    import pyarrow.parquet as pq

    partial = path.with_suffix(".parquet.part")
    written = 0
    try:
        with pq.ParquetWriter(str(partial), schema) as writer:
            for batch in batches:
                writer.write_batch(batch)
                written += batch.num_rows
        partial.replace(path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return written


__all__ = ["ProgressBar", "analyze", "export"]

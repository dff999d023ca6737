"""`hispeed bench connectors` parts for the file connectors, through a real `Engine`.

`files_out`: a stream's records (three typed columns, JSON in the log) written by the file
sink as JSON lines and as CSV, and by the Parquet sink (files of 'flush.records', each
written under a temporary name, fsynced and renamed). `files_in`: a directory of JSON-lines
files and one of CSV files read by the directory source into a topic (each chunk and its
position committed in one transaction). Each figure counts from the CREATE ... CONNECTOR to
the last record written (or appended), per second of wall clock and per CPU-second of the
process (the engine and its connector threads are all in it).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

# _wait: the framework part's wait for a connector thread (same package)
from hispeed.bench.connectors import BenchOptions, Figures, _wait, bench_part, rates
from hispeed.engine import Engine

STREAM = (
    "CREATE STREAM bench_readings (device STRING KEY, reading DOUBLE, amount INT, "
    "site STRING) WITH (kafka_topic='bench_readings', value_format='JSON', partitions=1);"
)
#: input files the source part reads (each `records / FILES` records)
FILES = 10


def _value(n: int) -> dict[str, object]:
    return {"READING": 20 + (n % 97) / 8, "AMOUNT": n % 1000, "SITE": f"site-{n % 13}"}


def _fill(engine: Engine, options: BenchOptions) -> None:
    engine.execute(STREAM)
    for start in range(0, options.records, options.batch_size):
        n = min(options.batch_size, options.records - start)
        engine.log.append(
            "bench_readings",
            [
                (f"d{i % 500}".encode(), json.dumps(_value(i)).encode())
                for i in range(start, start + n)
            ],
            partition=0,
        )


def _parquet_rows(path: Path) -> int:
    """Records in the Parquet sink's files, from their names (first and last offsets)."""
    total = 0
    for p in path.glob("*.parquet"):
        _, _, first, last = p.name.removesuffix(".parquet").rsplit("+", 3)
        total += int(last) - int(first) + 1
    return total


def _counted(engine: Engine, name: str, records: int) -> Callable[[], bool]:
    """Whether connector `name` has moved `records` records."""
    return lambda: int(engine.connectors.describe(name.upper())["records"]) >= records


def _timed(
    engine: Engine, statement: str, done: Callable[[], bool], what: str
) -> tuple[float, float]:
    wall, cpu = time.perf_counter(), time.process_time()
    engine.execute(statement)
    _wait(done, what)
    return time.perf_counter() - wall, time.process_time() - cpu


@bench_part("files_out", "file sink (JSON lines, CSV) and Parquet sink, from a typed stream")
def files_out(options: BenchOptions) -> Figures:
    """Records per second written by the file sink and the Parquet sink."""
    records = options.records
    figures: Figures = {}
    with options.scratch("files-out") as path, Engine(path / "data", fsync="never") as engine:
        _fill(engine, options)
        for fmt in ("jsonl", "csv"):
            name = f"bench_file_{fmt}"
            wall, cpu = _timed(
                engine,
                f"CREATE SINK CONNECTOR {name} WITH ('connector.class'='file-sink', "
                f"'source'='bench_readings', 'file.path'='{path}/out.{fmt}');",
                _counted(engine, name, records),
                f"the {fmt} file sink",
            )
            figures |= rates(f"file_sink_{fmt}_records", records, wall, cpu)
            options.report(f"file sink {fmt}", records)
        lake = path / "lake"
        wall, cpu = _timed(
            engine,
            "CREATE SINK CONNECTOR bench_parquet WITH ('connector.class'='parquet', "
            f"'source'='bench_readings', 'path'='{lake}', "
            f"'flush.records'='{max(options.batch_size, 10_000)}', 'flush.ms'='100');",
            lambda: _parquet_rows(lake) >= records,
            "the Parquet sink",
        )
        figures |= rates("parquet_sink_records", records, wall, cpu)
        options.report("parquet sink", records)
    return figures


@bench_part("files_in", "directory source: JSON-lines and CSV files into a topic")
def files_in(options: BenchOptions) -> Figures:
    """Records per second read by the directory source from JSON-lines and CSV files."""
    per_file = max(1, options.records // FILES)
    records = per_file * FILES
    figures: Figures = {}
    with options.scratch("files-in") as path, Engine(path / "data", fsync="never") as engine:
        for fmt in ("jsonl", "csv"):
            incoming = path / fmt
            incoming.mkdir()
            for f in range(FILES):
                rows = [
                    {"DEVICE": f"d{n % 500}", **_value(n)}
                    for n in range(f * per_file, (f + 1) * per_file)
                ]
                if fmt == "jsonl":
                    text = "".join(json.dumps(r) + "\n" for r in rows)
                else:
                    lines = [",".join(str(v) for v in r.values()) for r in rows]
                    text = ",".join(rows[0]) + "\n" + "\n".join(lines) + "\n"
                (incoming / f"part{f:03d}.{fmt}").write_text(text)
            name = f"bench_dir_{fmt}"
            wall, cpu = _timed(
                engine,
                f"CREATE SOURCE CONNECTOR {name} WITH ('connector.class'='directory', "
                f"'path'='{incoming}', 'file.stable.ms'='0', 'key.column'='DEVICE', "
                f"'kafka.topic'='bench_in_{fmt}');",
                _counted(engine, name, records),
                f"the directory source ({fmt})",
            )
            figures |= rates(f"directory_source_{fmt}_records", records, wall, cpu)
            options.report(f"directory source {fmt}", records)
    return figures


__all__ = ["files_in", "files_out"]

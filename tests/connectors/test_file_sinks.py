"""The file sink (CSV / JSON lines, rotation) and the Parquet sink (each record in exactly
one file, also when a crash comes between a write and its commit)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from hispeed.connectors.base import SinkBatch
from hispeed.connectors.file_sinks import FileSink, ParquetSink
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.log.base import TopicPartition
from hispeed.testing.wait import wait_for

READINGS = (
    "CREATE STREAM readings (device STRING KEY, x DOUBLE, tags ARRAY<STRING>) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
)


def _insert(engine: Engine, numbers: range) -> None:
    for n in numbers:
        engine.insert("readings", {"DEVICE": f"d{n}", "X": n / 2, "TAGS": [f"t{n}"]})


def _json_files(directory: Path, name: str) -> list[Path]:
    stem, suffix = name.split(".")
    rotated = sorted(directory.glob(f"{stem}.*.{suffix}"))
    return [*rotated, directory / name]


def test_json_lines_out_rotated_by_size_hold_every_record_in_order(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            READINGS + "CREATE SINK CONNECTOR o WITH ('connector.class'='file-sink', "
            f"'source'='readings', 'file.path'='{out}/r.jsonl', 'file.rotate.bytes'='200');"
        )
        for chunk in range(5):  # several batches, so that the file is rotated between them
            _insert(engine, range(chunk * 4, chunk * 4 + 4))
            wait_for(lambda c=chunk: engine.connectors.describe("O")["records"] == c * 4 + 4)
    files = _json_files(out, "r.jsonl")
    assert len(files) >= 3
    got = [json.loads(line) for f in files for line in f.read_text().splitlines()]
    assert got == [{"DEVICE": f"d{n}", "X": n / 2, "TAGS": [f"t{n}"]} for n in range(20)]


def test_csv_out_has_a_header_in_each_file_and_rotates_when_idle(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            READINGS + "CREATE SINK CONNECTOR o WITH ('connector.class'='file-sink', "
            f"'source'='readings', 'file.path'='{out}/r.csv', 'file.rotate.ms'='100');"
        )
        _insert(engine, range(3))
        # no more records: the file is rotated anyway once it is old enough
        wait_for(lambda: (out / "r.000001.csv").exists())
        _insert(engine, range(3, 4))
        wait_for(lambda: (out / "r.csv").exists() and len((out / "r.csv").read_text()) > 0)
        wait_for(lambda: len((out / "r.csv").read_text().splitlines()) == 2)
    with open(out / "r.000001.csv", newline="") as f:
        first = list(csv.reader(f))
    expected = [[f"d{n}", str(n / 2), f'["t{n}"]'] for n in range(3)]
    assert first == [["DEVICE", "X", "TAGS"], *expected]
    assert (out / "r.csv").read_text().splitlines() == ["DEVICE,X,TAGS", 'd3,1.5,"[""t3""]"']


def test_a_csv_file_in_and_out_round_trips(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    rows = [["id", "name", "score"]] + [[f"k{n}", f"name, {n}", str(n * 1.5)] for n in range(50)]
    with open(source, "w", newline="") as f:
        csv.writer(f).writerows(rows)
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE SOURCE CONNECTOR i WITH ('connector.class'='file', "
            f"'file.path'='{source}', 'kafka.topic'='people', 'key.column'='id');"
            "CREATE STREAM people (id STRING KEY, name STRING, score DOUBLE) "
            "WITH (kafka_topic='people', value_format='JSON');"
            "CREATE SINK CONNECTOR o WITH ('connector.class'='file-sink', "
            f"'source'='people', 'file.path'='{tmp_path}/out.csv');"
        )
        wait_for(lambda: engine.connectors.describe("O")["records"] == 50)
    with open(tmp_path / "out.csv", newline="") as f:
        back = list(csv.reader(f))
    assert back[0] == ["ID", "NAME", "SCORE"]
    assert back[1:] == [[r[0], r[1], str(float(r[2]))] for r in rows[1:]]


def test_a_csv_record_with_a_column_outside_the_header_goes_to_the_processing_log(
    tmp_path: Path,
) -> None:
    # a topic read without a schema: JSON objects whose fields vary
    sink = FileSink("o", {"file.path": str(tmp_path / "out.csv")})
    sink.start()
    try:
        rows: list[dict[str, Any] | None] = [
            {"A": 1, "B": "x"},
            {"A": 2, "C": "lost?"},
            {"A": 3, "B": None, "C": None},
            {"B": "y"},
        ]
        batch = SinkBatch("t", 0, [0, 1, 2, 3], [0] * 4, [None] * 4, rows)
        sink.write(batch)
    finally:
        sink.stop()
    assert batch.failures == [
        (
            1,
            "connector o: the record has C, not among the columns of out.csv's CSV header "
            "(A, B); a CSV file keeps one header: write JSON lines ('file.format'='json') "
            "for records whose columns vary",
        )
    ]
    with open(tmp_path / "out.csv", newline="") as f:
        assert list(csv.reader(f)) == [["A", "B"], ["1", "x"], ["3", ""], ["", "y"]]


def _batch(offsets: range) -> SinkBatch:
    rows: list[dict[str, Any] | None] = [{"K": f"k{o}", "V": o} for o in offsets]
    return SinkBatch(
        "t", 0, list(offsets), [0] * len(offsets), [f"k{o}" for o in offsets], rows, ["K"]
    )


def _parquet_offsets(directory: Path) -> list[int]:
    return sorted(v for f in directory.glob("*.parquet") for v in pq.read_table(f)["V"].to_pylist())


def test_parquet_files_resume_where_they_end_after_a_crash(tmp_path: Path) -> None:
    tp = TopicPartition("t", 0)
    sink = ParquetSink("p", {"path": str(tmp_path), "flush.records": "10"})
    sink.start()
    assert sink.resume_offsets([tp]) == {tp: 0}
    sink.write(_batch(range(0, 6)))
    sink.write(_batch(range(6, 12)))  # 12 pending: one file of offsets 0..11
    sink.write(_batch(range(12, 15)))  # pending only, when the process dies
    (tmp_path / ".t+0+00000000000000000012+00000000000000000014.parquet.tmp").write_bytes(b"x")
    # a crash: no stop(); the runner had committed offset 15, but the files say 12
    again = ParquetSink("p", {"path": str(tmp_path), "flush.records": "10"})
    again.start()
    assert again.resume_offsets([tp, TopicPartition("t", 1)]) == {tp: 12, ("t", 1): 0}
    assert not list(tmp_path.glob(".*"))  # the half-written file is gone
    again.write(_batch(range(10, 20)))  # read again from before what the files hold
    again.write(_batch(range(20, 25)))
    again.stop()
    assert _parquet_offsets(tmp_path) == list(range(25))
    names = sorted(p.name for p in tmp_path.glob("*.parquet"))
    assert names == [
        "t+0+00000000000000000000+00000000000000000011.parquet",
        "t+0+00000000000000000012+00000000000000000024.parquet",
    ]


def test_the_parquet_sink_writes_typed_columns_and_resumes_in_an_engine(tmp_path: Path) -> None:
    data = tmp_path / "data"
    lake = tmp_path / "lake"
    with Engine(data, fsync="never") as engine:
        engine.execute(
            READINGS + "CREATE SINK CONNECTOR p WITH ('connector.class'='parquet', "
            f"'source'='readings', 'path'='{lake}', 'flush.records'='10', 'flush.ms'='600000');"
        )
        _insert(engine, range(25))
        wait_for(lambda: engine.connectors.describe("P")["records"] == 25)
        assert list(lake.glob("*.parquet"))  # 10 records or more make a file
    # closed: what was pending went to a file of its own
    assert len(pq.read_table(lake)) == 25
    with Engine(data, fsync="never") as engine:
        _insert(engine, range(25, 30))
        wait_for(lambda: engine.connectors.describe("P")["details"]["pending"] == 5)
    table = pa.concat_tables(pq.read_table(f) for f in sorted(lake.glob("*.parquet")))
    assert table.schema.field("X").type == pa.float64()
    assert table.schema.field("TAGS").type == pa.list_(pa.string())
    assert table.column("DEVICE").to_pylist() == [f"d{n}" for n in range(30)]


@pytest.mark.parametrize(
    ("cls", "config", "message"),
    [
        (FileSink, {}, "needs 'file.path'"),
        (FileSink, {"file.path": "x.parquet"}, "'connector.class'='parquet'"),
        (FileSink, {"file.path": "x.csv", "file.rotate.bytes": "big"}, "whole number"),
        (ParquetSink, {}, "needs 'path'"),
        (ParquetSink, {"path": "d", "parquet.compression": "rar"}, "'parquet.compression'"),
        (ParquetSink, {"path": "d", "flush.records": "-5"}, "'flush.records' must be from 0"),
    ],
)
def test_a_bad_configuration_is_a_clear_error(
    cls: type[FileSink | ParquetSink], config: dict[str, str], message: str
) -> None:
    with pytest.raises(HispeedError, match=message):
        cls("s", config)


def test_the_parquet_sink_leaves_out_a_tables_deletions(tmp_path: Path) -> None:
    lake = tmp_path / "lake"
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            READINGS
            + "CREATE TABLE latest AS SELECT device, LATEST_BY_OFFSET(x) AS x FROM readings "
            "GROUP BY device HAVING LATEST_BY_OFFSET(x) > 0;"
            "CREATE SINK CONNECTOR p WITH ('connector.class'='parquet', 'source'='LATEST', "
            f"'path'='{lake}', 'flush.records'='1000', 'flush.ms'='600000');"
        )
        engine.start()
        engine.insert("readings", {"DEVICE": "a", "X": 1.0, "TAGS": []})
        wait_for(lambda: engine.log.offsets("LATEST", 0)[1] == 1)
        for device, x in (("b", 2.0), ("a", -1.0), ("c", 3.0)):  # a's HAVING fails: deleted
            engine.insert("readings", {"DEVICE": device, "X": x, "TAGS": []})

        def table() -> list[tuple[bytes, bytes | None]]:
            t = engine.log.read_table("LATEST", 0)
            keys, values = t.column("key").to_pylist(), t.column("value").to_pylist()
            return list(zip(keys, values, strict=True))

        wait_for(lambda: (b"a", None) in table() and any(k == b"c" for k, _ in table()))
        wait_for(lambda: engine.connectors.describe("P")["lag"] == 0)
        records = table()
    written = [{"DEVICE": k.decode(), "X": json.loads(v)["X"]} for k, v in records if v is not None]
    assert len(written) < len(records)  # there was a deletion, and it is not a row
    assert pq.read_table(lake).to_pylist() == written

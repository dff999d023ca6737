"""AVRO's columnar fast path reads flat records exactly as fastavro does, and gives way to
the record-by-record path (and its per-record errors) for anything else."""

from __future__ import annotations

import datetime
import io
import json
import random
import struct

import fastavro
import pyarrow as pa
import pytest

from hispeed.formats import Column, avro_columnar, get_format
from hispeed.formats.base import FormatContext
from hispeed.registry import MemoryRegistry, Schema
from hispeed.sql import types as T

FLAT = {
    "type": "record",
    "name": "Flat",
    "fields": [
        {"name": "i", "type": ["null", "int"]},
        {"name": "l", "type": ["long", "null"]},
        {"name": "d", "type": ["null", "double"]},
        {"name": "f", "type": "float"},
        {"name": "b", "type": ["null", "boolean"]},
        {"name": "s", "type": ["null", "string"]},
        {"name": "skipped", "type": "string"},
        {"name": "ts", "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}]},
    ],
}
COLUMNS = [
    Column("I", T.INTEGER),
    Column("L", T.BIGINT),
    Column("D", T.DOUBLE),
    Column("F", T.DOUBLE),
    Column("B", T.BOOLEAN),
    Column("S", T.STRING),
    Column("TS", T.TIMESTAMP),
    Column("MISSING", T.STRING),
]


def _record(rng: random.Random) -> dict[str, object]:
    def maybe(v: object) -> object:
        return None if rng.random() < 0.2 else v

    return {
        "i": maybe(rng.randint(-(2**31), 2**31 - 1)),
        "l": maybe(rng.randint(-(2**63), 2**63 - 1)),
        "d": maybe(rng.uniform(-1e9, 1e9)),
        "f": 0.5,
        "b": maybe(rng.random() < 0.5),
        "s": maybe("".join(rng.choice("aé€x") for _ in range(rng.randint(0, 12)))),
        "skipped": "z" * rng.randint(0, 200),
        "ts": maybe(datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)),
    }


def _framed(sid: int, record: dict[str, object]) -> bytes:
    out = io.BytesIO()
    fastavro.schemaless_writer(out, fastavro.parse_schema(FLAT), record)
    return struct.pack(">bI", 0, sid) + out.getvalue()


@pytest.fixture(params=["native", "numpy"])
def implementation(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """decode_flat with its C part (`_flatavro`) or with numpy only."""
    built = avro_columnar._extension()
    if request.param == "native":
        # optional for users (setup.py builds it where a compiler is; `make` does): the
        # project's own checkouts must have it, or its test would pass without running
        assert built is not None, "hispeed.formats._flatavro is not built (pip install -e .)"
        monkeypatch.setattr(avro_columnar, "_extension", lambda: built)
    else:
        monkeypatch.setattr(avro_columnar, "_extension", lambda: None)
    return str(request.param)


def test_flat_records_read_as_fastavro_reads_them(implementation: str) -> None:
    registry = MemoryRegistry()
    sid = registry.register("t-value", Schema(json.dumps(FLAT)))
    fmt = get_format("AVRO", context=FormatContext(registry, "t"))
    rng = random.Random(7)
    records = [_record(rng) for _ in range(500)]
    result = fmt.decode(pa.array([_framed(sid, r) for r in records]), COLUMNS)
    assert result.errors == []
    for got, want in zip(result.batch.to_pylist(), records, strict=True):
        assert got["I"] == want["i"]
        assert got["L"] == want["l"]
        assert got["D"] == want["d"]
        assert got["F"] == 0.5
        assert got["B"] == want["b"]
        assert got["S"] == want["s"]
        ts = want["ts"]
        assert got["TS"] == (None if ts is None else datetime.datetime(2020, 1, 1))
        assert got["MISSING"] is None


def test_a_record_cut_short_is_an_error_of_its_row_only(implementation: str) -> None:
    registry = MemoryRegistry()
    sid = registry.register("t-value", Schema(json.dumps(FLAT)))
    fmt = get_format("AVRO", context=FormatContext(registry, "t"))
    rng = random.Random(3)
    good = [_framed(sid, _record(rng)) for _ in range(3)]
    data = pa.array([good[0], good[1][:-3], good[2]])
    result = fmt.decode(data, COLUMNS)
    assert [row for row, _ in result.errors] == [1]
    rows = result.batch.to_pylist()
    assert all(v is None for v in rows[1].values())
    assert rows[0]["S"] is not None or rows[0]["L"] is not None


def test_flat_records_are_written_as_fastavro_reads_them() -> None:
    registry = MemoryRegistry()
    fmt = get_format("AVRO", context=FormatContext(registry, "t"))
    columns = [c for c in COLUMNS if c.name != "MISSING"]
    rng = random.Random(11)
    rows = []
    for _ in range(300):
        rec = _record(rng)
        ts = rec["ts"]
        rows.append(
            {
                "I": rec["i"],
                "L": rec["l"],
                "D": rec["d"],
                "F": rec["d"],
                "B": rec["b"],
                "S": rec["s"],
                "TS": None if ts is None else datetime.datetime(2020, 1, 1),
            }
        )
    batch = pa.RecordBatch.from_pylist(
        rows, schema=pa.schema([(c.name, c.type.to_arrow()) for c in columns])
    )
    written = fmt.encode(batch, columns).to_pylist()
    schema = json.loads(registry.version("t-value").schema.schema)
    parsed = fastavro.parse_schema(schema)
    for data, want in zip(written, rows, strict=True):
        assert data[0] == 0
        got = fastavro.schemaless_reader(io.BytesIO(data[5:]), parsed, None)
        ts = got.pop("TS")
        assert ts == (
            None if want["TS"] is None else datetime.datetime(2020, 1, 1, tzinfo=datetime.UTC)
        )
        assert got == {k: v for k, v in want.items() if k != "TS"}


def test_dates_and_times_are_written_as_their_numbers() -> None:
    registry = MemoryRegistry()
    fmt = get_format("AVRO", context=FormatContext(registry, "t"))
    columns = [Column("D", T.DATE), Column("T", T.TIME)]
    batch = pa.RecordBatch.from_pylist(
        [{"D": datetime.date(1970, 1, 3), "T": datetime.time(0, 0, 1)}, {"D": None, "T": None}],
        schema=pa.schema([("D", pa.date32()), ("T", pa.time32("ms"))]),
    )
    parsed = None
    out = []
    for data in fmt.encode(batch, columns).to_pylist():
        schema = json.loads(registry.version("t-value").schema.schema)
        parsed = parsed or fastavro.parse_schema(schema)
        out.append(fastavro.schemaless_reader(io.BytesIO(data[5:]), parsed, None))
    assert out == [
        {"D": datetime.date(1970, 1, 3), "T": datetime.time(0, 0, 1)},
        {"D": None, "T": None},
    ]


def test_records_that_are_not_what_the_schema_says_are_read_one_by_one(
    implementation: str,
) -> None:
    # a union branch past the schema's two, an int beyond 32 bits, fields that run past the
    # record's end, bytes left over: each is that row's error, and the rest are read
    registry = MemoryRegistry()
    sid = registry.register("t-value", Schema(json.dumps(FLAT)))
    fmt = get_format("AVRO", context=FormatContext(registry, "t"))
    good = _framed(sid, _record(random.Random(5)))
    head = struct.pack(">bI", 0, sid)
    bad = [
        head + b"\x04",  # union branch 2
        head + b"\x02\xfe\xff\xff\xff\x1f",  # an int of 2**33 - 1 (zig-zag)
        head + b"\x00\x00\x00" + b"\x00" * 8 + b"\x00\x00\x00\x00\x00\x7f",  # cut short
        good + b"\x00",
    ]
    result = fmt.decode(pa.array([good, *bad, good]), COLUMNS)
    assert [row for row, _ in result.errors] == [1, 2, 3, 4]
    rows = result.batch.to_pylist()
    assert rows[0] == rows[5]
    assert rows[0]["F"] == 0.5

"""Windowed keys on the embedded log, in the layout Kafka Streams' windowed serdes use.

The expected layout is written here from Kafka Streams' published code, not from hispeed's:
`TimeWindowedSerializer` (WindowKeySchema.toBinary) writes key ‖ start, and
`SessionWindowedSerializer` (SessionKeySchema.toBinary) writes key ‖ end ‖ start, each time an
8-byte big-endian long. ksqlDB's GenericKeySerDe wraps its key serde in those, so this is also
what a ksqlDB or Kafka Streams consumer of a hispeed table expects.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine

EngineFactory = Callable[..., Engine]


def kstreams_session_key(raw: bytes) -> tuple[bytes, int, int]:
    """(key bytes, start, end) of a session-windowed key: key ‖ end ‖ start."""
    end, start = struct.unpack(">qq", raw[-16:])
    return raw[:-16], start, end


def kstreams_time_key(raw: bytes) -> tuple[bytes, int]:
    """(key bytes, start) of a time-windowed key: key ‖ start."""
    (start,) = struct.unpack(">q", raw[-8:])
    return raw[:-8], start


@pytest.fixture
def engine_factory(tmp_path: Path) -> Iterator[EngineFactory]:
    opened: list[Engine] = []

    def make(per_record: bool) -> Engine:
        # per record: the reference aggregator; batched: the vectorized one (ops/vectorized*)
        properties = {"ksql.streams.cache.max.bytes.buffering": "0"} if per_record else {}
        e = Engine(tmp_path / f"data-{per_record}", fsync="never", properties=properties)
        opened.append(e)
        return e

    yield make
    for e in opened:
        e.close()


def raw_records(engine: Engine, topic: str) -> list[tuple[bytes, Any]]:
    out = []
    for p in range(len(engine.log.describe_topic(topic).partitions)):
        for r in engine.log.read_table(topic, p).to_pylist():
            out.append((r["key"], json.loads(r["value"]) if r["value"] is not None else None))
    return out


READINGS = (
    "CREATE STREAM readings (device STRING KEY, temp DOUBLE) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
)


@pytest.mark.parametrize("per_record", [True, False], ids=["per-record", "batched"])
def test_session_keys_are_key_end_start(engine_factory: EngineFactory, per_record: bool) -> None:
    engine = engine_factory(per_record)
    engine.execute(READINGS)
    engine.execute(
        "CREATE TABLE sess AS SELECT device, COUNT(*) AS n FROM readings "
        "WINDOW SESSION (10 SECONDS) GROUP BY device;"
    )
    for ts in [7000, 12000, 30000]:
        engine.insert("readings", {"DEVICE": "d", "TEMP": 1.0}, timestamp=ts)
    engine.drain()
    records = raw_records(engine, "SESS")
    latest: dict[tuple[bytes, int, int], Any] = {}
    for raw, value in records:
        key, start, end = kstreams_session_key(raw)
        assert key == b"d"
        assert start <= end, (
            f"a session read with Kafka Streams' layout ends before it starts: {raw!r}"
        )
        latest[(key, start, end)] = value
    # 7000 and 12000 are one session (within the 10 s gap), 30000 another
    live = {k: v["N"] for k, v in latest.items() if v is not None}
    assert live == {(b"d", 7000, 12000): 2, (b"d", 30000, 30000): 1}


@pytest.mark.parametrize("per_record", [True, False], ids=["per-record", "batched"])
def test_tumbling_and_hopping_keys_are_key_start(
    engine_factory: EngineFactory, per_record: bool
) -> None:
    engine = engine_factory(per_record)
    engine.execute(READINGS)
    engine.execute(
        "CREATE TABLE tumble AS SELECT device, COUNT(*) AS n FROM readings "
        "WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY device;"
    )
    engine.execute(
        "CREATE TABLE hop AS SELECT device, COUNT(*) AS n FROM readings "
        "WINDOW HOPPING (SIZE 10 SECONDS, ADVANCE BY 5 SECONDS) GROUP BY device;"
    )
    for ts in [7000, 12000]:
        engine.insert("readings", {"DEVICE": "d", "TEMP": 1.0}, timestamp=ts)
    engine.drain()

    def last(topic: str) -> dict[tuple[bytes, int], int]:
        out = {}
        for raw, value in raw_records(engine, topic):
            out[kstreams_time_key(raw)] = value["N"]
        return out

    assert last("TUMBLE") == {(b"d", 0): 1, (b"d", 10000): 1}
    assert last("HOP") == {(b"d", 0): 1, (b"d", 5000): 2, (b"d", 10000): 1}


# a stream: ksqlDB (and hispeed) refuse a persistent query over a windowed table
SESSION_SOURCE = (
    "CREATE STREAM sessions (device STRING KEY, n BIGINT) "
    "WITH (kafka_topic='sessions', value_format='JSON', window_type='SESSION', partitions=1);"
)


def test_a_session_table_written_by_kafka_streams_reads_its_start_and_end(
    engine_factory: EngineFactory,
) -> None:
    """A session key as Kafka Streams writes it (key ‖ end ‖ start) gives WINDOWSTART and
    WINDOWEND the right way round, in a query over the table and in a pull query."""
    engine = engine_factory(True)
    engine.execute(SESSION_SOURCE)
    engine.execute("CREATE STREAM copy AS SELECT * FROM sessions;")
    engine.log.append(
        "sessions",
        [(b"a" + struct.pack(">qq", 9000, 1000), b'{"N": 3}')],  # end 9000, start 1000
    )
    engine.drain()
    [(raw, value)] = raw_records(engine, "COPY")
    assert kstreams_session_key(raw) == (b"a", 1000, 9000)
    assert value == {"N": 3}
    [row] = engine.query("SELECT * FROM copy;")
    assert (row["WINDOWSTART"], row["WINDOWEND"]) == (1000, 9000)


def test_a_session_table_written_by_an_older_hispeed_still_reads(
    engine_factory: EngineFactory,
) -> None:
    """hispeed wrote key ‖ start ‖ end until December 2026: such a record (its first time
    below its second, which no real session's end ‖ start can be) reads with the times
    swapped back, and what the query writes from it has Kafka Streams' layout."""
    engine = engine_factory(True)
    engine.execute(SESSION_SOURCE)
    engine.execute("CREATE STREAM copy AS SELECT * FROM sessions;")
    engine.log.append(
        "sessions",
        [
            (b"old" + struct.pack(">qq", 1000, 9000), b'{"N": 3}'),  # start, end: old
            (b"one" + struct.pack(">qq", 5000, 5000), b'{"N": 1}'),  # the same in both
        ],
    )
    engine.drain()
    got = {kstreams_session_key(raw): value for raw, value in raw_records(engine, "COPY")}
    assert got == {(b"old", 1000, 9000): {"N": 3}, (b"one", 5000, 5000): {"N": 1}}


@pytest.mark.parametrize("per_record", [True, False], ids=["per-record", "batched"])
def test_a_session_takes_records_until_end_plus_grace_plus_gap(
    engine_factory: EngineFactory, per_record: bool
) -> None:
    """Kafka Streams' KStreamSessionWindowAggregate drops a record only when its merged
    session's end is before stream time - grace - gap (gap 10 s, grace 20 s here)."""
    engine = engine_factory(per_record)
    engine.execute(READINGS)
    engine.execute(
        "CREATE TABLE sess AS SELECT device, COUNT(*) AS n FROM readings "
        "WINDOW SESSION (10 SECONDS, GRACE PERIOD 20 SECONDS) GROUP BY device;"
    )
    for ts in [0, 100_000, 69_999, 70_000]:
        engine.insert("readings", {"DEVICE": "d", "TEMP": 1.0}, timestamp=ts)
    engine.drain()
    windows = [kstreams_session_key(raw)[1:] for raw, value in raw_records(engine, "SESS") if value]
    assert windows == [(0, 0), (100_000, 100_000), (70_000, 70_000)]

"""hispeed and other Kafka clients on one broker, with ksqlDB's conventions.

Records that kcat, confluent-kafka and kafka-python produce (JSON, DELIMITED and KAFKA
formats) are read by hispeed streams, and what hispeed writes is read back by them: key bytes
as ksqlDB's formats write them, partitions by murmur2 of the key bytes as Java clients and
Kafka Streams choose them (a windowed key by its plain key, as Kafka Streams'
WindowedStreamPartitioner), record timestamps and headers as ksqlDB sees them. Every test runs
an Engine of its own application id on a KafkaLog without a prefix, so user topics have their
plain names, as a ksqlDB user's would; the topics' names are unique to the test instead.
"""

from __future__ import annotations

import base64
import contextlib
import importlib
import json
import os
import struct
import subprocess
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from hispeed.engine import Engine
from hispeed.log.kafka import ZERO_TIMESTAMP_HEADER, KafkaLog
from hispeed.testing.services import Service, require_binary
from hispeed.testing.wait import wait_for

pytestmark = [pytest.mark.services, pytest.mark.kafka, pytest.mark.slow]

OpenEngine = Callable[[], Engine]
READ_COMMITTED = ("-X", "isolation.level=read_committed")
#: a minute in ms, and a start for event times on a minute's boundary
MINUTE = 60_000
T0 = 1_700_000_040_000


def require_module(name: str, package: str) -> Any:
    """Import `name`; missing, skip (or fail, as require_binary does, under
    HISPEED_REQUIRE_SERVICES=1)."""
    try:
        with warnings.catch_warnings():
            # kafka-python reads its protocol schemas with importlib.resources' legacy API
            warnings.simplefilter("ignore", DeprecationWarning)
            return importlib.import_module(name)
    except ImportError:
        message = f"{name} is not installed (pip install {package})"
        if os.environ.get("HISPEED_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message}; HISPEED_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(message)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture
def bootstrap(kafka_server: Service) -> str:
    return f"{kafka_server.host}:{kafka_server.port}"


@pytest.fixture
def admin(bootstrap: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap})


@pytest.fixture
def tag() -> str:
    """In every topic and source name of the test (and its application id)."""
    return uuid.uuid4().hex[:8]


@pytest.fixture
def open_engine(bootstrap: str, admin: AdminClient, tag: str) -> Iterator[OpenEngine]:
    """Opens the test's engine on Kafka; at the end closes it and deletes every topic whose
    name holds the test's tag (the user topics and the application's own)."""
    opened: list[Engine] = []

    def open_() -> Engine:
        log = KafkaLog(bootstrap, app_id=f"interop-{tag}", session_timeout_ms=6000, timeout=20)
        engine = Engine(log_=log, worker_id="interop-1")
        opened.append(engine)
        return engine

    yield open_
    for engine in opened:
        engine.close()
    ours = [t for t in admin.list_topics(timeout=10).topics if tag in t.lower()]
    if ours:
        for future in admin.delete_topics(ours, operation_timeout=0).values():
            with contextlib.suppress(ck.KafkaException):  # best effort: the session's broker
                future.result()


@pytest.fixture
def kcat() -> str:
    return require_binary("kcat", "kcat")


@pytest.fixture(scope="module")
def java_partition(kafka_server: Service) -> Iterator[Callable[[bytes, int], int]]:
    """The partition Java's default partitioner gives a key among `n`, as librdkafka's
    murmur2_random partitioner (documented as Java's) gives it: the partition a record of that
    key is delivered to, in a scratch topic of `n` partitions."""
    bootstrap = f"{kafka_server.host}:{kafka_server.port}"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    producer = ck.Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    scratch: dict[int, str] = {}
    known: dict[tuple[bytes, int], int] = {}

    def partition(key: bytes, n: int) -> int:
        if (key, n) not in known:
            if n not in scratch:
                scratch[n] = f"interop_murmur2_{n}_{uuid.uuid4().hex[:8]}"
                create_topic(admin, scratch[n], n)
            delivered: list[tuple[Any, int]] = []
            producer.produce(
                scratch[n],
                b"",
                key,
                on_delivery=lambda err, msg: delivered.append((err, msg.partition())),
            )
            producer.flush(20)
            [(err, known[(key, n)])] = delivered
            assert err is None, err
        return known[(key, n)]

    yield partition
    if scratch:
        for future in admin.delete_topics(list(scratch.values()), operation_timeout=0).values():
            with contextlib.suppress(ck.KafkaException):
                future.result()


# -- helpers ----------------------------------------------------------------------------------


def create_topic(admin: AdminClient, name: str, partitions: int) -> None:
    """A topic made outside hispeed, as a ksqlDB user's would be; waits until it has leaders."""
    admin.create_topics([NewTopic(name, partitions)])[name].result(20)

    def ready() -> bool:
        md = admin.list_topics(name, timeout=10).topics.get(name)
        return bool(
            md is not None
            and md.error is None
            and len(md.partitions) == partitions
            and all(p.leader >= 0 for p in md.partitions.values())
        )

    wait_for(ready, timeout=20)


def kcat_read(kcat: str, bootstrap: str, topic: str) -> list[dict[str, Any]]:
    """Every committed record of `topic`, as kcat's JSON envelope (-J) reports it."""
    run = subprocess.run(
        [kcat, "-C", "-b", bootstrap, "-t", topic, "-e", "-q", "-J", *READ_COMMITTED],
        capture_output=True,
        timeout=60,
        check=True,
    )
    return [json.loads(line) for line in run.stdout.decode().splitlines() if line.strip()]


def confluent_read(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    """Every committed record of `topic`, read by a confluent-kafka consumer (read_committed)
    from the start of each partition to its end."""
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"interop-reader-{uuid.uuid4().hex[:8]}",
            "isolation.level": "read_committed",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
        }
    )
    try:
        consumer.assign(
            [ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in range(partitions)]
        )
        ends: set[int] = set()
        out: list[Any] = []

        def read_all() -> bool:
            msg = consumer.poll(0.2)
            if msg is None:
                return False
            if msg.error() is not None:
                assert msg.error().code() == ck.KafkaError._PARTITION_EOF, msg.error()
                ends.add(msg.partition())
                return len(ends) == partitions
            out.append(msg)
            return False

        wait_for(read_all, timeout=30)
        return out
    finally:
        consumer.close()


def kafka_python_read(bootstrap: str, topic: str, partitions: int) -> list[Any]:
    """Every committed record of `topic`, read by kafka-python (read_committed)."""
    kafka = require_module("kafka", "kafka-python")
    consumer = kafka.KafkaConsumer(
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        tps = [kafka.TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(tps)
        consumer.seek_to_beginning(*tps)
        ends = consumer.end_offsets(tps)
        out: list[Any] = []

        def read_all() -> bool:
            for records in consumer.poll(timeout_ms=200).values():
                out.extend(records)
            return all(consumer.position(tp) >= ends[tp] for tp in tps)

        wait_for(read_all, timeout=30)
        return sorted(out, key=lambda r: (r.partition, r.offset))
    finally:
        consumer.close()


def by_partition(records: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(records, key=lambda r: (r["partition"], r["offset"]))


# -- 1. kcat, JSON values, STRING keys --------------------------------------------------------


def test_kcat_json_in_and_out(
    open_engine: OpenEngine,
    admin: AdminClient,
    bootstrap: str,
    kcat: str,
    tag: str,
    java_partition: Callable[[bytes, int], int],
) -> None:
    """kcat's keyed JSON records (in the partitions kcat's own partitioner chooses) are all
    read by a STRING-keyed stream; a filtering query's output topic, named after the stream
    as ksqlDB names it, holds the plain key string, ksqlDB's JSON value and murmur2's
    partition, with each input record's timestamp, as kcat reads it back read_committed."""
    topic = f"payments_{tag}"
    create_topic(admin, topic, 3)
    payments = [
        ("alice", 12, "paris"),
        ("bob", 20, "rome"),
        ("carol", 15, "oslo"),
        ("dave", 50, "lima"),
        ("erin", 8, "kyiv"),
        ("frank", 70, "bern"),
        ("grace", 11, "riga"),
        ("alice", 30, "nice"),
    ]
    lines = "".join(f'{k}:{{"AMOUNT": {a}, "CITY": "{c}"}}\n' for k, a, c in payments)
    subprocess.run(
        [kcat, "-P", "-b", bootstrap, "-t", topic, "-K:"],
        input=lines.encode(),
        timeout=60,
        check=True,
    )
    sent = kcat_read(kcat, bootstrap, topic)
    assert sorted(r["key"] for r in sent) == sorted(k for k, _, _ in payments)
    # kcat partitions by CRC32 (librdkafka's consistent_random), not murmur2: for some of these
    # keys the input partition is not the one ksqlDB's output gets, which the test relies on
    assert any(r["partition"] != java_partition(r["key"].encode(), 3) for r in sent)

    engine = open_engine()
    engine.execute(
        f"CREATE STREAM pay_{tag} (id STRING KEY, amount INT, city STRING) "
        f"WITH (kafka_topic='{topic}', value_format='JSON', key_format='KAFKA');"
    )
    engine.execute(
        f"CREATE STREAM big_{tag} AS SELECT id, amount, city FROM pay_{tag} WHERE amount > 10;"
    )
    assert engine.drain() == len(payments)

    out_topic = f"BIG_{tag.upper()}"  # ksqlDB's sink topic: the stream's name
    got = kcat_read(kcat, bootstrap, out_topic)  # drain() returns once its commits are visible
    stamp_of = {(r["key"], r["payload"]): r["ts"] for r in sent}
    expected = []
    for key, amount, city in payments:
        if amount <= 10:
            continue
        source = stamp_of[(key, f'{{"AMOUNT": {amount}, "CITY": "{city}"}}')]
        expected.append(
            (key, java_partition(key.encode(), 3), f'{{"AMOUNT":{amount},"CITY":"{city}"}}', source)
        )
    assert sorted((r["key"], r["partition"], r["payload"], r["ts"]) for r in got) == sorted(
        expected
    )
    assert all(r["tstype"] == "create" for r in got)
    # alice's two records keep their order in her partition
    alice = [r["payload"] for r in by_partition(got) if r["key"] == "alice"]
    assert alice == ['{"AMOUNT":12,"CITY":"paris"}', '{"AMOUNT":30,"CITY":"nice"}']
    assert len(engine.log.describe_topic(out_topic).partitions) == 3  # the source's count


# -- 2. kafka-python, DELIMITED values, INT/BIGINT keys, a windowed table ----------------------


@pytest.mark.parametrize(("key_type", "layout"), [("INT", ">i"), ("BIGINT", ">q")])
def test_kafka_python_delimited_windowed_table(
    open_engine: OpenEngine,
    admin: AdminClient,
    bootstrap: str,
    tag: str,
    java_partition: Callable[[bytes, int], int],
    key_type: str,
    layout: str,
) -> None:
    """kafka-python's CSV values with Kafka's Integer/Long-serialized keys are read by a
    DELIMITED stream; a tumbling-window count's JSON table is read back by kafka-python
    (read_committed): each key is the key's KAFKA bytes and the window start as 8 big-endian
    bytes (Kafka Streams' TimeWindowed layout), in murmur2's partition of the plain key's
    bytes (Kafka Streams' WindowedStreamPartitioner), the last change of each window holding
    its counts, stamped with the window's latest record time."""
    kafka = require_module("kafka", "kafka-python")
    topic = f"clicks_{tag}"
    create_topic(admin, topic, 3)
    # (user, page, dwell ms, event time) in two one-minute windows; a page with the delimiter
    clicks = [
        (7, "home", 1200, T0 + 1_000),
        (1234567, "cart", 300, T0 + 2_000),
        (7, "search", 450, T0 + 30_000),
        (-3, "home", 10, T0 + 40_000),
        (7, "item, large", 2000, T0 + MINUTE + 5_000),
        (1234567, "home", 700, T0 + MINUTE + 6_000),
        (1234567, "pay", 50, T0 + MINUTE + 59_999),
    ]
    producer = kafka.KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    for user, page, dwell, ts in clicks:
        page_text = f'"{page}"' if "," in page else page
        producer.send(
            topic,
            key=struct.pack(layout, user),
            value=f"{page_text},{dwell}".encode(),
            timestamp_ms=ts,
        )
    producer.flush(30)
    producer.close()

    engine = open_engine()
    engine.execute(
        f"CREATE STREAM clicks_{tag} (user_id {key_type} KEY, page STRING, dwell INT) "
        f"WITH (kafka_topic='{topic}', value_format='DELIMITED', key_format='KAFKA');"
    )
    engine.execute(
        f"CREATE TABLE per_minute_{tag} WITH (value_format='JSON') AS "
        f"SELECT user_id, COUNT(*) AS views, SUM(dwell) AS dwell, "
        f"MAX(dwell) AS longest FROM clicks_{tag} "
        f"WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY user_id EMIT CHANGES;"
    )
    assert engine.drain() == len(clicks)

    out_topic = f"PER_MINUTE_{tag.upper()}"
    records = kafka_python_read(bootstrap, out_topic, 3)
    width = struct.calcsize(layout)
    last: dict[tuple[int, int], tuple[int, dict[str, Any]]] = {}  # (user, window start)
    for r in records:
        assert len(r.key) == width + 8
        (user,) = struct.unpack(layout, r.key[:width])
        (start,) = struct.unpack(">q", r.key[width:])
        assert r.partition == java_partition(r.key[:width], 3), (user, start)
        last[(user, start)] = (r.timestamp, json.loads(r.value))
    assert last == {
        (7, T0): (T0 + 30_000, {"VIEWS": 2, "DWELL": 1650, "LONGEST": 1200}),
        (1234567, T0): (T0 + 2_000, {"VIEWS": 1, "DWELL": 300, "LONGEST": 300}),
        (-3, T0): (T0 + 40_000, {"VIEWS": 1, "DWELL": 10, "LONGEST": 10}),
        (7, T0 + MINUTE): (
            T0 + MINUTE + 5_000,
            {"VIEWS": 1, "DWELL": 2000, "LONGEST": 2000},
        ),
        (1234567, T0 + MINUTE): (
            T0 + MINUTE + 59_999,
            {"VIEWS": 2, "DWELL": 750, "LONGEST": 700},
        ),
    }


# -- 3. confluent-kafka, headers and record timestamps ------------------------------------------


def test_confluent_headers_and_timestamps(
    open_engine: OpenEngine,
    admin: AdminClient,
    bootstrap: str,
    tag: str,
    java_partition: Callable[[bytes, int], int],
) -> None:
    """confluent-kafka's records with headers and explicit timestamps: hispeed's ROWTIME is
    the record's timestamp, HEADERS every header in order and HEADER('k') the last value of
    `k`; an output keeps each input record's timestamp, and one WITH (timestamp=...) is
    stamped with that column, as confluent-kafka reads them (read_committed)."""
    topic = f"readings_{tag}"
    create_topic(admin, topic, 2)
    producer = ck.Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    readings = [
        ("s1", 21.5, T0 + 1_000, [("source", b"lab"), ("trace", b"\x00\x01")]),
        ("s2", 19.0, T0 + 2_500, [("source", b"roof")]),
        ("s1", 22.0, T0 + 4_000, [("source", b"old"), ("source", b"lab2")]),
        ("s3", -4.25, 1, None),
    ]
    for key, temp, ts, headers in readings:
        producer.produce(
            topic, json.dumps({"TEMP": temp}).encode(), key.encode(), timestamp=ts, headers=headers
        )
    assert producer.flush(30) == 0

    engine = open_engine()
    engine.execute(
        f"CREATE STREAM readings_{tag} (id STRING KEY, temp DOUBLE, "
        f"src BYTES HEADER('source'), hs ARRAY<STRUCT<key STRING, value BYTES>> HEADERS) "
        f"WITH (kafka_topic='{topic}', value_format='JSON');"
    )
    engine.execute(
        f"CREATE STREAM seen_{tag} AS SELECT id, temp, ROWTIME AS rt, "
        f"FROM_BYTES(src, 'utf8') AS source, hs FROM readings_{tag};"
    )
    engine.execute(
        f"CREATE STREAM due_{tag} WITH (timestamp='DUE') AS "
        f"SELECT id, ROWTIME + 60000 AS due FROM readings_{tag} WHERE temp > 0;"
    )
    assert engine.drain() == 2 * len(readings)

    seen = confluent_read(bootstrap, f"SEEN_{tag.upper()}", 2)
    got = sorted((m.key(), m.partition(), m.timestamp(), json.loads(m.value())) for m in seen)
    create = ck.TIMESTAMP_CREATE_TIME
    expected = []
    for key, temp, ts, headers in readings:
        sources = [v for k, v in headers or [] if k == "source"]
        value = {
            "TEMP": temp,
            "RT": ts,
            "SOURCE": sources[-1].decode() if sources else None,
            "HS": [{"KEY": k, "VALUE": base64.b64encode(v).decode()} for k, v in headers or []],
        }
        expected.append((key.encode(), java_partition(key.encode(), 2), (create, ts), value))
    assert got == sorted(expected)

    due = confluent_read(bootstrap, f"DUE_{tag.upper()}", 2)
    assert sorted((m.key(), m.timestamp(), json.loads(m.value())) for m in due) == sorted(
        (key.encode(), (create, ts + MINUTE), {"DUE": ts + MINUTE})
        for key, temp, ts, _ in readings
        if temp > 0
    )


def test_outputs_carry_the_input_headers(
    open_engine: OpenEngine, admin: AdminClient, bootstrap: str, tag: str
) -> None:
    """As ksqlDB's (Kafka Streams forwards headers): a stateless query's output record has the
    headers of the input record it came from."""
    topic = f"tagged_{tag}"
    create_topic(admin, topic, 1)
    producer = ck.Producer({"bootstrap.servers": bootstrap})
    headers = [("trace", b"t-1"), ("source", b"lab")]
    producer.produce(topic, b'{"V": 1}', b"k1", timestamp=T0, headers=headers)
    assert producer.flush(30) == 0
    engine = open_engine()
    engine.execute(
        f"CREATE STREAM tagged_{tag} (k STRING KEY, v INT) "
        f"WITH (kafka_topic='{topic}', value_format='JSON');"
    )
    engine.execute(f"CREATE STREAM copied_{tag} AS SELECT k, v FROM tagged_{tag};")
    assert engine.drain() == 1
    [record] = confluent_read(bootstrap, f"COPIED_{tag.upper()}", 1)
    assert (record.value(), record.headers()) == (b'{"V":1}', headers)


def test_aggregation_and_join_outputs_carry_the_headers_of_the_record_that_made_them(
    open_engine: OpenEngine, admin: AdminClient, bootstrap: str, tag: str
) -> None:
    """As ksqlDB's: an aggregation's change has the headers of the record that changed its
    row, a stream-table join's row those of the stream record (not the table's)."""
    create_topic(admin, f"hits_{tag}", 1)
    create_topic(admin, f"pages_{tag}", 1)
    producer = ck.Producer({"bootstrap.servers": bootstrap})
    producer.produce(
        f"pages_{tag}", b'{"TITLE": "home"}', b"p1", timestamp=T0, headers=[("t", b"0")]
    )
    for i, trace in enumerate([b"t-1", b"t-2"]):
        producer.produce(
            f"hits_{tag}", b'{"N": 1}', b"p1", timestamp=T0 + 1 + i, headers=[("trace", trace)]
        )
    assert producer.flush(30) == 0
    engine = open_engine()
    engine.execute(
        f"CREATE STREAM hits_{tag} (page STRING KEY, n INT) "
        f"WITH (kafka_topic='hits_{tag}', value_format='JSON');"
        f"CREATE TABLE pages_{tag} (page STRING PRIMARY KEY, title STRING) "
        f"WITH (kafka_topic='pages_{tag}', value_format='JSON');"
        f"CREATE TABLE totals_{tag} AS SELECT page, SUM(n) AS total FROM hits_{tag} "
        "GROUP BY page;"
        f"CREATE STREAM titled_{tag} AS SELECT h.page, n, title FROM hits_{tag} h "
        f"JOIN pages_{tag} p ON h.page = p.page;"
    )
    engine.drain()
    totals = confluent_read(bootstrap, f"TOTALS_{tag.upper()}", 1)
    # one poll, the record cache on: the key's last change, with its last record's headers
    assert [(m.value(), m.headers()) for m in totals][-1] == (
        b'{"TOTAL":2}',
        [("trace", b"t-2")],
    )
    titled = confluent_read(bootstrap, f"TITLED_{tag.upper()}", 1)
    assert [(m.value(), m.headers()) for m in titled] == [
        (b'{"N":1,"TITLE":"home"}', [("trace", b"t-1")]),
        (b'{"N":1,"TITLE":"home"}', [("trace", b"t-2")]),
    ]


def test_a_stream_table_join_over_backlogs_follows_timestamp_order(
    open_engine: OpenEngine, admin: AdminClient, bootstrap: str, tag: str
) -> None:
    """Both topics hold records before the query starts (issue 16, defect 5): each stream row
    joins the table's version of its own time, as Kafka Streams picks records by time."""
    create_topic(admin, f"clicks_{tag}", 1)
    create_topic(admin, f"users_{tag}", 1)
    producer = ck.Producer({"bootstrap.servers": bootstrap})
    for ts, name in ((T0, "v1"), (T0 + 2, "v2")):
        producer.produce(f"users_{tag}", json.dumps({"NAME": name}).encode(), b"u1", timestamp=ts)
    for ts, page in ((T0 + 1, "/a"), (T0 + 3, "/b")):
        producer.produce(f"clicks_{tag}", json.dumps({"PAGE": page}).encode(), b"u1", timestamp=ts)
    assert producer.flush(30) == 0
    engine = open_engine()
    engine.execute(
        f"CREATE STREAM clicks_{tag} (user_id STRING KEY, page STRING) "
        f"WITH (kafka_topic='clicks_{tag}', value_format='JSON');"
        f"CREATE TABLE users_{tag} (user_id STRING PRIMARY KEY, name STRING) "
        f"WITH (kafka_topic='users_{tag}', value_format='JSON');"
        f"CREATE STREAM named_{tag} AS SELECT c.user_id, page, name FROM clicks_{tag} c "
        f"JOIN users_{tag} u ON c.user_id = u.user_id;"
    )
    engine.drain()
    named = confluent_read(bootstrap, f"NAMED_{tag.upper()}", 1)
    assert [(m.value(), m.timestamp()[1]) for m in named] == [
        (b'{"PAGE":"/a","NAME":"v1"}', T0 + 1),
        (b'{"PAGE":"/b","NAME":"v2"}', T0 + 3),
    ]


# -- 4. hispeed's own writes: engine.insert, INSERT VALUES, INSERT INTO ... SELECT ---------------


def test_hispeed_inserts_are_read_by_other_clients(
    open_engine: OpenEngine,
    bootstrap: str,
    kcat: str,
    tag: str,
    java_partition: Callable[[bytes, int], int],
) -> None:
    """What hispeed writes itself (engine.insert, INSERT ... VALUES, an INSERT INTO ... SELECT
    query) into topics it creates with PARTITIONS=3 is read by kafka-python, confluent-kafka
    and kcat with ksqlDB's key bytes (a STRING as its UTF-8 text, a BIGINT as 8 big-endian
    bytes) in murmur2's partition of those bytes, the values in ksqlDB's JSON and DELIMITED."""
    engine = open_engine()
    engine.execute(
        f"CREATE STREAM events_{tag} (id STRING KEY, n INT, note STRING) "
        f"WITH (kafka_topic='events_{tag}', value_format='JSON', partitions=3);"
        f"CREATE STREAM totals_{tag} (id BIGINT KEY, label STRING, amount DOUBLE) "
        f"WITH (kafka_topic='totals_{tag}', value_format='DELIMITED', partitions=3);"
        f"CREATE STREAM tens_{tag} (id STRING KEY, n INT, note STRING) "
        f"WITH (kafka_topic='tens_{tag}', value_format='JSON', partitions=3);"
    )
    engine.insert(f"events_{tag}", {"ID": "alpha", "N": 1, "NOTE": "first"}, timestamp=T0)
    engine.insert(f"events_{tag}", {"ID": "ümlaut", "N": 2, "NOTE": None}, timestamp=T0 + 1)
    engine.execute(
        f"INSERT INTO events_{tag} (ROWTIME, id, n, note) VALUES ({T0 + 2}, 'gamma', 3, 'a,b');"
        f"INSERT INTO totals_{tag} (id, label, amount) VALUES (42, 'x, y', 1.5);"
        f"INSERT INTO totals_{tag} (id, label, amount) VALUES (-9000000000, 'neg', 0.1);"
        f"INSERT INTO tens_{tag} SELECT id, n * 10 AS n, note FROM events_{tag};"
    )
    assert engine.drain() == 3

    events = kafka_python_read(bootstrap, f"events_{tag}", 3)
    assert sorted((r.key, r.partition, r.timestamp, r.value) for r in events) == sorted(
        [
            (b"alpha", java_partition(b"alpha", 3), T0, b'{"N":1,"NOTE":"first"}'),
            (
                "ümlaut".encode(),
                java_partition("ümlaut".encode(), 3),
                T0 + 1,
                b'{"N":2,"NOTE":null}',
            ),
            (b"gamma", java_partition(b"gamma", 3), T0 + 2, b'{"N":3,"NOTE":"a,b"}'),
        ]
    )

    totals = confluent_read(bootstrap, f"totals_{tag}", 3)
    keys = [struct.pack(">q", 42), struct.pack(">q", -9_000_000_000)]
    assert sorted((m.key(), m.partition(), m.value()) for m in totals) == sorted(
        [
            (keys[0], java_partition(keys[0], 3), b'"x, y",1.5'),
            (keys[1], java_partition(keys[1], 3), b"neg,0.1"),
        ]
    )

    tens = kcat_read(kcat, bootstrap, f"tens_{tag}")
    assert sorted((r["key"], r["partition"], r["ts"], r["payload"]) for r in tens) == sorted(
        [
            ("alpha", java_partition(b"alpha", 3), T0, '{"N":10,"NOTE":"first"}'),
            ("ümlaut", java_partition("ümlaut".encode(), 3), T0 + 1, '{"N":20,"NOTE":null}'),
            ("gamma", java_partition(b"gamma", 3), T0 + 2, '{"N":30,"NOTE":"a,b"}'),
        ]
    )


# -- 5. timestamp 0 ---------------------------------------------------------------------------


def test_timestamp_zero_round_trip(open_engine: OpenEngine, bootstrap: str, tag: str) -> None:
    """A record hispeed writes with timestamp 0 (which librdkafka cannot write: 0 means "now"
    to it) is read by hispeed as timestamp 0, through a query and its output too, and the
    header that carries the 0 is not among the record's headers in hispeed; a Kafka client
    sees that header."""
    engine = open_engine()
    engine.execute(
        f"CREATE STREAM zero_{tag} (id STRING KEY, v INT) "
        f"WITH (kafka_topic='zero_{tag}', value_format='JSON', partitions=1);"
        f"CREATE STREAM zero_h_{tag} (id STRING KEY, v INT, "
        f"hs ARRAY<STRUCT<key STRING, value BYTES>> HEADERS, "
        f"z BYTES HEADER('{ZERO_TIMESTAMP_HEADER}')) "
        f"WITH (kafka_topic='zero_{tag}', value_format='JSON');"
    )
    engine.insert(f"zero_{tag}", {"ID": "a", "V": 1}, timestamp=0)
    engine.insert(f"zero_{tag}", {"ID": "b", "V": 2}, timestamp=5)
    engine.execute(
        f"CREATE STREAM seen_zero_{tag} AS SELECT id, v, ROWTIME AS rt, hs, z FROM zero_h_{tag};"
        f"CREATE STREAM again_{tag} AS SELECT id, ROWTIME AS rt2 FROM seen_zero_{tag};"
    )
    assert engine.drain() == 4  # two records through each query

    stored = engine.log.read_table(f"zero_{tag}", 0)
    assert stored.column("timestamp").to_pylist() == [0, 5]
    assert stored.column("headers").to_pylist() == [None, None]
    seen = engine.log.read_table(f"SEEN_ZERO_{tag.upper()}", 0)
    assert seen.column("timestamp").to_pylist() == [0, 5]  # the output keeps ROWTIME 0
    assert [json.loads(v) for v in seen.column("value").to_pylist()] == [
        {"V": 1, "RT": 0, "HS": [], "Z": None},
        {"V": 2, "RT": 5, "HS": [], "Z": None},
    ]
    again = engine.log.read_table(f"AGAIN_{tag.upper()}", 0)
    assert again.column("timestamp").to_pylist() == [0, 5]
    assert [json.loads(v) for v in again.column("value").to_pylist()] == [{"RT2": 0}, {"RT2": 5}]

    # what other clients see: the header, and a timestamp librdkafka chose
    raw = confluent_read(bootstrap, f"zero_{tag}", 1)
    assert [m.headers() for m in raw] == [[(ZERO_TIMESTAMP_HEADER, b"")], None]
    assert [m.timestamp()[1] for m in raw][1] == 5
    assert raw[0].timestamp()[1] > 0

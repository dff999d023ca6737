"""hispeed's windowed tables and derived keys on a real broker, read as Kafka Streams reads them.

The decoders here are written from the published layouts, not from hispeed's code: Kafka
Streams' `TimeWindowedSerializer` writes key ‖ window start, its `SessionWindowedSerializer`
(SessionKeySchema.toBinary) key ‖ session end ‖ session start, each time an 8-byte big-endian
long; ksqlDB wraps its key formats in those. KAFKA keys are Kafka's own serializers' bytes (a
STRING is its UTF-8), JSON keys are JSON text, DELIMITED keys the value's text. A windowed
record goes to murmur2's partition of its plain key (Kafka Streams' WindowedStreamPartitioner).
"""

from __future__ import annotations

import json
import struct
from collections.abc import Callable
from typing import Any

import confluent_kafka as ck
import pytest
from confluent_kafka.admin import AdminClient

from tests.integration.test_kafka_interop import (  # the broker's fixtures and readers
    MINUTE,
    T0,
    OpenEngine,
    admin,
    bootstrap,
    confluent_read,
    create_topic,
    java_partition,
    open_engine,
    tag,
)

pytestmark = [pytest.mark.services, pytest.mark.kafka, pytest.mark.slow]

__all__ = ["admin", "bootstrap", "java_partition", "open_engine", "tag"]  # fixtures used here

SECOND = 1_000


def time_windowed(raw: bytes) -> tuple[bytes, int]:
    """(plain key, window start) of a Kafka Streams time-windowed key."""
    (start,) = struct.unpack(">q", raw[-8:])
    return raw[:-8], start


def session_windowed(raw: bytes) -> tuple[bytes, int, int]:
    """(plain key, start, end) of a Kafka Streams session-windowed key: key ‖ end ‖ start."""
    end, start = struct.unpack(">qq", raw[-16:])
    return raw[:-16], start, end


def produce(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes, int]]) -> None:
    producer = ck.Producer({"bootstrap.servers": bootstrap, "partitioner": "murmur2_random"})
    for key, value, ts in records:
        producer.produce(topic, value, key, timestamp=ts)
    assert producer.flush(30) == 0


def test_windowed_tables_read_with_kafka_streams_layouts(
    open_engine: OpenEngine,
    admin: AdminClient,
    bootstrap: str,
    tag: str,
    java_partition: Callable[[bytes, int], int],
) -> None:
    """Tumbling, hopping and session counts over a 2-partition stream: every record of the
    three tables decodes with Kafka Streams' layouts into windows of the right bounds (a
    session's start never after its end), in its plain key's partition, and the last change of
    each window holds the count worked out here from the event times."""
    topic = f"visits_{tag}"
    create_topic(admin, topic, 2)
    # (user, event time): u1 at 0 s, 10 s and 70 s; u2 at 5 s (T0 is on a minute's boundary)
    visits = [("u1", 0), ("u2", 5 * SECOND), ("u1", 10 * SECOND), ("u1", 70 * SECOND)]
    produce(bootstrap, topic, [(u.encode(), b'{"N": 1}', T0 + t) for u, t in visits])

    engine = open_engine()
    engine.execute(
        f"CREATE STREAM visits_{tag} (uid STRING KEY, n INT) "
        f"WITH (kafka_topic='{topic}', value_format='JSON');"
    )
    windows = {
        "TUMBLE": "TUMBLING (SIZE 1 MINUTE)",
        "HOP": "HOPPING (SIZE 1 MINUTE, ADVANCE BY 30 SECONDS)",
        "SESS": "SESSION (30 SECONDS)",
    }
    for name, window in windows.items():
        engine.execute(
            f"CREATE TABLE {name}_{tag} AS SELECT uid, COUNT(*) AS c FROM visits_{tag} "
            f"WINDOW {window} GROUP BY uid;"
        )
    engine.drain()

    def last(name: str, decode: Callable[[bytes], tuple[Any, ...]]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for msg in confluent_read(bootstrap, f"{name}_{tag.upper()}", 2):
            window_key = decode(msg.key())
            assert msg.partition() == java_partition(window_key[0], 2), window_key
            value = msg.value()
            out[window_key] = None if value is None else json.loads(value)["C"]
        return {k: v for k, v in out.items() if v is not None}

    # tumbling 1 min: u1 twice in [T0, T0+1m) and once in the next; u2 once
    assert last("TUMBLE", time_windowed) == {
        (b"u1", T0): 2,
        (b"u1", T0 + MINUTE): 1,
        (b"u2", T0): 1,
    }
    # hopping 1 min by 30 s: each time is in the two windows that start at or before it
    # and end after it
    assert last("HOP", time_windowed) == {
        (b"u1", T0 - 30 * SECOND): 2,
        (b"u1", T0): 2,
        (b"u1", T0 + 30 * SECOND): 1,
        (b"u1", T0 + MINUTE): 1,
        (b"u2", T0 - 30 * SECOND): 1,
        (b"u2", T0): 1,
    }
    sessions = last("SESS", session_windowed)
    # a 30 s gap: u1's 0 s and 10 s are one session, 70 s another; u2's 5 s is one
    assert sessions == {
        (b"u1", T0, T0 + 10 * SECOND): 2,
        (b"u1", T0 + 70 * SECOND, T0 + 70 * SECOND): 1,
        (b"u2", T0 + 5 * SECOND, T0 + 5 * SECOND): 1,
    }


def test_keys_derived_from_keyless_streams_have_the_default_key_format(
    open_engine: OpenEngine, admin: AdminClient, bootstrap: str, tag: str
) -> None:
    """A GROUP BY and a join over keyless (KEY_FORMAT='NONE') streams write their keys in
    `ksql.persistence.default.format.key`, as ksqlDB does: JSON text, DELIMITED text."""
    for name in ("s1", "s2"):
        create_topic(admin, f"{name}_{tag}", 1)
    produce(bootstrap, f"s1_{tag}", [(None, b'{"ID": 10, "FOO": 22}', T0)])
    produce(bootstrap, f"s2_{tag}", [(b"ignored", b'{"ID": 10, "VAL": "hello"}', T0 + 1)])

    engine = open_engine()
    engine.execute(
        f"CREATE STREAM s1_{tag} (id INT, foo INT) WITH (kafka_topic='s1_{tag}', "
        "key_format='NONE', value_format='JSON');"
        f"CREATE STREAM s2_{tag} (id INT, val STRING) WITH (kafka_topic='s2_{tag}', "
        "key_format='NONE', value_format='JSON');"
    )
    engine.execute(
        f"CREATE TABLE by_foo_{tag} AS SELECT foo, COUNT() AS c FROM s1_{tag} GROUP BY foo;",
        {"ksql.persistence.default.format.key": "JSON"},
    )
    engine.execute(
        f"CREATE STREAM joined_{tag} AS SELECT s1_{tag}.id, s2_{tag}.val FROM s1_{tag} "
        f"JOIN s2_{tag} WITHIN 10 SECONDS ON s1_{tag}.id = s2_{tag}.id;",
        {"ksql.persistence.default.format.key": "DELIMITED"},
    )
    engine.drain()

    [grouped] = confluent_read(bootstrap, f"BY_FOO_{tag.upper()}", 1)
    assert json.loads(grouped.key()) == 22  # JSON: the number's text, not a 4-byte INT
    assert json.loads(grouped.value()) == {"C": 1}
    [joined] = confluent_read(bootstrap, f"JOINED_{tag.upper()}", 1)
    assert joined.key() == b"10"  # DELIMITED
    assert json.loads(joined.value()) == {"VAL": "hello"}

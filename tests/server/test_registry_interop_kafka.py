"""Kafka mode: confluent-kafka's AvroSerializer produces records onto the real broker with
their schema in hispeed's registry (kept in Kafka, served by the server's REST API); a hispeed
stream reads them, and a confluent-kafka consumer with AvroDeserializer reads its output."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.log.kafka import KafkaLog
from hispeed.processes import free_port
from hispeed.server.app import Server
from hispeed.testing.services import Service
from hispeed.testing.wait import wait_for

pytestmark = [pytest.mark.services, pytest.mark.kafka, pytest.mark.slow]

ck = pytest.importorskip("confluent_kafka")
sr = pytest.importorskip("confluent_kafka.schema_registry")
avro = pytest.importorskip("confluent_kafka.schema_registry.avro")
serialization = pytest.importorskip("confluent_kafka.serialization")

SCHEMA = json.dumps(
    {
        "type": "record",
        "name": "Reading",
        "fields": [{"name": "ID", "type": "string"}, {"name": "X", "type": "double"}],
    }
)
READINGS = [{"ID": f"d{i}", "X": i * 0.75} for i in range(8)]
EXPECTED = [{"ID": r["ID"], "X2": r["X"] * 2} for r in READINGS if r["X"] > 2]


def run_interop(bootstrap: str, prefix: str, registry_url: str, engine: Engine) -> None:
    """Produce, query and consume; `registry_url` is the registry the serializers use (the
    engine must use the same one)."""
    client = sr.SchemaRegistryClient({"url": registry_url})
    try:
        ctx = serialization.SerializationContext("readings", serialization.MessageField.VALUE)
        serializer = avro.AvroSerializer(client, SCHEMA)
        engine.log.create_topic("readings", 1)
        producer = ck.Producer({"bootstrap.servers": bootstrap})
        for r in READINGS:
            producer.produce(f"{prefix}readings", serializer(r, ctx), key=r["ID"].encode())
        assert producer.flush(30) == 0
        engine.execute("CREATE STREAM r WITH (kafka_topic='readings', value_format='AVRO');")
        engine.execute("CREATE STREAM hot AS SELECT ID, X * 2 AS X2 FROM r WHERE X > 2;")
        consumer = ck.Consumer(
            {
                "bootstrap.servers": bootstrap,
                "group.id": f"{prefix}check",
                "auto.offset.reset": "earliest",
                "isolation.level": "read_committed",
            }
        )
        deserializer = avro.AvroDeserializer(client)
        got: list[Any] = []
        try:
            consumer.subscribe([f"{prefix}HOT"])

            def read_all() -> bool:
                msg = consumer.poll(0.5)
                if msg is not None and msg.error() is None:
                    out_ctx = serialization.SerializationContext(
                        "HOT", serialization.MessageField.VALUE
                    )
                    got.append(deserializer(msg.value(), out_ctx))
                return len(got) >= len(EXPECTED)

            wait_for(read_all, 60)
        finally:
            consumer.close()
        assert got == EXPECTED
    finally:
        client.close()


def test_kafka_mode_interop_through_hispeeds_registry(
    kafka_server: Service, tmp_path: Path
) -> None:
    prefix = f"i{uuid.uuid4().hex[:8]}."
    log = KafkaLog(kafka_server.bootstrap, prefix=prefix, app_id="interop")
    engine = Engine(log_=log, worker_id="w1")
    engine.start()
    settings = Settings.load(
        None, env={}, data_dir=tmp_path, port=free_port(), grpc_port=0, embedded_redis=False
    )
    server = Server(engine, settings)
    server.start()
    try:
        url = f"http://127.0.0.1:{settings.port}/schema-registry"
        run_interop(kafka_server.bootstrap, prefix, url, engine)
        # the schemas are in Kafka: a second worker's registry resolves the same ids
        other = KafkaLog(kafka_server.bootstrap, prefix=prefix, app_id="other")
        try:
            from hispeed.registry import LogRegistry

            second = LogRegistry(other)
            first = engine.schema_registry
            for subject in ("readings-value", "HOT-value"):
                assert second.version(subject) == first.version(subject)
        finally:
            other.close()
    finally:
        server.stop()
        engine.close()

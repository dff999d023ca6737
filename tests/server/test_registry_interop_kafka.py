"""Kafka mode: confluent-kafka's AvroSerializer, JSONSerializer and ProtobufSerializer produce
records onto the real broker with their schemas in hispeed's registry (kept in Kafka, served by
the server's REST API); a hispeed stream reads them, and a confluent-kafka consumer with the
matching deserializer reads its output."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
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
JSON_SCHEMA = json.dumps(
    {
        "type": "object",
        "properties": {"ID": {"type": "string"}, "X": {"type": "number"}},
        "additionalProperties": False,
    }
)
PROTO = """syntax = "proto3";
package interop;

message Reading {
  string ID = 1;
  double X = 2;
}
"""
READINGS = [{"ID": f"d{i}", "X": i * 0.75} for i in range(8)]
EXPECTED = [{"ID": r["ID"], "X2": r["X"] * 2} for r in READINGS if r["X"] > 2]

Serialize = Callable[[dict[str, Any], Any], bytes]
Deserialize = Callable[[bytes, Any], Any]


def run_interop(
    bootstrap: str,
    prefix: str,
    client: Any,
    engine: Engine,
    fmt: str,
    serialize: Serialize,
    deserialize: Deserialize,
) -> None:
    """Produce with `serialize`, query in `fmt`, consume with `deserialize`; `client` talks to
    the registry the engine uses."""
    topic, sink = f"readings_{fmt.lower()}", f"HOT_{fmt}"
    ctx = serialization.SerializationContext(topic, serialization.MessageField.VALUE)
    engine.log.create_topic(topic, 1)
    producer = ck.Producer({"bootstrap.servers": bootstrap})
    for r in READINGS:
        producer.produce(f"{prefix}{topic}", serialize(r, ctx), key=r["ID"].encode())
    assert producer.flush(30) == 0
    engine.execute(f"CREATE STREAM r_{fmt} WITH (kafka_topic='{topic}', value_format='{fmt}');")
    # the columns come from the schema the serializer registered
    assert engine.catalog.sources[f"R_{fmt}"].schema_text() == "`ID` STRING, `X` DOUBLE"
    engine.execute(f"CREATE STREAM {sink} AS SELECT ID, X * 2 AS X2 FROM r_{fmt} WHERE X > 2;")
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"{prefix}check_{fmt}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
        }
    )
    got: list[Any] = []
    out_ctx = serialization.SerializationContext(sink, serialization.MessageField.VALUE)
    try:
        consumer.subscribe([f"{prefix}{sink}"])

        def read_all() -> bool:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                got.append(deserialize(msg.value(), out_ctx))
            return len(got) >= len(EXPECTED)

        wait_for(read_all, 60)
    finally:
        consumer.close()
    assert got == EXPECTED


def message_classes(proto: str, tmp: Path) -> list[Any]:
    """The message classes of a .proto text, compiled by protoc (grpcio-tools) apart from
    hispeed, in the order the file declares them."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from grpc_tools import protoc

    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "m.proto").write_text(proto)
    out = tmp / "m.pb"
    assert protoc.main(["protoc", f"-I{tmp}", f"--descriptor_set_out={out}", "m.proto"]) == 0
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    file = pool.Add(files.file[0])
    return [message_factory.GetMessageClass(m) for m in file.message_types_by_name.values()]


def serdes(fmt: str, client: Any, tmp: Path) -> tuple[Serialize, Deserialize]:
    """confluent-kafka's serializer and deserializer of `fmt`, on `client`'s registry."""
    if fmt == "AVRO":
        return avro.AvroSerializer(client, SCHEMA), avro.AvroDeserializer(client)
    if fmt == "JSON_SR":
        js = pytest.importorskip("confluent_kafka.schema_registry.json_schema")
        return (
            js.JSONSerializer(JSON_SCHEMA, client),
            js.JSONDeserializer(None, schema_registry_client=client),
        )
    pb = pytest.importorskip("confluent_kafka.schema_registry.protobuf")
    [reading] = message_classes(PROTO, tmp / "in")
    serializer = pb.ProtobufSerializer(reading, client, {"use.deprecated.format": False})

    def serialize(row: dict[str, Any], ctx: Any) -> bytes:
        data: bytes = serializer(reading(**row), ctx)
        return data

    def deserialize(data: bytes, ctx: Any) -> dict[str, Any]:
        # the sink's schema as hispeed registered it, compiled apart from hispeed
        sink = client.get_latest_version(f"{ctx.topic}-value").schema.schema_str
        [message] = message_classes(sink, tmp / "sink")
        decoded = pb.ProtobufDeserializer(message, {"use.deprecated.format": False})(data, ctx)
        return {f.name: getattr(decoded, f.name) for f in message.DESCRIPTOR.fields}

    return serialize, deserialize


@pytest.fixture(scope="module")
def kafka_mode(kafka_server: Service, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """An engine in Kafka mode and its server, whose registry is kept in Kafka."""
    prefix = f"i{uuid.uuid4().hex[:8]}."
    log = KafkaLog(kafka_server.bootstrap, prefix=prefix, app_id="interop")
    engine = Engine(log_=log, worker_id="w1")
    engine.start()
    settings = Settings.load(
        None,
        env={},
        data_dir=tmp_path_factory.mktemp("server"),
        port=free_port(),
        grpc_port=0,
        embedded_redis=False,
    )
    server = Server(engine, settings)
    server.start()
    client = sr.SchemaRegistryClient({"url": f"http://127.0.0.1:{settings.port}/schema-registry"})
    try:
        yield prefix, engine, client
    finally:
        client.close()
        server.stop()
        engine.close()


@pytest.mark.parametrize("fmt", ["AVRO", "JSON_SR", "PROTOBUF"])
def test_kafka_mode_interop_through_hispeeds_registry(
    kafka_server: Service, kafka_mode: Any, fmt: str, tmp_path: Path
) -> None:
    prefix, engine, client = kafka_mode
    serialize, deserialize = serdes(fmt, client, tmp_path)
    run_interop(kafka_server.bootstrap, prefix, client, engine, fmt, serialize, deserialize)
    # the schemas are in Kafka: a second worker's registry resolves the same ids
    other = KafkaLog(kafka_server.bootstrap, prefix=prefix, app_id="other")
    try:
        from hispeed.registry import LogRegistry

        second = LogRegistry(other)
        first = engine.schema_registry
        for subject in (f"readings_{fmt.lower()}-value", f"HOT_{fmt}-value"):
            assert second.version(subject) == first.version(subject)
    finally:
        other.close()

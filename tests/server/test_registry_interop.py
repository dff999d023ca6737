"""confluent-kafka's serializers and hispeed, through hispeed's registry REST API: records
they produce are read by hispeed streams (columns inferred from the registered schema), and
what hispeed's queries write is read by their deserializers. The records go in over the
server's HTTP produce path as REST Proxy's binary records (embedded mode)."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hispeed.testing.server import RunningServer

sr = pytest.importorskip("confluent_kafka.schema_registry")
serialization = pytest.importorskip("confluent_kafka.serialization")

READINGS = [{"ID": f"d{i}", "X": i * 0.75} for i in range(8)]
#: what `SELECT ID, X * 2 AS X2 FROM readings WHERE X > 2` gives
EXPECTED = [{"ID": r["ID"], "X2": r["X"] * 2} for r in READINGS if r["X"] > 2]

AVRO_SCHEMA = json.dumps(
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


@pytest.fixture
def registry_client(server: RunningServer) -> Iterator[Any]:
    client = sr.SchemaRegistryClient({"url": f"{server.url}/schema-registry"})
    yield client
    client.close()


def produce(server: RunningServer, topic: str, values: list[bytes]) -> None:
    """The serialized records into `topic` over HTTP, as REST Proxy's binary records."""
    body = {
        "records": [
            {
                "key": base64.b64encode(f"k{i}".encode()).decode(),
                "value": base64.b64encode(v).decode(),
            }
            for i, v in enumerate(values)
        ]
    }
    r = httpx.post(
        f"{server.url}/topics/{topic}",
        content=json.dumps(body),
        headers={"content-type": "application/vnd.kafka.binary.v2+json"},
    )
    assert r.status_code == 200, r.text


def output(server: RunningServer, topic: str, count: int) -> list[bytes]:
    """The values of the first `count` records hispeed wrote to `topic`, once there."""
    log = server.engine.log

    def values() -> list[bytes] | None:
        if topic not in log.list_topics() or log.offsets(topic, 0)[1] < count:
            return None
        return [v for b in log.read(topic, 0, 0) for v in b.column("value").to_pylist()]

    got: list[bytes] = server.wait_for(values, timeout=30)
    return got


def roundtrip(
    server: RunningServer,
    fmt: str,
    serialize: Callable[[dict[str, Any], Any], bytes],
    deserialize: Callable[[bytes, Any], Any],
) -> None:
    topic = f"readings_{fmt.lower()}"
    ctx = serialization.SerializationContext(topic, serialization.MessageField.VALUE)
    produce(server, topic, [serialize(r, ctx) for r in READINGS])
    engine = server.engine
    engine.execute(f"CREATE STREAM r_{fmt} WITH (kafka_topic='{topic}', value_format='{fmt}');")
    source = engine.catalog.sources[f"R_{fmt}"]
    assert source.schema_text() == "`ID` STRING, `X` DOUBLE"  # inferred from the registry
    engine.execute(
        f"CREATE STREAM hot_{fmt} AS SELECT ID, X * 2 AS X2 FROM r_{fmt} WHERE X > 2 EMIT CHANGES;"
    )
    sink = f"HOT_{fmt}"
    out_ctx = serialization.SerializationContext(sink, serialization.MessageField.VALUE)
    got = [deserialize(v, out_ctx) for v in output(server, sink, len(EXPECTED))]
    assert got == EXPECTED


def test_avro_serializer_records_in_avro_deserializer_reads_the_output(
    server: RunningServer, registry_client: Any
) -> None:
    avro = pytest.importorskip("confluent_kafka.schema_registry.avro")
    serializer = avro.AvroSerializer(registry_client, AVRO_SCHEMA)
    deserializer = avro.AvroDeserializer(registry_client)  # the writer's schema, by its id
    roundtrip(server, "AVRO", serializer, deserializer)
    # the serializer registered under Confluent's subject; the sink under ksqlDB's
    assert registry_client.get_latest_version("readings_avro-value").schema.schema_type == "AVRO"
    sink = registry_client.get_latest_version("HOT_AVRO-value").schema
    assert [f["name"] for f in json.loads(sink.schema_str)["fields"]] == ["ID", "X2"]


def test_json_serializer_records_in_json_deserializer_reads_the_output(
    server: RunningServer, registry_client: Any
) -> None:
    js = pytest.importorskip("confluent_kafka.schema_registry.json_schema")
    serializer = js.JSONSerializer(JSON_SCHEMA, registry_client)
    deserializer = js.JSONDeserializer(None, schema_registry_client=registry_client)
    roundtrip(server, "JSON_SR", serializer, deserializer)
    sink = registry_client.get_latest_version("HOT_JSON_SR-value").schema
    assert sink.schema_type == "JSON"


def test_binary_records_must_be_base64(server: RunningServer) -> None:
    for record, message in [
        ({"value": "not base64!"}, "records[0].value is not base64"),
        ({"value": 5}, "records[0].value must be base64 text"),
        ({"key": "%%%", "value": None}, "records[0].key is not base64"),
    ]:
        r = httpx.post(
            f"{server.url}/topics/bin",
            content=json.dumps({"records": [record]}),
            headers={"content-type": "application/vnd.kafka.binary.v2+json"},
        )
        assert r.status_code == 400
        assert message in r.json()["message"]
    assert "bin" not in server.engine.log.list_topics()  # nothing written


PROTO = """syntax = "proto3";
package interop;

message Reading {
  string ID = 1;
  double X = 2;
}
"""


def message_classes(proto: str, tmp: Path) -> list[Any]:
    """The message classes of a .proto text, compiled by protoc (grpcio-tools) apart from
    hispeed, in the order the file declares them."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
    from grpc_tools import protoc

    (tmp / "m.proto").write_text(proto)
    out = tmp / "m.pb"
    assert protoc.main(["protoc", f"-I{tmp}", f"--descriptor_set_out={out}", "m.proto"]) == 0
    files = descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes())
    pool = descriptor_pool.DescriptorPool()
    file = pool.Add(files.file[0])
    return [message_factory.GetMessageClass(m) for m in file.message_types_by_name.values()]


def test_protobuf_serializer_records_in_protobuf_deserializer_reads_the_output(
    server: RunningServer, registry_client: Any, tmp_path: Path
) -> None:
    pb = pytest.importorskip("confluent_kafka.schema_registry.protobuf")
    [reading] = message_classes(PROTO, tmp_path)
    serializer = pb.ProtobufSerializer(reading, registry_client, {"use.deprecated.format": False})

    def serialize(row: dict[str, Any], ctx: Any) -> bytes:
        data: bytes = serializer(reading(**row), ctx)
        return data

    def deserialize(data: bytes, ctx: Any) -> dict[str, Any]:
        # the sink's schema as hispeed registered it, compiled apart from hispeed
        sink = registry_client.get_latest_version(f"{ctx.topic}-value").schema.schema_str
        out = tmp_path / "sink"
        out.mkdir(exist_ok=True)
        [message] = message_classes(sink, out)
        decoded = pb.ProtobufDeserializer(message, {"use.deprecated.format": False})(data, ctx)
        return {f.name: getattr(decoded, f.name) for f in message.DESCRIPTOR.fields}

    roundtrip(server, "PROTOBUF", serialize, deserialize)

"""An engine whose `ksql.schema.registry.url` names an external Confluent-compatible registry:
the schemas go there through hispeed's RemoteRegistry (confluent-kafka's client), and
confluent-kafka's serializers and deserializers, pointed at that registry, read what hispeed
writes and write what hispeed reads. The external registry here is a second hispeed server's
REST API (`/schema-registry`): no other Confluent-compatible registry can be installed on this
machine (see docs/formats.md, "An external registry")."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx
import pytest

from hispeed.registry.remote import RemoteRegistry
from hispeed.testing.server import RunningServer, ServerFactory

sr = pytest.importorskip("confluent_kafka.schema_registry")
avro = pytest.importorskip("confluent_kafka.schema_registry.avro")
js = pytest.importorskip("confluent_kafka.schema_registry.json_schema")
serialization = pytest.importorskip("confluent_kafka.serialization")

READINGS = [{"ID": f"d{i}", "X": i * 0.75} for i in range(8)]
EXPECTED = [{"ID": r["ID"], "X2": r["X"] * 2} for r in READINGS if r["X"] > 2]
SCHEMAS = {
    "AVRO": json.dumps(
        {
            "type": "record",
            "name": "Reading",
            "fields": [{"name": "ID", "type": "string"}, {"name": "X", "type": "double"}],
        }
    ),
    "JSON_SR": json.dumps(
        {
            "type": "object",
            "properties": {"ID": {"type": "string"}, "X": {"type": "number"}},
            "additionalProperties": False,
        }
    ),
}


def produce(server: RunningServer, topic: str, values: list[bytes]) -> None:
    """The serialized records into `topic` over HTTP, as REST Proxy's binary records."""
    records = [{"value": base64.b64encode(v).decode()} for v in values]
    r = httpx.post(
        f"{server.url}/topics/{topic}",
        content=json.dumps({"records": records}),
        headers={"content-type": "application/vnd.kafka.binary.v2+json"},
    )
    assert r.status_code == 200, r.text


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["AVRO", "JSON_SR"])
def test_an_engine_on_an_external_registry_interoperates_with_confluents_serdes(
    server_factory: ServerFactory, fmt: str
) -> None:
    registry_server = server_factory()
    url = f"{registry_server.url}/schema-registry"
    server = server_factory(engine_properties={"ksql.schema.registry.url": url})
    engine = server.engine
    assert isinstance(engine.schema_registry, RemoteRegistry)
    client = sr.SchemaRegistryClient({"url": url})
    try:
        if fmt == "AVRO":
            serializer: Any = avro.AvroSerializer(client, SCHEMAS[fmt])
            deserializer: Any = avro.AvroDeserializer(client)
        else:
            serializer = js.JSONSerializer(SCHEMAS[fmt], client)
            deserializer = js.JSONDeserializer(None, schema_registry_client=client)
        topic, sink = f"readings_{fmt.lower()}", f"HOT_{fmt}"
        ctx = serialization.SerializationContext(topic, serialization.MessageField.VALUE)
        produce(server, topic, [serializer(r, ctx) for r in READINGS])
        # the columns come from the schema the serializer registered in the external registry
        engine.execute(f"CREATE STREAM r_{fmt} WITH (kafka_topic='{topic}', value_format='{fmt}');")
        assert engine.catalog.sources[f"R_{fmt}"].schema_text() == "`ID` STRING, `X` DOUBLE"
        engine.execute(f"CREATE STREAM {sink} AS SELECT ID, X * 2 AS X2 FROM r_{fmt} WHERE X > 2;")

        def values() -> list[bytes] | None:
            log = engine.log
            if sink not in log.list_topics() or log.offsets(sink, 0)[1] < len(EXPECTED):
                return None
            return [v for b in log.read(sink, 0, 0) for v in b.column("value").to_pylist()]

        out_ctx = serialization.SerializationContext(sink, serialization.MessageField.VALUE)
        got = [deserializer(v, out_ctx) for v in server.wait_for(values, timeout=30)]
        assert got == EXPECTED
        # both schemas are in the external registry (the engine keeps none of its own)
        held = registry_server.engine.schema_registry.subjects()
        assert {f"{topic}-value", f"{sink}-value"} <= set(held)
        assert client.get_latest_version(f"{sink}-value").schema.schema_type == (
            "AVRO" if fmt == "AVRO" else "JSON"
        )
    finally:
        client.close()

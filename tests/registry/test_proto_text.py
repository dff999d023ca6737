"""A Protobuf schema registered as a base64 FileDescriptorProto (confluent-kafka's
ProtobufSerializer sends that) is kept as .proto text that compiles back to the same
descriptor."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from hispeed.registry import LogRegistry, Schema

PROTO = """syntax = "proto3";
package shop.v1;

enum Kind { KIND_UNKNOWN = 0; KIND_BIG = 1; }

message Order {
  message Line { string sku = 1; int32 qty = 2; }
  enum State { NEW = 0; DONE = 1; }
  string id = 1;
  repeated Line lines = 2;
  map<string, double> prices = 3;
  oneof payer { string card = 4; string cash = 5; }
  optional int64 note = 6;
  State state = 7;
  Kind kind = 8;
  bytes blob = 9;
  reserved 20 to 22;
}
"""


def compiled(text: str, tmp: Path) -> bytes:
    """The FileDescriptorProto protoc makes of `text` (compiled apart from hispeed), without
    its file name (the name is the file's, not the schema's)."""
    from google.protobuf import descriptor_pb2
    from grpc_tools import protoc

    tmp.mkdir(exist_ok=True)
    (tmp / "x.proto").write_text(text)
    assert protoc.main(["protoc", f"-I{tmp}", f"--descriptor_set_out={tmp}/x.pb", "x.proto"]) == 0
    file = descriptor_pb2.FileDescriptorSet.FromString((tmp / "x.pb").read_bytes()).file[0]
    file.ClearField("name")
    data: bytes = file.SerializeToString(deterministic=True)
    return data


@pytest.mark.slow
def test_a_serialized_descriptor_is_kept_as_proto_text(tmp_path: Path) -> None:
    original = compiled(PROTO, tmp_path / "a")
    registry = LogRegistry(None)
    schema_id = registry.register(
        "orders-value", Schema(base64.b64encode(original).decode(), "PROTOBUF")
    )
    kept = registry.schema_by_id(schema_id).schema
    assert "message Order {" in kept
    assert compiled(kept, tmp_path / "b") == original

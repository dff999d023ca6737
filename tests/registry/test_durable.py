"""hispeed's own registry, kept in the log: ids that survive restarts and are shared between
writers, compatibility checks on registration, and deletes."""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path

import msgspec
import pytest

from hispeed.log.embedded import EmbeddedLog
from hispeed.registry import SCHEMAS_TOPIC, LogRegistry, RegistryError, Schema


def avro(*fields: dict[str, object], name: str = "R") -> Schema:
    doc = {"type": "record", "name": name, "fields": list(fields)}
    return Schema(json.dumps(doc, separators=(",", ":")))  # the registry's canonical text


A = {"name": "a", "type": "long"}
B_DEFAULT = {"name": "b", "type": "string", "default": ""}
B_REQUIRED = {"name": "b", "type": "string"}


@pytest.fixture
def log(tmp_path: Path) -> EmbeddedLog:
    opened = EmbeddedLog(tmp_path / "data", fsync="never")
    yield opened
    opened.close()


def test_ids_and_versions_survive_a_restart(tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path, fsync="never") as log:
        registry = LogRegistry(log)
        first = registry.register("r-value", avro(A))
        second = registry.register("r-value", avro(A, B_DEFAULT))
        shared = registry.register("other-value", avro(A))  # the same schema: the same id
        registry.set_compatibility("NONE", "other-value")
        registry.delete_version("r-value", 2)
    assert (first, shared) == (1, 1)
    assert second == 2
    with EmbeddedLog(tmp_path, fsync="never") as log:
        again = LogRegistry(log)
        assert again.schema_by_id(second) == avro(A, B_DEFAULT)
        assert again.version("r-value").id == first  # version 2 was (soft) deleted
        assert again.versions("r-value", deleted=True) == [1, 2]
        assert again.get_compatibility("other-value") == "NONE"
        # a new schema gets the next id, never one handed out before the restart
        assert again.register("third-value", avro(A, name="T")) == 3


def test_two_writers_never_give_one_id_to_two_schemas(log: EmbeddedLog) -> None:
    # two registries over one log: as two workers over one Kafka topic, each with its own
    # view, racing to claim ids and versions
    writers = [LogRegistry(log), LogRegistry(log)]
    writers[0].set_compatibility("NONE")  # both write versions of the same subjects
    ids: dict[tuple[int, int], int] = {}
    errors: list[BaseException] = []
    start = threading.Barrier(2)

    def register(w: int) -> None:
        start.wait()
        try:
            for i in range(15):
                schema = avro({"name": f"f{w}_{i}", "type": "long"}, name=f"W{w}")
                ids[(w, i)] = writers[w].register(f"s{i}-value", schema)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=register, args=(w,)) for w in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(ids) == 30
    assert len(set(ids.values())) == 30  # 30 different schemas: 30 different ids
    fresh = LogRegistry(log)  # and every reader agrees on them
    for (w, i), schema_id in ids.items():
        for registry in [*writers, fresh]:
            assert json.loads(registry.schema_by_id(schema_id).schema)["name"] == f"W{w}"
            assert f"f{w}_{i}" in registry.schema_by_id(schema_id).schema
    for i in range(15):  # each subject: one version per writer, as the topic ordered them
        held = [fresh.version(f"s{i}-value", v).id for v in (1, 2)]
        assert sorted(held) == sorted([ids[(0, i)], ids[(1, i)]])
        assert [w.versions(f"s{i}-value") for w in writers] == [[1, 2], [1, 2]]


def test_a_rival_claim_on_a_held_version_or_id_is_refused_in_the_topic_order(
    log: EmbeddedLog,
) -> None:
    registry = LogRegistry(log)
    held = registry.register("s-value", avro(A))
    rival = {"subject": "s-value", "version": 1, "id": held, "schemaType": "AVRO"}
    rival["schema"] = avro(A, B_DEFAULT).schema
    key = {"keytype": "SCHEMA", "subject": "s-value", "version": 1, "magic": 1, "claim": "x"}
    other = {**key, "subject": "t-value"}
    log.append(
        SCHEMAS_TOPIC,
        [
            (msgspec.json.encode(key), msgspec.json.encode(rival)),  # version 1 is held
            (msgspec.json.encode(other), msgspec.json.encode({**rival, "subject": "t-value"})),
        ],
        partition=0,
    )
    for reader in (registry, LogRegistry(log)):
        assert reader.version("s-value", 1).schema == registry.schema_by_id(held)
        assert json.loads(reader.schema_by_id(held).schema)["fields"] == [A]
        with pytest.raises(RegistryError) as e:  # id 1 was another schema's
            reader.version("t-value")
        assert e.value.code == 40401


def test_backward_compatibility_is_the_default(log: EmbeddedLog) -> None:
    registry = LogRegistry(log)
    registry.register("s-value", avro(A))
    assert registry.get_compatibility() == "BACKWARD"
    # a field added with a default: the new schema reads the old records
    assert registry.register("s-value", avro(A, B_DEFAULT)) == 2
    with pytest.raises(RegistryError) as e:  # and without one it cannot
        registry.register("s-value", avro(A, B_DEFAULT, {"name": "c", "type": "int"}))
    assert e.value.code == 409
    assert str(e.value).startswith(
        'Schema being registered is incompatible with an earlier schema for subject "s-value"'
    )
    assert "READER_FIELD_MISSING_DEFAULT_VALUE" in str(e.value)
    assert "'c'" in str(e.value)
    assert "{oldSchemaVersion: 2}" in str(e.value)
    assert registry.versions("s-value") == [1, 2]  # nothing was registered


@pytest.mark.parametrize(
    ("level", "allowed"),
    [
        ("NONE", {"drop a", "add b", "add c", "widen a"}),
        ("BACKWARD", {"drop a", "add b", "widen a"}),  # the new schema reads old records
        ("FORWARD", {"add b", "add c"}),  # the old schema reads new records
        ("FULL", {"add b"}),
    ],
)
def test_each_level_allows_what_avro_resolution_allows(
    log: EmbeddedLog, level: str, allowed: set[str]
) -> None:
    registry = LogRegistry(log)
    base = avro({"name": "a", "type": "int"}, {"name": "x", "type": "int"})
    changes = {
        "drop a": avro({"name": "x", "type": "int"}),  # old readers need a: no default
        "add b": avro({"name": "a", "type": "int"}, {"name": "x", "type": "int"}, B_DEFAULT),
        "add c": avro({"name": "a", "type": "int"}, {"name": "x", "type": "int"}, B_REQUIRED),
        "widen a": avro({"name": "a", "type": "long"}, {"name": "x", "type": "int"}),  # promoted
    }
    got = set()
    for i, (change, schema) in enumerate(changes.items()):
        subject = f"s{i}"
        registry.set_compatibility(level, subject)
        registry.register(subject, base)
        if not registry.check_compatibility(subject, schema):
            registry.register(subject, schema)
            got.add(change)
        else:  # what the check finds, registering refuses
            with pytest.raises(RegistryError, match="incompatible") as e:
                registry.register(subject, schema)
            assert e.value.code == 409
    assert got == allowed


def test_transitive_levels_check_every_version(log: EmbeddedLog) -> None:
    registry = LogRegistry(log)
    registry.set_compatibility("NONE", "s")
    registry.register("s", avro({"name": "a", "type": "int"}))
    registry.register("s", avro({"name": "a", "type": "string"}))
    later = avro({"name": "a", "type": "string"}, B_DEFAULT)
    registry.set_compatibility("BACKWARD", "s")
    assert registry.check_compatibility("s", later) == []  # the latest alone: compatible
    registry.set_compatibility("BACKWARD_TRANSITIVE", "s")
    problems = registry.check_compatibility("s", later)
    assert problems
    assert "{oldSchemaVersion: 1}" in " ".join(problems)
    with pytest.raises(RegistryError) as e:
        registry.register("s", later)
    assert e.value.code == 409
    registry.delete_compatibility("s")  # the global level applies again
    assert registry.get_compatibility("s") == "BACKWARD"
    with pytest.raises(RegistryError) as e:
        registry.get_compatibility("s", fallback=False)
    assert e.value.code == 40408


def test_a_subject_level_wins_over_the_global_one(log: EmbeddedLog) -> None:
    registry = LogRegistry(log)
    registry.set_compatibility("full_transitive")  # any case, as Confluent takes it
    registry.set_compatibility("NONE", "free")
    assert registry.get_compatibility() == "FULL_TRANSITIVE"
    assert registry.get_compatibility("free") == "NONE"
    assert registry.get_compatibility("other") == "FULL_TRANSITIVE"
    registry.register("free", avro(A))
    assert registry.register("free", avro({"name": "z", "type": "string"})) == 2


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (Schema("{not json"), 42201),
        (
            Schema('{"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]}'),
            42201,
        ),
        (Schema('{"type": "object", "properties": 5}', "JSON"), 42201),
        (Schema('syntax = "proto3"; message M { strin a = 1; }', "PROTOBUF"), 42201),
        (Schema("{}", "XML"), 42201),
    ],
)
def test_an_invalid_schema_is_refused_with_42201(log: EmbeddedLog, bad: Schema, code: int) -> None:
    registry = LogRegistry(log)
    with pytest.raises(RegistryError) as e:
        registry.register("s", bad)
    assert e.value.code == code
    assert registry.subjects() == []


def test_an_unknown_level_is_refused_with_42203(log: EmbeddedLog) -> None:
    with pytest.raises(RegistryError) as e:
        LogRegistry(log).set_compatibility("SIDEWAYS")
    assert e.value.code == 42203
    assert "Invalid compatibility level" in str(e.value)


def test_json_schema_rules(log: EmbeddedLog) -> None:
    registry = LogRegistry(log)

    def obj(props: dict[str, object], required: list[str], closed: bool = True) -> Schema:
        doc = {"type": "object", "properties": props, "required": required}
        if closed:
            doc["additionalProperties"] = False
        return Schema(json.dumps(doc), "JSON")

    registry.register("j", obj({"a": {"type": "integer"}}, ["a"]))
    # closed model: an optional property added is compatible, a required one is not
    assert registry.register("j", obj({"a": {"type": "integer"}, "b": {"type": "string"}}, ["a"]))
    for bad, kind in [
        (
            obj(
                {"a": {"type": "integer"}, "b": {"type": "string"}, "c": {"type": "string"}},
                ["a", "c"],
            ),
            "REQUIRED_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL",
        ),
        (obj({"a": {"type": "string"}, "b": {"type": "string"}}, ["a"]), "TYPE_CHANGED"),
    ]:
        with pytest.raises(RegistryError) as e:
            registry.register("j", bad)
        assert e.value.code == 409
        assert kind in str(e.value)
    # integer to number widens: compatible
    assert registry.register("j", obj({"a": {"type": "number"}, "b": {"type": "string"}}, ["a"]))
    # an open model's writer may have written any property: adding one is incompatible
    registry.register("open", obj({"a": {"type": "integer"}}, [], closed=False))
    with pytest.raises(RegistryError) as e:
        registry.register(
            "open", obj({"a": {"type": "integer"}, "b": {"type": "string"}}, [], False)
        )
    assert "PROPERTY_ADDED_TO_OPEN_CONTENT_MODEL" in str(e.value)


@pytest.mark.slow
def test_protobuf_rules_and_references(log: EmbeddedLog) -> None:
    registry = LogRegistry(log)
    v1 = 'syntax = "proto3"; package p; message M { string a = 1; int32 n = 2; }'
    registry.register("p", Schema(v1, "PROTOBUF"))
    added = 'syntax = "proto3"; package p; message M { string a = 1; int32 n = 2; bool c = 3; }'
    assert registry.register("p", Schema(added, "PROTOBUF")) == 2  # a field added
    widened = 'syntax = "proto3"; package p; message M { string a = 1; int64 n = 2; bool c = 3; }'
    assert registry.register("p", Schema(widened, "PROTOBUF")) == 3  # int32 -> int64: one group
    changed = 'syntax = "proto3"; package p; message M { int32 a = 1; int64 n = 2; bool c = 3; }'
    with pytest.raises(RegistryError) as e:
        registry.register("p", Schema(changed, "PROTOBUF"))
    assert e.value.code == 409
    assert "FIELD_SCALAR_KIND_CHANGED" in str(e.value)
    # references: a schema importing another registered one
    from hispeed.registry import SchemaReference

    registry.register(
        "dep", Schema('syntax = "proto3"; package d; message D { string x = 1; }', "PROTOBUF")
    )
    user = 'syntax = "proto3"; package u; import "d.proto"; message U { d.D d = 1; }'
    ref = SchemaReference("d.proto", "dep", 1)
    schema_id = registry.register("u", Schema(user, "PROTOBUF", (ref,)))
    assert registry.schema_by_id(schema_id).references == (ref,)
    with pytest.raises(RegistryError) as e:  # a reference to nothing registered
        registry.register("u2", Schema(user, "PROTOBUF", (SchemaReference("d.proto", "nope", 1),)))
    assert e.value.code == 42201


def test_soft_and_hard_deletes(tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path, fsync="never") as log:
        registry = LogRegistry(log)
        registry.register("s", avro(A))
        registry.register("s", avro(A, B_DEFAULT))
        for call, code in [
            (lambda: registry.delete_version("s", 1, permanent=True), 40407),
            (lambda: registry.delete_subject("s", permanent=True), 40405),
            (lambda: registry.delete_version("s", 9), 40402),
            (lambda: registry.delete_version("s", "x"), 42202),
            (lambda: registry.delete_subject("nope"), 40401),
        ]:
            with pytest.raises(RegistryError) as e:
                call()
            assert e.value.code == code
        assert registry.delete_subject("s") == [1, 2]
        assert registry.subjects() == []
        assert registry.subjects(deleted=True) == ["s"]
        with pytest.raises(RegistryError) as e:
            registry.delete_subject("s")
        assert e.value.code == 40404
        assert registry.schema_by_id(2) == avro(A, B_DEFAULT)  # soft: its id still answers
        assert registry.delete_subject("s", permanent=True) == [1, 2]
    with EmbeddedLog(tmp_path, fsync="never") as log:
        registry = LogRegistry(log)
        assert registry.subjects(deleted=True) == []
        with pytest.raises(RegistryError) as e:
            registry.schema_by_id(2)
        assert e.value.code == 40403
        assert registry.register("s", avro(A, name=f"N{uuid.uuid4().hex[:4]}")) == 3

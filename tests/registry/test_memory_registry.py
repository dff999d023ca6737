"""The in-memory registry assigns ids and versions as Confluent's registry does."""

import pytest

from hispeed.registry import MemoryRegistry, RegistryError, Schema

A = Schema('{"type": "record", "name": "A", "fields": []}')
B = Schema('{"type": "record", "name": "B", "fields": []}')


def test_ids_are_global_and_a_schema_registered_again_keeps_its_id() -> None:
    reg = MemoryRegistry()
    assert reg.register("t-value", A) == 1
    assert reg.register("t-value", B) == 2
    assert reg.register("t-value", A) == 1
    assert reg.register("u-value", A) == 1  # same schema, another subject: same id
    assert reg.versions("t-value") == [1, 2]
    assert reg.versions("u-value") == [1]
    assert reg.version("t-value").schema == B
    assert reg.version("t-value", 1).id == 1
    assert reg.schema_by_id(2) == B
    assert reg.subjects() == ["t-value", "u-value"]


def test_unknown_subject_version_and_id_carry_confluents_codes() -> None:
    reg = MemoryRegistry()
    reg.register("t-value", A)
    with pytest.raises(RegistryError) as e:
        reg.version("nope")
    assert e.value.code == 40401
    with pytest.raises(RegistryError) as e:
        reg.version("t-value", 7)
    assert e.value.code == 40402
    with pytest.raises(RegistryError) as e:
        reg.schema_by_id(9)
    assert e.value.code == 40403
    assert reg.latest("nope") is None

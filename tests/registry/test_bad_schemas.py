"""Schemas that do not parse are refused with Confluent's 42201, never an internal error."""

import json

import pytest

from hispeed.registry import RegistryError, Schema
from hispeed.registry.durable import LogRegistry


def _deep_array(depth: int) -> str:
    text = '"int"'
    for _ in range(depth):
        text = f'{{"type": "array", "items": {text}}}'
    return text


@pytest.mark.parametrize(
    "text",
    [
        json.dumps({"type": "record"}),  # fastavro's SchemaParseException: no name
        json.dumps({"type": "record", "name": "r", "fields": [{"name": "a"}]}),
        json.dumps({"type": "enum", "name": "e", "symbols": [1]}),
        _deep_array(5000),  # deeper than the parsers recurse
    ],
    ids=["record-without-name", "field-without-type", "enum-symbol-not-a-name", "deep"],
)
def test_an_avro_schema_that_does_not_parse_is_invalid_schema_42201(text: str) -> None:
    reg = LogRegistry(None)  # the server's registry, which parses what it keeps
    with pytest.raises(RegistryError) as e:
        reg.register("t-value", Schema(text))
    assert e.value.code == 42201
    assert reg.subjects() == []


def test_a_json_schema_nested_past_the_parsers_recursion_is_invalid_schema_42201() -> None:
    text = '{"type": "integer"}'
    for _ in range(5000):
        text = f'{{"type": "array", "items": {text}}}'
    reg = LogRegistry(None)
    with pytest.raises(RegistryError) as e:
        reg.register("t-value", Schema(text, "JSON"))
    assert e.value.code == 42201
    assert reg.subjects() == []

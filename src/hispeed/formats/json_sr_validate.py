"""JSON_SR records checked against their JSON Schema, where ksqlDB checks them.

ksqlDB reads and writes JSON_SR through Confluent's JsonSchemaConverter, whose serde validates
a record against its registered schema only when `json.fail.invalid.schema` is true (default
false); ksqlDB hands it every `ksql.schema.registry.*` property with the prefix removed, so a
user turns validation on with `ksql.schema.registry.json.fail.invalid.schema=true`. hispeed
reads that property (`SchemaRegistry.validate_json`); a record that does not match its schema
is then a deserialization error (the processing log), as in ksqlDB.

The validator is jsonschema's, for the schema's own draft. Its `$ref`s resolve within the
schema and to the registered schemas its references name (Confluent's JSON Schema references:
a reference's name is the URI a `$ref` uses); a `$ref` to anything else, a remote URL
included, is never fetched: the record fails with a message that says so.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import jsonschema.exceptions
import jsonschema.validators
import msgspec
import pyarrow as pa
from referencing import Registry, Resource
from referencing.exceptions import NoSuchResource, Unresolvable
from referencing.jsonschema import DRAFT7

from hispeed.formats.base import FormatError
from hispeed.registry import RegistryError, Schema, SchemaRegistry

#: how much of a record a message quotes
_QUOTED = 200


def _never_fetch(uri: str) -> Resource[Any]:
    # a $ref the schema's references do not name: refused, never fetched over the network
    raise NoSuchResource(ref=uri)  # type: ignore[call-arg]  # attrs-made __init__


def _references(registry: SchemaRegistry, schema: Schema) -> list[tuple[str, Resource[Any]]]:
    """The registered schemas `schema` references, at any depth, as (name, resource)."""
    out: dict[str, Resource[Any]] = {}
    pending = list(schema.references)
    while pending:
        ref = pending.pop()
        if ref.name in out:
            continue
        held = registry.version(ref.subject, ref.version).schema
        out[ref.name] = Resource.from_contents(
            json.loads(held.schema), default_specification=DRAFT7
        )
        pending.extend(held.references)
    return list(out.items())


class RecordValidator:
    """Checks JSON records against one registered JSON Schema."""

    def __init__(self, registry: SchemaRegistry, schema: Schema) -> None:
        try:
            doc = json.loads(schema.schema)
            resources = Registry(retrieve=_never_fetch).with_resources(  # type: ignore[call-arg]
                _references(registry, schema)
            )
            cls = jsonschema.validators.validator_for(doc, default=jsonschema.Draft7Validator)
            self._validator = cls(doc, registry=resources)
        except (ValueError, RegistryError, jsonschema.exceptions.SchemaError) as e:
            raise FormatError(f"cannot validate with the JSON schema: {e}") from None
        self._decode = msgspec.json.Decoder().decode

    def errors(self, payloads: pa.BinaryArray) -> dict[int, str]:
        """The rows of `payloads` (JSON text, none null) that do not match the schema, with
        why. Rows that are not JSON are left to the JSON reader, which reports them."""
        values = payloads.to_pylist()
        try:  # the usual batch: every row JSON, parsed in one call
            parsed: list[Any] = self._decode(b"[" + b",".join(values) + b"]")
        except msgspec.DecodeError:
            parsed = [self._parse(v) for v in values]
        out: dict[int, str] = {}
        is_valid = self._validator.is_valid
        for i, record in enumerate(parsed):
            if record is _NOT_JSON:
                continue
            try:
                if is_valid(record):
                    continue
                error = jsonschema.exceptions.best_match(self._validator.iter_errors(record))
            except Unresolvable as e:
                out[i] = (
                    f"the record's JSON schema cannot be resolved: {e}: hispeed never "
                    "fetches a $ref that is not one of the schema's registered references"
                )
                continue
            assert error is not None
            text = values[i].decode("utf-8", "replace")
            if len(text) > _QUOTED:
                text = text[:_QUOTED] + "..."
            out[i] = (
                f"JSON {text} does not match its schema: {error.message} (at {error.json_path})"
            )
        return out

    def _parse(self, value: bytes) -> Any:
        try:
            return self._decode(value)
        except msgspec.DecodeError:
            return _NOT_JSON


_NOT_JSON = object()

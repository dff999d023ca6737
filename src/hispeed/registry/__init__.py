"""Schemas by id and subject, as a Confluent Schema Registry keeps them.

`SchemaRegistry` is the one interface every part uses: the AVRO, PROTOBUF and JSON_SR formats
(to register a sink's schema and read a record's schema by its id), schema inference in CREATE
statements, the conformance runner and the REST API the server serves. Implementations: the
in-memory `MemoryRegistry` (tests, the conformance runner) and, in other modules of this
package, the durable one kept in the log and a client of an external registry.
"""

from hispeed.registry.base import (
    SCHEMA_TYPES,
    MemoryRegistry,
    RegisteredSchema,
    RegistryError,
    Schema,
    SchemaReference,
    SchemaRegistry,
)
from hispeed.registry.compat import LEVELS
from hispeed.registry.durable import (
    DEFAULT_MAX_SCHEMA_BYTES,
    MAX_SCHEMA_BYTES_PROPERTY,
    SCHEMAS_TOPIC,
    LogRegistry,
)
from hispeed.registry.factory import (
    JSON_FAIL_INVALID_SCHEMA,
    SCHEMA_REGISTRY_URL,
    apply_serde_settings,
    open_registry,
    registry_url,
)

__all__ = [
    "DEFAULT_MAX_SCHEMA_BYTES",
    "JSON_FAIL_INVALID_SCHEMA",
    "LEVELS",
    "MAX_SCHEMA_BYTES_PROPERTY",
    "SCHEMAS_TOPIC",
    "SCHEMA_REGISTRY_URL",
    "SCHEMA_TYPES",
    "LogRegistry",
    "MemoryRegistry",
    "RegisteredSchema",
    "RegistryError",
    "Schema",
    "SchemaReference",
    "SchemaRegistry",
    "apply_serde_settings",
    "open_registry",
    "registry_url",
]

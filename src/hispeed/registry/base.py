"""The registry's model and interface, and the in-memory registry.

Ids are global and shared by every subject (Confluent's); a subject holds versions 1, 2, ...
of its schemas; registering a schema a subject already holds returns its existing id. Error
codes follow Confluent's REST API (40401 subject not found, 40402 version not found, 40403
schema not found, 409 incompatible, 42201 invalid schema) so the server can answer with them.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from hispeed.errors import HispeedError

#: the schema types Confluent's registry knows; AVRO when a request names none
SCHEMA_TYPES = ("AVRO", "PROTOBUF", "JSON")


class RegistryError(HispeedError):
    """A registry request that cannot be served; `code` is Confluent's error code."""

    def __init__(self, message: str, code: int = 50001) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class SchemaReference:
    """A schema's reference to another registered schema (Protobuf imports, Avro named types)."""

    name: str
    subject: str
    version: int


@dataclass(frozen=True)
class Schema:
    """A schema's text, its type (AVRO, PROTOBUF or JSON) and its references."""

    schema: str
    schema_type: str = "AVRO"
    references: tuple[SchemaReference, ...] = field(default=())


@dataclass(frozen=True)
class RegisteredSchema:
    """A schema as one subject holds it: the subject, its version there, and the global id."""

    subject: str
    version: int
    id: int
    schema: Schema


class SchemaRegistry(ABC):
    """What hispeed needs of a schema registry (in-process, durable, or a remote server)."""

    #: whether JSON_SR records are checked against their JSON Schemas: ksqlDB's JSON Schema
    #: serde (Confluent's) checks them only with `json.fail.invalid.schema`, which it is given
    #: as the engine property `ksql.schema.registry.json.fail.invalid.schema` (default false)
    validate_json: bool = False

    @abstractmethod
    def register(self, subject: str, schema: Schema) -> int:
        """Register `schema` under `subject` (a new version unless it holds it); its id."""

    @abstractmethod
    def schema_by_id(self, schema_id: int) -> Schema:
        """The schema with this id; `RegistryError` (40403) when there is none."""

    @abstractmethod
    def lookup(self, subject: str, schema: Schema) -> RegisteredSchema | None:
        """The version of `subject` that holds `schema`, or None."""

    @abstractmethod
    def version(
        self, subject: str, version: int | str = "latest", *, deleted: bool = False
    ) -> RegisteredSchema:
        """A subject's version (a number or "latest"); `RegistryError` 40401/40402 if absent.
        `deleted`: soft-deleted versions too."""

    @abstractmethod
    def subjects(self, *, deleted: bool = False) -> list[str]:
        """Every subject with at least one version (`deleted`: or a soft-deleted one)."""

    @abstractmethod
    def versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        """A subject's versions, in order; `RegistryError` (40401) for an unknown subject."""

    # What the REST API serves beyond the formats' needs; a registry without them refuses.

    def usages(self, schema_id: int, *, deleted: bool = False) -> list[tuple[str, int]]:
        """The (subject, version) pairs that hold the schema with this id."""
        raise _unsupported(self, "listing a schema's subjects")

    def get_compatibility(self, subject: str | None = None, *, fallback: bool = True) -> str:
        """The compatibility level of `subject` (None: the global one); `fallback`: the global
        one when the subject has none of its own (else 40408)."""
        raise _unsupported(self, "compatibility levels")

    def set_compatibility(self, level: str, subject: str | None = None) -> str:
        """Set the level of `subject` (None: the global one); the level, checked (42203)."""
        raise _unsupported(self, "compatibility levels")

    def delete_compatibility(self, subject: str | None = None) -> str:
        """Drop `subject`'s own level (the global one then applies); the level it had."""
        raise _unsupported(self, "compatibility levels")

    def check_compatibility(
        self, subject: str, schema: Schema, version: int | str = "latest"
    ) -> list[str]:
        """What makes `schema` incompatible with `subject`'s versions under its level
        ("latest": as registering it would check; a number: with that version): empty when
        it is compatible."""
        raise _unsupported(self, "compatibility checks")

    def delete_version(self, subject: str, version: int | str, permanent: bool = False) -> int:
        """Soft-delete a version (`permanent`: hard-delete a soft-deleted one); its number."""
        raise _unsupported(self, "deleting versions")

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        """Soft-delete every version of a subject (`permanent`: hard-delete them, once
        soft-deleted); the versions deleted."""
        raise _unsupported(self, "deleting subjects")

    def close(self) -> None:
        """Release what the registry holds (connections, a reader of the log)."""
        return  # an in-memory registry holds nothing to release

    def latest(self, subject: str) -> RegisteredSchema | None:
        """A subject's latest version, or None when it has none."""
        try:
            return self.version(subject, "latest")
        except RegistryError:
            return None


def _unsupported(registry: SchemaRegistry, what: str) -> RegistryError:
    return RegistryError(f"{type(registry).__name__} does not support {what}", 50001)


class MemoryRegistry(SchemaRegistry):
    """A registry held in memory: for tests, the conformance runner and a building block.

    It assigns ids and versions as Confluent's does and checks no compatibility; the durable
    registry adds that.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, Schema] = {}
        self._subjects: dict[str, list[RegisteredSchema]] = {}

    def register(self, subject: str, schema: Schema) -> int:
        with self._lock:
            held = self._find(subject, schema)
            if held is not None:
                return held.id
            schema_id = next((i for i, s in self._by_id.items() if s == schema), None)
            if schema_id is None:
                schema_id = max(self._by_id, default=0) + 1
                self._by_id[schema_id] = schema
            versions = self._subjects.setdefault(subject, [])
            number = versions[-1].version + 1 if versions else 1
            versions.append(RegisteredSchema(subject, number, schema_id, schema))
            return schema_id

    def register_with_id(self, subject: str, schema: Schema, schema_id: int) -> int:
        """Register `schema` under `subject` with the id given (as Confluent's registry does
        in IMPORT mode, and ksqlDB's test tool does with KEY_/VALUE_SCHEMA_ID's topics);
        `RegistryError` (42207) when the id holds another schema."""
        with self._lock:
            held = self._by_id.get(schema_id)
            if held is not None and held != schema:
                raise RegistryError(
                    f"Overwrite new schema with id {schema_id} is not permitted.", 42207
                )
            self._by_id[schema_id] = schema
            versions = self._subjects.setdefault(subject, [])
            if not any(v.id == schema_id for v in versions):
                number = versions[-1].version + 1 if versions else 1
                versions.append(RegisteredSchema(subject, number, schema_id, schema))
            return schema_id

    def schema_by_id(self, schema_id: int) -> Schema:
        with self._lock:
            schema = self._by_id.get(schema_id)
        if schema is None:
            raise RegistryError("Schema " + str(schema_id) + " not found", 40403)
        return schema

    def lookup(self, subject: str, schema: Schema) -> RegisteredSchema | None:
        with self._lock:
            return self._find(subject, schema)

    def version(
        self, subject: str, version: int | str = "latest", *, deleted: bool = False
    ) -> RegisteredSchema:
        with self._lock:
            versions = self._subjects.get(subject)
            if not versions:
                raise RegistryError(f"Subject '{subject}' not found.", 40401)
            if version == "latest" or version == -1:
                return versions[-1]
            for held in versions:
                if held.version == int(version):
                    return held
        raise RegistryError(f"Version {version} not found.", 40402)

    def subjects(self, *, deleted: bool = False) -> list[str]:
        with self._lock:
            return sorted(s for s, v in self._subjects.items() if v)

    def versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        with self._lock:
            versions = self._subjects.get(subject)
        if not versions:
            raise RegistryError(f"Subject '{subject}' not found.", 40401)
        return [v.version for v in versions]

    def _find(self, subject: str, schema: Schema) -> RegisteredSchema | None:
        for held in self._subjects.get(subject, ()):
            if held.schema == schema:
                return held
        return None

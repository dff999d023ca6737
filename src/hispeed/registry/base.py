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
    def version(self, subject: str, version: int | str = "latest") -> RegisteredSchema:
        """A subject's version (a number or "latest"); `RegistryError` 40401/40402 if absent."""

    @abstractmethod
    def subjects(self) -> list[str]:
        """Every subject with at least one version."""

    @abstractmethod
    def versions(self, subject: str) -> list[int]:
        """A subject's versions, in order; `RegistryError` (40401) for an unknown subject."""

    def close(self) -> None:
        """Release what the registry holds (connections, a reader of the log)."""
        return  # an in-memory registry holds nothing to release

    def latest(self, subject: str) -> RegisteredSchema | None:
        """A subject's latest version, or None when it has none."""
        try:
            return self.version(subject, "latest")
        except RegistryError:
            return None


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

    def schema_by_id(self, schema_id: int) -> Schema:
        with self._lock:
            schema = self._by_id.get(schema_id)
        if schema is None:
            raise RegistryError("Schema " + str(schema_id) + " not found", 40403)
        return schema

    def lookup(self, subject: str, schema: Schema) -> RegisteredSchema | None:
        with self._lock:
            return self._find(subject, schema)

    def version(self, subject: str, version: int | str = "latest") -> RegisteredSchema:
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

    def subjects(self) -> list[str]:
        with self._lock:
            return sorted(s for s, v in self._subjects.items() if v)

    def versions(self, subject: str) -> list[int]:
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

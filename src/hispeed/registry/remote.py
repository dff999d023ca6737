"""A client of an external Confluent-compatible schema registry (`ksql.schema.registry.url`).

It wraps confluent-kafka's `SchemaRegistryClient` (the client Confluent keeps, with its caches
of ids and schemas) and answers in this package's model; the registry's own errors come back
as `RegistryError` with the registry's error code, so callers see one kind of error whichever
registry they were given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from hispeed.registry.base import (
    RegisteredSchema,
    RegistryError,
    Schema,
    SchemaReference,
    SchemaRegistry,
)

T = TypeVar("T")


class RemoteRegistry(SchemaRegistry):
    """The registry at `url` (Confluent's Schema Registry, hispeed's, Apicurio's ccompat API)."""

    def __init__(self, url: str, config: dict[str, Any] | None = None) -> None:
        try:
            from confluent_kafka.schema_registry import SchemaRegistryClient
        except ImportError as e:  # the client's extra dependencies (authlib, attrs, ...)
            raise RegistryError(
                f"ksql.schema.registry.url needs confluent-kafka's schema registry client "
                f"(pip install 'confluent-kafka[schemaregistry]'): {e}"
            ) from None
        self.url = url
        try:
            self.client = SchemaRegistryClient({"url": url, **(config or {})})
        except (ValueError, TypeError) as e:
            raise RegistryError(f"ksql.schema.registry.url {url!r}: {e}", 42201) from None

    def register(self, subject: str, schema: Schema) -> int:
        return self._call(lambda: self.client.register_schema(subject, _to_client(schema)))

    def schema_by_id(self, schema_id: int) -> Schema:
        return _from_client(self._call(lambda: self.client.get_schema(schema_id)))

    def lookup(self, subject: str, schema: Schema) -> RegisteredSchema | None:
        try:
            found = self._call(lambda: self.client.lookup_schema(subject, _to_client(schema)))
        except RegistryError as e:
            if e.code in (40401, 40403):
                return None
            raise
        return _registered(found)

    def version(self, subject: str, version: int | str = "latest") -> RegisteredSchema:
        if version == "latest" or version == -1:
            found = self._call(lambda: self.client.get_latest_version(subject))
        else:
            found = self._call(lambda: self.client.get_version(subject, int(version)))
        return _registered(found)

    def subjects(self) -> list[str]:
        return sorted(self._call(self.client.get_subjects))

    def versions(self, subject: str) -> list[int]:
        return list(self._call(lambda: self.client.get_versions(subject)))

    def close(self) -> None:
        """Close the client's connections."""
        self.client.close()

    def _call(self, request: Callable[[], T]) -> T:
        with _registry_errors(self.url):
            return request()


@contextmanager
def _registry_errors(url: str) -> Iterator[None]:
    """The client's errors as `RegistryError`: the registry's code, or 50003 when the
    registry cannot be reached (Confluent's code for a failed forward to another node)."""
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        yield
    except SchemaRegistryError as e:
        code = e.error_code if e.error_code > 0 else e.http_status_code * 100
        raise RegistryError(str(e.error_message), code) from None
    except OSError as e:
        raise RegistryError(f"the schema registry at {url} cannot be reached: {e}", 50003) from None
    except Exception as e:  # httpx's transport errors are not OSErrors
        if type(e).__module__.startswith(("httpx", "httpcore")):
            raise RegistryError(
                f"the schema registry at {url} cannot be reached: {e}", 50003
            ) from None
        raise


def _to_client(schema: Schema) -> Any:
    from confluent_kafka.schema_registry import Schema as ClientSchema
    from confluent_kafka.schema_registry import SchemaReference as ClientReference

    refs = [ClientReference(r.name, r.subject, r.version) for r in schema.references]
    return ClientSchema(schema.schema, schema.schema_type, refs)


def _from_client(schema: Any) -> Schema:
    refs = tuple(
        SchemaReference(str(r.name), str(r.subject), int(r.version))
        for r in (schema.references or ())
    )
    return Schema(str(schema.schema_str), str(schema.schema_type or "AVRO"), refs)


def _registered(found: Any) -> RegisteredSchema:
    return RegisteredSchema(
        str(found.subject), int(found.version), int(found.schema_id), _from_client(found.schema)
    )

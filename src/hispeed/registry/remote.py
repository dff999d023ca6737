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

    def version(
        self, subject: str, version: int | str = "latest", *, deleted: bool = False
    ) -> RegisteredSchema:
        if (version == "latest" or version == -1) and not deleted:
            found = self._call(lambda: self.client.get_latest_version(subject))
        else:
            number: Any = "latest" if version in ("latest", -1) else int(version)
            found = self._call(lambda: self.client.get_version(subject, number, deleted))
        return _registered(found)

    def subjects(self, *, deleted: bool = False) -> list[str]:
        return sorted(self._call(lambda: self.client.get_subjects(deleted=deleted)))

    def versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        return list(self._call(lambda: self.client.get_versions(subject, deleted=deleted)))

    def usages(self, schema_id: int, *, deleted: bool = False) -> list[tuple[str, int]]:
        subjects = self._call(lambda: self.client.get_subjects_by_schema_id(schema_id))
        out = []
        for subject in subjects:
            found = self.lookup(subject, self.schema_by_id(schema_id))
            if found is not None:
                out.append((subject, found.version))
        return out

    def get_compatibility(self, subject: str | None = None, *, fallback: bool = True) -> str:
        try:
            return str(self._call(lambda: self.client.get_compatibility(subject)))
        except RegistryError as e:
            if subject is None or not fallback or e.code not in (40401, 40408):
                raise
        return str(self._call(lambda: self.client.get_compatibility(None)))

    def set_compatibility(self, level: str, subject: str | None = None) -> str:
        answer: Any = self._call(lambda: self.client.set_compatibility(subject, level))
        # the client gives the registry's answer as it came: {"compatibility": level}
        return str(answer.get("compatibility", level) if isinstance(answer, dict) else answer)

    def delete_compatibility(self, subject: str | None = None) -> str:
        config = self._call(lambda: self.client.delete_config(subject))
        return str(config.compatibility_level or "")

    def check_compatibility(
        self, subject: str, schema: Schema, version: int | str = "latest"
    ) -> list[str]:
        ok = self._call(
            lambda: self.client.test_compatibility(subject, _to_client(schema), version)
        )
        return [] if ok else ["incompatible (the registry gave no details)"]

    def delete_version(self, subject: str, version: int | str, permanent: bool = False) -> int:
        number: Any = version if version == "latest" else int(version)
        return int(self._call(lambda: self.client.delete_version(subject, number, permanent)))

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        return list(self._call(lambda: self.client.delete_subject(subject, permanent)))

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

"""Which registry an engine uses: an external one at `ksql.schema.registry.url`, or its own."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hispeed.log.base import Log
from hispeed.registry.base import RegistryError, SchemaRegistry
from hispeed.registry.durable import DEFAULT_MAX_SCHEMA_BYTES, LogRegistry

#: ksqlDB's property naming an external Confluent-compatible schema registry
SCHEMA_REGISTRY_URL = "ksql.schema.registry.url"
#: ksqlDB's property (Confluent's serde setting `json.fail.invalid.schema`, passed on with the
#: `ksql.schema.registry.` prefix) that has JSON_SR records checked against their schemas
JSON_FAIL_INVALID_SCHEMA = "ksql.schema.registry.json.fail.invalid.schema"


def registry_url(properties: Mapping[str, Any]) -> str:
    """The external registry's URL the properties name (ksqlDB's name, or its short form
    `schema.registry.url`), or "" for hispeed's own."""
    url = properties.get(SCHEMA_REGISTRY_URL) or properties.get("schema.registry.url") or ""
    return str(url).strip()


def open_registry(
    url: str, log: Log | None = None, *, max_schema_bytes: int = DEFAULT_MAX_SCHEMA_BYTES
) -> SchemaRegistry:
    """A client of the registry at `url` when one is given, else hispeed's own registry,
    kept in `log` (in memory only without one)."""
    if url:
        from hispeed.registry.remote import RemoteRegistry

        return RemoteRegistry(url)
    return LogRegistry(log, max_schema_bytes=max_schema_bytes)


def apply_serde_settings(registry: SchemaRegistry, properties: Mapping[str, Any]) -> None:
    """Set what the engine's properties say of the registry's serdes on `registry`: whether
    JSON_SR records are validated (`JSON_FAIL_INVALID_SCHEMA`; left as it is when unset)."""
    raw = properties.get(JSON_FAIL_INVALID_SCHEMA)
    if raw is None:
        return
    value = str(raw).strip().lower()
    if value not in ("true", "false"):
        raise RegistryError(f"{JSON_FAIL_INVALID_SCHEMA} must be true or false, not {raw!r}")
    registry.validate_json = value == "true"

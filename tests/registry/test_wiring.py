"""Which registry an engine is given, and how the runtime reaches it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.processes import free_port
from hispeed.registry import RegistryError, Schema, SchemaRegistry
from hispeed.registry.remote import RemoteRegistry

AVRO = '{"type": "record", "name": "R", "fields": [{"name": "x", "type": "long"}]}'


def test_the_engine_keeps_its_own_registry_on_its_context(tmp_path: Path) -> None:
    with Engine(tmp_path, fsync="never") as engine:
        registry = engine.schema_registry
        assert isinstance(registry, SchemaRegistry)
        assert engine.context.schema_registry is registry  # what statements and tasks get
        assert engine.parts.context.schema_registry is registry
        schema_id = registry.register("r-value", Schema(AVRO))
        assert json.loads(registry.schema_by_id(schema_id).schema) == json.loads(AVRO)


@pytest.mark.parametrize("how", ["keyword", "property", "short property"])
def test_a_url_names_an_external_registry(tmp_path: Path, how: str) -> None:
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    kwargs: dict[str, object] = {
        "keyword": {"schema_registry_url": url},
        "property": {"properties": {"ksql.schema.registry.url": url}},
        "short property": {"properties": {"schema.registry.url": url}},
    }[how]
    with Engine(tmp_path, fsync="never", **kwargs) as engine:  # type: ignore[arg-type]
        registry = engine.schema_registry
        assert isinstance(registry, RemoteRegistry)
        assert registry.url == url
        if how != "keyword":
            return
        # a registry that cannot be reached is a RegistryError naming it, not a traceback
        with pytest.raises(RegistryError, match="cannot be reached") as e:
            registry.subjects()
        assert url in str(e.value)


def test_the_setting_is_read_from_the_environment() -> None:
    env = {"HISPEED_SCHEMA_REGISTRY_URL": "http://registry.example:8081"}
    assert Settings.load(None, env=env).schema_registry_url == "http://registry.example:8081"
    assert Settings.load(None, env={}).schema_registry_url == ""

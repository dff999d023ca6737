"""Sink connectors over a frame's rows (`Frame.to_connector`, `Frame.to_parquet`;
frames/files.py): each made by the `CREATE SINK CONNECTOR` statement SQL would make."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hispeed.errors import HispeedError
from hispeed.frames.expressions import identifier
from hispeed.frames.render import name_sql


def text(value: Any) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def with_clause(props: Mapping[str, Any]) -> str:
    """Connector properties as a WITH clause's list."""
    return ", ".join(f"{text(k)}={text(v)}" for k, v in props.items())


def sink_connector(
    execute: Callable[[str], object], name: str, source: str, properties: Mapping[str, Any]
) -> str:
    """With `execute` (the engine's), the sink connector `name` over stream or table `source`
    with the connector's `properties` ('connector.class' and the class's own), as
    `CREATE SINK CONNECTOR name WITH (..., 'source'=source)`; returns the connector's name."""
    if any(str(k).lower() == "source" for k in properties):
        raise HispeedError(
            "the connector's 'source' is the frame's rows: leave it out of the properties"
        )
    props = {**properties, "source": identifier(source)}
    connector = identifier(name)
    execute(f"CREATE SINK CONNECTOR {name_sql(connector)} WITH ({with_clause(props)});")
    return connector


def parquet_sink(
    execute: Callable[[str], object], source: str, path: str | Path, properties: Mapping[str, Any]
) -> str:
    """With `execute` (the engine's), a Parquet sink connector `<source>_PARQUET` writing
    stream or table `source` into directory `path`; returns the connector's name."""
    props = {
        "connector.class": "parquet",
        "path": str(path),
        **{k.replace("_", "."): v for k, v in properties.items()},
    }
    return sink_connector(execute, identifier(source) + "_PARQUET", source, props)

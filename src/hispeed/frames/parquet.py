"""The Parquet sink connector over a frame's query (`Frame.to_parquet`; frames/files.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from hispeed.frames.expressions import identifier
from hispeed.frames.render import name_sql


def text(value: Any) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def with_clause(props: Mapping[str, Any]) -> str:
    """Connector properties as a WITH clause's list."""
    return ", ".join(f"{text(k)}={text(v)}" for k, v in props.items())


def parquet_sink(
    execute: Callable[[str], object], source: str, path: str | Path, properties: Mapping[str, Any]
) -> str:
    """With `execute` (the engine's), a Parquet sink connector `<source>_PARQUET` writing
    stream or table `source` into directory `path`; returns the connector's name."""
    source = identifier(source)
    connector = source + "_PARQUET"
    props = {
        "connector.class": "parquet",
        "source": source,
        "path": str(path),
        **{k.replace("_", "."): v for k, v in properties.items()},
    }
    execute(f"CREATE SINK CONNECTOR {name_sql(connector)} WITH ({with_clause(props)});")
    return connector

"""The file connectors from Python: a directory of files as a frame, a frame into Parquet.

    >>> clicks = read_files(engine, "clicks", "/data/in", "user_id STRING, ms DOUBLE")
    >>> clicks.filter(col("ms") > 100).to_parquet("/data/lake/slow", name="slow")

Both are the SQL connectors of docs/connectors.md (the directory source, the Parquet sink),
made by the statements SQL would make, so SHOW CONNECTORS, DESCRIBE CONNECTOR and a restart
treat them as any; delivery is theirs (each file read once, each record in one Parquet file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hispeed.frames.expressions import identifier
from hispeed.frames.frame import Frame, Host
from hispeed.frames.parquet import text, with_clause
from hispeed.frames.render import name_sql


def read_files(
    host: Host,
    name: str,
    path: str | Path,
    columns: str,
    *,
    partitions: int = 1,
    **properties: Any,
) -> Frame:
    """A stream `name` of the records of the files in directory `path` (CSV, JSON lines,
    Parquet; new files picked up, each read once), declared with `columns` ("n INT, s
    STRING", as SQL's CREATE STREAM), fed by a directory source connector `<name>_FILES`.
    `properties` are the connector's, with `_` for `.`: `file_pattern="*.csv"`,
    `key_column="id"`, `timestamp_column="at"`, `file_stable_ms=0`."""
    topic = name.lower()
    name = identifier(name)  # SQL's rule: unquoted names are upper case
    host.execute(
        f"CREATE STREAM {name_sql(name)} ({columns}) WITH (kafka_topic={text(topic)}, "
        f"value_format='JSON', partitions={int(partitions)});"
    )
    props = {
        "connector.class": "directory",
        "path": str(path),
        "kafka.topic": topic,
        **{k.replace("_", "."): v for k, v in properties.items()},
    }
    host.execute(
        f"CREATE SOURCE CONNECTOR {name_sql(name + '_FILES')} WITH ({with_clause(props)});"
    )
    return Frame.source(host, name)

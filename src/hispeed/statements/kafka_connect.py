"""CREATE, DROP, SHOW and DESCRIBE of Kafka Connect's connectors (`connectors/kafka_connect.py`).

The Connect cluster keeps its connectors, so these statements are never kept in the command
topic (`call.record = False`): a restarted engine, or another worker of the application,
asks the cluster again rather than creating them twice. Their results have ksqlDB's entity
kinds: `connector_info` (CREATE), `drop_connector`, `warning_entity` (IF [NOT] EXISTS that
did nothing), and the `connectors` / `describe_connector` of hispeed's own connectors.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hispeed.connectors.kafka_connect import (
    ConnectError,
    client_for,
    connect_config,
    connect_configured,
    goes_to_kafka_connect,
    list_rows,
)
from hispeed.connectors.kafka_connect import describe as describe_remote
from hispeed.errors import ConnectorError
from hispeed.sql import ast
from hispeed.statements.base import Call, EngineParts
from hispeed.statements.result import Result


def class_of(properties: Mapping[str, Any]) -> str:
    """The `connector.class` of a WITH clause (its key in any case), or ""."""
    for key, value in properties.items():
        if key.lower() == "connector.class":
            return str(value)
    return ""


def is_remote_create(parts: EngineParts, stmt: ast.CreateConnector, call: Call) -> bool:
    """Whether this CREATE goes to Kafka Connect (a class hispeed does not have)."""
    if call.replay:  # never recorded: a replayed CREATE is one of hispeed's own
        return False
    props = {k: p.value for k, p in stmt.properties.items()}
    return goes_to_kafka_connect(class_of(props), call.props)


def create(parts: EngineParts, stmt: ast.CreateConnector, call: Call) -> Result:
    """CREATE SOURCE|SINK CONNECTOR on the Connect cluster (ksqlDB's ConnectExecutor)."""
    call.record = False
    client = client_for(call.props, parts.log.shared)
    name = stmt.name
    if stmt.if_not_exists and any(n.lower() == name.lower() for n in client.connectors()):
        return Result("warning_entity", f"Connector {name} already exists")
    if name in parts.connectors.runners:
        raise ConnectorError(f"Connector {name} already exists")
    props = {k: p.value for k, p in stmt.properties.items()}
    info = client.create(name, connect_config(name, props))
    kind = str(info.get("type", "")).upper()
    if kind in ("SOURCE", "SINK") and kind != stmt.kind:
        # made, but not what the statement says it is: unmade, and said
        try:
            client.delete(name)
        except ConnectorError as e:
            raise ConnectorError(
                f"'{class_of(props)}' is a {kind.lower()} connector, not a "
                f"{stmt.kind.lower()}; connector {name} was created and could not be dropped "
                f"again ({e}): DROP CONNECTOR {name}"
            ) from None
        raise ConnectorError(
            f"'{class_of(props)}' is a {kind.lower()} connector, not a {stmt.kind.lower()}: "
            f"CREATE {kind} CONNECTOR {name} ..."
        )
    return Result("connector_info", f"Created connector {name}", info=info)


def is_remote(parts: EngineParts, name: str, call: Call) -> bool:
    """Whether DROP/DESCRIBE CONNECTOR `name` is for the Connect cluster: not one of
    hispeed's own, with `ksql.connect.url` set in Kafka mode."""
    if call.replay:  # a replayed DROP is of one of hispeed's own (Connect's are not kept)
        return False
    return name not in parts.connectors.runners and connect_configured(call.props, parts.log.shared)


def drop(parts: EngineParts, stmt: ast.DropConnector, call: Call) -> Result:
    """DROP CONNECTOR on the Connect cluster (ksqlDB's DropConnectorExecutor)."""
    call.record = False
    client = client_for(call.props, parts.log.shared)
    try:
        client.delete(stmt.name)
    except ConnectError as e:
        if stmt.if_exists and e.status == 404:
            return Result("warning_entity", f"Connector '{stmt.name}' does not exist.")
        raise
    return Result("drop_connector", f'Dropped connector "{stmt.name}"', info={"name": stmt.name})


def in_scope(row: Mapping[str, Any], scope: str | None) -> bool:
    """Whether SHOW [SOURCE|SINK] CONNECTORS lists a row (ksqlDB's ListConnectors scope: a
    connector that could not be described, of type unknown, only in the whole list)."""
    return scope is None or str(row.get("type", "")).upper() == scope


def show_rows(
    parts: EngineParts, call: Call, scope: str | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """SHOW [SOURCE|SINK] CONNECTORS' rows of the Connect cluster (none without
    `ksql.connect.url`), and its warnings: a cluster that cannot be asked is a warning beside
    hispeed's own rows."""
    if not connect_configured(call.props, parts.log.shared):
        return [], []
    try:
        rows, warnings = list_rows(client_for(call.props, parts.log.shared))
    except ConnectorError as e:
        return [], [str(e)]
    return [r for r in rows if in_scope(r, scope)], warnings


def describe(parts: EngineParts, name: str, call: Call) -> Result:
    """DESCRIBE CONNECTOR of the Connect cluster's connector: its status as the cluster says,
    the topics it used, and hispeed's streams and tables over them."""
    info, warnings = describe_remote(client_for(call.props, parts.log.shared), name)
    physical = getattr(parts.log, "physical", None)
    topics = set(info["topics"])
    info["sources"] = sorted(
        s.name
        for s in parts.catalog.sources.values()
        if (physical(s.topic) if callable(physical) else s.topic) in topics
    )
    return Result("describe_connector", message=str(info), info=info, warnings=warnings)


__all__ = [
    "class_of",
    "create",
    "describe",
    "drop",
    "in_scope",
    "is_remote",
    "is_remote_create",
    "show_rows",
]

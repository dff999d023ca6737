"""SET and UNSET of the engine's properties, and CREATE and DROP CONNECTOR."""

from __future__ import annotations

import functools

from hispeed.connectors.runner import SourceRunner
from hispeed.ops.watermark import IDLE_TIMEOUT_PROPERTY, idle_timeout
from hispeed.runtime.context import check_offset_reset
from hispeed.sql import ast
from hispeed.statements import kafka_connect
from hispeed.statements.base import Call, EngineParts
from hispeed.statements.result import Result
from hispeed.statements.undo import delete_topic


def set_property(parts: EngineParts, stmt: ast.SetProperty, call: Call) -> Result:
    """SET a property for every statement and query after it."""
    if stmt.name.lower() in ("auto.offset.reset", "ksql.streams.auto.offset.reset"):
        check_offset_reset(stmt.value)  # refused now, not by the next query made with it
    if stmt.name == IDLE_TIMEOUT_PROPERTY:
        idle_timeout({IDLE_TIMEOUT_PROPERTY: stmt.value})  # refused now, as above
    parts.properties[stmt.name] = stmt.value
    return Result("status", f"Successfully set property '{stmt.name}'")


def unset_property(parts: EngineParts, stmt: ast.UnsetProperty, call: Call) -> Result:
    """UNSET a property: back to its default."""
    parts.properties.pop(stmt.name, None)
    return Result("status", f"Successfully unset property '{stmt.name}'")


def create_connector(parts: EngineParts, stmt: ast.CreateConnector, call: Call) -> Result:
    """CREATE SOURCE or SINK CONNECTOR (IF NOT EXISTS: nothing to keep when it exists); a
    class hispeed does not have goes to Kafka Connect (`statements/kafka_connect.py`)."""
    if kafka_connect.is_remote_create(parts, stmt, call):
        return kafka_connect.create(parts, stmt, call)
    if stmt.if_not_exists and stmt.name in parts.connectors.runners:
        call.record = False
        return Result("status", f"Connector {stmt.name} already exists")
    props = {k: p.value for k, p in stmt.properties.items()}
    before = set(parts.log.list_topics(internal=True))
    message = parts.connectors.create(stmt.kind, stmt.name, props, call.text)
    runner = parts.connectors.runners.get(stmt.name)
    if isinstance(runner, SourceRunner) and runner.topic not in before:
        # the topic a source connector made for itself goes with it if the statement fails
        call.undo.append(functools.partial(delete_topic, parts.log, runner.topic))
    return Result("status", message)


def drop_connector(parts: EngineParts, stmt: ast.DropConnector, call: Call) -> Result:
    """DROP CONNECTOR: it stops (one of Kafka Connect's: the cluster deletes it)."""
    if kafka_connect.is_remote(parts, stmt.name, call):
        return kafka_connect.drop(parts, stmt, call)
    return Result("status", parts.connectors.drop(stmt.name, stmt.if_exists))

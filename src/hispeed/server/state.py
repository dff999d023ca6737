"""What the server's parts share, below the app that wires them: the `ServerState` every
endpoint reads (the engine, push queries, command statuses, metrics) and `append_batch`, the
one path by which HTTP, WebSocket, MQTT and gRPC ingestion write records to a topic.

`hispeed.server.app` imports this module and the protocol modules (ws, mqtt, grpc_service,
dashboard, metrics); they import this module, never the app.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import pyarrow as pa

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.errors import UnknownTopicError
from hispeed.log import TopicPartition, partition_for_key
from hispeed.log.base import Log
from hispeed.server.ingest import IngestError
from hispeed.server.metrics import Metrics
from hispeed.server.streaming import QueryRegistry


class ServerState:
    """What every endpoint shares: the engine, the running queries, the command statuses."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.settings = settings
        self.queries = QueryRegistry(settings.max_push_queries_per_client)
        self.commands: dict[str, dict[str, Any]] = {}
        self.metrics = Metrics(engine)
        self.started = time.time()
        self.extra_stats: dict[str, Callable[[], dict[str, Any]]] = {}


def append_batch(
    log_: Log, settings: Settings, name: str, batch: Any, partition: int | None
) -> list[dict[str, int]]:
    """Append an ingested batch to a topic, all or nothing; returns each record's place."""
    if name not in log_.list_topics(internal=True):
        if not settings.auto_create_topics:
            raise UnknownTopicError(f"topic {name!r} does not exist")
        log_.create_topic(name, settings.default_partitions, exist_ok=True)
    n = len(batch.values)
    if partition is not None or all(p is None for p in batch.partitions):
        records = pa.record_batch(
            {"key": pa.array(batch.keys, pa.binary()), "value": pa.array(batch.values, pa.binary())}
        )
        result = log_.append(name, records, partition=partition)
        return [{"partition": p, "offset": o} for p, o in result.pairs()]
    # REST Proxy records that name partitions: place the others as the log would, then write
    # every partition's share in one transaction so that the request lands whole or not at all.
    count = len(log_.describe_topic(name).partitions)
    rows_of: dict[int, list[int]] = defaultdict(list)
    for i, (key, part) in enumerate(zip(batch.keys, batch.partitions, strict=True)):
        if part is None:
            part = partition_for_key(key, count) if key is not None else i % count
        elif part >= count:
            raise IngestError(f"records[{i}].partition {part} does not exist: {name!r} has {count}")
        rows_of[part].append(i)
    txn = log_.transaction()
    try:
        for part, rows in rows_of.items():
            txn.append(name, [(batch.keys[i], batch.values[i]) for i in rows], partition=part)
    except BaseException:
        txn.abort()
        raise
    ranges = txn.commit()
    out = [{"partition": 0, "offset": 0} for _ in range(n)]
    for part, rows in rows_of.items():
        base = ranges[TopicPartition(name, part)][0]
        for j, i in enumerate(rows):
            out[i] = {"partition": part, "offset": base + j}
    return out


__all__ = ["ServerState", "append_batch"]

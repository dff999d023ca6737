"""The registry kept in Kafka: two workers (two logs on one cluster) share its ids, and
racing registrations never give one id to two schemas."""

from __future__ import annotations

import json
import threading
import uuid

import pytest

from hispeed.log.kafka import KafkaLog
from hispeed.registry import LogRegistry, Schema
from hispeed.testing.services import Service

pytestmark = [pytest.mark.services, pytest.mark.kafka, pytest.mark.slow]


def schema(name: str) -> Schema:
    doc = {"type": "record", "name": name, "fields": [{"name": "a", "type": "long"}]}
    return Schema(json.dumps(doc))


def test_workers_on_one_cluster_share_ids_and_race_safely(kafka_server: Service) -> None:
    prefix = f"r{uuid.uuid4().hex[:8]}."
    # two applications' workers: the registry is the cluster's, not an application's
    logs = [KafkaLog(kafka_server.bootstrap, prefix=prefix, app_id=app) for app in ("a", "b")]
    try:
        workers = [LogRegistry(log) for log in logs]
        workers[0].set_compatibility("NONE")
        ids: dict[tuple[int, int], int] = {}
        errors: list[BaseException] = []
        start = threading.Barrier(2)

        def register(w: int) -> None:
            start.wait()
            try:
                for i in range(6):
                    ids[(w, i)] = workers[w].register(f"s{i}-value", schema(f"W{w}_{i}"))
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=register, args=(w,)) for w in range(2)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors
        assert len(set(ids.values())) == 12  # twelve schemas, twelve ids
        for (w, i), schema_id in ids.items():
            for registry in workers:  # each worker resolves every id to the same schema
                assert json.loads(registry.schema_by_id(schema_id).schema)["name"] == f"W{w}_{i}"
        # a worker started later replays the topic to the same ids
        late = LogRegistry(logs[1])
        assert late.version("s0-value", 2).id in {ids[(0, 0)], ids[(1, 0)]}
        assert late.get_compatibility() == "NONE"
    finally:
        for log in logs:
            log.close()

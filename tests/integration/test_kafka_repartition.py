"""Kafka mode: an aggregation of a stream by other columns than its key goes through the
query's repartition topic (ops/repartition.py), so its work splits by partition.

On one engine: the results equal this test's own computation, for a plain and a windowed
aggregation, with the source's ROWPARTITION and ROWOFFSET and NULL grouping keys dropped to
the processing log. With three `hispeed server` workers over six partitions: each worker
aggregates a share of the repartition topic, and a worker SIGKILLed mid-stream loses and
repeats nothing in the outputs read `read_committed`.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import defaultdict
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.log.kafka import KafkaLog
from hispeed.ops.repartition import repartition_topic
from hispeed.runtime.distributed import DistributedTask
from hispeed.testing.services import Service
from tests.integration.test_kafka_workers import (
    BASE_MS,
    Cluster,
    cluster,  # noqa: F401  (the fixture)
    ksql,
    producer,
    records_in,
    window_history,
)

pytestmark = [pytest.mark.services, pytest.mark.kafka]

PAGES = 7
WINDOW_MS = 10_000


def open_log(kafka_server: Service, prefix: str) -> KafkaLog:
    return KafkaLog(
        kafka_server.bootstrap, prefix=prefix, app_id="test", transactional_id=f"{prefix}w"
    )


def test_a_stream_aggregated_by_a_value_column_is_repartitioned(kafka_server: Service) -> None:
    prefix = f"r{uuid.uuid4().hex[:8]}."
    with Engine(log_=open_log(kafka_server, prefix), worker_id="w1") as engine:
        engine.execute(
            """
            CREATE STREAM clicks (uid VARCHAR KEY, page VARCHAR, n BIGINT)
              WITH (kafka_topic='clicks', partitions=3, value_format='JSON');
            CREATE TABLE per_page AS SELECT page, COUNT(*) AS c, SUM(n) AS total,
              MIN(ROWOFFSET) AS first_offset
              FROM clicks WHERE n >= 0 GROUP BY page EMIT CHANGES;
            CREATE TABLE per_window AS SELECT page, COUNT(*) AS c, MAX(ROWTIME) AS newest
              FROM clicks WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY page EMIT CHANGES;
            """
        )
        tasks = [t for t in engine.tasks.values() if isinstance(t, DistributedTask)]
        assert len(tasks) == 2
        assert all(t.router is not None for t in tasks)
        for task in tasks:
            task.purge_interval = 0.0  # what is committed of the repartition topic goes at once
        for i in range(300):
            page = f"/p{i % PAGES}" if i % 50 else None  # every 50th has no page: dropped
            engine.insert("CLICKS", {"UID": f"u{i % 11}", "PAGE": page, "N": i}, BASE_MS + 97 * i)
        engine.drain()
        counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        windows: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
        for i in range(300):
            if i % 50:
                page, ts = f"/p{i % PAGES}", BASE_MS + 97 * i
                counts[page][0] += 1
                counts[page][1] += i
                w = windows[(page, ts - ts % WINDOW_MS)]
                w[0] += 1
                w[1] = max(w[1], ts)
        rows = engine.query("SELECT * FROM per_page;")
        assert {r["PAGE"]: [r["C"], r["TOTAL"]] for r in rows} == counts
        rows = engine.query("SELECT * FROM per_window;")
        assert {(r["PAGE"], r["WINDOWSTART"]): [r["C"], r["NEWEST"]] for r in rows} == windows
        # ROWOFFSET is the source record's, not the repartition topic's
        firsts: dict[str, int] = {}
        for p in range(3):
            start, end = engine.log.offsets("clicks", p)
            for batch in engine.log.read("clicks", p, start) if end > start else []:
                for off, value in zip(
                    batch.column("offset").to_pylist(),
                    batch.column("value").to_pylist(),
                    strict=True,
                ):
                    page = json.loads(value)["PAGE"]
                    if page is not None:
                        firsts[page] = min(firsts.get(page, off), off)
        assert {r["PAGE"]: r["FIRST_OFFSET"] for r in engine.query("SELECT * FROM per_page;")} == (
            firsts
        )
        # the six records without a page, once per query, in the processing log
        assert sum(t.errors for t in tasks) == 12
        topic = repartition_topic(tasks[0].id)
        assert topic in engine.log.list_topics(internal=True)
        assert sum(t.repartition_records_in for t in tasks) == 2 * 294
        # the repartition topic keeps nothing that was read and committed
        assert [engine.log.offsets(topic, p)[0] for p in range(3)] != [0, 0, 0]


def produce_clicks(bootstrap: str, app: str, first: int, count: int) -> None:
    p = producer(bootstrap)
    for i in range(first, first + count):
        value = json.dumps({"PAGE": f"/p{i % PAGES}", "N": i}).encode()
        p.produce(f"{app}-clicks", value, f"u{i % 20}".encode(), timestamp=BASE_MS + 10 * i)
    p.flush(30)


def expected(clicks: int) -> dict[tuple[str, int], tuple[int, int]]:
    out: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for i in range(clicks):
        ts = BASE_MS + 10 * i
        w = out[(f"/p{i % PAGES}", ts - ts % WINDOW_MS)]
        w[0] += 1
        w[1] += i
    return {k: (v[0], v[1]) for k, v in out.items()}


def aggregated(url: str) -> int:
    """What a worker's /metrics says its share of the aggregation has read."""
    return records_in(url, "CTAS_PER_PAGE", "hispeed_query_repartition_records_in_total")


@pytest.mark.slow
def test_workers_share_a_repartitioned_aggregation_and_a_kill_loses_nothing(
    cluster: Cluster,  # noqa: F811
) -> None:
    app = cluster.app
    first = cluster.start("w1")
    cluster.start("w2")
    cluster.start("w3")
    ksql(
        first,
        f"""
        CREATE STREAM clicks (uid VARCHAR KEY, page VARCHAR, n BIGINT)
          WITH (kafka_topic='{app}-clicks', partitions=6, value_format='JSON');
        CREATE TABLE per_page WITH (kafka_topic='{app}-per-page') AS
          SELECT page, COUNT(*) AS clicks, SUM(n) AS total
          FROM clicks WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY page EMIT CHANGES;
        """,
    )
    for name in ("w2", "w3"):
        deadline = time.monotonic() + 30
        while "PER_PAGE" not in json.dumps(ksql(cluster.url(name), "SHOW TABLES;")):
            assert time.monotonic() < deadline, f"{name} never ran the statements"
            time.sleep(0.2)
    clicks = 16_000
    killed = threading.Event()

    def feed() -> None:  # about 10 s of clicks; the second half once the kill is done
        for start in range(0, clicks, 250):
            if start >= clicks // 2:
                killed.wait(120)  # so the kill lands while clicks keep coming, however slow
            produce_clicks(cluster.bootstrap, app, start, 250)
            time.sleep(0.15)  # a rate, not a wait for anything

    feeder = threading.Thread(target=feed)
    feeder.start()
    try:
        # every worker aggregates a share once the group has them all: the repartition
        # topic's partitions are split too; the busiest is killed while clicks keep coming
        deadline = time.monotonic() + 30
        while True:
            shares = {n: aggregated(cluster.url(n)) for n in cluster.workers}
            if sum(1 for s in shares.values() if s) == len(shares):
                break
            assert time.monotonic() < deadline, f"the aggregation's shares: {shares}"
            time.sleep(0.2)
        cluster.kill(max(shares, key=lambda n: shares[n]))
        mid_stream = feeder.is_alive()
        killed.set()
    finally:
        killed.set()
        feeder.join()
    assert mid_stream
    want = expected(clicks)
    deadline = time.monotonic() + 60
    while True:
        history = window_history(cluster.bootstrap, f"{app}-per-page")
        got: dict[tuple[str, int], Any] = {k: v[-1] for k, v in history.items()}
        if got == want:
            break
        assert time.monotonic() < deadline, (
            f"{sum(c for c, _ in got.values())} of {clicks} clicks counted"
        )
        time.sleep(1)
    for key, updates in history.items():
        seen = [c for c, _ in updates]
        assert seen == sorted(set(seen)), f"window {key} updated out of order: {seen}"


def test_latest_starts_a_repartitioned_aggregation_when_it_was_made(
    kafka_server: Service,
) -> None:
    """`latest` is the source's: the repartition topic is the query's own, read whole."""
    prefix = f"l{uuid.uuid4().hex[:8]}."
    with Engine(log_=open_log(kafka_server, prefix), worker_id="w1") as engine:
        engine.execute(
            "CREATE STREAM clicks (uid VARCHAR KEY, page VARCHAR, n BIGINT)"
            " WITH (kafka_topic='clicks', partitions=3, value_format='JSON');"
        )
        for i in range(20):  # before the query: not its
            engine.insert("CLICKS", {"UID": f"u{i}", "PAGE": "/old", "N": i})
        engine.execute("SET 'auto.offset.reset' = 'latest';")
        engine.execute(
            "CREATE TABLE per_page AS SELECT page, COUNT(*) AS c FROM clicks GROUP BY page;"
        )
        for i in range(30):  # no poll yet: the group has not formed
            engine.insert("CLICKS", {"UID": f"u{i}", "PAGE": f"/p{i % 3}", "N": i})
        engine.drain()
        rows = engine.query("SELECT * FROM per_page;")
        assert {r["PAGE"]: r["C"] for r in rows} == {"/p0": 10, "/p1": 10, "/p2": 10}

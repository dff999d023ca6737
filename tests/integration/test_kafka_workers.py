"""Kafka mode scaled out: three `hispeed server --kafka` workers of one application share a
windowed aggregation and a join over six partitions. One worker is SIGKILLed mid-stream and
another started (or every worker is restarted in turn); what the outputs hold, read
`read_committed` by a plain Kafka client, must equal what this test computes from its own
inputs: every click joined exactly once, every window's count and sum exact, and no
aggregate update seen twice.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hispeed.client import Client
from hispeed.processes import free_port, stop, wait_for_port
from hispeed.testing.services import Service

ck = pytest.importorskip("confluent_kafka")

pytestmark = [pytest.mark.services, pytest.mark.kafka, pytest.mark.slow]

USERS = 20
TIERS = ("gold", "silver", "bronze")
WINDOW_MS = 10_000
# recent times: the broker deletes records older than its retention (7 days) by their time
NOW_MS = time.time_ns() // 1_000_000
BASE_MS = NOW_MS - NOW_MS % WINDOW_MS - 3_600_000

STATEMENTS = """
CREATE STREAM clicks (uid VARCHAR KEY, page VARCHAR, n BIGINT)
  WITH (kafka_topic='{app}-clicks', partitions=6, value_format='JSON');
CREATE TABLE users (uid VARCHAR PRIMARY KEY, tier VARCHAR)
  WITH (kafka_topic='{app}-users', partitions=6, value_format='JSON');
CREATE TABLE per_user WITH (kafka_topic='{app}-per-user') AS
  SELECT uid, COUNT(*) AS clicks, SUM(n) AS total
  FROM clicks WINDOW TUMBLING (SIZE 10 SECONDS) GROUP BY uid EMIT CHANGES;
CREATE STREAM enriched WITH (kafka_topic='{app}-enriched') AS
  SELECT c.uid AS uid, c.page AS page, c.n AS n, u.tier AS tier
  FROM clicks c JOIN users u ON c.uid = u.uid EMIT CHANGES;
"""


class Cluster:
    """The application's workers, each a `hispeed server --kafka` process of its own."""

    def __init__(self, bootstrap: str, root: Path) -> None:
        self.bootstrap = bootstrap
        self.root = root
        self.app = f"app{uuid.uuid4().hex[:8]}"
        self.workers: dict[str, tuple[subprocess.Popen[str], int]] = {}

    def start(self, name: str) -> str:
        port = free_port()
        logs = (self.root / f"{name}.log").open("a")
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hispeed",
                "--data-dir",
                str(self.root / name),
                "server",
                "--port",
                str(port),
                "--grpc-port",
                "0",
                "--kafka",
                self.bootstrap,
                "--app-id",
                self.app,
                "--worker-id",
                name,
            ],
            stdout=logs,
            stderr=subprocess.STDOUT,
            text=True,
        )
        logs.close()
        wait_for_port(port, proc, f"worker {name}", timeout=60)  # type: ignore[arg-type]
        self.workers[name] = (proc, port)
        return f"http://127.0.0.1:{port}"

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.workers[name][1]}"

    def kill(self, name: str) -> None:
        proc, _ = self.workers.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)

    def terminate(self, name: str) -> None:
        proc, _ = self.workers.pop(name)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            log = (self.root / f"{name}.log").read_text()
            raise AssertionError(f"worker {name} did not stop on SIGTERM:\n{log}") from None

    def close(self) -> None:
        for proc, _ in self.workers.values():
            stop(proc)
        self.workers.clear()


@pytest.fixture
def cluster(
    kafka_server: Service, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cluster]:
    monkeypatch.setenv("HISPEED_EMBEDDED_REDIS", "0")
    c = Cluster(f"{kafka_server.host}:{kafka_server.port}", tmp_path)
    try:
        yield c
    finally:
        c.close()


def ksql(url: str, text: str) -> Any:
    reply = httpx.post(f"{url}/ksql", json={"ksql": text}, timeout=60)
    assert reply.status_code == 200, reply.text
    return reply.json()


def producer(bootstrap: str) -> Any:
    return ck.Producer(
        {"bootstrap.servers": bootstrap, "partitioner": "murmur2_random", "linger.ms": 5}
    )


def produce_users(bootstrap: str, app: str) -> dict[str, str]:
    tiers = {f"u{i}": TIERS[i % len(TIERS)] for i in range(USERS)}
    p = producer(bootstrap)
    for uid, tier in tiers.items():
        p.produce(
            f"{app}-users", json.dumps({"TIER": tier}).encode(), uid.encode(), timestamp=BASE_MS
        )
    p.flush(30)
    return tiers


def produce_clicks(bootstrap: str, app: str, first: int, count: int) -> None:
    """Clicks `first`..`first + count - 1`: click i is user i % USERS's, 10 ms after click
    i - 1, with n = i (so each is told apart in the joined output)."""
    p = producer(bootstrap)
    for i in range(first, first + count):
        value = json.dumps({"PAGE": f"/p{i % 7}", "N": i}).encode()
        p.produce(f"{app}-clicks", value, f"u{i % USERS}".encode(), timestamp=BASE_MS + 10 * i)
    p.flush(30)


def read_all(bootstrap: str, topic: str) -> list[Any]:
    """Every committed record of `topic`, in each partition's order."""
    consumer = ck.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"check-{uuid.uuid4().hex}",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
            "enable.auto.commit": False,
        }
    )
    try:
        meta = consumer.list_topics(topic, timeout=30).topics[topic]
        parts = [ck.TopicPartition(topic, p, ck.OFFSET_BEGINNING) for p in meta.partitions]
        consumer.assign(parts)
        left = {p.partition for p in parts}
        out: list[Any] = []
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            for m in consumer.consume(10_000, 0.5):
                if m.error() is None:
                    out.append(m)
                elif m.error().code() == ck.KafkaError._PARTITION_EOF:
                    left.discard(m.partition())
        assert not left, f"could not read {topic} to its end"
        return out
    finally:
        consumer.close()


def expected_windows(clicks: int) -> dict[tuple[str, int], tuple[int, int]]:
    out: dict[tuple[str, int], list[int]] = defaultdict(lambda: [0, 0])
    for i in range(clicks):
        ts = BASE_MS + 10 * i
        key = (f"u{i % USERS}", ts - ts % WINDOW_MS)
        out[key][0] += 1
        out[key][1] += i
    return {k: (v[0], v[1]) for k, v in out.items()}


def check_outputs(bootstrap: str, app: str, clicks: int, tiers: dict[str, str]) -> None:
    # the join: every click exactly once, with its user's tier
    joined = [json.loads(m.value()) for m in read_all(bootstrap, f"{app}-enriched")]
    counts = Counter(r["N"] for r in joined)
    duplicates = {n: c for n, c in counts.items() if c > 1}
    assert not duplicates, f"clicks joined more than once: {list(duplicates.items())[:10]}"
    missing = set(range(clicks)) - set(counts)
    assert not missing, f"{len(missing)} clicks never joined, e.g. {sorted(missing)[:10]}"
    assert all(r["TIER"] == tiers[f"u{r['N'] % USERS}"] for r in joined)
    # the windowed aggregation: each window's last update exact, and its updates only ever
    # growing (an update written twice, from a batch done again, would repeat a count)
    history = window_history(bootstrap, f"{app}-per-user")
    want = expected_windows(clicks)
    got = {k: v[-1] for k, v in history.items()}
    assert got == want
    for key, updates in history.items():
        seen = [c for c, _ in updates]
        assert seen == sorted(set(seen)), f"window {key} updated out of order: {seen}"


def window_history(bootstrap: str, topic: str) -> dict[tuple[str, int], list[tuple[int, int]]]:
    """Each window's (CLICKS, TOTAL) updates in `topic`, in the order it has them."""
    history: dict[tuple[str, int], list[tuple[int, int]]] = defaultdict(list)
    for m in read_all(bootstrap, topic):
        key = m.key()
        (start,) = struct.unpack(">q", key[-8:])
        value = json.loads(m.value())
        history[(key[:-8].decode(), start)].append((value["CLICKS"], value["TOTAL"]))
    return history


def counted(bootstrap: str, app: str) -> int:
    """The clicks the aggregation's latest outputs count, over every user."""
    history: dict[bytes, int] = {}
    for m in read_all(bootstrap, f"{app}-per-user"):
        history[m.key()] = json.loads(m.value())["CLICKS"]
    return sum(history.values())


def wait_for_outputs(bootstrap: str, app: str, clicks: int, timeout: float = 120) -> None:
    """Until the aggregation has counted every click (the workers may still be busy)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = counted(bootstrap, app)
        joined = len(read_all(bootstrap, f"{app}-enriched"))
        if counts >= clicks and joined >= clicks:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"after {timeout:.0f} s: {counts} clicks counted and {joined} joined of {clicks}"
            )
        time.sleep(1)


def start_app(cluster: Cluster) -> dict[str, str]:
    first = cluster.start("w1")
    cluster.start("w2")
    cluster.start("w3")
    ksql(first, STATEMENTS.format(app=cluster.app))
    tiers = produce_users(cluster.bootstrap, cluster.app)
    # every worker has the statements (the command topic) before the clicks come
    for name in ("w2", "w3"):
        deadline = time.monotonic() + 30
        while "PER_USER" not in json.dumps(ksql(cluster.url(name), "SHOW TABLES;")):
            assert time.monotonic() < deadline, f"{name} never ran the statements"
            time.sleep(0.2)
    return tiers


def records_in(url: str, query_prefix: str, metric: str = "hispeed_query_records_in_total") -> int:
    """What a worker's /metrics says its share of a query has read (`metric`: of its source,
    or hispeed_query_repartition_records_in_total, of its repartition topic)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    total = 0
    for line in text.splitlines():
        if line.startswith(metric + "{") and f'"{query_prefix}' in line:
            total += int(float(line.rsplit(" ", 1)[1]))
    return total


def test_a_worker_killed_mid_stream_loses_and_repeats_nothing(cluster: Cluster) -> None:
    tiers = start_app(cluster)
    clicks = 15_000
    killed = threading.Event()
    feeder = threading.Thread(target=produce_steadily, args=(cluster, clicks, 5.0, killed))
    feeder.start()
    try:
        # a worker running its share of the join and of the aggregation (both are split by
        # partition), killed while clicks keep coming
        deadline = time.monotonic() + 30
        while True:
            busy = [n for n in cluster.workers if records_in(cluster.url(n), "CSAS_ENRICHED")]
            if busy:
                break
            assert time.monotonic() < deadline, "no worker ran the join"
            time.sleep(0.1)
        victim = busy[0]
        # killed some way into its share (its own count, not the clock: 500 is well inside
        # what the first half gives it) and, as the feeder holds its second half until then,
        # while clicks keep coming
        deadline = time.monotonic() + 60
        while records_in(cluster.url(victim), "CSAS_ENRICHED") < 500:
            assert time.monotonic() < deadline, f"{victim} stopped reading the join's input"
            time.sleep(0.1)
        cluster.kill(victim)
        killed.set()
        cluster.start("w4")
    finally:
        killed.set()
        feeder.join()
    wait_for_outputs(cluster.bootstrap, cluster.app, clicks)
    check_outputs(cluster.bootstrap, cluster.app, clicks, tiers)


def produce_steadily(
    cluster: Cluster, clicks: int, seconds: float, hold: threading.Event | None = None
) -> None:
    """`clicks` clicks spread over about `seconds` s; with `hold`, the second half waits
    for it to be set (so what happens meanwhile happens while clicks keep coming)."""
    chunk = 250
    pause = seconds / (clicks / chunk)
    for first in range(0, clicks, chunk):
        if hold is not None and first >= clicks // 2:
            hold.wait(120)
        produce_clicks(cluster.bootstrap, cluster.app, first, min(chunk, clicks - first))
        time.sleep(pause)


def test_a_rolling_restart_loses_and_repeats_nothing(cluster: Cluster) -> None:
    tiers = start_app(cluster)
    produced = 0
    for name in ("w1", "w2", "w3"):
        produce_clicks(cluster.bootstrap, cluster.app, produced, 3000)
        produced += 3000
        # stopped while it works: once part of this chunk is counted (progress, not the clock)
        deadline = time.monotonic() + 120
        while counted(cluster.bootstrap, cluster.app) < produced - 2000:
            assert time.monotonic() < deadline, "the aggregation stopped counting"
            time.sleep(0.2)
        cluster.terminate(name)
        cluster.start(name)
    produce_clicks(cluster.bootstrap, cluster.app, produced, 3000)
    produced += 3000
    wait_for_outputs(cluster.bootstrap, cluster.app, produced)
    check_outputs(cluster.bootstrap, cluster.app, produced, tiers)


def test_outputs_are_exact_without_failures(cluster: Cluster) -> None:
    """The baseline the two above are measured against."""
    assert os.environ["HISPEED_EMBEDDED_REDIS"] == "0"
    tiers = start_app(cluster)
    produce_clicks(cluster.bootstrap, cluster.app, 0, 3000)
    wait_for_outputs(cluster.bootstrap, cluster.app, 3000)
    check_outputs(cluster.bootstrap, cluster.app, 3000, tiers)
    # a pull query answers the same on every worker, whichever computed the rows
    want = sorted(
        (start, count, total)
        for (uid, start), (count, total) in expected_windows(3000).items()
        if uid == "u3"
    )
    for name in list(cluster.workers):
        with Client(cluster.url(name)) as client:
            rows = client.query("SELECT * FROM per_user WHERE uid = 'u3';")
        got = sorted((r["WINDOWSTART"], r["CLICKS"], r["TOTAL"]) for r in rows)
        assert got == want, name

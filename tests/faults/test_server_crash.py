"""kill -9 of `hispeed server` mid-ingest, with acknowledged-record accounting.

A child `hispeed server` (free loopback ports, fsync "never": a process crash keeps what the
page cache holds) takes multi-partition produce requests from several clients at once, over
HTTP and gRPC, while a persistent query copies the stream. It is killed with SIGKILL after a
random number of acknowledged requests (a moment chosen by progress, not by the clock), then
restarted on the same data directory, twice. What users rely on:

- every acknowledged request is there, each record exactly once;
- every request not acknowledged is there whole or not at all (issue 16, defect 8);
- the query resumes where it was and its output is exact: each input record once.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import httpx
import pytest

from hispeed.log import EmbeddedLog
from hispeed.processes import free_port, stop, wait_for_port
from hispeed.server.proto import hispeed_pb2 as pb
from hispeed.server.proto import hispeed_pb2_grpc as pb_grpc
from hispeed.testing.wait import wait_for

pytestmark = pytest.mark.slow

PARTITIONS = 4
PER_REQUEST = 200  # records, spread over every partition by their keys
CLIENTS = 4  # half over HTTP, half over gRPC
ROUNDS = 2  # kills

STATEMENTS = f"""
CREATE STREAM readings (k STRING KEY, c INT, r INT, i INT)
  WITH (kafka_topic='readings', value_format='JSON', partitions={PARTITIONS});
CREATE STREAM copied AS SELECT k, c, r, i FROM readings EMIT CHANGES;
"""


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str
    grpc_target: str


@dataclass
class Ledger:
    """What the clients sent: request id -> acknowledged (True) or unknown (False)."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: dict[tuple[int, int], bool] = field(default_factory=dict)
    acked = 0
    acked_event: threading.Condition = field(default_factory=threading.Condition)

    def sent(self, rid: tuple[int, int], ok: bool) -> None:
        with self.lock:
            self.requests[rid] = ok
        if ok:
            with self.acked_event:
                self.acked += 1
                self.acked_event.notify_all()


@contextmanager
def _server(data_dir: Path, log_path: Path) -> Iterator[Server]:
    port, grpc_port = free_port(), free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(Path(__file__).parents[2] / "src"),
        "HISPEED_FSYNC": "never",
        "HISPEED_GRPC_PORT": str(grpc_port),
    }
    port_args = ["--port", str(port)]
    with open(log_path, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "hispeed", "--data-dir", str(data_dir), "server", *port_args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, proc, "hispeed server", timeout=60)
        wait_for_port(grpc_port, proc, "hispeed server's gRPC", timeout=60)
        yield Server(proc, f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}")
    finally:
        stop(proc, timeout=30)


def _records(c: int, r: int, rnd: int) -> list[dict[str, object]]:
    # c, r and the round make a request's id; i its record's place; keys spread the partitions
    return [{"k": f"k{i % 13}", "c": c, "r": rnd * 100_000 + r, "i": i} for i in range(PER_REQUEST)]


def _http_client(server: Server, c: int, rnd: int, ledger: Ledger, stop_: threading.Event) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        r = 0
        while not stop_.is_set():
            rid = (c, rnd * 100_000 + r)
            try:
                resp = client.post(
                    "/topics/readings?key_field=k",
                    content=json.dumps(_records(c, r, rnd)),
                    headers={"content-type": "application/json"},
                )
                ok = resp.status_code == 200 and len(resp.json()["offsets"]) == PER_REQUEST
            except httpx.HTTPError:
                ok = False
            ledger.sent(rid, ok)
            if not ok:
                return  # the server is gone: this request's fate is unknown
            r += 1


def _grpc_client(server: Server, c: int, rnd: int, ledger: Ledger, stop_: threading.Event) -> None:
    with grpc.insecure_channel(server.grpc_target) as channel:
        stub = pb_grpc.HispeedStub(channel)  # type: ignore[no-untyped-call]
        r = 0
        while not stop_.is_set():
            rid = (c, rnd * 100_000 + r)
            request = pb.ProduceRequest(
                topic="readings",
                records=[
                    pb.Record(key=str(rec["k"]), json=json.dumps(rec))
                    for rec in _records(c, r, rnd)
                ],
            )
            try:
                response = stub.Produce(iter([request]), timeout=30)
                ok = response.records_written == PER_REQUEST and not response.errors
            except grpc.RpcError:
                ok = False
            ledger.sent(rid, ok)
            if not ok:
                return
            r += 1


def _ingest_until_killed(server: Server, rng: random.Random, rnd: int, ledger: Ledger) -> None:
    """Clients produce until the server is killed, after a random number of acks this round."""
    stop_ = threading.Event()
    target = {"value": 0}
    with ledger.acked_event:
        target["value"] = ledger.acked + rng.randint(5, 40)
    threads = [
        threading.Thread(
            target=_http_client if c % 2 == 0 else _grpc_client,
            args=(server, c, rnd, ledger, stop_),
            daemon=True,
        )
        for c in range(CLIENTS)
    ]
    for t in threads:
        t.start()
    with ledger.acked_event:
        reached = ledger.acked_event.wait_for(lambda: ledger.acked >= target["value"], 120)
    assert reached, "the clients were not acknowledged in time"
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(30)
    stop_.set()
    for t in threads:
        t.join(60)
        assert not t.is_alive(), "a client did not notice the server was gone"


def _topic_records(url: str, topic: str) -> int:
    resp = httpx.get(f"{url}/topics/{topic}", timeout=30)
    if resp.status_code != 200:
        return -1
    return sum(int(p["end_offset"]) for p in resp.json()["partitions"])


def test_kill_9_mid_ingest_loses_no_acknowledged_record_and_splits_no_request(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    log_path = tmp_path / "server.log"
    rng = random.Random(20261206)
    ledger = Ledger()
    with _server(data_dir, log_path) as server:
        resp = httpx.post(
            f"{server.url}/ksql",
            json={"ksql": STATEMENTS, "streamsProperties": {"auto.offset.reset": "earliest"}},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        _ingest_until_killed(server, rng, 0, ledger)
    for rnd in range(1, ROUNDS):
        with _server(data_dir, log_path) as server:
            _ingest_until_killed(server, rng, rnd, ledger)
    # a last start: the query resumes and catches up, then a clean stop
    with _server(data_dir, log_path) as server:
        wait_for(
            lambda: _topic_records(server.url, "COPIED") >= _topic_records(server.url, "readings"),
            timeout=90,
        )
    assert server.proc.returncode == 0, log_path.read_text()[-3000:]

    with EmbeddedLog(data_dir, fsync="never", cleaner_interval_s=None) as log:
        inputs = _rows(log, "readings")
        outputs = _rows(log, "COPIED")
    per_request = Counter((c, r) for c, r, _ in inputs)
    assert len(set(inputs)) == len(inputs), "an input record was written twice"
    acked = {rid for rid, ok in ledger.requests.items() if ok}
    unknown = {rid for rid, ok in ledger.requests.items() if not ok}
    assert acked, "nothing was acknowledged before the kills"
    lost = [rid for rid in acked if per_request[rid] != PER_REQUEST]
    assert not lost, f"acknowledged requests not all there: {lost[:5]}"
    partial = {rid: per_request[rid] for rid in unknown if per_request[rid] not in (0, PER_REQUEST)}
    assert not partial, f"unacknowledged requests landed in part: {partial}"
    assert set(per_request) <= acked | unknown, "records of a request never sent"
    # the query's output: each input record exactly once, none made up
    assert Counter(outputs) == Counter(inputs)


def _rows(log: EmbeddedLog, topic: str) -> list[tuple[int, int, int]]:
    """Each record of a topic as (client, request, index); the query's output names its
    columns in upper case, as ksqlDB does."""
    rows = []
    for p in range(len(log.describe_topic(topic).partitions)):
        for value in log.read_table(topic, p).column("value").to_pylist():
            doc = {name.lower(): v for name, v in json.loads(value).items()}
            rows.append((doc["c"], doc["r"], doc["i"]))
    return rows

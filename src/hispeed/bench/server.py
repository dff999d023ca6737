"""`hispeed bench server`: ingestion over HTTP, WebSocket and MQTT, and end-to-end latency.

The server runs as users run it, `hispeed server` in a process of its own on a scratch data
directory (fsync "never": the network path is measured, not the disk); this process is the
client. Figures:

- `http_ingest_records_per_s`: POST /topics/{t} with JSON arrays of `batch` records, two
  connections at a time;
- `ws_ingest_records_per_s`: /ws/produce/{t}, arrays of `batch` records, each acknowledged;
- `mqtt_ingest_records_per_s`: records published to a local mosquitto (QoS 0), bridged into
  a topic, counted when the topic holds them all (None when mosquitto is not installed);
- `latency_{p50,p99}_ms_{1k,20k}`: a record POSTed at a steady rate (100 NDJSON requests a
  second) carries its send time; a push query (`SELECT ... EMIT CHANGES`) delivers it over
  `/ws/query?batch=true` (rows that arrive together in one message, no per-message
  compression); latency is arrival minus send time in ms, the first 5% left out.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from hispeed.processes import find_binary, free_port, mosquitto, stop, wait_for_port

Progress = Callable[[str, int], None]


@contextmanager
def _mosquitto() -> Iterator[int | None]:
    binary = find_binary("mosquitto")
    if binary is None:
        yield None
        return
    with mosquitto(binary) as (port, _):
        yield port


@contextmanager
def _server(mqtt_port: int | None) -> Iterator[str]:
    port = free_port()
    data_dir = tempfile.mkdtemp(prefix="hispeed-bench-server-")
    env = {**os.environ, "HISPEED_FSYNC": "never", "HISPEED_GRPC_PORT": "0"}
    if mqtt_port is not None:
        env["HISPEED_MQTT_BROKER"] = f"127.0.0.1:{mqtt_port}"
        env["HISPEED_MQTT_IN"] = "bench/+/readings=mqtt_in"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hispeed", "--data-dir", data_dir, "server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, "hispeed server", timeout=20)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc, timeout=15)
        shutil.rmtree(data_dir, ignore_errors=True)


def _records_in(url: str, topic: str) -> int:
    r = httpx.get(f"{url}/topics/{topic}", timeout=30)
    if r.status_code != 200:
        return 0
    return sum(int(p["end_offset"]) for p in r.json()["partitions"])


def _body(n: int, start: int) -> bytes:
    return json.dumps(
        [
            {"device": f"device{(start + i) % 100}", "seq": start + i, "x": 0.5, "y": -1.25}
            for i in range(n)
        ]
    ).encode()


def http_ingest(url: str, records: int, batch: int, connections: int = 2) -> float:
    bodies = [_body(batch, i * batch) for i in range(8)]
    per = records // (batch * connections)
    errors: list[str] = []

    def worker(c: int) -> None:
        with httpx.Client(base_url=url, timeout=60) as client:
            for i in range(per):
                r = client.post(
                    "/topics/bench_http?key_field=device",
                    content=bodies[(c + i) % len(bodies)],
                    headers={"content-type": "application/json"},
                )
                if r.status_code != 200:
                    errors.append(r.text)
                    return

    # warm up the connection and the topic
    httpx.post(f"{url}/topics/bench_http?key_field=device", content=bodies[0], timeout=60)
    threads = [threading.Thread(target=worker, args=(c,)) for c in range(connections)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise RuntimeError(f"HTTP ingestion failed: {errors[0]}")
    return per * batch * connections / elapsed


def ws_ingest(url: str, records: int, batch: int) -> float:
    from websockets.sync.client import connect

    bodies = [_body(batch, i * batch).decode() for i in range(8)]
    n = records // batch
    ws_url = url.replace("http://", "ws://") + "/ws/produce/bench_ws?key_field=device"
    with connect(ws_url, max_size=None) as ws:
        ws.send(bodies[0])
        ws.recv(timeout=30)
        t0 = time.perf_counter()
        window = 4  # acknowledgements in flight
        sent = received = 0
        while received < n:
            while sent < n and sent - received < window:
                ws.send(bodies[sent % len(bodies)])
                sent += 1
            reply = str(ws.recv(timeout=60))
            if '"offsets"' not in reply[:40]:
                raise RuntimeError(f"WebSocket ingestion failed: {reply[:200]}")
            received += 1
        elapsed = time.perf_counter() - t0
    return n * batch / elapsed


def mqtt_ingest(url: str, mqtt_port: int, records: int) -> float:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="hispeed-bench")
    client.connect("127.0.0.1", mqtt_port)
    client.loop_start()
    try:
        payloads = [
            json.dumps({"seq": i, "x": 0.5, "y": -1.25}).encode() for i in range(min(records, 1000))
        ]
        # the bridge subscribes when the server starts: wait until a first message lands
        deadline = time.monotonic() + 20
        while _records_in(url, "mqtt_in") == 0:
            client.publish("bench/device0/readings", payloads[0])
            if time.monotonic() > deadline:
                raise RuntimeError("the MQTT bridge delivered nothing within 20 s")
            time.sleep(0.2)
        base = _records_in(url, "mqtt_in")
        t0 = time.perf_counter()
        for i in range(records):
            client.publish(f"bench/device{i % 100}/readings", payloads[i % len(payloads)])
            if i % 1000 == 999:  # keep paho's queue short
                while len(client._out_packet) > 5000:
                    time.sleep(0.001)
        deadline = time.monotonic() + 120
        while _records_in(url, "mqtt_in") - base < records:
            if time.monotonic() > deadline:
                got = _records_in(url, "mqtt_in") - base
                raise RuntimeError(f"only {got} of {records} MQTT records arrived in 120 s")
            time.sleep(0.02)
        elapsed = time.perf_counter() - t0
    finally:
        client.loop_stop()
        client.disconnect()
    return records / elapsed


def latency(url: str, rate: int, seconds: float) -> tuple[float, float]:
    """p50 and p99 in ms of produce -> push query -> WebSocket at `rate` records/s."""
    from websockets.sync.client import connect

    stream = f"lat_{rate}"
    httpx.post(
        f"{url}/ksql",
        json={
            "ksql": f"CREATE STREAM {stream} (device STRING KEY, sent DOUBLE, x DOUBLE) "
            f"WITH (kafka_topic='{stream}', value_format='JSON', partitions=1);"
        },
        timeout=30,
    ).raise_for_status()
    ticks = 100  # batches a second
    per_tick = max(1, rate // ticks)
    total = int(rate * seconds)
    latencies: list[float] = []
    ws_url = url.replace("http://", "ws://") + "/ws/query?batch=true"
    with connect(ws_url, max_size=None, compression=None) as ws:
        ws.send(f"SELECT sent, x FROM {stream} WHERE x >= 0 EMIT CHANGES;")
        ws.recv(timeout=30)  # the header: the query runs
        time.sleep(0.3)

        def producer() -> None:
            with httpx.Client(base_url=url, timeout=30) as client:
                start = time.perf_counter()
                sent = 0
                tick = 0
                while sent < total:
                    target = start + tick / ticks
                    delay = target - time.perf_counter()
                    if delay > 0:
                        time.sleep(delay)
                    now = time.time()
                    body = "\n".join(
                        f'{{"device":"d{(sent + i) % 50}","sent":{now!r},"x":1.0}}'
                        for i in range(per_tick)
                    )
                    client.post(
                        f"/topics/{stream}?key_field=device",
                        content=body,
                        headers={"content-type": "application/x-ndjson"},
                    )
                    sent += per_tick
                    tick += 1

        thread = threading.Thread(target=producer)
        thread.start()
        deadline = time.monotonic() + seconds + 30
        while len(latencies) < total and time.monotonic() < deadline:
            try:
                message = ws.recv(timeout=5)
            except TimeoutError:
                break
            now = time.time()
            latencies += [(now - float(row[0])) * 1000 for row in json.loads(message)]
        thread.join()
    if len(latencies) < total * 0.99:
        raise RuntimeError(f"only {len(latencies)} of {total} rows reached the WebSocket")
    latencies.sort()
    skip = len(latencies) // 20  # the first 5%: the query warming up
    steady = latencies[skip:]
    return steady[len(steady) // 2], steady[min(len(steady) - 1, int(len(steady) * 0.99))]


def run(
    records: int = 500_000,
    batch: int = 5_000,
    seconds: float = 5.0,
    progress: Progress | None = None,
) -> dict[str, Any]:
    report = progress or (lambda phase, done: None)
    results: dict[str, Any] = {}
    with _mosquitto() as mqtt_port, _server(mqtt_port) as url:
        report("http ingest", 0)
        results["http_ingest_records_per_s"] = round(http_ingest(url, records, batch))
        report("websocket ingest", 0)
        results["ws_ingest_records_per_s"] = round(ws_ingest(url, records, batch))
        report("mqtt ingest", 0)
        results["mqtt_ingest_records_per_s"] = (
            round(mqtt_ingest(url, mqtt_port, min(records, 100_000)))
            if mqtt_port is not None
            else None
        )
        for label, rate in (("1k", 1_000), ("20k", 20_000)):
            report(f"latency at {label}/s", 0)
            p50, p99 = latency(url, rate, seconds)
            results[f"latency_p50_ms_{label}"] = round(p50, 2)
            results[f"latency_p99_ms_{label}"] = round(p99, 2)
    return results


__all__ = ["run"]

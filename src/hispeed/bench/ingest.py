"""`hispeed bench ingest`: ingestion on users' terms, one record per message, each acknowledged.

The server runs as users run it (`hispeed server` in a process of its own, a scratch data
directory, fsync "never": the per-message path is measured, not the disk), pinned to one core
(`os.sched_setaffinity` before it starts, so every thread it makes stays there). The load comes
from another process pinned to the other cores: one epoll loop over non-blocking sockets that
takes every ready socket's answers per wake-up and sends pre-built frames, so the generator
costs less a message than the server (its own CPU is reported beside the server's).
Figures, per path:

- `{path}_msgs_per_s`: acknowledged messages a second, wall clock;
- `{path}_acks`: acknowledgements received (each one an answer naming the record's offset);
- `{path}_engine_cpu_s`: CPU seconds the server process used meanwhile (all its threads; the
  clients connect before the clock starts, so connecting is not counted);
- `{path}_msgs_per_engine_cpu_s`: messages per CPU second of the server, the figure that a
  machine busy with other work disturbs least;
- `{path}_engine_busy`: the server's CPU seconds over the wall-clock seconds (near 1: the
  server is the limit; well below: the generator, or other work on the machine, is);
- `{path}_load_cpu_s`, `{path}_msgs_per_load_cpu_s`: the same for the load generator.

Paths: `ws_{50,1000}` (`/ws/produce/{t}`, one JSON record a message, `window` messages in
flight per client), `http_{50,1000}` (`POST /topics/{t}`, one record a request, keep-alive,
one request in flight per client, as HTTP clients send), `mqtt_qos{0,1}` (published to a real
mosquitto by one raw-socket client, bridged into a topic; counted end to end, when the topic
holds them all), `bytes_on_disk_per_record` (the WebSocket topic's files over its records,
less each record's key and value). `insert()` and the producer API come from
`hispeed.bench.producer` when it is installed.
"""

from __future__ import annotations

import json
import os
import resource
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from hispeed.processes import find_binary, free_port, stop, wait_for_port

Progress = Callable[[str, int], None]

#: the server's core; the load generator and mosquitto get the others
ENGINE_CPU = 0


def _record(i: int) -> bytes:
    return json.dumps(
        {"device": f"device{i % 100}", "seq": i, "x": 0.5, "y": -1.25}, separators=(",", ":")
    ).encode()


def _cpus() -> tuple[set[int], set[int]]:
    """(the engine's core, the load's cores); one core for both on a one-core machine."""
    allowed = sorted(os.sched_getaffinity(0))
    engine = {allowed[0]} if ENGINE_CPU not in allowed else {ENGINE_CPU}
    rest = set(allowed) - engine
    return engine, rest or engine


def _pin(cpus: set[int]) -> Callable[[], None]:
    def apply() -> None:
        os.sched_setaffinity(0, cpus)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 65536)), hard))

    return apply


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process, all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _mosquitto(cpus: set[int]) -> Iterator[int | None]:
    """A broker of the bench's own, its queues unbounded: a bench that publishes faster than
    the bridge takes must count a slow bridge, not messages the broker dropped."""
    binary = find_binary("mosquitto")
    if binary is None:
        yield None
        return
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="hispeed-bench-mosquitto-"))
    conf = workdir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_queued_messages 0\nmax_inflight_messages 0\nmax_queued_bytes 0\n"
    )
    proc = subprocess.Popen(
        [binary, "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_pin(cpus),
    )
    try:
        wait_for_port(port, proc, "mosquitto")
        yield port
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@contextmanager
def _server(mqtt_port: int | None, cpus: set[int]) -> Iterator[tuple[str, int, Path]]:
    port = free_port()
    data_dir = Path(tempfile.mkdtemp(prefix="hispeed-bench-ingest-"))
    env = {
        **os.environ,
        "HISPEED_FSYNC": "never",
        "HISPEED_GRPC_PORT": "0",
        "HISPEED_EMBEDDED_REDIS": "false",
    }
    if mqtt_port is not None:
        env["HISPEED_MQTT_BROKER"] = f"127.0.0.1:{mqtt_port}"
        env["HISPEED_MQTT_IN"] = "bench/+/readings=mqtt_in"
    command = [sys.executable, "-m", "hispeed", "--data-dir", str(data_dir)]
    proc = subprocess.Popen(
        [*command, "server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=_pin(cpus),
    )
    try:
        wait_for_port(port, proc, "hispeed server", timeout=30)
        yield f"http://127.0.0.1:{port}", proc.pid, data_dir
    finally:
        stop(proc, timeout=15)
        shutil.rmtree(data_dir, ignore_errors=True)


def _records_in(url: str, topic: str) -> int:
    r = httpx.get(f"{url}/topics/{topic}", timeout=30)
    if r.status_code != 200:
        return 0
    return sum(int(p["end_offset"]) for p in r.json()["partitions"])


# -- the load generator (its own process) -----------------------------------------------------


def ws_frame(payload: bytes) -> bytes:
    """A masked text frame (clients must mask; a zero key leaves the payload as it is)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    else:
        head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    return head + b"\0\0\0\0" + payload


def ws_replies(buf: bytearray) -> tuple[int, int]:
    """Whole server frames at the front of `buf` (consumed): (acknowledgements, errors)."""
    acks = errors = 0
    pos = 0
    end = len(buf)
    while end - pos >= 2:
        n = buf[pos + 1] & 0x7F
        start = pos + 2
        if n == 126:
            if end - pos < 4:
                break
            n = int.from_bytes(buf[pos + 2 : pos + 4], "big")
            start = pos + 4
        elif n == 127:
            if end - pos < 10:
                break
            n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
            start = pos + 10
        if end - start < n:
            break
        if buf[pos] & 0x0F == 0x1:
            if b'"offsets"' in buf[start : start + n]:
                acks += 1
            else:
                errors += 1
        pos = start + n
    del buf[:pos]
    return acks, errors


def _http_request(host: str, port: int, topic: str, body: bytes) -> bytes:
    return (
        f"POST /topics/{topic}?key_field=device HTTP/1.1\r\nHost: {host}:{port}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def http_replies(buf: bytearray) -> tuple[int, int]:
    """Whole responses at the front of `buf` (consumed): (200s, others)."""
    ok = errors = 0
    pos = 0
    while True:
        head_end = buf.find(b"\r\n\r\n", pos)
        if head_end < 0:
            break
        head = bytes(buf[pos:head_end]).lower()
        at = head.find(b"content-length:")
        if at < 0:
            raise RuntimeError(f"a response without content-length: {head[:200]!r}")
        length = int(head[at + 15 : head.find(b"\r\n", at) if b"\r\n" in head[at:] else None])
        if len(buf) - head_end - 4 < length:
            break
        if head.startswith(b"http/1.1 200"):
            ok += 1
        else:
            errors += 1
        pos = head_end + 4 + length
    del buf[:pos]
    return ok, errors


class _Conn:
    """One connection of the load: its socket, the answers read but not whole yet, and its
    counts."""

    __slots__ = ("acks", "buf", "errors", "sent", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.sent = self.acks = self.errors = 0


def _handshake(sock: socket.socket, path: str) -> None:
    """The WebSocket opening handshake, on a blocking socket."""
    sock.sendall(
        (
            f"GET {path} HTTP/1.1\r\nHost: bench\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        if not data:
            raise RuntimeError("the server closed a connection during the WebSocket handshake")
        head += data
    if b" 101 " not in head[: head.find(b"\r\n")]:
        raise RuntimeError(f"the WebSocket handshake failed: {head[:200]!r}")
    if not head.endswith(b"\r\n\r\n"):
        raise RuntimeError("the server sent a message before it was sent one")


def generate_load(spec: dict[str, Any]) -> dict[str, Any]:
    """Run one load as `spec` says: the counts, the wall-clock time of the measured part, the
    server's CPU seconds and the generator's own meanwhile.

    One thread, one epoll over non-blocking sockets: each wake-up takes every ready socket's
    answers and sends as many pre-built messages as were answered, with no event-loop
    machinery between (so the generator costs less a message than the server it loads)."""
    host, port, topic = spec["host"], spec["port"], spec["topic"]
    clients, seconds, window = spec["clients"], spec["seconds"], spec["window"]
    if spec["kind"] == "ws":
        messages = [ws_frame(_record(i)) for i in range(1000)]
        count: Callable[[bytearray], tuple[int, int]] = ws_replies
    else:
        messages = [_http_request(host, port, topic, _record(i)) for i in range(1000)]
        count = http_replies
    conns: dict[int, _Conn] = {}
    epoll = select.epoll()
    try:
        for _ in range(clients):
            sock = socket.create_connection((host, port), timeout=60)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conns[sock.fileno()] = _Conn(sock)
            if spec["kind"] == "ws":
                _handshake(sock, f"/ws/produce/{topic}?key_field=device")
        for fd, conn in conns.items():
            conn.sock.setblocking(False)
            epoll.register(fd, select.EPOLLIN)
        cpu0 = cpu_seconds(spec["server_pid"])
        own0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        until = time.monotonic() + seconds
        give_up = until + 60  # a server that stops answering fails the load, not hangs it
        k = len(messages)
        for conn in conns.values():
            _send(conn, b"".join(messages[i % k] for i in range(window)))
            conn.sent = window
        open_ = len(conns)
        running = True
        # read into one buffer: a fresh large one a read costs more than the read (malloc's
        # mmap and munmap for every call)
        scratch = bytearray(1 << 16)
        view = memoryview(scratch)
        while open_:
            events = epoll.poll(1.0)
            now = time.monotonic()
            running = running and now < until
            if now > give_up:
                raise RuntimeError(f"the server left {open_} connections unanswered for 60 s")
            for fd, _ in events:
                conn = conns[fd]
                n = conn.sock.recv_into(scratch)
                if not n:
                    raise RuntimeError("the server closed a connection")
                buf = conn.buf
                buf += view[:n]
                acks, errors = count(buf)
                answered = acks + errors
                if not answered:
                    continue
                conn.acks += acks
                conn.errors += errors
                if running:
                    sent = conn.sent
                    if answered == 1:
                        _send(conn, messages[sent % k])
                    else:
                        _send(conn, b"".join(messages[(sent + i) % k] for i in range(answered)))
                    conn.sent = sent + answered
                elif conn.acks + conn.errors >= conn.sent:
                    epoll.unregister(fd)
                    open_ -= 1
        elapsed = time.perf_counter() - t0
        own1 = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "acks": sum(c.acks for c in conns.values()),
            "errors": sum(c.errors for c in conns.values()),
            "elapsed": elapsed,
            "engine_cpu_s": cpu_seconds(spec["server_pid"]) - cpu0,
            "load_cpu_s": own1.ru_utime + own1.ru_stime - own0.ru_utime - own0.ru_stime,
        }
    finally:
        epoll.close()
        for conn in conns.values():
            conn.sock.close()


def _send(conn: _Conn, data: bytes) -> None:
    """Send all of `data` (a non-blocking socket takes a few messages whole, nearly always)."""
    sent = conn.sock.send(data)
    if sent < len(data):
        conn.sock.setblocking(True)
        try:
            conn.sock.sendall(data[sent:])
        finally:
            conn.sock.setblocking(False)


def _mqtt_packet(kind: int, body: bytes) -> bytes:
    n = len(body)
    length = bytearray()
    while True:
        byte, n = n % 128, n // 128
        length.append(byte | (0x80 if n else 0))
        if not n:
            break
    return bytes([kind]) + bytes(length) + body


def _mqtt_publish(spec: dict[str, Any]) -> dict[str, Any]:
    """Publish `count` messages (QoS 0 or 1, pre-encoded) to the broker as fast as it takes
    them; QoS 1 keeps `window` unacknowledged at most."""
    qos, count, window = spec["qos"], spec["count"], spec.get("window", 1000)
    sock = socket.create_connection(("127.0.0.1", spec["mqtt_port"]))
    client_id = f"hispeed-bench-{os.getpid()}".encode()
    sock.sendall(
        _mqtt_packet(
            0x10,
            b"\x00\x04MQTT\x04\x02\x00\x3c" + len(client_id).to_bytes(2, "big") + client_id,
        )
    )
    if sock.recv(4)[:2] != b"\x20\x02":
        raise RuntimeError("mosquitto refused the bench's connection")
    packets = []
    for i in range(count):
        topic = f"bench/device{i % 100}/readings".encode()
        head = len(topic).to_bytes(2, "big") + topic
        if qos:
            head += (i % 65535 + 1).to_bytes(2, "big")
        packets.append(_mqtt_packet(0x30 | (qos << 1), head + _record(i)))
    t0 = time.perf_counter()
    if not qos:
        for i in range(0, count, 1000):
            sock.sendall(b"".join(packets[i : i + 1000]))
    else:
        sent = acked = 0
        pending = b""
        while acked < count:
            if sent < count and sent - acked < window:
                step = min(count - sent, window - (sent - acked))
                sock.sendall(b"".join(packets[sent : sent + step]))
                sent += step
            pending += sock.recv(65536)
            whole = len(pending) // 4  # PUBACK: 0x40 0x02 id id
            acked += whole
            pending = pending[whole * 4 :]
    sock.close()
    return {"elapsed": time.perf_counter() - t0}


def load_main() -> None:
    """The load process: a JSON spec on stdin, a JSON result on stdout."""
    spec = json.loads(sys.stdin.read())
    result = _mqtt_publish(spec) if spec["kind"] == "mqtt" else generate_load(spec)
    sys.stdout.write(json.dumps(result))


def _run_load(spec: dict[str, Any], cpus: set[int]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-c", "from hispeed.bench.ingest import load_main; load_main()"],
        input=json.dumps(spec).encode(),
        capture_output=True,
        preexec_fn=_pin(cpus),
        timeout=600,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"the load generator failed: {done.stderr.decode()[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout)
    return result


# -- the measurements ---------------------------------------------------------------------------


def _figures(name: str, messages: int, elapsed: float, cpu: float) -> dict[str, Any]:
    return {
        f"{name}_msgs_per_s": round(messages / elapsed),
        f"{name}_acks": messages,
        f"{name}_engine_cpu_s": round(cpu, 3),
        f"{name}_msgs_per_engine_cpu_s": round(messages / cpu) if cpu > 0 else None,
    }


def connection_load(
    url: str, pid: int, kind: str, clients: int, seconds: float, window: int, cpus: set[int]
) -> dict[str, Any]:
    """One WebSocket or HTTP load: messages acknowledged, wall clock and the server's CPU."""
    host, port = url.removeprefix("http://").split(":")
    topic = f"bench_{kind}_{clients}"
    spec = {
        "kind": kind,
        "host": host,
        "port": int(port),
        "topic": topic,
        "clients": clients,
        "seconds": seconds,
        "window": window,
        "server_pid": pid,
    }
    # the topic exists before the clock starts: its creation is no per-message cost
    httpx.post(f"{url}/topics/{topic}?key_field=device", content=_record(0), timeout=30)
    result = _run_load(spec, cpus)
    if result["errors"]:
        raise RuntimeError(f"{kind} ingestion: {result['errors']} messages were refused")
    name = f"{kind}_{clients}"
    figures = _figures(name, result["acks"], result["elapsed"], result["engine_cpu_s"])
    # which side limits: the server's share of its core, and the generator's own CPU
    figures[f"{name}_engine_busy"] = round(result["engine_cpu_s"] / result["elapsed"], 2)
    figures[f"{name}_load_cpu_s"] = round(result["load_cpu_s"], 3)
    figures[f"{name}_msgs_per_load_cpu_s"] = (
        round(result["acks"] / result["load_cpu_s"]) if result["load_cpu_s"] > 0 else None
    )
    return figures


def mqtt_load(url: str, pid: int, mqtt_port: int, qos: int, count: int, cpus: set[int]) -> Any:
    """`count` messages through mosquitto and the bridge, timed until the topic holds them."""
    # the bridge subscribes once the server runs: wait until a first message lands
    deadline = time.monotonic() + 30
    while _records_in(url, "mqtt_in") == 0:
        _run_load({"kind": "mqtt", "mqtt_port": mqtt_port, "qos": 0, "count": 1}, cpus)
        if time.monotonic() > deadline:
            raise RuntimeError("the MQTT bridge delivered nothing within 30 s")
        time.sleep(0.2)
    base = _records_in(url, "mqtt_in")
    cpu0 = cpu_seconds(pid)
    t0 = time.perf_counter()
    _run_load({"kind": "mqtt", "mqtt_port": mqtt_port, "qos": qos, "count": count}, cpus)
    deadline = time.monotonic() + 300
    while (got := _records_in(url, "mqtt_in") - base) < count:
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {got} of {count} MQTT QoS {qos} messages arrived in 300 s")
        time.sleep(0.05)
    elapsed = time.perf_counter() - t0
    return _figures(f"mqtt_qos{qos}", count, elapsed, cpu_seconds(pid) - cpu0)


def bytes_per_record(url: str, data_dir: Path, topic: str) -> float | None:
    """The topic's files over its records, less each record's key and value."""
    records = _records_in(url, topic)
    files = [
        p for p in data_dir.rglob("*") if p.is_file() and topic in str(p.relative_to(data_dir))
    ]
    if not records or not files:
        return None
    key_value = sum(len(f"device{i % 100}") + len(_record(i)) for i in range(records))
    return round((sum(p.stat().st_size for p in files) - key_value) / records, 1)


def run(
    seconds: float = 5.0,
    window: int = 1,
    mqtt_messages: int = 200_000,
    progress: Progress | None = None,
    *,
    producer_scale: float = 1.0,
) -> dict[str, Any]:
    """Every figure of the module docstring, as one flat dict."""
    report = progress or (lambda phase, done: None)
    engine_cpus, load_cpus = _cpus()
    results: dict[str, Any] = {
        "engine_cpus": ",".join(map(str, sorted(engine_cpus))),
        "load_cpus": ",".join(map(str, sorted(load_cpus))),
        "ws_window": window,
    }
    with _mosquitto(load_cpus) as mqtt_port, _server(mqtt_port, engine_cpus) as (url, pid, ddir):
        for kind in ("ws", "http"):
            for clients in (50, 1000):
                report(f"{kind} from {clients} clients", 0)
                results |= connection_load(
                    url, pid, kind, clients, seconds, window if kind == "ws" else 1, load_cpus
                )
        results["bytes_on_disk_per_record"] = bytes_per_record(url, ddir, "bench_ws_50")
        for qos in (0, 1):
            report(f"mqtt qos {qos}", 0)
            if mqtt_port is None:
                results[f"mqtt_qos{qos}_msgs_per_s"] = None
                continue
            results |= mqtt_load(url, pid, mqtt_port, qos, mqtt_messages, load_cpus)
    if producer_scale > 0:
        results |= _producer_figures(progress, producer_scale)
    return results


def _producer_figures(progress: Progress | None, scale: float) -> dict[str, Any]:
    """`insert()` single rows, the producer API and bytes on disk per record, from
    `hispeed.bench.producer` (the log's own bench, in this process)."""
    from hispeed.bench import producer

    figures: dict[str, Any] = producer.run(progress=progress, scale=scale)
    return figures


__all__ = [
    "cpu_seconds",
    "generate_load",
    "http_replies",
    "load_main",
    "run",
    "ws_frame",
    "ws_replies",
]

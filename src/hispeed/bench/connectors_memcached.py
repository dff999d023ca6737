"""`hispeed bench connectors --part memcached`: the memcached sink, end to end.

Records wait in a stream's topic (JSON values, one key each); the timer starts at `CREATE
SINK CONNECTOR` and stops when memcached itself says it has stored them all (its `cmd_set`
count, read over a socket of the bench's own), so the figure covers the whole path: the
runner's consumer, decoding against the stream's schema, keys from the template, values as
JSON, the pipelined multi-set and its replies, and the committed offsets.

`memcached_sink_writes_per_cpu_s` counts the CPU time of the bench process (the engine and
the connector's thread); memcached's own CPU time (from its `stats`) is given apart as
`memcached_server_cpu_s`.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time

import msgspec

from hispeed.bench.connectors import (
    BenchOptions,
    Figures,
    PartUnavailableError,
    bench_part,
    rates,
)
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.processes import find_binary, free_port, stop, wait_for_port


def _stats(port: int) -> dict[str, str]:
    """memcached's `stats` by name."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"stats\r\n")
        data = b""
        while not data.endswith(b"END\r\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    out: dict[str, str] = {}
    for line in data.decode().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] == "STAT":
            out[parts[1]] = parts[2]
    return out


def _server_cpu(port: int) -> float:
    stats = _stats(port)
    return float(stats["rusage_user"]) + float(stats["rusage_system"])


@bench_part("memcached", "memcached sink: records of a stream into a memcached of its own")
def memcached(options: BenchOptions) -> Figures:
    """Writes per second (wall clock and per CPU-second of the bench process) of the
    memcached sink in set mode, counted on the server."""
    binary = find_binary("memcached")
    if binary is None:
        raise PartUnavailableError("memcached is not installed (apt-get install memcached)")
    records = options.records
    port = free_port()
    args = [binary, "-l", "127.0.0.1", "-p", str(port), "-U", "0", "-m", "1024", "-t", "1"]
    if os.geteuid() == 0:  # memcached refuses root without naming a user
        args += ["-u", "root"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    figures: Figures = {}
    try:
        wait_for_port(port, proc, "memcached")
        with options.scratch("memcached") as path, Engine(path / "data", fsync="never") as engine:
            engine.execute(
                "CREATE STREAM bench_readings (device STRING KEY, reading DOUBLE, amount INT) "
                "WITH (kafka_topic='bench_readings', value_format='JSON', partitions=1);"
            )
            encode = msgspec.json.encode
            for start in range(0, records, options.batch_size):
                n = min(options.batch_size, records - start)
                batch = [
                    (
                        f"device-{i}".encode(),
                        encode({"READING": i / 10, "AMOUNT": i % 1000}),
                    )
                    for i in range(start, start + n)
                ]
                engine.log.append("bench_readings", batch, partition=0)
            before = int(_stats(port)["cmd_set"])
            server_cpu = _server_cpu(port)
            wall, cpu = time.perf_counter(), time.process_time()
            engine.execute(
                "CREATE SINK CONNECTOR bench_mc WITH ('connector.class'='memcached', "
                f"'memcached.servers'='127.0.0.1:{port}', 'source'='BENCH_READINGS', "
                "'key.template'='reading:{DEVICE}', 'ttl.seconds'='3600');"
            )
            deadline = time.monotonic() + 600
            while int(_stats(port)["cmd_set"]) - before < records:
                if time.monotonic() > deadline:
                    raise HispeedError("bench memcached: the sink did not finish in 600 s")
                time.sleep(0.01)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            server_cpu = _server_cpu(port) - server_cpu
            stored = int(_stats(port)["curr_items"])
            if stored != records:
                raise HispeedError(f"bench memcached: {stored} items stored, not {records}")
            options.report("memcached sink", records // options.batch_size)
        figures |= rates("memcached_sink_writes", records, wall, cpu)
        figures["memcached_sink_cpu_s"] = round(cpu, 3)
        figures["memcached_server_cpu_s"] = round(server_cpu, 3)
    finally:
        stop(proc)
    return figures


__all__ = ["memcached"]

"""`hispeed bench connectors --part http`: the HTTP sink's and source's records per second.

The other side is a Python `http.server` in a process of its own on a free loopback port (so
its CPU time is not in the `_per_cpu_s` figures): it answers each POST 204 without reading
more than the body, and each GET with a page of `PAGE` new items (ids counting up). The sink
figure times `HttpSink.write()` on batches prepared beforehand (POSTs of 500 records, the
default `batch.size`); the source figure times `HttpSource.poll()` (GET, JSON decoding, the
key dedup, the records' JSON) until it has brought `records` in.
"""

from __future__ import annotations

import subprocess
import sys
import time

from hispeed.bench.connectors import BenchOptions, Figures, bench_part, rates
from hispeed.connectors import SinkBatch
from hispeed.connectors.http import HttpSink, HttpSource
from hispeed.errors import HispeedError

#: items a GET of the bench's feed returns
PAGE = 2_000

_SERVER = f"""
import itertools, json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
ids = itertools.count()
class H(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def log_message(self, *a): pass
    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        self.send_response(204); self.send_header("Content-Length", "0"); self.end_headers()
    def do_GET(self):
        first = next(ids) * {PAGE}
        body = json.dumps([{{"id": i, "device": "d" + str(i % 100), "reading": i * 0.5}}
                           for i in range(first, first + {PAGE})]).encode()
        self.send_response(200); self.send_header("Content-Length", str(len(body)))
        self.send_header("Content-Type", "application/json"); self.end_headers()
        self.wfile.write(body)
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
"""


def _batches(records: int, size: int, topic: str = "bench") -> list[SinkBatch]:
    out = []
    for start in range(0, records, size):
        n = min(size, records - start)
        out.append(
            SinkBatch(
                topic=topic,
                partition=0,
                offsets=list(range(start, start + n)),
                timestamps=[1_700_000_000_000 + j for j in range(start, start + n)],
                keys=[f"d{j % 100}" for j in range(start, start + n)],
                rows=[
                    {"DEVICE": f"d{j % 100}", "READING": j * 0.5, "SEQ": j}
                    for j in range(start, start + n)
                ],
                key_columns=["DEVICE"],
            )
        )
    return out


@bench_part("http", "HTTP webhook sink (POSTs of 500 records) and polled source, local server")
def http(options: BenchOptions) -> Figures:
    proc = subprocess.Popen(
        [sys.executable, "-c", _SERVER], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline().strip()
        if not line.isdigit():
            raise HispeedError("bench connectors: the HTTP receiver did not start")
        url = f"http://127.0.0.1:{int(line)}/"
        figures: Figures = {}

        prepared = _batches(options.records, options.batch_size)
        sink = HttpSink("bench_http", {"http.url": url})
        sink.start()
        try:
            # warm-up (the connection, the code paths) on a topic of its own: the sink skips
            # offsets of a partition it has delivered
            sink.write(_batches(1_000, 1_000, "warm-up")[0])
            wall, cpu = time.perf_counter(), time.process_time()
            for n, batch in enumerate(prepared, 1):
                sink.write(batch)
                if batch.failures:
                    raise HispeedError(f"bench connectors: http: {batch.failures[0][1]}")
                options.report("http sink", n)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            sink.stop()
        figures |= rates("http_sink_records", options.records, wall, cpu)

        source = HttpSource(
            "bench_http", {"http.url": url, "key.field": "id", "http.poll.interval.ms": "10"}
        )
        source.start(None)
        try:
            got = 0
            wall, cpu = time.perf_counter(), time.process_time()
            while got < options.records:
                got += len(source.poll(1.0))
                options.report("http source", got // PAGE)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        finally:
            source.stop()
        figures |= rates("http_source_records", got, wall, cpu)
        return figures
    finally:
        proc.kill()
        proc.wait(10)


__all__ = ["http"]

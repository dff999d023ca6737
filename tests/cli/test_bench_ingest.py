"""`hispeed bench ingest`: its load generator counts the server's answers right, including
answers split across reads and refusals, since a miscount would report a false rate."""

from __future__ import annotations

import os

import pytest

from hispeed.bench.ingest import generate_load, http_replies, ws_frame, ws_replies
from hispeed.testing.server import RunningServer


def _server_frame(payload: bytes) -> bytes:
    n = len(payload)
    head = bytes([0x81, n]) if n < 126 else bytes([0x81, 126]) + n.to_bytes(2, "big")
    return head + payload


def test_ws_replies_count_whole_frames_and_keep_a_partial_one() -> None:
    ack = _server_frame(b'{"topic":"t","offsets":[{"partition":0,"offset":7}]}')
    error = _server_frame(
        b'{"@type":"generic_error","error_code":40000,"message":"' + b"x" * 200 + b'"}'
    )
    buf = bytearray(ack + error + ack[:5])
    assert ws_replies(buf) == (1, 1)
    assert bytes(buf) == ack[:5]  # the partial frame waits for the rest
    buf += ack[5:]
    assert ws_replies(buf) == (1, 0)
    assert not buf


def test_ws_frame_is_a_masked_text_frame() -> None:
    frame = ws_frame(b"x" * 130)
    assert frame[0] == 0x81
    assert frame[1] == 0x80 | 126
    assert int.from_bytes(frame[2:4], "big") == 130
    assert frame[8:] == b"x" * 130


def test_http_replies_count_200s_and_refusals_across_reads() -> None:
    ok = (
        b"HTTP/1.1 200 OK\r\ncontent-length: 11\r\ncontent-type: application/json\r\n\r\n"
        b'{"ok":true}'
    )
    bad = b"HTTP/1.1 400 Bad Request\r\nContent-Length: 2\r\n\r\n{}"
    buf = bytearray(ok + bad + ok[:-3])
    assert http_replies(buf) == (1, 1)
    buf += ok[-3:]
    assert http_replies(buf) == (1, 0)
    assert not buf


@pytest.mark.slow
@pytest.mark.parametrize(("kind", "window"), [("ws", 3), ("http", 1)])
def test_the_load_counts_every_acknowledged_record_and_nothing_else(
    server: RunningServer, kind: str, window: int
) -> None:
    """The generator's loop against a real server: the acknowledgements it counts are the
    records the topic holds (none lost, none counted twice), with its own CPU beside."""
    server.engine.log.create_topic("t", 1)
    port = int(server.url.rsplit(":", 1)[1])
    spec = {
        "kind": kind,
        "host": "127.0.0.1",
        "port": port,
        "topic": "t",
        "clients": 4,
        "seconds": 1.0,
        "window": window,
        "server_pid": os.getpid(),  # the server runs in this process here
    }
    result = generate_load(spec)
    assert result["errors"] == 0
    assert result["acks"] > 0
    assert result["acks"] == server.engine.log.describe_topic("t").records
    assert result["load_cpu_s"] > 0

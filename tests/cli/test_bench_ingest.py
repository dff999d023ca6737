"""`hispeed bench ingest`: its load generator counts the server's answers right, including
answers split across reads and refusals, since a miscount would report a false rate."""

from __future__ import annotations

from hispeed.bench.ingest import http_replies, ws_frame, ws_replies


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

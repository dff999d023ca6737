"""One-record ingestion (HTTP POST /topics/{t}, /ws/produce) goes through the log's group
committer; compared here with the transactional path every request took before
(`append_batch`, one request at a time) on the same input: the same records in the same
partitions at the same offsets, each acknowledged only once the log has it."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from hispeed.config import Settings
from hispeed.log.embedded import EmbeddedLog
from hispeed.server.ingest import REST_PROXY_TYPE, IngestError, parse_body, parse_message
from hispeed.server.state import append_batch
from hispeed.server.streaming import encode
from hispeed.testing.server import RunningServer

PARTITIONS = 3


def _messages(n: int, prefix: str = "") -> list[bytes]:
    return [
        json.dumps({"device": f"{prefix}d{i % 7}", "seq": i, "x": i / 4}).encode() for i in range(n)
    ]


def _reference(tmp_path: Path, messages: list[bytes]) -> tuple[list[Any], dict[int, list[Any]]]:
    """What the old path made of the messages, one request at a time: each one's place, and
    each partition's (key, value) records in offset order."""
    settings = Settings.load(None, env={}, data_dir=tmp_path / "ref")
    with EmbeddedLog(tmp_path / "ref", fsync="never") as log_:
        log_.create_topic("t", PARTITIONS)
        places = [
            append_batch(
                log_, settings, "t", parse_body(m, "application/json", key_field="device"), None
            )[0]
            for m in messages
        ]
        return places, _contents(log_)


def _contents(log_: Any) -> dict[int, list[Any]]:
    out = {}
    for p in range(PARTITIONS):
        table = log_.read_table("t", p)
        out[p] = list(
            zip(table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True)
        )
    return out


def _check_in_log(server: RunningServer, place: dict[str, int], message: bytes) -> None:
    """The acknowledged record is in the log, where the acknowledgement says."""
    table = server.engine.log.read_table("t", place["partition"], place["offset"])
    assert table.num_rows >= 1
    assert json.loads(table.column("value")[0].as_py()) == json.loads(message)


def test_http_one_record_posts_match_the_old_path(server: RunningServer, tmp_path: Path) -> None:
    server.engine.log.create_topic("t", PARTITIONS)
    messages = _messages(40)
    places = []
    with httpx.Client(base_url=server.url, timeout=10) as client:
        for m in messages:
            r = client.post("/topics/t?key_field=device", content=m)
            assert r.status_code == 200, r.text
            place = r.json()["offsets"][0]
            _check_in_log(server, place, m)
            places.append(place)
    expected_places, expected = _reference(tmp_path, messages)
    assert places == expected_places
    assert _contents(server.engine.log) == expected


@pytest.mark.parametrize("inline", [True, False])
def test_pipelined_websocket_messages_match_the_old_path_and_are_answered_in_order(
    server: RunningServer, tmp_path: Path, inline: bool
) -> None:
    """All messages sent before the first answer is read (they are appended in groups: on the
    event loop, or through the log's group committer as under fsync "always"); the answers
    come in the order of the messages, a bad one's error in its place."""
    assert server.server.state.ingest.inline  # fsync "never"
    server.server.state.ingest.inline = inline
    server.engine.log.create_topic("t", PARTITIONS)
    messages = _messages(200)
    bad_at = 57
    sent = [*messages[:bad_at], b'{"device": "d1", "seq":', *messages[bad_at:]]
    answers = []
    ws_url = server.url.replace("http://", "ws://") + "/ws/produce/t?key_field=device"
    with connect(ws_url) as ws:
        for m in sent:
            ws.send(m.decode())
        for m in sent:
            raw = ws.recv(timeout=10)
            answer = json.loads(raw)
            if m is not sent[bad_at]:
                _check_in_log(server, answer["offsets"][0], m)
                # byte for byte the JSON the server encodes (its answers are made without it)
                assert raw == encode({"topic": "t", "offsets": answer["offsets"]}).decode()
            answers.append(answer)
    assert answers[bad_at]["error_code"] == 40000
    assert "not JSON" in answers[bad_at]["message"]
    places = [a["offsets"][0] for i, a in enumerate(answers) if i != bad_at]
    expected_places, expected = _reference(tmp_path, messages)
    assert places == expected_places
    assert _contents(server.engine.log) == expected


def test_concurrent_websocket_clients_keep_each_clients_order(
    server: RunningServer, tmp_path: Path
) -> None:
    """Many clients at once: their messages share groups, yet each partition holds exactly the
    old path's records, each client's in the order it sent them, at contiguous offsets."""
    server.engine.log.create_topic("t", PARTITIONS)
    clients = {c: _messages(60, prefix=f"c{c}") for c in range(12)}
    ws_url = server.url.replace("http://", "ws://") + "/ws/produce/t?key_field=device"
    acked: dict[int, list[dict[str, int]]] = {}
    errors: list[BaseException] = []

    def run(c: int) -> None:
        try:
            with connect(ws_url) as ws:
                for m in clients[c]:
                    ws.send(m.decode())
                acked[c] = [json.loads(ws.recv(timeout=20))["offsets"][0] for _ in clients[c]]
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=run, args=(c,)) for c in clients]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    contents = _contents(server.engine.log)
    for c, messages in clients.items():
        for place, m in zip(acked[c], messages, strict=True):
            _key, value = contents[place["partition"]][place["offset"]]
            assert json.loads(value) == json.loads(m)
        for p in range(PARTITIONS):  # a client's records in a partition: in its order
            offsets = [a["offset"] for a in acked[c] if a["partition"] == p]
            assert offsets == sorted(offsets)
    _, expected = _reference(tmp_path, [m for ms in clients.values() for m in ms])
    for p in range(PARTITIONS):
        assert sorted(contents[p]) == sorted(expected[p])


def test_a_refused_message_fails_alone_in_its_group(server: RunningServer) -> None:
    """Messages handed over together, one of them refused by the log (no key for a compacted
    topic): that one is answered with the log's error, the others are written and answered."""
    server.engine.log.create_topic("c", 1, {"cleanup.policy": "compact"})
    sent = [b'{"device": "a", "n": 1}', b'{"device": null, "n": 2}', b'{"device": "b", "n": 3}']
    ws_url = server.url.replace("http://", "ws://") + "/ws/produce/c?key_field=device"
    with connect(ws_url) as ws:
        for m in sent:
            ws.send(m.decode())
        answers = [json.loads(ws.recv(timeout=10)) for _ in sent]
    assert [a.get("offsets") for a in answers] == [
        [{"partition": 0, "offset": 0}],
        None,
        [{"partition": 0, "offset": 1}],
    ]
    assert "compacted" in answers[1]["message"]
    table = server.engine.log.read_table("c", 0)
    assert table.column("key").to_pylist() == [b"a", b"b"]


def test_the_fast_produce_path_answers_as_the_route_does(
    server_factory: Any, tmp_path: Path
) -> None:
    """`POST /topics/{t}` is served ahead of Starlette's routing (FastProduce); the Starlette
    route (what `create_app` alone serves) stays. Both answer the same requests alike: the
    same status and JSON, errors included."""
    from starlette.testclient import TestClient

    from hispeed.engine import Engine
    from hispeed.server.app import create_app

    server = server_factory(max_request_bytes=1000)
    engine = Engine(tmp_path / "route", fsync="never")
    engine.start()
    try:
        route = TestClient(create_app(engine, server.settings))
        for log_ in (server.engine.log, engine.log):
            log_.create_topic("t", PARTITIONS)
        requests: list[tuple[str, bytes, dict[str, str]]] = [
            ("/topics/t?key_field=device", b'{"device": "d1", "x": 1}', {}),
            ("/topics/t?key_field=device", b'[{"device": "d2"}, {"device": "d3"}]', {}),
            ("/topics/t?key=k&partition=2", b'{"x": 2}', {}),
            ("/topics/t?partition=two", b'{"x": 3}', {}),
            ("/topics/t?partition=9", b'{"x": 3}', {}),
            ("/topics/t", b'{"x": ', {}),
            ("/topics/t", b"", {}),
            ("/topics/t", b"x" * 1001, {}),
            ("/topics/t?key_field=device", b'{"x": 1}', {}),
            # (keyed: null keys take turns over partitions, a counter both servers share here)
            ("/topics/t?key=n", b'{"a": 1}\n{"b": 2}', {"content-type": "application/x-ndjson"}),
            ("/topics/t?key_field=%C3%A9", '{"é": "v"}'.encode(), {}),
        ]
        with httpx.Client(base_url=server.url, timeout=10) as fast:
            for path, body, headers in requests:
                a = fast.post(path, content=body, headers=headers)
                b = route.post(path, content=body, headers=headers)
                assert (a.status_code, a.json()) == (b.status_code, b.json()), (path, body)
                assert a.headers["content-type"] == "application/json"
    finally:
        engine.close()


def test_websocket_produce_without_the_direct_socket(tmp_path: Path) -> None:
    """Under a server that offers no `hispeed.direct` extension (Starlette's test client
    here; hypercorn), /ws/produce serves through ASGI's receive and send: the same answers,
    in order, a bad message's error in its place."""
    from starlette.testclient import TestClient

    from hispeed.engine import Engine
    from hispeed.server.app import create_app

    engine = Engine(tmp_path / "asgi", fsync="never")
    engine.start()
    try:
        engine.log.create_topic("t", PARTITIONS)
        settings = Settings.load(None, env={}, data_dir=tmp_path / "asgi")
        messages = _messages(30)
        sent = [*messages[:5], b"[1, 2", *messages[5:]]
        with TestClient(create_app(engine, settings)).websocket_connect(
            "/ws/produce/t?key_field=device"
        ) as ws:
            for m in sent:
                ws.send_text(m.decode())
            answers = [json.loads(ws.receive_text()) for _ in sent]
        assert answers[5]["error_code"] == 40000
        places = [a["offsets"][0] for i, a in enumerate(answers) if i != 5]
        expected_places, expected = _reference(tmp_path, messages)
        assert places == expected_places
        assert _contents(engine.log) == expected
    finally:
        engine.close()


def test_a_small_in_flight_limit_pauses_and_resumes_reading(server_factory: Any) -> None:
    """With at most 2 messages unanswered, a client that sends 300 at once is read 2 at a
    time (reading pauses and resumes): every message answered, in order, none lost."""
    server = server_factory(max_ws_produce_in_flight=2)
    messages = _messages(300)
    ws_url = server.url.replace("http://", "ws://") + "/ws/produce/t?key_field=device"
    with connect(ws_url) as ws:
        for m in messages:
            ws.send(m.decode())
        answers = [json.loads(ws.recv(timeout=20)) for _ in messages]
    table = server.engine.log.read_table("t", 0)
    assert len(answers) == table.num_rows == 300
    for answer, m in zip(answers, messages, strict=True):
        offset = answer["offsets"][0]["offset"]
        assert json.loads(table.column("value")[offset].as_py()) == json.loads(m)


@pytest.mark.parametrize("compression", [None, "deflate"])
def test_produce_frames_split_in_bulk_hand_other_frames_to_websockets(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch, compression: str | None
) -> None:
    """`/ws/produce` splits plain frames itself (`wsframes.split_frames`, many a read); a
    ping, a fragmented message, a compressed one or a close mid-stream goes to websockets'
    parser, which takes the stream from there: every message answered in order, the ping
    ponged."""
    import hispeed.server.http as http_mod

    split: list[int] = []

    def counting(data: Any, max_size: int) -> Any:
        out = http_mod_split(data, max_size)
        split.append(len(out[0]))
        return out

    http_mod_split = http_mod.split_frames
    monkeypatch.setattr(http_mod, "split_frames", counting)
    server.engine.log.create_topic("t", PARTITIONS)
    messages = _messages(40)
    ws_url = server.url.replace("http://", "ws://") + "/ws/produce/t?key_field=device"
    with connect(ws_url, compression=compression) as ws:
        for m in messages[:30]:
            ws.send(m.decode())
        first = [json.loads(ws.recv(timeout=10)) for _ in range(30)]
        pong = ws.ping()
        ws.send([messages[30][:10].decode(), messages[30][10:].decode()])  # two fragments
        ws.send(messages[31])  # binary
        for m in messages[32:]:
            ws.send(m.decode())
        assert pong.wait(10)
        rest = [json.loads(ws.recv(timeout=10)) for _ in messages[30:]]
    if compression is None:
        assert sum(split) >= 30  # the first 30 were split here, not by websockets
    for answer, m in zip(first + rest, messages, strict=True):
        _check_in_log(server, answer["offsets"][0], m)


def _responses(sock: Any, n: int) -> list[tuple[int, dict[str, str], bytes]]:
    """`n` whole HTTP/1.1 responses (each with a Content-Length) read from `sock`."""
    buf = b""
    out = []
    while len(out) < n:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            lines = buf[:end].decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:])
            length = int(headers["content-length"])
            if len(buf) >= end + 4 + length:
                out.append((int(lines[0].split()[1]), headers, buf[end + 4 : end + 4 + length]))
                buf = buf[end + 4 + length :]
                continue
        data = sock.recv(65536)
        assert data, f"the server closed the connection after {len(out)} responses"
        buf += data
    return out


def test_posts_below_asgi_keep_pipelined_order_with_the_apps_requests(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One-record POSTs are served by the HTTP protocol itself (`DirectPost`), other requests
    by the app; pipelined in one write, they are answered in the order sent, each as the app
    would answer it."""
    import socket

    import hispeed.server.http as http_mod

    started: list[str] = []
    start = http_mod._DirectCycle.start

    def counting(self: Any) -> None:
        started.append(self.tail)
        start(self)

    monkeypatch.setattr(http_mod._DirectCycle, "start", counting)
    server.engine.log.create_topic("t", 1)

    def post(body: bytes, path: str = "/topics/t?key_field=device") -> bytes:
        return (
            f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            + body
        )

    chunked = (
        b"POST /topics/t HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'9\r\n{"n": 99}\r\n0\r\n\r\n'
    )
    requests = [
        post(b'{"device": "a", "n": 0}'),
        b"GET /topics/t HTTP/1.1\r\nHost: x\r\n\r\n",
        post(b'{"device": "a", "n": 1}'),
        post(b'{"device": "a", "n":'),
        post(b'[{"device": "a", "n": 2}, {"device": "a", "n": 3}]'),
        chunked,
        post(b'{"n": 4}', "/topics/t?partition=x"),
        post(b'{"device": "a", "n": 5}'),
    ]
    port = int(server.url.rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port)) as sock:
        sock.sendall(b"".join(requests))
        answers = _responses(sock, len(requests))
    statuses = [a[0] for a in answers]
    assert statuses == [200, 200, 200, 400, 200, 200, 400, 200]
    bodies = [json.loads(a[2]) for a in answers]
    offsets = [[o["offset"] for o in b["offsets"]] for b in bodies if "offsets" in b]
    assert offsets == [[0], [1], [2, 3], [4], [5]]
    assert "not JSON" in bodies[3]["message"]
    assert bodies[3]["error_code"] == 40000
    assert "partition must be a number" in bodies[6]["message"]
    assert all(a[1]["content-type"] == "application/json" for a in answers)
    table = server.engine.log.read_table("t", 0)
    assert [json.loads(v)["n"] for v in table.column("value").to_pylist()] == [0, 1, 2, 3, 99, 5]
    assert len(started) == 6  # all but the GET and the chunked one


def test_handed_groups_answer_as_the_old_path_and_fall_back_when_they_must(
    tmp_path: Path,
) -> None:
    """`Ingestor.hand` (what /ws/produce and the direct POSTs use): the requests of one pass
    of the event loop written together on the loop itself; each caller told its own places
    in the order of the calls, a socket's `after` run once for its group; a record the log
    refuses fails alone (its group then written one request at a time); a topic deleted
    since it was known is created again. The records and places are the old path's
    (`append_batch`, one request at a time)."""
    import asyncio
    import functools
    import time

    from hispeed.server.state import Ingestor

    settings = Settings.load(None, env={}, data_dir=tmp_path / "fast")
    messages = _messages(30)
    batches = [parse_body(m, "application/json", key_field="device") for m in messages]

    async def run(log_: EmbeddedLog) -> tuple[list[Any], list[str]]:
        ingest = Ingestor(log_, settings)
        await ingest.ensure("t")
        await ingest.ensure("c")
        told: list[Any] = []
        afters: list[str] = []

        sockets = {who: functools.partial(afters.append, who) for who in ("s0", "s1", "s2")}

        def hand(topic: str, pairs: list[Any], who: str) -> None:
            ingest.hand(topic, pairs, None, lambda p, e: told.append(p or str(e)), sockets[who])

        for i, b in enumerate(batches[:20]):  # one pass: one group
            hand("t", list(zip(b.keys, b.values, strict=True)), f"s{i % 2}")
        hand("c", [(None, b"no key")], "s0")  # refused: compacted topics need keys
        hand("c", [(b"k", b"v")], "s0")
        await asyncio.sleep(0)
        log_.delete_topic("t")  # known to the Ingestor, gone from the log
        for b in batches[20:]:
            hand("t", list(zip(b.keys, b.values, strict=True)), "s2")
        deadline = time.monotonic() + 30  # the re-creation runs on a worker thread
        while len(told) < len(messages) + 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
        return told, afters

    with EmbeddedLog(tmp_path / "fast", fsync="never") as log_:
        log_.create_topic("t", PARTITIONS)
        log_.create_topic("c", 1, {"cleanup.policy": "compact"})
        told, afters = asyncio.run(run(log_))
        got_c = log_.read_table("c", 0).column("key").to_pylist()
        # the topic came back with the default partition count: compare the records after
        got_t = log_.read_table("t", 0).column("value").to_pylist()
    assert "compacted" in told[20]
    assert told[21] == [{"partition": 0, "offset": 0}]
    assert got_c == [b"k"]
    # once a group: the 20 messages' group, then "c" written one by one, then the last group
    assert afters == ["s0", "s1", "s0", "s0", "s2"]
    expected_places, _ = _reference(tmp_path, messages[:20])
    assert [t[0] for t in told[:20]] == expected_places
    # after the topic was deleted: created again (one partition), its records in order
    assert [t[0] for t in told[22:]] == [{"partition": 0, "offset": i} for i in range(10)]
    assert [json.loads(v) for v in got_t] == [json.loads(m) for m in messages[20:]]


#: bodies a producer may send, odd ones included: each must parse the same both ways
BODIES = [
    b'{"device": "d1", "x": 1}',
    b'  {"device": 7, "x": [1, {"y": null}]}  ',
    b'{"device": null}',
    b'{"device": {"nested": true}}',
    b'{"x": 1}',
    b"[1, 2]",
    b'[{"device": "a"}, {"device": "b"}]',
    b'{"device": "a"}\n{"device": "b"}',
    b'"text"',
    b"null",
    b"42",
    b"",
    b"   ",
    b'{"device": ',
    b"[" * 5000 + b"]" * 5000,
    '{"device": "é✓"}'.encode(),
    b'{"device": "a", "device": "b"}',
]


@pytest.mark.parametrize("key_field", [None, "device"])
@pytest.mark.parametrize("key", [None, "k"])
@pytest.mark.parametrize(
    "content_type", ["application/json", "application/x-ndjson", REST_PROXY_TYPE]
)
def test_the_short_parse_gives_what_parse_body_gives(
    key_field: str | None, key: str | None, content_type: str
) -> None:
    """`parse_message` (what /ws/produce and the direct POSTs parse with): for every body,
    the same records or the same error message as `parse_body`."""
    for body in BODIES:
        try:
            want: Any = parse_body(body, content_type, key_field=key_field, key=key)
        except IngestError as e:
            want = str(e)
        try:
            got: Any = parse_message(body, content_type, key_field, key)
        except IngestError as e:
            got = str(e)
        assert got == want, body[:80]

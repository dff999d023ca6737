"""The HTTP connectors against real HTTP servers on loopback ports (http.server in a thread):
round trips, the server going away mid-stream and coming back, refusals, restarts."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import deque
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.testing.wait import wait_for

READINGS = (
    "CREATE STREAM readings (id STRING KEY, x INT) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
)


class Server:
    """A real HTTP server on 127.0.0.1 in a thread; `stop()` and `start()` again keep its
    port, as a restarted service would."""

    def __init__(self, handle: Callable[[BaseHTTPRequestHandler], None]) -> None:
        self.handle = handle
        self.port = 0
        self.lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.handle(self)

            def do_POST(self) -> None:
                outer.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        assert self._server is not None
        assert self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(10)


def _reply(request: BaseHTTPRequestHandler, status: int, body: bytes, **headers: str) -> None:
    request.send_response(status)
    for name, value in headers.items():
        request.send_header(name.replace("_", "-"), value)
    request.send_header("Content-Length", str(len(body)))
    request.end_headers()
    request.wfile.write(body)


class Webhook:
    """Takes POSTs of JSON arrays; answers request n with `statuses[n]` while there are
    some (0: as usual), and 400 to an array holding a record that `refuse` refuses."""

    def __init__(self) -> None:
        self.posts: list[list[dict[str, Any]]] = []
        #: each taken POST's headers, by lower-cased name (a property's name is lower-cased)
        self.headers: list[dict[str, str]] = []
        self.statuses: deque[int] = deque()
        self.requests = 0
        self.refuse: Callable[[dict[str, Any]], bool] = lambda record: False
        self.server = Server(self._handle)

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        body = request.rfile.read(int(request.headers["Content-Length"]))
        with self.server.lock:
            self.requests += 1
            status = self.statuses.popleft() if self.statuses else 0
            if status:
                _reply(request, status, b"busy, try later")
                return
            records = json.loads(body)
            if any(self.refuse(r) for r in records):
                _reply(request, 400, b"x must not be negative")
                return
            self.posts.append(records)
            self.headers.append({k.lower(): v for k, v in request.headers.items()})
        _reply(request, 204, b"")

    @property
    def records(self) -> list[dict[str, Any]]:
        with self.server.lock:
            return [r for post in self.posts for r in post]


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    hook = Webhook()
    hook.server.start()
    yield hook
    if hook.server._server is not None:
        hook.server._server.shutdown()
        hook.server._server.server_close()


def _info(engine: Engine, name: str) -> dict[str, Any]:
    info: dict[str, Any] = engine.execute(f"DESCRIBE CONNECTOR {name};")[0].info
    return info


def _sink(engine: Engine, url: str, **props: str) -> None:
    extra = "".join(f", '{k.replace('_', '.')}'='{v}'" for k, v in props.items())
    engine.execute(
        READINGS + "CREATE SINK CONNECTOR hook WITH ('connector.class'='http', "
        f"'source'='readings', 'http.url'='{url}'{extra});"
    )


def test_the_sink_posts_batched_json_arrays_with_its_headers(
    webhook: Webhook, tmp_path: Path
) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(READINGS)
        engine.insert_many("readings", [{"ID": f"d{i}", "X": i} for i in range(10)])
        engine.execute(
            "CREATE SINK CONNECTOR hook WITH ('connector.class'='http', 'source'='readings', "
            f"'http.url'='{webhook.server.url}hooks', 'batch.size'='3', "
            "'http.header.Authorization'='Bearer s3cret');"
        )
        wait_for(lambda: len(webhook.records) == 10)
        assert webhook.records == [{"ID": f"d{i}", "X": i} for i in range(10)]
        assert [len(p) for p in webhook.posts] == [3, 3, 3, 1]
        assert webhook.headers[0]["authorization"] == "Bearer s3cret"
        assert webhook.headers[0]["content-type"] == "application/json"
        assert webhook.headers[1]["x-hispeed-records"] == "readings/0/3-5"
        # the sink counts a post once its answer is back: the receiver has the records first
        wait_for(lambda: _info(engine, "hook")["details"]["posts"] == 4)
        details = _info(engine, "hook")["details"]
        assert details["url"] == f"{webhook.server.url}hooks"


def test_the_sink_loses_nothing_while_the_receiver_is_away(
    webhook: Webhook, tmp_path: Path
) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        _sink(engine, webhook.server.url, batch_size="2")
        for i in range(5):
            engine.insert("readings", {"ID": f"d{i}", "X": i})
        wait_for(lambda: len(webhook.records) == 5)
        webhook.server.stop()
        for i in range(5, 12):
            engine.insert("readings", {"ID": f"d{i}", "X": i})
        wait_for(lambda: _info(engine, "hook")["state"] == "RETRYING")
        assert "ConnectError" in str(_info(engine, "hook")["lastError"])
        webhook.server.start()  # back, on the same port
        wait_for(lambda: len(webhook.records) == 12, timeout=30)
        assert webhook.records == [{"ID": f"d{i}", "X": i} for i in range(12)]
        wait_for(lambda: _info(engine, "hook")["state"] == "RUNNING")


def test_the_sink_retries_5xx_and_sends_an_acknowledged_post_once(
    webhook: Webhook, tmp_path: Path
) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(READINGS)
        engine.insert_many("readings", [{"ID": f"d{i}", "X": i} for i in range(6)])
        # the first POST is taken, the second answered 503 three times, then taken
        webhook.statuses.extend([0, 503, 503, 500])
        _sink_only(engine, webhook.server.url, "3")
        wait_for(lambda: len(webhook.records) == 6, timeout=30)
        assert webhook.records == [{"ID": f"d{i}", "X": i} for i in range(6)]
        assert webhook.requests == 5  # the first POST was not sent again with the retries
        # the sink notes the status when the answer is back, after the receiver has the records
        wait_for(lambda: _info(engine, "hook")["details"]["last_status"] == 204)


def _sink_only(engine: Engine, url: str, batch_size: str) -> None:
    engine.execute(
        "CREATE SINK CONNECTOR hook WITH ('connector.class'='http', 'source'='readings', "
        f"'http.url'='{url}', 'batch.size'='{batch_size}');"
    )


def test_a_refused_record_goes_to_the_processing_log_and_the_rest_go_on(
    webhook: Webhook, tmp_path: Path
) -> None:
    webhook.refuse = lambda record: record["X"] < 0
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(READINGS)
        engine.insert_many(
            "readings", [{"ID": "a", "X": 1}, {"ID": "b", "X": -1}, {"ID": "c", "X": 2}]
        )
        _sink_only(engine, webhook.server.url, "10")
        wait_for(lambda: engine.log.offsets(PROCESSING_LOG, 0)[1] == 1)
        error = json.loads(engine.log.read_table(PROCESSING_LOG, 0).column("value")[0].as_py())
        assert error["query"] == "connector HOOK"
        assert error["offset"] == 1
        assert error["message"] == (f"POST {webhook.server.url}: HTTP 400: x must not be negative")
        wait_for(lambda: len(webhook.records) == 2)
        assert webhook.records == [{"ID": "a", "X": 1}, {"ID": "c", "X": 2}]
        wait_for(lambda: _info(engine, "hook")["records"] == 2)
        assert _info(engine, "hook")["errors"] == 1


@pytest.mark.parametrize(
    ("props", "message"),
    [
        ("", "connector HOOK needs 'http.url'"),
        (", 'http.url'='ftp://x/'", "'http.url' must be an http:// or https:// URL"),
        (", 'http.url'='http://127.0.0.1:1/', 'batch.size'='0'", "'batch.size' must be a whole"),
        (", 'http.url'='http://127.0.0.1:1/', 'http.payload'='xml'", "'http.payload' must be"),
    ],
)
def test_a_bad_sink_configuration_fails_the_statement(
    tmp_path: Path, props: str, message: str
) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(READINGS)
        with pytest.raises(HispeedError, match=message):
            engine.execute(
                "CREATE SINK CONNECTOR hook WITH ('connector.class'='http', "
                f"'source'='readings'{props});"
            )


# -- the source -------------------------------------------------------------------------------


class Feed:
    """A JSON endpoint listing the last `keep` items under data.items, with an ETag; 304 to
    a request whose If-None-Match is the current one."""

    def __init__(self, keep: int = 1000) -> None:
        self.items: list[dict[str, Any]] = []
        self.keep = keep
        self.requests = 0
        self.server = Server(self._handle)

    def add(self, *ids: int) -> None:
        with self.server.lock:
            self.items.extend({"id": i, "price": i * 1.5} for i in ids)
            self.items = self.items[-self.keep :]

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        with self.server.lock:
            self.requests += 1
            body = json.dumps({"data": {"items": self.items}}).encode()
        etag = '"' + hashlib.sha1(body).hexdigest() + '"'
        if request.headers.get("If-None-Match") == etag:
            _reply(request, 304, b"", ETag=etag)
            return
        _reply(request, 200, body, ETag=etag, Content_Type="application/json")


@pytest.fixture
def feed() -> Iterator[Feed]:
    f = Feed(keep=5)
    f.server.start()
    yield f
    if f.server._server is not None:
        f.server._server.shutdown()
        f.server._server.server_close()


def _topic_values(engine: Engine, topic: str) -> list[Any]:
    return [
        json.loads(v)
        for batch in engine.log.read(topic, 0, 0)
        for v in batch.column("value").to_pylist()
    ]


def _source(engine: Engine, url: str) -> None:
    engine.execute(
        "CREATE SOURCE CONNECTOR prices WITH ('connector.class'='http-source', "
        f"'http.url'='{url}', 'http.records.path'='$.data.items', 'key.field'='id', "
        "'http.poll.interval.ms'='20', 'kafka.topic'='prices');"
    )


def test_the_source_brings_each_item_once_across_an_outage_and_a_restart(
    feed: Feed, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    feed.add(1, 2, 3)
    with Engine(data, fsync="never") as engine:
        _source(engine, feed.server.url)
        wait_for(lambda: len(_topic_values(engine, "prices")) == 3)
        wait_for(lambda: _info(engine, "prices")["details"]["not_modified"] >= 2)  # ETag
        feed.add(4, 5)
        wait_for(lambda: len(_topic_values(engine, "prices")) == 5)
        feed.server.stop()
        feed.add(6, 7)  # listed while it is away (1 and 2 drop off its list of 5)
        wait_for(lambda: _info(engine, "prices")["state"] == "RETRYING")
        feed.server.start()
        wait_for(lambda: len(_topic_values(engine, "prices")) == 7, timeout=30)
        assert [v["id"] for v in _topic_values(engine, "prices")] == [1, 2, 3, 4, 5, 6, 7]
        keys = [k for b in engine.log.read("prices", 0, 0) for k in b.column("key").to_pylist()]
        assert keys == [str(i).encode() for i in range(1, 8)]
    with Engine(data, fsync="never") as engine:  # the position (keys seen) comes back
        requests = feed.requests
        wait_for(lambda: feed.requests >= requests + 3)
        assert len(_topic_values(engine, "prices")) == 7
        feed.add(8)
        wait_for(lambda: len(_topic_values(engine, "prices")) == 8)
        assert _topic_values(engine, "prices")[-1] == {"id": 8, "price": 12.0}


def _bad_responses(engine: Engine) -> list[dict[str, Any]]:
    if PROCESSING_LOG not in engine.log.list_topics(internal=True):
        return []
    return _topic_values(engine, PROCESSING_LOG)


def test_the_source_says_what_is_wrong_with_a_response(feed: Feed, tmp_path: Path) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE SOURCE CONNECTOR p WITH ('connector.class'='http-source', "
            f"'http.url'='{feed.server.url}', 'http.records.path'='$.results', "
            "'http.poll.interval.ms'='20', 'http.retries'='1', 'kafka.topic'='p');"
        )
        wait_for(lambda: _bad_responses(engine))
        entry = _bad_responses(engine)[0]
        assert entry["message"] == (
            f"GET {feed.server.url}: the response has no '$.results'; nothing was brought in "
            "from it after 2 attempts ('http.retries'), the source goes on"
        )
        assert (entry["query"], entry["status"]) == ("connector P", 200)
        with pytest.raises(HispeedError, match=r"'http.records.path' 'a\[x\]': '\[x\]' is not"):
            engine.execute(
                "CREATE SOURCE CONNECTOR q WITH ('connector.class'='http-source', "
                f"'http.url'='{feed.server.url}', 'http.records.path'='a[x]', "
                "'kafka.topic'='q');"
            )


class Flaky(Feed):
    """A Feed that answers each request with the next of `answers` (status, body) while it
    has some: the bad responses an endpoint gives now and then."""

    def __init__(self) -> None:
        super().__init__(keep=100)
        self.answers: deque[tuple[int, bytes]] = deque()

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        with self.server.lock:
            answer = self.answers.popleft() if self.answers else None
        if answer is None:
            super()._handle(request)
            return
        with self.server.lock:
            self.requests += 1
        _reply(request, answer[0], answer[1], Content_Type="text/html")


def test_bad_responses_go_to_the_processing_log_after_retries_and_the_source_goes_on(
    tmp_path: Path,
) -> None:
    flaky = Flaky()
    flaky.server.start()
    try:
        flaky.add(1, 2)
        # two tries each: a page that is not JSON, then a 503 twice, then a 404 once and the
        # good list: the first two are logged, the 404 is asked again and the list comes in
        flaky.answers.extend(
            [(200, b"<html>maintenance</html>")] * 2
            + [(503, b"overloaded")] * 2
            + [(404, b"no such page")]
        )
        with Engine(tmp_path / "data", fsync="never") as engine:
            engine.execute(
                "CREATE SOURCE CONNECTOR prices WITH ('connector.class'='http-source', "
                f"'http.url'='{flaky.server.url}', 'http.records.path'='$.data.items', "
                "'key.field'='id', 'http.poll.interval.ms'='20', 'http.retries'='1', "
                "'kafka.topic'='prices');"
            )
            wait_for(lambda: len(_topic_values(engine, "prices")) == 2, timeout=30)
            assert [v["id"] for v in _topic_values(engine, "prices")] == [1, 2]
            url = flaky.server.url
            entries = _bad_responses(engine)
            assert [(e["status"], e["attempts"]) for e in entries] == [(200, 2), (503, 2)]
            assert entries[0]["message"].startswith(f"GET {url}: the response is not JSON (")
            assert entries[0]["message"].endswith(
                "): <html>maintenance</html>; nothing was brought in from it after 2 attempts "
                "('http.retries'), the source goes on"
            )
            assert entries[1]["message"] == (
                f"GET {url}: HTTP 503: overloaded; nothing was brought in from it after 2 "
                "attempts ('http.retries'), the source goes on"
            )
            info = _info(engine, "prices")
            assert info["state"] == "RUNNING"
            assert info["details"]["bad_responses"] == 2
            flaky.add(3)  # and it goes on
            wait_for(lambda: len(_topic_values(engine, "prices")) == 3)
    finally:
        flaky.server.stop()

"""HTTP connectors: a webhook sink (batched POSTs of JSON arrays) and a polled JSON source.

    CREATE SINK CONNECTOR hook WITH ('connector.class'='http', 'source'='ALERTS',
      'http.url'='https://example.com/hooks/alerts', 'http.header.Authorization'='Bearer t',
      'batch.size'='100');
    CREATE SOURCE CONNECTOR prices WITH ('connector.class'='http-source',
      'http.url'='https://example.com/api/prices', 'http.records.path'='$.data.items',
      'key.field'='id', 'http.poll.interval.ms'='10000', 'kafka.topic'='prices');

`HttpSink` ('http', 'http-sink'): a SinkBatch goes out as POSTs of up to 'batch.size' records,
each a JSON array. A connection error, a timeout, 408, 429 or a 5xx raises RetriableError (the
runner retries the batch with backoff); the POSTs of the batch that were acknowledged are not
sent again on that retry. Another 4xx (or a 3xx) is the receiver refusing what it got: a POST
of several records is sent again one record at a time, so that only the refused records go
to the processing log, with the status and the start of the response.

`HttpSource` ('http-source'): a GET every 'http.poll.interval.ms', with If-None-Match and
If-Modified-Since from the last response (a 304 brings nothing). The records are the body's
JSON array, or the array (or object) at 'http.records.path'; with 'key.field' each record is
keyed by that field and one already brought in is not brought again (the last
'dedup.window' keys are remembered, committed with the records as the position). A bad
response (an HTTP error status, a body that is not JSON or has nothing at the path) is asked
for again 'http.retries' times with the runner's backoff (the connector RETRYING), then goes
to the processing log with the reason, and the source goes on at its interval; an endpoint
that cannot be reached at all (refused, a timeout) is retried until it answers.

Both speak HTTP through httpx, one connection pool per connector.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
import msgspec
import pyarrow as pa

from hispeed.connectors.base import (
    ConnectorError,
    RetriableError,
    SinkBatch,
    SinkConnector,
    SourceBatch,
    SourceConnector,
    SourceRecord,
    register,
)

DEFAULT_BATCH_SIZE = 500
MAX_BATCH_SIZE = 100_000
DEFAULT_TIMEOUT_MS = 10_000
DEFAULT_POLL_INTERVAL_MS = 5_000
DEFAULT_DEDUP_WINDOW = 10_000
#: a bad response is asked for again this many times before it goes to the processing log
DEFAULT_SOURCE_RETRIES = 3
MAX_DEDUP_WINDOW = 1_000_000
#: how much of a refusing response's body goes into the processing log
BODY_EXCERPT = 200
#: statuses that say "later" rather than "no"
RETRY_STATUSES = frozenset({408, 425, 429})
#: the header that tells a receiver which records a POST holds (to recognise a resend)
OFFSETS_HEADER = "X-Hispeed-Records"


def _int(config: Mapping[str, str], key: str, default: int, low: int, high: int, name: str) -> int:
    raw = config.get(key, str(default)).strip()
    if not (raw.isascii() and raw.isdigit()) or not low <= int(raw) <= high:
        raise ConnectorError(
            f"connector {name}: '{key}' must be a whole number from {low} to {high}, not {raw!r}"
        )
    return int(raw)


def _url(config: Mapping[str, str], name: str) -> httpx.URL:
    raw = config.get("http.url", "").strip()
    if not raw:
        raise ConnectorError(f"connector {name} needs 'http.url' in its WITH clause")
    try:
        url = httpx.URL(raw)
    except (httpx.InvalidURL, TypeError) as e:
        raise ConnectorError(f"connector {name}: 'http.url' {raw!r} is not a URL: {e}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ConnectorError(
            f"connector {name}: 'http.url' must be an http:// or https:// URL, not {raw!r}"
        )
    return url


def _headers(config: Mapping[str, str]) -> dict[str, str]:
    """'http.header.NAME'='value' properties, as headers."""
    prefix = "http.header."
    return {k[len(prefix) :]: v for k, v in config.items() if k.startswith(prefix)}


def _shown(url: httpx.URL) -> str:
    """The URL without its credentials and query (which may hold a token)."""
    return str(url.copy_with(username=None, password=None, query=None))


def _excerpt(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:BODY_EXCERPT] + ("..." if len(text) > BODY_EXCERPT else "")


def _client(config: Mapping[str, str], name: str) -> httpx.Client:
    timeout = _int(config, "http.timeout.ms", DEFAULT_TIMEOUT_MS, 1, 600_000, name) / 1000
    return httpx.Client(timeout=timeout, headers=_headers(config), follow_redirects=True)


def _json_default(value: Any) -> Any:
    """What msgspec cannot write itself (a Decimal it can): its text."""
    return str(value)


# -- the webhook sink -------------------------------------------------------------------------


@register
class HttpSink(SinkConnector):
    """POSTs a topic's records as JSON arrays to a URL (a webhook)."""

    names = ("http", "http-sink", "HttpSink", "HttpSinkConnector")

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        super().__init__(name, config)
        self.url = _url(self.config, name)
        self.batch_size = _int(
            self.config, "batch.size", DEFAULT_BATCH_SIZE, 1, MAX_BATCH_SIZE, name
        )
        _int(self.config, "http.timeout.ms", DEFAULT_TIMEOUT_MS, 1, 600_000, name)
        self.payload = self.option("http.payload", "row").strip().lower()
        if self.payload not in ("row", "envelope"):
            raise ConnectorError(
                f"connector {name}: 'http.payload' must be row or envelope, not {self.payload!r}"
            )
        self.client: httpx.Client | None = None
        self._encoder = msgspec.json.Encoder(enc_hook=_json_default)
        #: per partition, the last offset the receiver acknowledged: a retried batch skips
        #: what was delivered before the failure
        self._delivered: dict[tuple[str, int], int] = {}
        self.posts = 0
        self.last_status: int | None = None

    def start(self) -> None:
        self.client = _client(self.config, self.name)

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def _record(self, batch: SinkBatch, i: int) -> Any:
        row = batch.rows[i]
        if self.payload == "row":
            return row
        return {
            "topic": batch.topic,
            "partition": batch.partition,
            "offset": batch.offsets[i],
            "timestamp": batch.timestamps[i],
            "key": batch.keys[i],
            "value": row,
        }

    def write(self, batch: SinkBatch) -> None:
        tp = (batch.topic, batch.partition)
        done = self._delivered.get(tp, -1)
        encoded: list[tuple[int, bytes]] = []
        for i, offset in enumerate(batch.offsets):
            if offset <= done:
                continue  # acknowledged before this batch's last failure
            try:
                encoded.append((i, self._encoder.encode(self._record(batch, i))))
            except (TypeError, ValueError, msgspec.EncodeError) as e:
                batch.fail(i, f"cannot be written as JSON: {e}")
        for start in range(0, len(encoded), self.batch_size):
            self._post(batch, encoded[start : start + self.batch_size])

    def _post(self, batch: SinkBatch, records: Sequence[tuple[int, bytes]]) -> None:
        """POST `records` (row index, JSON) as one array; on a refusal, one at a time."""
        if self.client is None:
            raise RetriableError("not started")
        first, last = batch.offsets[records[0][0]], batch.offsets[records[-1][0]]
        body = b"[" + b",".join(r for _, r in records) + b"]"
        where = _shown(self.url)
        try:
            response = self.client.post(
                self.url,
                content=body,
                headers={
                    "Content-Type": "application/json",
                    OFFSETS_HEADER: f"{batch.topic}/{batch.partition}/{first}-{last}",
                },
            )
        except httpx.HTTPError as e:  # refused, reset, a timeout: the receiver may come back
            raise RetriableError(f"POST {where}: {type(e).__name__}: {e}") from e
        self.posts += 1
        self.last_status = response.status_code
        status = response.status_code
        if status >= 500 or status in RETRY_STATUSES:
            raise RetriableError(f"POST {where}: HTTP {status}: {_excerpt(response)}")
        tp = (batch.topic, batch.partition)
        if status < 300:
            self._delivered[tp] = last
            return
        if len(records) > 1:  # which of them does it refuse? each alone
            for record in records:
                self._post(batch, [record])
            return
        batch.fail(records[0][0], f"POST {where}: HTTP {status}: {_excerpt(response)}")
        self._delivered[tp] = last

    def details(self) -> dict[str, Any]:
        return {
            "url": _shown(self.url),
            "batch.size": self.batch_size,
            "payload": self.payload,
            "posts": self.posts,
            "last_status": self.last_status,
            "delivery": "at-least-once",
        }


# -- the polled source ------------------------------------------------------------------------


def _path(text: str, name: str) -> list[str | int]:
    """'$.data.items', 'data.items' or 'results[0].rows' as steps: keys and list indexes."""
    steps: list[str | int] = []
    body = text.strip()
    body = body[1:] if body.startswith("$") else body
    for part in body.replace("[", ".[").split("."):
        if not part:
            continue
        if part.startswith("["):
            index = part[1:-1] if part.endswith("]") else ""
            if not (index.isascii() and index.isdigit()):
                raise ConnectorError(
                    f"connector {name}: 'http.records.path' {text!r}: {part!r} is not [n]"
                )
            steps.append(int(index))
        else:
            steps.append(part)
    return steps


_MISSING = object()


def _follow(body: Any, steps: Sequence[str | int]) -> Any:
    """What the steps lead to in a decoded JSON body, or _MISSING."""
    found = body
    for step in steps:
        in_list = isinstance(step, int) and isinstance(found, list) and step < len(found)
        in_object = isinstance(step, str) and isinstance(found, dict) and step in found
        if not (in_list or in_object):
            return _MISSING
        found = found[step]
    return found


#: the records of a poll that brought none (only a processing-log entry)
_NO_RECORDS = pa.RecordBatch.from_pydict({"value": pa.array([], pa.binary())})


class _BadResponseError(Exception):
    """A response the source cannot take records from (`status`: its HTTP status)."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@register
class HttpSource(SourceConnector):
    """Polls a URL for JSON and brings in its records (deduplicated by a key field)."""

    names = ("http-source", "HttpSource", "HttpSourceConnector")

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        super().__init__(name, config)
        self.url = _url(self.config, name)
        self.interval = (
            _int(
                self.config, "http.poll.interval.ms", DEFAULT_POLL_INTERVAL_MS, 10, 86_400_000, name
            )
            / 1000
        )
        _int(self.config, "http.timeout.ms", DEFAULT_TIMEOUT_MS, 1, 600_000, name)
        self.path = _path(self.config.get("http.records.path", ""), name)
        self.key_field = self.config.get("key.field", "").strip() or None
        self.window = _int(
            self.config, "dedup.window", DEFAULT_DEDUP_WINDOW, 1, MAX_DEDUP_WINDOW, name
        )
        self.retries = _int(self.config, "http.retries", DEFAULT_SOURCE_RETRIES, 0, 1_000_000, name)
        self.client: httpx.Client | None = None
        self.etag: str | None = None
        self.modified: str | None = None
        #: the keys brought in, oldest first (the dedup window)
        self.seen: OrderedDict[str, None] = OrderedDict()
        #: the validators of the response being read, kept once its records are made
        self._pending_etag: str | None = None
        self._pending_modified: str | None = None
        self._next_poll = 0.0
        self.polls = 0
        self.not_modified = 0
        #: bad responses in a row (each retried until 'http.retries' is passed)
        self._failures = 0
        #: bad responses that went to the processing log, since the start
        self.bad_responses = 0

    def start(self, position: Any) -> None:
        if isinstance(position, dict):
            self.etag = position.get("etag")
            self.modified = position.get("modified")
            self.seen = OrderedDict((str(k), None) for k in position.get("seen", []))
        self.client = _client(self.config, self.name)
        self._next_poll = 0.0

    def stop(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    def poll(self, timeout: float) -> list[SourceRecord] | list[SourceBatch]:
        wait = self._next_poll - time.monotonic()
        if wait > 0:
            time.sleep(min(timeout, wait))
            if self._next_poll > time.monotonic():
                return []
        # the next poll an interval after this one starts; after a failure the runner's
        # backoff decides when this is called again
        self._next_poll = time.monotonic() + self.interval
        try:
            body = self._get()
            if body is None:
                return []
            records = self._records(body)
        except _BadResponseError as e:
            return self._bad(e)
        self._failures = 0
        return records

    def _bad(self, e: _BadResponseError) -> list[SourceBatch]:
        """A bad response: asked for again (RetriableError: the runner backs off) until
        'http.retries' is passed; then its processing-log entry, and the next poll at the
        interval."""
        self._failures += 1
        attempts = self._failures
        if attempts <= self.retries:
            self._next_poll = 0.0
            raise RetriableError(f"{e.message} (attempt {attempts} of {self.retries + 1})")
        self._failures = 0
        self.bad_responses += 1
        entry = {
            "message": f"{e.message}; nothing was brought in from it after {attempts} "
            "attempts ('http.retries'), the source goes on",
            "url": _shown(self.url),
            "status": e.status,
            "attempts": attempts,
        }
        return [SourceBatch(_NO_RECORDS, position=self._position(), errors=[entry])]

    def _position(self) -> dict[str, Any]:
        return {"etag": self.etag, "modified": self.modified, "seen": list(self.seen)}

    def _get(self) -> Any:
        """The response's JSON, or None when it has not changed (304)."""
        if self.client is None:
            raise RetriableError("not started")
        headers = {"Accept": "application/json"}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.modified:
            headers["If-Modified-Since"] = self.modified
        where = _shown(self.url)
        try:
            response = self.client.get(self.url, headers=headers)
        except httpx.HTTPError as e:
            self._next_poll = 0.0
            raise RetriableError(f"GET {where}: {type(e).__name__}: {e}") from e
        self.polls += 1
        if response.status_code == 304:
            self.not_modified += 1
            return None
        status = response.status_code
        if status >= 300:
            # a 4xx too: asked again, then in the processing log (a wrong URL or token is
            # for the user to fix; the log and DESCRIBE CONNECTOR's last error say so)
            raise _BadResponseError(f"GET {where}: HTTP {status}: {_excerpt(response)}", status)
        try:
            body = msgspec.json.decode(response.content)
        except msgspec.DecodeError as e:
            raise _BadResponseError(
                f"GET {where}: the response is not JSON ({e}): {_excerpt(response)}", status
            ) from None
        self._pending_etag = response.headers.get("ETag")
        self._pending_modified = response.headers.get("Last-Modified")
        return body

    def _records(self, body: Any) -> list[SourceRecord]:
        found = _follow(body, self.path)
        if found is _MISSING:
            shown = self.config.get("http.records.path", "")
            raise _BadResponseError(f"GET {_shown(self.url)}: the response has no {shown!r}", 200)
        items = found if isinstance(found, list) else [found]
        out: list[SourceRecord] = []
        for item in items:
            key: bytes | None = None
            if self.key_field is not None and isinstance(item, dict) and self.key_field in item:
                value = item[self.key_field]
                text = value if isinstance(value, str) else msgspec.json.encode(value).decode()
                if text in self.seen:
                    self.seen.move_to_end(text)  # still listed: keep it in the window
                    continue
                self.seen[text] = None
                while len(self.seen) > self.window:
                    self.seen.popitem(last=False)
                key = text.encode()
            out.append(SourceRecord(key, msgspec.json.encode(item)))
        # the validators are kept only now: had the records failed, the same response would
        # have been asked for again
        self.etag = self._pending_etag
        self.modified = self._pending_modified
        if out:
            position = self._position()
            for record in out:
                record.position = position
        return out

    def details(self) -> dict[str, Any]:
        return {
            "url": _shown(self.url),
            "interval_ms": int(self.interval * 1000),
            "key.field": self.key_field,
            "polls": self.polls,
            "not_modified": self.not_modified,
            "bad_responses": self.bad_responses,
            "remembered_keys": len(self.seen),
            "delivery": "effectively once by key.field" if self.key_field else "at-least-once",
        }


__all__ = ["HttpSink", "HttpSource"]

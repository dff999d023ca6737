"""A client of a hispeed server with the embedded Engine's methods, over ksqlDB's REST API.

A notebook switches between running the engine in-process and talking to a server by
changing one line:

    >>> import hispeed
    >>> db = hispeed.Client("http://127.0.0.1:8088")     # or: hispeed.Engine("hispeed-data")
    >>> db.execute("CREATE STREAM readings (id STRING KEY, x DOUBLE) "
    ...            "WITH (kafka_topic='readings', value_format='JSON', partitions=1);")
    >>> db.insert("readings", {"ID": "device1", "X": 0.5})
    >>> db.query("SELECT * FROM readings", format="pandas")
    >>> with db.stream("SELECT * FROM readings EMIT CHANGES", from_beginning=True) as rows:
    ...     for row in rows:                              # or: async for row in rows
    ...         print(row)

Statements go to `/ksql` one at a time (their entities come back as the engine's `Result`s);
queries and PRINT go to `/query-stream`; rows go to `/inserts-stream` and records to hispeed's
`POST /topics/{topic}`. A refusal raises a `ServerError` with the server's message (a
`StatementError`, which is also a `SqlError`, when the message names a line and column).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import msgspec
import numpy as np

from hispeed.errors import HispeedError, SqlError
from hispeed.log.producer import DeliveryCallback, Producer
from hispeed.log.records import AppendResult
from hispeed.statements.result import Result

DEFAULT_URL = "http://127.0.0.1:8088"
DELIMITED = "application/vnd.ksqlapi.delimited.v1"
#: Confluent REST Proxy's records: what a producer's batches are sent as
REST_PROXY_TYPE = "application/vnd.kafka.json.v2+json"

Auth = tuple[str, str] | str | None

# where ksqlDB places an error: `line 2:13: ` (its parser) or `Line: 2, Col: 13: ` (its
# analyzer, at a node it names)
_POSITION = re.compile(r"line (\d+):(\d+): |Line: (\d+), Col: (\d+): ")


class ConnectionFailedError(HispeedError):
    """A request that got no answer: the connection failed or timed out midway."""


class UnreachableError(ConnectionFailedError):
    """No server answers at the URL: start one (`hispeed server`) or fix the URL."""


class ServerError(HispeedError):
    """The server refused a request; carries its HTTP status and ksqlDB's error code."""

    def __init__(
        self, message: str, status: int, error_code: int | None = None, statement: str = ""
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.statement = statement


class StatementError(SqlError, ServerError):
    """A statement the server refused at a line and column (both 1-based) of its text."""

    def __init__(
        self,
        message: str,
        line: int,
        column: int,
        *,
        status: int,
        error_code: int | None = None,
        statement: str = "",
    ) -> None:
        ServerError.__init__(self, message, status, error_code, statement)
        self.line = line
        self.column = column
        found = _POSITION.search(message)
        self.reason = message[found.end() :] if found is not None else message
        self.located = found is not None and found.group(3) is not None


def server_error(
    message: str, status: int, error_code: int | None = None, statement: str = ""
) -> ServerError:
    """The error for a server's refusal: a StatementError when the message has a position."""
    found = _POSITION.search(message)
    if found is None:
        return ServerError(message, status, error_code, statement)
    line, column = (int(g) for g in found.groups() if g is not None)
    return StatementError(
        message, line, column, status=status, error_code=error_code, statement=statement
    )


# -- statements in text ---------------------------------------------------------------------


@dataclass(frozen=True)
class Statement:
    """One statement of a text: as written, and with its strings and comments blanked out
    (`bare`), so that its words can be read without being fooled by what is quoted."""

    text: str
    bare: str

    @property
    def words(self) -> list[str]:
        return re.findall(r"[A-Za-z_][A-Za-z0-9_]*", self.bare.upper())

    @property
    def is_query(self) -> bool:
        """SELECT and PRINT, which the server runs at /query-stream rather than /ksql."""
        words = self.words
        return bool(words) and words[0] in ("SELECT", "PRINT")

    @property
    def is_push(self) -> bool:
        """A query that runs until it is closed (or its LIMIT): EMIT CHANGES, or PRINT."""
        words = self.words
        return self.is_query and (words[0] == "PRINT" or "EMIT" in words)


def split_statements(text: str) -> tuple[list[Statement], str]:
    """Split text at each `;` outside quotes and comments.

    Returns the complete statements (with their `;`) and what follows the last one: an
    unfinished statement, or only blanks and comments."""
    statements: list[Statement] = []
    bare: list[str] = []
    start = 0
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in "'`\"":
            end = i + 1
            while True:
                end = text.find(c, end)
                if end < 0 or not text.startswith(c, end + 1):
                    break
                end += 2  # a doubled quote stands for one
            if end < 0:
                break  # a quote not closed yet: the statement goes on
            bare.append(c + " " * (end - i - 1) + c)
            i = end + 1
            continue
        if text.startswith("--", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            bare.append(" " * (end - i))
            i = end
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if end < 0:
                break  # a comment not closed yet
            bare.append(" " * (end + 2 - i))
            i = end + 2
            continue
        bare.append(c)
        i += 1
        if c == ";":
            statements.append(Statement(text[start:i].strip(), "".join(bare).strip()))
            start, bare = i, []
    return statements, text[start:]


def is_blank(text: str) -> bool:
    """Whether text holds nothing but whitespace and complete comments."""
    statements, rest = split_statements(text + "\n;")
    return len(statements) == 1 and statements[0].bare == ";" and not rest.strip()


def statements_of(text: str) -> list[Statement]:
    """Every statement of a text, the last one with or without its `;`."""
    statements, rest = split_statements(text)
    if not is_blank(rest):
        closed, _ = split_statements(rest + ";")
        bare = closed[0].bare[:-1].strip() if closed else rest.strip()  # an unclosed quote
        statements.append(Statement(rest.strip(), bare))
    return statements


# -- ksqlDB's entities as the engine's results ----------------------------------------------


def to_result(entity: Mapping[str, Any]) -> Result:
    """The engine's `Result` for a ksqlDB entity of `/ksql` (its `@type` in `info` when the
    entity is not one hispeed knows), with the entity's warnings."""
    result = _entity_result(entity)
    result.warnings = [
        str(w.get("message", w)) if isinstance(w, Mapping) else str(w)
        for w in entity.get("warnings") or []
    ]
    return result


def _entity_result(entity: Mapping[str, Any]) -> Result:
    kind = str(entity.get("@type", ""))
    text = str(entity.get("statementText", ""))
    if kind == "currentStatus":
        status = entity.get("commandStatus") or {}
        return Result(
            "status", status.get("message", ""), statement=text, query_id=status.get("queryId")
        )
    if kind in ("streams", "tables"):
        return Result(kind, rows=list(entity.get(kind, [])), statement=text)
    if kind == "kafka_topics":
        return Result("topics", rows=list(entity.get("topics", [])), statement=text)
    if kind == "queries":
        rows = [
            {
                "id": q.get("id"),
                "queryString": q.get("queryString", ""),
                "sinks": q.get("sinks", []),
                "state": q.get("state", ""),
                "error": q.get("error"),
            }
            for q in entity.get("queries", [])
        ]
        return Result("queries", rows=rows, statement=text)
    if kind == "properties":
        rows = [{"name": p["name"], "value": p["value"]} for p in entity.get("properties", [])]
        return Result("properties", rows=rows, statement=text)
    if kind == "type_list":
        types = entity.get("types") or {}
        rows = [{"name": name, "type": t.get("type")} for name, t in types.items()]
        return Result("types", rows=rows, statement=text)
    if kind == "function_names":
        return Result("functions", rows=list(entity.get("functions", [])), statement=text)
    if kind == "describe_function":
        info = {k: entity.get(k, "") for k in ("name", "type", "description", "author", "path")}
        rows = [
            {
                "arguments": ", ".join(f.get("argumentTypes", [])),
                "returnType": f.get("returnType"),
                "description": f.get("description", ""),
            }
            for f in entity.get("functions", [])
        ]
        return Result("describe_function", str(info), rows=rows, statement=text, info=info)
    if kind == "analysis":  # hispeed's ANALYZE: rows, with their columns in order
        columns = list(entity.get("columns", []))
        return Result(
            "rows", rows=list(entity.get("rows", [])), statement=text, info={"columns": columns}
        )
    if kind == "connector_list":
        return Result("connectors", rows=list(entity.get("connectors", [])), statement=text)
    if kind == "connector_info":  # CREATE of a Kafka Connect connector
        name = (entity.get("info") or {}).get("name", "")
        return Result("status", f"Created connector {name}", statement=text)
    if kind == "drop_connector":
        name = entity.get("connectorName", "")
        return Result("status", f'Dropped connector "{name}"', statement=text)
    if kind == "warning_entity":
        return Result("status", str(entity.get("message", "")), statement=text)
    if kind == "connector_description":
        info = dict(entity.get("hispeed") or {"name": entity.get("status", {}).get("name")})
        return Result("describe_connector", str(info), statement=text, info=info)
    if kind == "source_descriptions":  # SHOW STREAMS/TABLES EXTENDED: the plain list's rows
        described = list(entity.get("sourceDescriptions", []))
        rows = [
            {
                "name": d.get("name"),
                "type": d.get("type"),
                "topic": d.get("topic"),
                "keyFormat": d.get("keyFormat"),
                "valueFormat": d.get("valueFormat"),
                "isWindowed": d.get("windowType") is not None,
            }
            for d in described
        ]
        shown = "tables" if text.upper().split()[1:2] == ["TABLES"] else "streams"
        return Result(shown, rows=rows, statement=text)
    if kind == "query_descriptions":  # SHOW QUERIES EXTENDED: the plain list's rows
        rows = [
            {
                "id": q.get("id"),
                "queryString": q.get("statementText", ""),
                "sinks": q.get("sinks", []),
                "state": q.get("state", ""),
                "error": next((e.get("errorMessage") for e in q.get("queryErrors") or []), None),
            }
            for q in entity.get("queryDescriptions", [])
        ]
        return Result("queries", rows=rows, statement=text)
    if kind == "sourceDescription":
        return _describe(entity.get("sourceDescription") or {}, text)
    if kind == "queryDescription":
        plan = (entity.get("queryDescription") or {}).get("executionPlan", "")
        return Result("explain", plan, statement=text)
    return Result(kind, statement=text, info=dict(entity))


def _describe(source: Mapping[str, Any], text: str) -> Result:
    rows = [
        {
            "name": f.get("name"),
            "type": (f.get("schema") or {}).get("type"),
            "key": f.get("type") == "KEY",
        }
        for f in source.get("fields", [])
    ]
    info: dict[str, Any] = {
        k: source.get(k, "")
        for k in ("name", "type", "topic", "keyFormat", "valueFormat", "statement")
    }
    info["writeQueries"] = [q.get("id") for q in source.get("writeQueries", [])]
    info["readQueries"] = [q.get("id") for q in source.get("readQueries", [])]
    if source.get("windowType"):
        info["windowType"] = source["windowType"]
    return Result("describe", str(info), rows=rows, statement=text, info=info)


def to_frame(columns: list[str], rows: list[dict[str, Any]], format: str) -> Any:
    """Rows as the engine's `query` gives them: "rows", or a "polars" or "pandas" DataFrame."""
    if format == "rows":
        return rows
    data = {c: [r.get(c) for r in rows] for c in columns}
    if format == "polars":
        import polars as pl

        return pl.DataFrame(data, strict=False)
    if format == "pandas":
        import pandas as pd

        return pd.DataFrame(data, columns=columns)
    raise HispeedError(f"format must be rows, polars or pandas, not {format!r}")


# -- the client -----------------------------------------------------------------------------


class Client:
    """A hispeed (or ksqlDB) server at `url`, with the methods of `hispeed.Engine`.

    `auth` is (user, password) for HTTP basic authentication or a token for a bearer one;
    `timeout` bounds each request in seconds (not the wait for a push query's next row).
    Close the client when done, or use it as a context manager."""

    def __init__(self, url: str = DEFAULT_URL, *, auth: Auth = None, timeout: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        headers = {"accept": "application/json"}
        basic: httpx.BasicAuth | None = None
        if isinstance(auth, str):
            headers["authorization"] = f"Bearer {auth}"
        elif auth is not None:
            user, password = auth
            basic = httpx.BasicAuth(user, password)
        self._http = httpx.Client(base_url=self.url, auth=basic, headers=headers, timeout=timeout)

    # -- requests ---------------------------------------------------------------------------

    def _send(self, request: httpx.Request, *, stream: bool = False) -> httpx.Response:
        try:
            response = self._http.send(request, stream=stream)
        except httpx.ConnectError as e:
            raise UnreachableError(f"cannot reach hispeed at {self.url}: {e}") from None
        except httpx.TimeoutException:
            raise ConnectionFailedError(
                f"hispeed at {self.url} did not answer within {self.timeout} s"
            ) from None
        except httpx.TransportError as e:
            raise self.failed(e) from None
        if response.status_code >= 400:
            if stream:
                self._read(response)
                response.close()
            raise self._refusal(response)
        return response

    def _read(self, response: httpx.Response) -> None:
        try:
            response.read()
        except httpx.TransportError as e:
            raise self.failed(e) from None

    def failed(self, cause: Exception) -> ConnectionFailedError:
        """The error for a connection that broke midway."""
        return ConnectionFailedError(f"the connection to hispeed at {self.url} failed: {cause}")

    def _refusal(self, response: httpx.Response) -> ServerError:
        try:
            doc = response.json()
        except ValueError:
            doc = None
        if isinstance(doc, dict) and isinstance(doc.get("message"), str):
            code = doc.get("error_code")
            return server_error(
                doc["message"],
                response.status_code,
                code if isinstance(code, int) else None,
                str(doc.get("statementText", "")),
            )
        text = response.text.strip() or response.reason_phrase
        return ServerError(f"HTTP {response.status_code}: {text}", response.status_code)

    def _request(self, method: str, path: str, json: Any = None, **kwargs: Any) -> Any:
        response = self._send(self._http.build_request(method, path, json=json, **kwargs))
        try:
            return response.json()
        except ValueError:
            raise ConnectionFailedError(
                f"hispeed at {self.url} answered {path} with something other than JSON: "
                f"{response.text[:200]!r}"
            ) from None

    def _open_query(self, sql: str, properties: Mapping[str, Any] | None) -> httpx.Response:
        """A /query-stream response, still streaming, whose header line is yet to be read."""
        request = self._http.build_request(
            "POST",
            "/query-stream",
            json={"sql": sql, "properties": dict(properties or {})},
            headers={"accept": DELIMITED},
            timeout=httpx.Timeout(self.timeout, read=None),
        )
        return self._send(request, stream=True)

    # -- the engine's methods ---------------------------------------------------------------

    def execute(self, sql: str, properties: Mapping[str, Any] | None = None) -> list[Result]:
        """Run one or more statements; returns a result per statement, as `Engine.execute`.

        Pull queries give a "rows" result (its `info` names the columns and their types);
        push queries run through `stream()`."""
        results = []
        for statement in statements_of(sql):
            if statement.is_push:
                raise HispeedError(
                    f"{statement.text[:60]!r} is a push query: run it with Client.stream()"
                )
            if statement.is_query:
                columns, types, rows = self._pull(statement.text, properties)
                results.append(
                    Result(
                        "rows",
                        rows=rows,
                        statement=statement.text,
                        info={"columns": columns, "types": types},
                    )
                )
                continue
            entities = self._request(
                "POST",
                "/ksql",
                json={"ksql": statement.text, "streamsProperties": dict(properties or {})},
            )
            if not entities:  # INSERT VALUES answers with no entity, as in ksqlDB
                results.append(Result("status", "Inserted", statement=statement.text))
            results.extend(to_result(e) for e in entities)
        return results

    def _pull(
        self, sql: str, properties: Mapping[str, Any] | None = None
    ) -> tuple[list[str], list[str], list[dict[str, Any]]]:
        response = self._open_query(sql, properties)
        try:
            self._read(response)
        finally:
            response.close()
        lines = [line for line in response.text.splitlines() if line.strip()]
        if not lines:
            raise ConnectionFailedError(f"hispeed at {self.url} answered a query with nothing")
        header = _header(lines[0])
        names = header["columnNames"]
        return names, header["columnTypes"], [_row(names, line) for line in lines[1:]]

    def query(self, sql: str, *, format: str = "rows") -> Any:
        """Run a pull query: the current rows of a table (or what a stream holds now).

        `format` is "rows" (a list of dicts keyed by column name), "polars" or "pandas"."""
        if format not in ("rows", "polars", "pandas"):
            raise HispeedError(f"format must be rows, polars or pandas, not {format!r}")
        statements = statements_of(sql)
        if len(statements) != 1 or not statements[0].is_query:
            raise HispeedError("expected one SELECT statement")
        if statements[0].is_push:
            raise HispeedError("a push query (EMIT CHANGES) runs with Client.stream()")
        columns, _, rows = self._pull(statements[0].text)
        return to_frame(columns, rows, format)

    def analyze(self, sql: str, *, format: str = "rows") -> Any:
        """Run analytical SQL (DuckDB's) over the server's streams' history and tables'
        current state, as `Engine.analyze` (an `ANALYZE` statement over `/ksql`; its rows
        are bounded by the server's `analyze_max_rows`).

        `format` is "rows" (a list of dicts), "polars" or "pandas"."""
        if format not in ("rows", "polars", "pandas"):
            raise HispeedError(f"format must be rows, polars or pandas, not {format!r}")
        (result,) = self.execute(f"ANALYZE {sql.strip().removesuffix(';')}")
        columns = list(result.info.get("columns") or (result.rows[0] if result.rows else []))
        return to_frame(columns, result.rows, format)

    def stream(
        self,
        sql: str,
        *,
        from_beginning: bool | None = None,
        properties: Mapping[str, Any] | None = None,
    ) -> RemotePushQuery:
        """Run a push query: its rows as they happen, as an iterator or an async iterator.

        The query runs on the server from when this returns; `from_beginning` reads its
        source from the first record (default: from now on, or as `properties` say with
        `auto.offset.reset`). Close it (or leave its `with` block) to end it on the server."""
        props = dict(properties or {})
        if from_beginning is not None:
            props["auto.offset.reset"] = "earliest" if from_beginning else "latest"
        return RemotePushQuery(self, self._open_query(sql, props))

    def insert(self, name: str, row: Mapping[str, Any]) -> None:
        """Insert one row (column names to JSON values) into a stream or table."""
        body = msgspec.json.encode({"target": name}) + b"\n" + msgspec.json.encode(dict(row))
        response = self._send(
            self._http.build_request(
                "POST", "/inserts-stream", content=body, headers={"content-type": DELIMITED}
            )
        )
        for line in response.text.splitlines():
            if not line.strip():
                continue
            ack = msgspec.json.decode(line)
            if isinstance(ack, dict) and ack.get("status") == "error":
                raise server_error(
                    str(ack.get("message", "the row was refused")),
                    response.status_code,
                    ack.get("error_code"),
                )

    def info(self) -> dict[str, Any]:
        """The server's `/info`: its version, cluster and status (and hispeed's details)."""
        doc = self._request("GET", "/info")
        if not isinstance(doc, dict):
            raise ConnectionFailedError(f"hispeed at {self.url} answered /info with {doc!r}")
        return doc

    def processing_errors(self, query_id: str) -> list[dict[str, Any]]:
        """The newest processing-log records of one query (hispeed's dashboard API; empty
        from a server without one, such as ksqlDB)."""
        try:
            doc = self._request("GET", "/api/overview")
        except HispeedError:
            return []
        entries = doc.get("processing_log", []) if isinstance(doc, dict) else []
        return [
            e["value"]
            for e in entries
            if isinstance(e, dict)
            and isinstance(e.get("value"), dict)
            and e["value"].get("query") == query_id
        ]

    def produce(
        self, topic: str, records: Sequence[Any], key_field: str | None = None
    ) -> list[dict[str, int]]:
        """Append JSON records to a topic (created if the server allows); returns each
        record's partition and offset. `key_field` names the field that keys each record."""
        params = {"key_field": key_field} if key_field is not None else {}
        doc = self._request(
            "POST", f"/topics/{quote(topic, safe='')}", json=list(records), params=params
        )
        offsets: list[dict[str, int]] = doc["offsets"]
        return offsets

    def producer(self, config: Mapping[str, Any] | None = None, **options: Any) -> Producer:
        """A producer in confluent-kafka's shape (see `hispeed.log.producer`) whose batches go
        to the server's `POST /topics/{topic}` (one request per batch, as REST Proxy records).

        Values are JSON: bytes or str are sent as the JSON text they hold, anything else is
        encoded as JSON; keys are text. The server stamps the records (no `timestamp`) and
        takes no headers.

            >>> with client.producer(linger_ms=5) as p:
            ...     p.produce("readings", {"X": 0.5}, key="device1")
        """
        return RemoteProducer(_TopicsEndpoint(self), config, **options)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _TopicsEndpoint:
    """Appends a producer's batches through the server's `POST /topics/{topic}`."""

    linger_ms = 5.0

    def __init__(self, client: Client) -> None:
        self._client = client

    def append(self, topic: str, records: Any, *, partition: int | None = None) -> AppendResult:
        """POST one batch (APPEND_SCHEMA) as REST Proxy records; where each landed."""
        keys = records.column("key").to_pylist()
        values = records.column("value").to_pylist()
        out: list[dict[str, Any]] = []
        for i, (key, value) in enumerate(zip(keys, values, strict=True)):
            try:
                text = None if key is None else key.decode()
            except UnicodeDecodeError:
                raise HispeedError(f"record {i}: a key sent to a server is text") from None
            record: dict[str, Any] = {
                "key": text,
                "value": None if value is None else msgspec.Raw(value),
            }
            if partition is not None:
                record["partition"] = partition
            out.append(record)
        doc = self._client._request(
            "POST",
            f"/topics/{quote(topic, safe='')}",
            content=msgspec.json.encode({"records": out}),
            headers={"content-type": REST_PROXY_TYPE},
        )
        places = doc["offsets"]
        return AppendResult(
            np.array([p["partition"] for p in places], np.int32),
            np.array([p["offset"] for p in places], np.int64),
        )


class RemoteProducer(Producer):
    """`Client.producer()`: values JSON-encoded unless already bytes or str (JSON text)."""

    def produce(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        partition: int = -1,
        on_delivery: DeliveryCallback | None = None,
        timestamp: int = 0,
        headers: Any = None,
        callback: DeliveryCallback | None = None,
    ) -> None:
        """As `Producer.produce`; `timestamp` and `headers` are refused (the server's
        endpoint stamps records itself and takes no headers)."""
        if timestamp or headers:
            raise HispeedError(
                "a server's /topics endpoint stamps records itself and takes no headers: "
                "produce without timestamp= and headers="
            )
        if value is not None and not isinstance(value, bytes | str):
            value = msgspec.json.encode(value)
        super().produce(topic, value, key, partition, on_delivery, 0, None, callback)


def _header(line: str) -> dict[str, Any]:
    doc = msgspec.json.decode(line)
    if not isinstance(doc, dict):
        raise ConnectionFailedError(f"a query's first line is not its header: {line[:200]!r}")
    _raise_if_error(doc)
    return doc


def _row(names: list[str], line: str) -> dict[str, Any]:
    values = msgspec.json.decode(line)
    if isinstance(values, dict):  # ksqlDB may end a stream with an error object
        _raise_if_error(values)
        raise ConnectionFailedError(f"a query's row is not a JSON array: {line[:200]!r}")
    return dict(zip(names, values, strict=False))


def _raise_if_error(doc: Mapping[str, Any]) -> None:
    if "error_code" in doc or str(doc.get("@type", "")).endswith("error"):
        code = doc.get("error_code")
        raise server_error(
            str(doc.get("message", doc)), 200, code if isinstance(code, int) else None
        )


class RemotePushQuery:
    """A push query running on a server: its rows as dicts, as they arrive.

    Iterate it, or `async for` it; `close()` ends it on the server (`/close-query`). It
    ends by itself when its LIMIT is reached or the server stops it."""

    def __init__(self, client: Client, response: httpx.Response) -> None:
        self.client = client
        self.closed = False
        self.ended = False  # the server ended the stream (LIMIT, or the query stopped)
        self._response = response
        self._lines = response.iter_lines()
        try:
            line = self._next_line()
            if line is None:
                raise ConnectionFailedError(
                    f"hispeed at {client.url} ended the query before sending its header"
                )
            header = _header(line)
        except BaseException:
            response.close()
            raise
        self.id: str = header["queryId"]
        self.columns: list[str] = header["columnNames"]
        self.types: list[str] = header["columnTypes"]

    def _next_line(self) -> str | None:
        """The next non-empty line, or None at the end of the stream."""
        try:
            for line in self._lines:
                if line.strip():
                    return line
        except httpx.TransportError as e:
            if self.closed:  # close() from another thread cut the stream
                return None
            raise self.client.failed(e) from None
        return None

    def next_row(self) -> dict[str, Any] | None:
        """The next row, waiting for it; None once the query has ended."""
        if self.closed or self.ended:
            return None
        line = self._next_line()
        if line is None:
            self.ended = True
            self._response.close()
            return None
        return _row(self.columns, line)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while (row := self.next_row()) is not None:
            yield row

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._aiter()

    async def _aiter(self) -> AsyncIterator[dict[str, Any]]:
        while (row := await asyncio.to_thread(self.next_row)) is not None:
            yield row

    def close(self) -> None:
        """End the query on the server, and the stream of its rows."""
        if self.closed:
            return
        self.closed = True
        try:
            if not self.ended:
                # a refusal means it ended on its own meanwhile; a lost server ended it too
                with contextlib.suppress(ServerError, ConnectionFailedError):
                    self.client._request("POST", "/close-query", json={"queryId": self.id})
        finally:
            with contextlib.suppress(httpx.HTTPError, OSError):
                self._response.close()

    def __enter__(self) -> RemotePushQuery:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> RemotePushQuery:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.close)


__all__ = [
    "Client",
    "ConnectionFailedError",
    "RemotePushQuery",
    "ServerError",
    "Statement",
    "StatementError",
    "UnreachableError",
    "split_statements",
    "statements_of",
    "to_result",
]

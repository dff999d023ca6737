"""hispeed's gRPC service (`proto/hispeed.proto`): Produce, Query and Execute over one engine.

- Produce (client streaming): each ProduceRequest is checked record by record, then
  appended by the same code path as HTTP ingestion (`hispeed.server.state.append_batch`), so a
  request lands whole or not at all. Requests are independent: one with a bad record writes
  nothing, and the reply names its index and the record's, while the others land.
- Query (server streaming): a header, then rows as JSON arrays. A pull query's rows end the
  stream; a push query (EMIT CHANGES) runs until the client cancels, which closes it.
- Execute (unary): statements as `POST /ksql` runs them (`statements.run_ksql`); the reply is
  ksqlDB's JSON list of entities. A failure ends the call with INVALID_ARGUMENT (NOT_FOUND,
  INTERNAL): the details are ksqlDB's message (with line and column for a SQL error), and
  the trailing metadata `hispeed-error-bin` holds ksqlDB's whole error object as JSON.

With `auth_file` set, every call carries metadata `authorization: Basic ...` or
`Bearer ...` (`hispeed.server.auth`); others end UNAUTHENTICATED. Messages larger than
`max_request_bytes` end RESOURCE_EXHAUSTED before any handler runs.

Each call holds a worker thread while it runs, push queries included: `max_workers` bounds
the calls served at once (more wait in gRPC's queue).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NoReturn

import grpc
import msgspec

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.errors import ConfigError, HispeedError
from hispeed.server.auth import Credentials
from hispeed.server.ingest import IngestBatch, IngestError, decode_json
from hispeed.server.proto import hispeed_pb2 as pb
from hispeed.server.proto import hispeed_pb2_grpc as pb_grpc
from hispeed.server.state import append_batch
from hispeed.server.statements import run_ksql
from hispeed.server.streaming import QueryRegistry, QuerySession, TooManyQueriesError, encode

log = logging.getLogger(__name__)

#: the trailing metadata of a failed Execute: ksqlDB's error object as JSON
ERROR_TRAILER = "hispeed-error-bin"
#: how long a push query waits for rows before it checks whether the client is still there
_POLL_S = 0.25

_STATUS_CODES = {
    400: grpc.StatusCode.INVALID_ARGUMENT,
    401: grpc.StatusCode.UNAUTHENTICATED,
    404: grpc.StatusCode.NOT_FOUND,
}


class _RequestError(HispeedError):
    """A ProduceRequest that cannot land; `errors` holds (record index or -1, message)."""

    def __init__(self, errors: list[tuple[int, str]]) -> None:
        super().__init__("; ".join(m for _, m in errors))
        self.errors = errors


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("grpc's abort returns only by raising")


def _record_batch(records: Iterable[pb.Record]) -> IngestBatch:
    """The records of a request as an ingestion batch; _RequestError names every bad one."""
    batch = IngestBatch([], [], [])
    errors: list[tuple[int, str]] = []
    for i, record in enumerate(records):
        kind = record.WhichOneof("value")
        value: bytes | None
        if kind == "json":
            try:
                value = msgspec.json.encode(decode_json(record.json, f"record {i}: the value"))
            except IngestError as e:
                errors.append((i, str(e)))
                continue
            except RecursionError:
                errors.append((i, f"record {i}: the value nests too deeply"))
                continue
        elif kind == "raw":
            value = record.raw
        elif record.tombstone:
            value = None
        else:
            errors.append((i, f"record {i} has no value: set json, raw, or tombstone"))
            continue
        if kind is not None and record.tombstone:
            errors.append((i, f"record {i} has a value and tombstone set: choose one"))
            continue
        partition = record.partition if record.HasField("partition") else None
        if partition is not None and partition < 0:
            errors.append((i, f"record {i}: partition {partition} is negative"))
            continue
        key_kind = record.WhichOneof("key_kind")
        key = record.key.encode() if key_kind == "key" else record.key_bytes if key_kind else None
        batch.keys.append(key)
        batch.values.append(value)
        batch.partitions.append(partition)
    if errors:
        raise _RequestError(errors)
    return batch


class _Servicer(pb_grpc.HispeedServicer):
    def __init__(self, engine: Engine, settings: Settings, counts: dict[str, int]) -> None:
        self.engine = engine
        self.settings = settings
        #: the push queries open, so that one client cannot hold every worker thread
        self.queries = QueryRegistry(settings.max_push_queries_per_client)
        self.counts = counts
        self._lock = threading.Lock()

    def _count(self, name: str, n: int = 1) -> None:
        with self._lock:
            self.counts[name] += n

    def Produce(
        self, request_iterator: Iterator[pb.ProduceRequest], context: grpc.ServicerContext
    ) -> pb.ProduceResponse:
        response = pb.ProduceResponse()
        topic = ""
        for index, request in enumerate(request_iterator):
            self._count("produce_requests")
            topic = request.topic or topic
            try:
                if not topic:
                    raise _RequestError([(-1, f"request {index} names no topic")])
                batch = _record_batch(request.records)
                try:
                    places = append_batch(self.engine.log, self.settings, topic, batch, None)
                except HispeedError as e:
                    raise _RequestError([(-1, f"request {index} to {topic!r}: {e}")]) from None
            except _RequestError as e:
                self._count("errors")
                for record, message in e.errors:
                    response.errors.add(request=index, record=record, message=message)
                continue
            result = response.results.add(request=index, topic=topic)
            result.partitions.extend(p["partition"] for p in places)
            result.offsets.extend(p["offset"] for p in places)
            response.records_written += len(places)
            self._count("records_in", len(places))
        return response

    def Query(
        self, request: pb.QueryRequest, context: grpc.ServicerContext
    ) -> Iterator[pb.QueryResponse]:
        self._count("queries")
        properties: dict[str, Any] = dict(request.properties)
        if request.from_beginning:
            properties["auto.offset.reset"] = "earliest"
        try:
            session = QuerySession(
                self.engine,
                request.sql,
                properties,
                self.queries,
                settings=self.settings,
                client=_peer_host(context.peer()),
            )
        except TooManyQueriesError as e:
            self._count("errors")
            _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED, str(e))
        except HispeedError as e:
            self._count("errors")
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(e))
        # a client that cancels (or goes away) ends the query within one poll
        context.add_callback(session.cancel)
        self._count("queries_open")
        try:
            header = session.header
            yield pb.QueryResponse(
                header=pb.QueryHeader(
                    query_id=header.query_id,
                    column_names=header.names,
                    column_types=header.types,
                    key_columns=sorted(header.key_names),
                    pull=session.is_pull,
                )
            )
            while not session.closed and not session.cancelled and context.is_active():
                for row in session.poll(_POLL_S):
                    yield pb.QueryResponse(row=pb.QueryRow(json=encode(row).decode()))
                    self._count("rows_out")
        finally:
            session.close()
            self._count("queries_open", -1)

    def Execute(
        self, request: pb.ExecuteRequest, context: grpc.ServicerContext
    ) -> pb.ExecuteResponse:
        self._count("statements")
        status, body = run_ksql(self.engine, request.sql, dict(request.properties), self.settings)
        if status == 200:
            return pb.ExecuteResponse(json=encode(body).decode())
        self._count("errors")
        context.set_trailing_metadata(((ERROR_TRAILER, encode(body)),))
        code = _STATUS_CODES.get(status, grpc.StatusCode.INTERNAL)
        message = body.get("message") if isinstance(body, dict) else None
        _abort(context, code, str(message or f"the statements failed with status {status}"))


def _peer_host(peer: str) -> str:
    """The client's address of a gRPC peer ("ipv4:127.0.0.1:5000", "ipv6:[::1]:5000")."""
    _, _, address = peer.partition(":")
    host, _, _ = address.rpartition(":")
    return host or peer


class _AuthInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    """Ends every call without an accepted `authorization` metadata value UNAUTHENTICATED."""

    def __init__(self, credentials: Credentials) -> None:
        self.credentials = credentials

    def intercept_service(
        self,
        continuation: Callable[[Any], grpc.RpcMethodHandler],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = continuation(handler_call_details)
        header = next(
            (
                v.decode("latin-1") if isinstance(v, bytes) else v
                for k, v in handler_call_details.invocation_metadata or ()
                if k == "authorization"
            ),
            None,
        )
        if handler is None or self.credentials.check(header):
            return handler
        message = (
            "unauthenticated: send metadata 'authorization' with 'Basic base64(user:password)' "
            "or 'Bearer TOKEN'"
            if header is None
            else "unauthenticated: the credentials in 'authorization' are not accepted"
        )

        def refuse(request: Any, context: grpc.ServicerContext) -> Any:
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, message)

        if handler.request_streaming and handler.response_streaming:
            return grpc.stream_stream_rpc_method_handler(refuse)
        if handler.request_streaming:
            return grpc.stream_unary_rpc_method_handler(refuse)
        if handler.response_streaming:
            return grpc.unary_stream_rpc_method_handler(refuse)
        return grpc.unary_unary_rpc_method_handler(refuse)


class GrpcServer:
    """The gRPC service on `settings.host:settings.grpc_port`, over a running engine."""

    def __init__(self, engine: Engine, settings: Settings, *, max_workers: int = 32) -> None:
        if settings.grpc_port <= 0:
            raise ConfigError("the gRPC service needs a grpc_port (0 means no gRPC service)")
        self.engine = engine
        self.settings = settings
        self.address = f"{settings.host}:{settings.grpc_port}"
        self.max_workers = max_workers
        self.credentials = Credentials.load(settings.auth_file) if settings.auth_file else None
        self._counts = dict.fromkeys(
            (
                "produce_requests",
                "records_in",
                "queries",
                "queries_open",
                "rows_out",
                "statements",
                "errors",
            ),
            0,
        )
        self._server: grpc.Server | None = None

    def start(self) -> None:
        """Listen and serve on gRPC's own threads; raises HispeedError if the port is taken."""
        if self._server is not None:
            return
        limit = self.settings.max_request_bytes
        interceptors = [_AuthInterceptor(self.credentials)] if self.credentials else []
        server = grpc.server(
            ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="hispeed-grpc"),
            interceptors=interceptors,
            options=[
                ("grpc.max_receive_message_length", limit),
                ("grpc.so_reuseport", 0),  # a port in use is an error, not a shared port
            ],
        )
        servicer = _Servicer(self.engine, self.settings, self._counts)
        pb_grpc.add_HispeedServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        try:
            server.add_insecure_port(self.address)
        except RuntimeError as e:
            raise HispeedError(
                f"the gRPC service cannot listen on {self.address} ({e}): choose another "
                "grpc_port, or 0 for no gRPC service"
            ) from None
        server.start()
        self._server = server
        log.info("gRPC service listening on %s", self.address)

    def stop(self, grace: float | None = 5.0) -> None:
        """Stop listening; calls under way get `grace` seconds to finish, then are cancelled
        (push queries are closed)."""
        server, self._server = self._server, None
        if server is not None:
            server.stop(grace).wait()

    def stats(self) -> dict[str, int]:
        """Counts since start (produce requests, records in, queries, rows out, statements,
        errors) and the queries streaming now (`queries_open`)."""
        return dict(self._counts)


__all__ = ["ERROR_TRAILER", "GrpcServer"]

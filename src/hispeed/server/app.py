"""The HTTP app: server info and health as ksqlDB answers them, and JSON ingestion into topics."""

from __future__ import annotations

import logging
import signal
import time
from collections import defaultdict
from typing import Any

import pyarrow as pa
import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hispeed import __version__
from hispeed.config import Settings
from hispeed.errors import HispeedError, UnknownTopicError
from hispeed.log import TopicPartition, partition_for_key
from hispeed.log.base import Log
from hispeed.log.embedded import EmbeddedLog
from hispeed.server.ingest import IngestError, parse_body

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 16 * 1024 * 1024


def error_response(status: int, message: str, error_code: int | None = None) -> JSONResponse:
    """ksqlDB's error shape: {"@type", "error_code", "message"}."""
    return JSONResponse(
        {"@type": "generic_error", "error_code": error_code or status * 100, "message": message},
        status_code=status,
    )


def create_app(log_: Log, settings: Settings) -> Starlette:
    """The ASGI app over an open log. The caller owns the log and closes it."""
    started = time.time()

    async def info(request: Request) -> Response:
        return JSONResponse(
            {
                "KsqlServerInfo": {
                    "version": __version__,
                    "kafkaClusterId": "embedded" if isinstance(log_, EmbeddedLog) else "kafka",
                    "ksqlServiceId": "hispeed_",
                    "serverStatus": "RUNNING",
                },
                "hispeed": {
                    "data_dir": str(settings.data_dir),
                    "uptime_s": round(time.time() - started, 3),
                },
            }
        )

    async def healthcheck(request: Request) -> Response:
        healthy = True
        try:
            await run_in_threadpool(log_.list_topics)
        except HispeedError:
            healthy = False
        body = {
            "isHealthy": healthy,
            "details": {"metastore": {"isHealthy": healthy}, "kafka": {"isHealthy": healthy}},
        }
        return JSONResponse(body, status_code=200 if healthy else 503)

    async def list_topics(request: Request) -> Response:
        names = await run_in_threadpool(log_.list_topics)
        return JSONResponse({"topics": names})

    async def describe_topic(request: Request) -> Response:
        name = request.path_params["topic"]
        topic = await run_in_threadpool(log_.describe_topic, name)
        return JSONResponse(
            {
                "name": topic.name,
                "partitions": [vars(p) for p in topic.partitions],
                "config": topic.config.to_dict(),
            }
        )

    async def produce(request: Request) -> Response:
        name = request.path_params["topic"]
        length = request.headers.get("content-length")
        if length is not None and int(length) > MAX_BODY_BYTES:
            return error_response(
                413, f"the body is over {MAX_BODY_BYTES} bytes; send less at once"
            )
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_BODY_BYTES:
                return error_response(
                    413, f"the body is over {MAX_BODY_BYTES} bytes; send less at once"
                )
        params = request.query_params
        partition = params.get("partition")
        try:
            batch = parse_body(
                body,
                request.headers.get("content-type", "application/json"),
                key_field=params.get("key_field"),
                key=params.get("key"),
            )
            fixed_partition = int(partition) if partition is not None else None
        except ValueError:
            return error_response(400, f"partition must be a number, not {partition!r}")
        result = await run_in_threadpool(_append, log_, settings, name, batch, fixed_partition)
        return JSONResponse({"topic": name, "offsets": result})

    return Starlette(
        routes=[
            Route("/info", info, methods=["GET"]),
            Route("/healthcheck", healthcheck, methods=["GET"]),
            Route("/topics", list_topics, methods=["GET"]),
            Route("/topics/{topic}", describe_topic, methods=["GET"]),
            Route("/topics/{topic}", produce, methods=["POST"]),
        ],
        exception_handlers={
            HispeedError: _hispeed_error,
            HTTPException: _http_error,
            Exception: _internal_error,
        },
    )


def _append(
    log_: Log, settings: Settings, name: str, batch: Any, partition: int | None
) -> list[dict[str, int]]:
    if name not in log_.list_topics(internal=True):
        if not settings.auto_create_topics:
            raise UnknownTopicError(f"topic {name!r} does not exist")
        log_.create_topic(name, settings.default_partitions, exist_ok=True)
    n = len(batch.values)
    if partition is not None or all(p is None for p in batch.partitions):
        records = pa.record_batch(
            {"key": pa.array(batch.keys, pa.binary()), "value": pa.array(batch.values, pa.binary())}
        )
        result = log_.append(name, records, partition=partition)
        return [{"partition": p, "offset": o} for p, o in result.pairs()]
    # REST Proxy records that name partitions: place the others as the log would, then write
    # every partition's share in one transaction so that the request lands whole or not at all.
    count = len(log_.describe_topic(name).partitions)
    rows_of: dict[int, list[int]] = defaultdict(list)
    for i, (key, part) in enumerate(zip(batch.keys, batch.partitions, strict=True)):
        if part is None:
            part = partition_for_key(key, count) if key is not None else i % count
        elif part >= count:
            raise IngestError(f"records[{i}].partition {part} does not exist: {name!r} has {count}")
        rows_of[part].append(i)
    txn = log_.transaction()
    try:
        for part, rows in rows_of.items():
            txn.append(name, [(batch.keys[i], batch.values[i]) for i in rows], partition=part)
    except BaseException:
        txn.abort()
        raise
    ranges = txn.commit()
    out = [{"partition": 0, "offset": 0} for _ in range(n)]
    for part, rows in rows_of.items():
        base = ranges[TopicPartition(name, part)][0]
        for j, i in enumerate(rows):
            out[i] = {"partition": part, "offset": base + j}
    return out


async def _hispeed_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HispeedError)
    status = 404 if isinstance(exc, UnknownTopicError) else 400
    if isinstance(exc, IngestError):
        status = 400
    return error_response(status, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return error_response(exc.status_code, str(exc.detail))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.exception("internal error serving %s %s", request.method, request.url.path)
    return error_response(500, f"internal error: {type(exc).__name__}: {exc}")


def _exit_normally(signum: int, frame: object) -> None:
    raise SystemExit(0)


def serve(settings: Settings) -> None:
    """Open the data directory, serve until interrupted, then close the log cleanly."""
    log_ = EmbeddedLog(
        settings.data_dir,
        fsync=settings.fsync,
        default_partitions=settings.default_partitions,
        cleaner_interval_s=settings.cleaner_interval_s,
    )
    try:
        app = create_app(log_, settings)
        config = uvicorn.Config(
            app,
            host=settings.host,
            port=settings.port,
            log_level="warning",
            access_log=False,
            lifespan="off",
        )
        server = uvicorn.Server(config)
        print(
            f"hispeed {__version__} server listening on http://{settings.host}:{settings.port} "
            f"(data directory {settings.data_dir.resolve()}, fsync {settings.fsync})",
            flush=True,
        )
        # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the
        # handler it found: make that handler end the process normally, so the log closes.
        previous = {
            sig: signal.signal(sig, _exit_normally) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            server.run()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    finally:
        log_.close()
        print("hispeed server stopped", flush=True)


__all__ = ["create_app", "error_response", "serve"]

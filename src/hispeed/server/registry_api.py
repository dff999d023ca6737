"""The schema registry's REST API, as Confluent's Schema Registry speaks it.

Served by `hispeed server` on its main port under `/schema-registry` (`PREFIX`), so a client's
registry URL is `http://HOST:8088/schema-registry` (confluent-kafka's `SchemaRegistryClient`,
ksqlDB's `ksql.schema.registry.url`). It serves whichever registry the engine has: its own
(kept in the log) or the external one `ksql.schema.registry.url` names.

    GET    /schemas/types, /schemas/ids/{id}[/schema|/subjects|/versions]
    GET    /subjects;  POST /subjects/{s} (lookup);  DELETE /subjects/{s}
    GET    /subjects/{s}/versions;  POST /subjects/{s}/versions (register)
    GET    /subjects/{s}/versions/{v}[/schema];  DELETE /subjects/{s}/versions/{v}
    POST   /compatibility/subjects/{s}/versions[/{v}]
    GET|PUT|DELETE /config[/{s}];  GET|PUT /mode[/{s}];  GET /contexts

Answers are `application/vnd.schemaregistry.v1+json`; errors `{"error_code", "message"}` with
Confluent's codes (40401 subject, 40402 version, 40403 schema not found, 409 incompatible,
42201 invalid schema, 42202 invalid version, 42203 invalid level), the HTTP status their first
three digits.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route

from hispeed.registry import SCHEMA_TYPES, RegisteredSchema, RegistryError, Schema, SchemaRegistry
from hispeed.registry import SchemaReference as Reference
from hispeed.registry.durable import check_version

log = logging.getLogger(__name__)

PREFIX = "/schema-registry"
CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"


class BadRequestError(RegistryError):
    """A request body or parameter the API cannot take (HTTP 400 or 422)."""


def reply(body: Any, status: int = 200) -> Response:
    """A JSON answer in the registry's content type."""
    return Response(json.dumps(body), status_code=status, media_type=CONTENT_TYPE)


def error(code: int, message: str) -> Response:
    """Confluent's error shape; the HTTP status is the code's first three digits."""
    status = code if code < 1000 else int(str(code)[:3])
    return reply({"error_code": code, "message": message}, status)


Handler = Callable[[Request, SchemaRegistry], Any]


def registry_app(registry: Callable[[], SchemaRegistry], max_body: int) -> Starlette:
    """The API over the registry `registry()` gives (read per request: the engine's)."""

    def endpoint(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def serve(request: Request) -> Response:
            try:
                body = await _body(request, max_body) if request.method in ("POST", "PUT") else None
                request.state.body = body
                # a registry call may append to the log, read Kafka or run protoc: not here
                result = await run_in_threadpool(handler, request, registry())
            except RegistryError as e:
                return error(e.code, str(e))
            except ClientDisconnect:
                return error(400, "the client closed the connection before its request ended")
            return result if isinstance(result, Response) else reply(result)

        return serve

    routes = [
        Route("/", endpoint(lambda r, g: {}), methods=["GET"]),
        Route("/schemas/types", endpoint(lambda r, g: list(SCHEMA_TYPES)), methods=["GET"]),
        Route("/schemas/ids/{id}", endpoint(_schema_by_id), methods=["GET"]),
        Route("/schemas/ids/{id}/schema", endpoint(_raw_by_id), methods=["GET"]),
        Route("/schemas/ids/{id}/subjects", endpoint(_id_subjects), methods=["GET"]),
        Route("/schemas/ids/{id}/versions", endpoint(_id_versions), methods=["GET"]),
        Route("/subjects", endpoint(_subjects), methods=["GET"]),
        Route("/subjects/{subject}", endpoint(_lookup), methods=["POST"]),
        Route("/subjects/{subject}", endpoint(_delete_subject), methods=["DELETE"]),
        Route("/subjects/{subject}/versions", endpoint(_versions), methods=["GET"]),
        Route("/subjects/{subject}/versions", endpoint(_register), methods=["POST"]),
        Route("/subjects/{subject}/versions/{version}", endpoint(_version), methods=["GET"]),
        Route(
            "/subjects/{subject}/versions/{version}", endpoint(_delete_version), methods=["DELETE"]
        ),
        Route("/subjects/{subject}/versions/{version}/schema", endpoint(_raw), methods=["GET"]),
        Route("/compatibility/subjects/{subject}/versions", endpoint(_compat), methods=["POST"]),
        Route(
            "/compatibility/subjects/{subject}/versions/{version}",
            endpoint(_compat),
            methods=["POST"],
        ),
        Route("/config", endpoint(_get_config), methods=["GET"]),
        Route("/config", endpoint(_put_config), methods=["PUT"]),
        Route("/config", endpoint(_delete_config), methods=["DELETE"]),
        Route("/config/{subject}", endpoint(_get_config), methods=["GET"]),
        Route("/config/{subject}", endpoint(_put_config), methods=["PUT"]),
        Route("/config/{subject}", endpoint(_delete_config), methods=["DELETE"]),
        Route("/mode", endpoint(_mode), methods=["GET", "PUT"]),
        Route("/mode/{subject}", endpoint(_mode), methods=["GET", "PUT"]),
        Route("/contexts", endpoint(lambda r, g: ["."]), methods=["GET"]),
    ]

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        return error(exc.status_code, f"HTTP {exc.status_code} {exc.detail}")

    async def internal(request: Request, exc: Exception) -> Response:
        log.exception("internal error serving %s %s", request.method, request.url.path)
        return error(50001, f"internal error: {type(exc).__name__}")

    return Starlette(
        routes=routes, exception_handlers={HTTPException: http_error, Exception: internal}
    )


async def _body(request: Request, limit: int) -> Any:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequestError(f"the body is over {limit} bytes", 413)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as e:
        raise BadRequestError(f"the body is not JSON: {e}", 400) from None


# -- request parts ---------------------------------------------------------------------------


def _flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").strip().lower() == "true"


def _id(request: Request) -> int:
    text = request.path_params["id"]
    try:
        return int(text)
    except ValueError:
        raise RegistryError(f"Schema {text} not found", 40403) from None


def _version_param(request: Request) -> int | str:
    text = str(request.path_params["version"])
    if text == "latest" or text == "-1":
        return "latest"
    return check_version(text)


def _schema_body(request: Request) -> Schema:
    """The schema a register, lookup or compatibility request sends."""
    body = request.state.body
    if not isinstance(body, dict) or not isinstance(body.get("schema"), str):
        raise (
            BadRequestError("Empty schema", 42201)
            if isinstance(body, dict)
            else BadRequestError('the body must be a JSON object like {"schema": "..."}', 422)
        )
    kind = body.get("schemaType") or "AVRO"
    if kind not in SCHEMA_TYPES:
        raise BadRequestError(f"Invalid schema type {kind}", 42201)
    refs = body.get("references") or []
    if not isinstance(refs, list):
        raise BadRequestError("references must be a list", 42201)
    references = []
    for ref in refs:
        try:
            references.append(Reference(str(ref["name"]), str(ref["subject"]), int(ref["version"])))
        except (TypeError, KeyError, ValueError):
            raise BadRequestError(
                f"Invalid reference {ref!r}: it needs a name, a subject and a version", 42201
            ) from None
    return Schema(body["schema"], str(kind), tuple(references))


def _schema_doc(schema: Schema) -> dict[str, Any]:
    doc: dict[str, Any] = {"schema": schema.schema}
    if schema.schema_type != "AVRO":  # as Confluent's: AVRO is the type when none is said
        doc["schemaType"] = schema.schema_type
    if schema.references:
        doc["references"] = [
            {"name": r.name, "subject": r.subject, "version": r.version} for r in schema.references
        ]
    return doc


def _registered_doc(held: RegisteredSchema) -> dict[str, Any]:
    return {
        "subject": held.subject,
        "version": held.version,
        "id": held.id,
        **_schema_doc(held.schema),
    }


# -- handlers ----------------------------------------------------------------------------------


def _schema_by_id(request: Request, registry: SchemaRegistry) -> Any:
    return _schema_doc(registry.schema_by_id(_id(request)))


def _raw_by_id(request: Request, registry: SchemaRegistry) -> Any:
    return Response(registry.schema_by_id(_id(request)).schema, media_type=CONTENT_TYPE)


def _id_subjects(request: Request, registry: SchemaRegistry) -> Any:
    schema_id = _id(request)
    registry.schema_by_id(schema_id)  # 40403 when there is none
    deleted = _flag(request, "deleted")
    return sorted({s for s, _ in registry.usages(schema_id, deleted=deleted)})


def _id_versions(request: Request, registry: SchemaRegistry) -> Any:
    schema_id = _id(request)
    registry.schema_by_id(schema_id)
    deleted = _flag(request, "deleted")
    return [{"subject": s, "version": v} for s, v in registry.usages(schema_id, deleted=deleted)]


def _subjects(request: Request, registry: SchemaRegistry) -> Any:
    prefix = request.query_params.get("subjectPrefix", "")
    return [s for s in registry.subjects(deleted=_flag(request, "deleted")) if s.startswith(prefix)]


def _versions(request: Request, registry: SchemaRegistry) -> Any:
    return registry.versions(request.path_params["subject"], deleted=_flag(request, "deleted"))


def _register(request: Request, registry: SchemaRegistry) -> Any:
    schema_id = registry.register(request.path_params["subject"], _schema_body(request))
    return {"id": schema_id}


def _lookup(request: Request, registry: SchemaRegistry) -> Any:
    subject = request.path_params["subject"]
    schema = _schema_body(request)
    found = registry.lookup(subject, schema)
    if found is None:
        registry.versions(subject)  # 40401 for a subject that has none
        raise RegistryError("Schema not found", 40403)
    return _registered_doc(found)


def _version(request: Request, registry: SchemaRegistry) -> Any:
    held = registry.version(
        request.path_params["subject"], _version_param(request), deleted=_flag(request, "deleted")
    )
    return _registered_doc(held)


def _raw(request: Request, registry: SchemaRegistry) -> Any:
    held = registry.version(
        request.path_params["subject"], _version_param(request), deleted=_flag(request, "deleted")
    )
    return Response(held.schema.schema, media_type=CONTENT_TYPE)


def _delete_version(request: Request, registry: SchemaRegistry) -> Any:
    return registry.delete_version(
        request.path_params["subject"], _version_param(request), _flag(request, "permanent")
    )


def _delete_subject(request: Request, registry: SchemaRegistry) -> Any:
    return registry.delete_subject(request.path_params["subject"], _flag(request, "permanent"))


def _compat(request: Request, registry: SchemaRegistry) -> Any:
    subject = request.path_params["subject"]
    schema = _schema_body(request)
    if "version" in request.path_params:
        version = _version_param(request)
        registry.version(subject, version)  # 40401 / 40402, as Confluent answers
        problems = registry.check_compatibility(subject, schema, version)
    else:  # every version the subject's level names
        problems = registry.check_compatibility(subject, schema)
    answer: dict[str, Any] = {"is_compatible": not problems}
    if _flag(request, "verbose"):
        answer["messages"] = problems
    return answer


def _get_config(request: Request, registry: SchemaRegistry) -> Any:
    subject = request.path_params.get("subject")
    fallback = _flag(request, "defaultToGlobal")
    level = registry.get_compatibility(subject, fallback=subject is None or fallback)
    return {"compatibilityLevel": level}


def _put_config(request: Request, registry: SchemaRegistry) -> Any:
    body = request.state.body
    level = (
        body.get("compatibility", body.get("compatibilityLevel"))
        if isinstance(body, dict)
        else None
    )
    if level is None:
        raise BadRequestError(
            'the body must be a JSON object like {"compatibility": "BACKWARD"}', 42203
        )
    return {"compatibility": registry.set_compatibility(level, request.path_params.get("subject"))}


def _delete_config(request: Request, registry: SchemaRegistry) -> Any:
    return {"compatibilityLevel": registry.delete_compatibility(request.path_params.get("subject"))}


def _mode(request: Request, registry: SchemaRegistry) -> Any:
    """Always READWRITE: hispeed's registry takes no IMPORT or READONLY mode."""
    if request.method == "PUT":
        body = request.state.body
        mode = body.get("mode") if isinstance(body, dict) else None
        if mode != "READWRITE":
            raise BadRequestError(
                f"Invalid mode {mode!r}: hispeed's registry runs in READWRITE mode only", 42204
            )
    return {"mode": "READWRITE"}

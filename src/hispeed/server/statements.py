"""`POST /ksql`: statements run one by one, answered in ksqlDB's entity shapes.

ksqlDB answers a request of statements with a list of entities, one per statement, each
tagged by `@type` (`currentStatus` for what changes the catalog, `streams`, `tables`,
`queries`, `sourceDescription`, ...). A statement that fails ends the request: the answer is
a 400 with ksqlDB's error shape, carrying the entities of the statements that ran before it.
Queries (SELECT, PRINT) belong to `/query`; sending one here is an error, as in ksqlDB.
"""

from __future__ import annotations

from typing import Any

import msgspec

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError
from hispeed.server.entities import (
    property_entry,
    query_description,
    running_query,
    schema_info,
    source_description,
)
from hispeed.sql import ast
from hispeed.sql.parser import parse_counted
from hispeed.statements.result import Result

#: ksqlDB's error codes
BAD_STATEMENT = 40001
QUERY_ENDPOINT = 40002
NOT_FOUND = 40401
SERVER_ERROR = 50000

_QUERY_ENDPOINT_MESSAGE = (
    "The following statement types should be issued to the websocket endpoint '/query':\n"
    "\t* PRINT\n\t* SELECT"
)


def error_body(
    message: str, code: int, *, statement: str | None = None, entities: list[Any] | None = None
) -> dict[str, Any]:
    """ksqlDB's error shape; with a statement, its `statement_error` form."""
    if statement is None:
        return {"@type": "generic_error", "error_code": code, "message": message}
    return {
        "@type": "statement_error",
        "error_code": code,
        "message": message,
        "statementText": statement,
        "entities": entities or [],
    }


def sql_too_long(text: str, settings: Settings) -> str | None:
    """Why `text` is too long to parse (`max_sql_bytes`), or None."""
    size = len(text.encode(errors="replace"))
    if size <= settings.max_sql_bytes:
        return None
    return (
        f"the SQL text is {size} bytes, over the server's max_sql_bytes "
        f"({settings.max_sql_bytes}): send the statements in several requests"
    )


def run_ksql(
    engine: Engine,
    text: str,
    properties: dict[str, Any] | None = None,
    settings: Settings | None = None,
) -> tuple[int, Any]:
    """Run the statements of a `/ksql` request; returns the HTTP status and the JSON body.

    The request's size limits come from `settings` (the defaults without): the SQL text
    (`max_sql_bytes`), its statements (`max_statements_per_request`, refused before any runs),
    identifiers (`max_identifier_length`) and the answer (`max_response_bytes`: the request
    stops at the statement whose answer passes it, saying which ran)."""
    settings = settings or Settings()
    if not text.strip():
        return 400, error_body('No statements were given: send them as {"ksql": "..."}', 40000)
    too_long = sql_too_long(text, settings)
    if too_long:
        return 400, error_body(too_long, 40000)
    entities: list[Any] = []
    request_props = dict(properties or {})
    answered = 2  # bytes of the answer so far: "[" and "]"
    with engine.lock:
        count, statements = parse_counted(
            text, engine.catalog.types, max_identifier_length=settings.max_identifier_length
        )
        if count > settings.max_statements_per_request:
            return 400, error_body(
                f"the request holds {count} statements, more than the server runs in one "
                f"(max_statements_per_request = {settings.max_statements_per_request}); none "
                "ran: send them in several requests",
                40000,
            )
        ran = 0
        consumed = 0  # where the statements not yet run begin in `text`
        while True:
            statement_text = ""
            try:
                parsed = next(statements, None)
                if parsed is None:
                    return 200, entities
                statement_text = parsed.text
                found = text.find(statement_text, consumed)
                consumed = found + len(statement_text) if found >= 0 else consumed
                stmt = parsed.statement
                if isinstance(stmt, ast.QueryStatement | ast.Print):
                    return 400, error_body(
                        _QUERY_ENDPOINT_MESSAGE,
                        QUERY_ENDPOINT,
                        statement=statement_text,
                        entities=entities,
                    )
                if isinstance(stmt, ast.SetProperty | ast.UnsetProperty):
                    # as ksqlDB: a SET holds for the rest of its request, not for everyone
                    if isinstance(stmt, ast.SetProperty):
                        request_props[stmt.name] = stmt.value
                    else:
                        request_props.pop(stmt.name, None)
                    continue
                result = engine.execute_statement(parsed, request_props)
            except SqlError as e:
                unparsed = text[consumed:].strip()
                return 400, error_body(
                    str(e), BAD_STATEMENT, statement=statement_text or unparsed, entities=entities
                )
            except HispeedError as e:
                return 400, error_body(
                    str(e), BAD_STATEMENT, statement=statement_text, entities=entities
                )
            ran += 1
            entity = to_entity(engine, stmt, statement_text, result, len(entities) + 1)
            if entity is None:
                continue
            # the answer is bounded, not the statements: SHOW over a large catalog, many
            # times in one request, would otherwise build an answer of any size in memory
            answered += len(msgspec.json.encode(entity)) + 1
            if answered > settings.max_response_bytes:
                left = count - ran
                return 400, error_body(
                    f"the answer passed the server's max_response_bytes "
                    f"({settings.max_response_bytes}) at statement {ran} of {count}, which ran "
                    f"as did those before it; the {left} after it did not run. Ask for less "
                    "in one request.",
                    BAD_STATEMENT,
                    statement=statement_text,
                )
            entities.append(entity)


def to_entity(
    engine: Engine, stmt: ast.Statement, text: str, result: Result, sequence: int
) -> dict[str, Any] | None:
    """The ksqlDB entity for a statement's result (None for INSERT VALUES, as ksqlDB)."""
    kind = result.kind
    base: dict[str, Any] = {
        "statementText": text,
        "warnings": [{"message": w} for w in result.warnings],
    }
    if isinstance(stmt, ast.InsertValues):
        return None
    extended = isinstance(stmt, ast.Show | ast.Describe) and stmt.extended
    if kind in ("streams", "tables") and extended:
        # SHOW ... EXTENDED: ksqlDB's SourceDescriptionList, a full description per source
        described = [engine.catalog.sources[r["name"]] for r in result.rows]
        return {
            "@type": "source_descriptions",
            **base,
            "sourceDescriptions": [source_description(engine, d, extended=True) for d in described],
        }
    if kind in ("streams", "tables"):
        sources = [
            {
                "type": r["type"],
                "name": r["name"],
                "topic": r["topic"],
                "keyFormat": r["keyFormat"],
                "valueFormat": r["valueFormat"],
                "isWindowed": r["isWindowed"],
            }
            for r in result.rows
        ]
        return {"@type": kind, **base, kind: sources}
    if kind == "topics":
        return {"@type": "kafka_topics", **base, "topics": result.rows}
    if kind == "queries":
        queries = [engine.catalog.queries.get(r["id"]) for r in result.rows]
        if extended:  # SHOW QUERIES EXTENDED: ksqlDB's QueryDescriptionList
            return {
                "@type": "query_descriptions",
                **base,
                "queryDescriptions": [
                    query_description(engine, q, q.statement, q.statement)
                    for q in queries
                    if q is not None
                ],
            }
        return {
            "@type": "queries",
            **base,
            "queries": [running_query(engine, q) for q in queries if q is not None],
        }
    if kind == "properties":
        props = [property_entry(r["name"], r["value"]) for r in result.rows]
        return {
            "@type": "properties",
            **base,
            "properties": props,
            "overwrittenProperties": [],
            "defaultProperties": [],
        }
    if kind == "types":
        known = engine.catalog.types
        types = {r["name"]: schema_info(known[r["name"]]) for r in result.rows}
        return {"@type": "type_list", **base, "types": types}
    if kind == "functions":
        functions = [
            {"name": r["name"], "type": r.get("type", "SCALAR"), "category": r.get("category", "")}
            for r in result.rows
        ]
        return {"@type": "function_names", **base, "functions": functions}
    if kind == "describe_function":
        info = result.info
        return {
            "@type": "describe_function",
            **base,
            "name": info.get("name"),
            "description": info.get("description", ""),
            "author": info.get("author", ""),
            "version": "",
            "path": info.get("path", ""),
            "type": info.get("type", "SCALAR"),
            "functions": [
                {
                    "arguments": _arguments(r["arguments"]),
                    "returnType": str(r["returnType"]),
                    "description": r.get("description", ""),
                    # hispeed's: the argument types alone (its client prints them)
                    "argumentTypes": [a["type"] for a in _arguments(r["arguments"])],
                }
                for r in result.rows
            ],
        }
    if kind == "analysis":  # hispeed's: ANALYZE's rows, its columns in order
        return {
            "@type": "analysis",
            **base,
            "columns": result.info.get("columns", []),
            "rows": result.rows,
        }
    if kind == "connectors":
        return {"@type": "connector_list", **base, "connectors": result.rows}
    if kind == "connector_info":  # CREATE of a Kafka Connect connector: what it answered
        return {"@type": "connector_info", **base, "info": result.info}
    if kind == "drop_connector":
        return {"@type": "drop_connector", **base, "connectorName": result.info.get("name")}
    if kind == "warning_entity":  # an IF [NOT] EXISTS that did nothing, as ksqlDB says it
        return {"@type": "warning_entity", **base, "message": result.message}
    if kind == "describe_connector" and "status" in result.info:
        return _connect_description(engine, base, result.info)
    if kind == "describe_connector":
        info = result.info
        return {
            "@type": "connector_description",
            **base,
            "connectorClass": info.get("className", ""),
            "status": {
                "name": info.get("name"),
                "connector": {"state": info.get("state"), "worker_id": "hispeed"},
                "tasks": [],
                "type": info.get("type"),
            },
            "sources": [],
            "topics": info.get("topics", []),
            "hispeed": info,
        }
    if kind == "describe":
        source = engine.catalog.sources[result.info["name"]]
        return {
            "@type": "sourceDescription",
            **base,
            "sourceDescription": source_description(engine, source, extended=extended),
        }
    if kind == "explain":
        target = stmt.target if isinstance(stmt, ast.Explain) else ""
        # EXPLAIN of a running query: its state, and in ERROR why (ksqlDB's queryErrors)
        query = engine.catalog.queries.get(target.upper()) if isinstance(target, str) else None
        return {
            "@type": "queryDescription",
            **base,
            "queryDescription": query_description(engine, query, text, result.message),
        }
    # what changes the catalog: CREATE, DROP, TERMINATE, SET, INSERT INTO, types
    return {
        "@type": "currentStatus",
        **base,
        "commandId": _command_id(stmt),
        "commandStatus": {
            "status": "SUCCESS",
            "message": result.message,
            "queryId": result.query_id,
        },
        "commandSequenceNumber": sequence,
    }


def _connect_description(
    engine: Engine, base: dict[str, Any], info: dict[str, Any]
) -> dict[str, Any]:
    """ksqlDB's ConnectorDescription of a Kafka Connect connector: its class, its status as
    the Connect cluster gave it, the topics it used and the streams and tables over them."""
    sources = [engine.catalog.sources.get(n) for n in info.get("sources", [])]
    return {
        "@type": "connector_description",
        **base,
        "connectorClass": info.get("className", ""),
        "status": info["status"],
        "sources": [source_description(engine, s, extended=False) for s in sources if s],
        "topics": info.get("topics", []),
        "hispeed": info,
    }


def _arguments(args: Any) -> list[dict[str, Any]]:
    """ArgumentInfo of each argument: name, type, description, isVariadic."""
    if isinstance(args, str):  # a signature's text: the types alone
        args = [{"name": a.strip(), "type": a.strip()} for a in args.split(",") if a.strip()]
    return [
        {
            "name": str(a.get("name", "")),
            "type": str(a.get("type", "")),
            "description": str(a.get("description", "")),
            "isVariadic": bool(a.get("isVariadic", False)),
        }
        for a in args or []
    ]


def _command_id(stmt: ast.Statement) -> str:
    if isinstance(stmt, ast.CreateSource | ast.CreateAsSelect):
        return f"{stmt.kind.lower()}/`{stmt.name}`/create"
    if isinstance(stmt, ast.Drop):
        return f"{stmt.kind.lower()}/`{stmt.name}`/drop"
    if isinstance(stmt, ast.AlterSource):
        return f"{stmt.kind.lower()}/`{stmt.name}`/alter"
    if isinstance(stmt, ast.CreateConnector):
        return f"connector/`{stmt.name}`/create"
    if isinstance(stmt, ast.DropConnector):
        return f"connector/`{stmt.name}`/drop"
    if isinstance(stmt, ast.Terminate):
        return f"terminate/`{getattr(stmt, 'query_id', '') or 'ALL'}`/execute"
    return f"{type(stmt).__name__.lower()}/execute"


__all__ = [
    "BAD_STATEMENT",
    "QUERY_ENDPOINT",
    "error_body",
    "run_ksql",
    "sql_too_long",
    "to_entity",
]

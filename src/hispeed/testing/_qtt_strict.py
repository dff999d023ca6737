"""Run a case and judge it as ksqlDB's test tools do (`TestExecutor`, `RestTestExecutor`).

Inputs are written, and outputs read, with the runner's own serde (`qtt_serde`) from the
formats the metastore gives each topic; records, responses, post-conditions and errors are
compared with `qtt_compare` and `qtt_checks`. Nothing here goes through hispeed's formats.

A QTT case runs its statements as one script; an error while parsing is ksqlDB's
`ParseFailedException`, one while running a statement its `KsqlStatementException`, and a
query that fails while processing records its `StreamsException`. A REST case sends the
statements before its first query as one `/ksql` request (`run_ksql`, the server's own
handler), produces the inputs, then runs each query as `/query` does (`QuerySession`).
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from hispeed.catalog import Source
from hispeed.errors import HispeedError
from hispeed.plan.model import UnsupportedError
from hispeed.server.streaming import QuerySession, final_message, query_header, row_entry
from hispeed.sql.parser import parse_iter
from hispeed.testing import qtt_checks, qtt_compare, qtt_serde
from hispeed.testing.qtt_checks import RaisedError, SourceFacts, TopicFacts
from hispeed.testing.qtt_protobuf import ProtobufCodec
from hispeed.testing.qtt_serde import SerdeError, TopicFormat
from hispeed.testing.qtt_serde_sr import RegistryCodec

#: how long a push query of a REST case may take to give its rows
PUSH_QUERY_SECONDS = 5.0


class CaseFailureError(Exception):
    """The case failed, for the reason given (a serde error, a missing topic...)."""


# -- topics and their formats ------------------------------------------------------------------


def _sources_over(engine: Any, topic: str) -> list[Source]:
    return [s for s in engine.catalog.sources.values() if s.topic == topic]


def topic_format(engine: Any, topic: str) -> TopicFormat:
    """The formats of `topic` as ksqlDB's TopicInfoCache takes them: from a source over it."""
    sources = _sources_over(engine, topic)
    if not sources:
        raise CaseFailureError(f"No information found for topic '{topic}'")
    s = sources[0]
    return TopicFormat(
        key_format=s.key_format.upper(),
        value_format=s.value_format.upper(),
        key_types=tuple(c.type.name for c in s.key_columns),
        value_types=tuple(c.type.name for c in s.value_columns),
        window_type=s.window.kind if s.window is not None else None,
        window_size_ms=s.window.size_ms if s.window is not None else None,
        codec=RegistryCodec(engine.schema_registry, topic),
        protobuf=ProtobufCodec(
            engine.schema_registry,
            topic,
            key_columns=[(c.name, c.type) for c in s.key_columns],
            value_columns=[(c.name, c.type) for c in s.value_columns],
            key_nullable=s.key_properties.get("KEY_PROTOBUF_NULLABLE_REPRESENTATION"),
            value_nullable=s.value_properties.get("VALUE_PROTOBUF_NULLABLE_REPRESENTATION"),
            key_full_name=s.key_properties.get("KEY_SCHEMA_FULL_NAME"),
            value_full_name=s.value_properties.get("VALUE_SCHEMA_FULL_NAME"),
        ),
    )


def produce(engine: Any, record: dict[str, Any]) -> None:
    """Write one input record with the test tool's serde for its topic."""
    topic = record["topic"]
    fmt = topic_format(engine, topic)
    window_spec = record.get("window")
    window = qtt_compare.expected_window(window_spec) if window_spec is not None else None
    try:
        key = qtt_serde.encode_key(record.get("key"), window, fmt)
        value = qtt_serde.encode(record.get("value"), fmt.value_format, fmt.value_types, fmt)
    except SerdeError as e:
        raise CaseFailureError(f"Failed to serialize an input of {topic}: {e}") from e
    headers = []
    for h in record.get("headers") or []:
        raw = h.get("VALUE")
        headers.append((h["KEY"], base64.b64decode(raw) if raw is not None else None))
    engine.log.append(
        topic,
        [{"key": key, "value": value, "timestamp": record.get("timestamp", 0), "headers": headers}],
    )


@dataclass
class Actual:
    """An output record as the test tool's deserializers read it."""

    key: Any
    value: Any
    timestamp: int
    headers: list[tuple[str, bytes | None]]
    partition: int


def read_topic(engine: Any, topic: str, *, exact: bool) -> list[list[Actual]]:
    """Every record of `topic`, decoded, one list per partition in production order."""
    if topic not in engine.log.list_topics(internal=True):
        return []
    fmt = topic_format(engine, topic)
    partitions: list[list[Actual]] = []
    for p in range(len(engine.log.describe_topic(topic).partitions)):
        records: list[Actual] = []
        start, _ = engine.log.offsets(topic, p)
        for batch in engine.log.read(topic, p, start):
            for r in batch.to_pylist():
                try:
                    key = qtt_serde.decode_key(r["key"], fmt, exact=exact)
                except SerdeError as e:
                    raise CaseFailureError(f"Failed to deserialize key: {e} (topic {topic})") from e
                try:
                    value = qtt_serde.decode(
                        r["value"], fmt.value_format, fmt.value_types, exact=exact, topic=fmt
                    )
                except SerdeError as e:
                    raise CaseFailureError(
                        f"Failed to deserialize value: {e} (topic {topic})"
                    ) from e
                headers = [(h["key"], h["value"]) for h in r["headers"] or []]
                records.append(Actual(key, value, r["timestamp"], headers, p))
        partitions.append(records)
    return partitions


def _shown(a: Actual) -> str:
    return f"<{a.key!r}, {a.value!r}> at {a.timestamp} (partition {a.partition})"


def topic_problem(
    topic: str,
    expected: list[dict[str, Any]],
    partitions: list[list[Actual]],
    *,
    ran_with_insert_statements: bool,
    rest: bool,
) -> str:
    """Why a topic's records differ from the expected ones, or ''.

    The counts must be equal; then each expected record, in order, must match the next
    record of one of the partitions (each partition's records stay in production order,
    which is all a topic orders: ksqlDB's test driver writes every record to one list)."""
    total = sum(len(p) for p in partitions)
    if total != len(expected):
        shown = "\n  ".join(_shown(a) for p in partitions for a in p[:10])
        return f"Topic {topic}. Expected <{len(expected)}> records but it was <{total}>\n  {shown}"

    def problem_of(want: dict[str, Any], got: Actual) -> str:
        if rest:
            return qtt_compare.rest_record_problem(want, got.key, got.value, got.timestamp)
        return qtt_compare.record_problem(
            want,
            got.key,
            got.value,
            got.timestamp,
            got.headers,
            ran_with_insert_statements=ran_with_insert_statements,
        )

    # a search over the partitions' heads (each expected record taken from the head of a
    # partition it matches), remembering the positions already found to lead nowhere: taking
    # the first match greedily could pick the wrong one of two equal records
    dead: set[tuple[int, ...]] = set()
    deepest: list[Any] = [-1, ""]

    def interleaves(heads: tuple[int, ...]) -> bool:
        i = sum(heads)
        if i == len(expected):
            return True
        if heads in dead:
            return False
        problems = []
        for p, records in enumerate(partitions):
            if heads[p] >= len(records):
                continue
            got = records[heads[p]]
            problem = problem_of(expected[i], got)
            if not problem:
                if interleaves((*heads[:p], heads[p] + 1, *heads[p + 1 :])):
                    return True
            else:
                problems.append(f"{problem} ({_shown(got)})")
        if problems and i > deepest[0]:
            deepest[:] = [i, "; ".join(problems)]
        dead.add(heads)
        return False

    if not interleaves(tuple(0 for _ in partitions)):
        return f"Topic '{topic}', message {deepest[0]}: {deepest[1]}"
    return ""


def outputs_problem(engine: Any, spec: dict[str, Any], *, exact: bool, rest: bool) -> str:
    """Why the output topics differ from the case's expected outputs, or ''."""
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for o in spec.get("outputs", []):
        by_topic.setdefault(o["topic"], []).append(o)
    inserts_only = not spec.get("inputs")
    for topic, expected in by_topic.items():
        problem = topic_problem(
            topic,
            expected,
            read_topic(engine, topic, exact=exact),
            ran_with_insert_statements=inserts_only,
            rest=rest,
        )
        if problem:
            return problem
    return ""


# -- post-conditions -----------------------------------------------------------------------------

#: formats that support both wrapping and unwrapping single columns (ksqlDB's SerdeFeatures)
_WRAPPING_FORMATS = ("JSON", "JSON_SR", "AVRO", "PROTOBUF", "PROTOBUF_NOSR")
_UNWRAPPING_FORMATS = (*_WRAPPING_FORMATS, "KAFKA", "DELIMITED")


def _truthy(value: Any) -> bool:
    return str(value).strip().lower() == "true"


def _value_features(source: Source, properties: dict[str, Any]) -> set[str]:
    fmt = source.value_format.upper()
    explicit = source.value_properties.get("WRAP_SINGLE_VALUE")
    if explicit is not None:
        return {"WRAP_SINGLES" if _truthy(explicit) else "UNWRAP_SINGLES"}
    configured = properties.get("ksql.persistence.wrap.single.values")
    if configured is None or len(source.value_columns) != 1:
        return set()
    if _truthy(configured):
        return {"WRAP_SINGLES"} if fmt in _WRAPPING_FORMATS else set()
    return {"UNWRAP_SINGLES"} if fmt in _UNWRAPPING_FORMATS else set()


def _key_features(source: Source) -> set[str]:
    single = len(source.key_columns) == 1
    return (
        {"UNWRAP_SINGLES"} if single and source.key_format.upper() in _WRAPPING_FORMATS else set()
    )


def source_facts(engine: Any) -> dict[str, SourceFacts]:
    """The metastore's sources as ksqlDB's SourceNode checks see them."""
    out = {}
    for s in engine.catalog.sources.values():
        out[s.name] = SourceFacts(
            name=s.name,
            type=s.kind,
            schema=s.schema_text(),
            key_format=s.key_format.upper(),
            value_format=s.value_format.upper(),
            window_type=s.window.kind if s.window is not None else None,
            window_size_ms=s.window.size_ms if s.window is not None else None,
            key_features=_key_features(s),
            value_features=_value_features(s, engine.properties),
            is_source=bool(s.source_table),
        )
    return out


#: a schema-registry format's properties as ksqlDB's FormatInfo names them
_FORMAT_PROPERTIES = {
    "fullSchemaName": ("KEY_SCHEMA_FULL_NAME", "VALUE_SCHEMA_FULL_NAME"),
    "schemaId": ("KEY_SCHEMA_ID", "VALUE_SCHEMA_ID"),
}


def _format_json(
    name: str,
    features: set[str],
    window: Any = None,
    properties: dict[str, Any] | None = None,
    *,
    is_key: bool = False,
) -> dict[str, Any]:
    out: dict[str, Any] = {"format": name.upper()}
    if features:
        out["features"] = sorted(features)
    props = {}
    for shown, (key_name, value_name) in _FORMAT_PROPERTIES.items():
        value = (properties or {}).get(key_name if is_key else value_name)
        if value is None and not is_key and shown == "fullSchemaName":
            value = (properties or {}).get("VALUE_AVRO_SCHEMA_FULL_NAME")
        if value is not None:
            props[shown] = str(value)
    if props:
        out["properties"] = props
    if window is not None:
        size = window.size_ms / 1000 if window.size_ms is not None else None
        out["windowInfo"] = {"type": window.kind, "size": size}
    return out


def protobuf_format_properties(fmt: str, side: str, props: dict[str, Any]) -> dict[str, str]:
    """The FormatInfo properties ksqlDB gives a PROTOBUF / PROTOBUF_NOSR side: PROTOBUF
    unwraps primitives (CreateSourceProperties, by ksqlDB's default config) and keeps its
    full schema name and schema id; both keep the nullable representation."""
    out: dict[str, str] = {}
    fmt = fmt.upper()
    if fmt not in ("PROTOBUF", "PROTOBUF_NOSR"):
        return out
    if fmt == "PROTOBUF":
        full = props.get(f"{side}_SCHEMA_FULL_NAME")
        if full is not None:
            out["fullSchemaName"] = str(full)
        out["unwrapPrimitives"] = "true"
    nullable = props.get(f"{side}_PROTOBUF_NULLABLE_REPRESENTATION")
    if nullable is not None:
        out["nullableRepresentation"] = str(nullable).lower()
    if fmt == "PROTOBUF" and props.get(f"{side}_SCHEMA_ID") is not None:
        out["schemaId"] = str(props[f"{side}_SCHEMA_ID"])
    return out


def topic_facts(engine: Any) -> list[TopicFacts]:
    """Every topic of the log, with the formats of a source over it (if any)."""
    out = []
    for name in engine.log.list_topics(internal=True):
        facts = TopicFacts(name, len(engine.log.describe_topic(name).partitions))
        facts.key_schema = _latest_schema(engine, f"{name}-key")
        facts.value_schema = _latest_schema(engine, f"{name}-value")
        sources = _sources_over(engine, name)
        if sources:
            s = sources[0]
            facts.key_format = _format_json(
                s.key_format, _key_features(s), s.window, s.key_properties, is_key=True
            )
            facts.value_format = _format_json(
                s.value_format, _value_features(s, engine.properties), None, s.value_properties
            )
            for side, fmt, props in (
                ("KEY", s.key_format, s.key_properties),
                ("VALUE", s.value_format, s.value_properties),
            ):
                shown = protobuf_format_properties(fmt, side, props)
                if shown:
                    node = facts.key_format if side == "KEY" else facts.value_format
                    node["properties"] = {**node.get("properties", {}), **shown}
        out.append(facts)
    return out


def _latest_schema(engine: Any, subject: str) -> tuple[str, str] | None:
    """The type and text of a subject's latest schema in the engine's registry, or None."""
    held = engine.schema_registry.latest(subject)
    return None if held is None else (held.schema.schema_type, held.schema.schema)


def post_problem(engine: Any, post: dict[str, Any]) -> str:
    """Why the sources and topics after the case differ from its post-conditions, or ''."""
    if not post:
        return ""
    return qtt_checks.post_problem(post, source_facts(engine), topic_facts(engine))


# -- statements and errors -----------------------------------------------------------------------


def run_statements(engine: Any, statements: list[str]) -> RaisedError | None:
    """Run the case's statements as one script; the error they raise, typed as ksqlDB's."""
    script = "\n".join(statements)
    with engine.lock:
        engine.sync_commands()
        parsed_iter = parse_iter(script, engine.catalog.types)
        while True:
            try:
                parsed = next(parsed_iter, None)
            except UnsupportedError:
                raise
            except HispeedError as e:
                return RaisedError(qtt_checks.PARSE_FAILED, str(e), _failing(statements, e))
            if parsed is None:
                return None
            try:
                engine.execute_statement(parsed, {})
            except UnsupportedError:
                raise
            except HispeedError as e:
                return RaisedError(qtt_checks.STATEMENT_FAILED, str(e), parsed.text)


def _failing(statements: list[str], error: HispeedError) -> str:
    """The statement of the script that a parse error's line falls in."""
    line = getattr(error, "line", None)
    if line is None:
        return ""
    at = 1
    for s in statements:
        lines = s.count("\n") + 1
        if at <= line < at + lines:
            return s
        at += lines
    return statements[-1] if statements else ""


def runtime_error(engine: Any) -> RaisedError | None:
    """A query that failed while processing records, as ksqlDB's StreamsException."""
    for failure in engine.runtime.failed.values():
        error = failure.error
        cause = error.__cause__
        return RaisedError(
            qtt_checks.STREAMS_FAILED,
            str(error),
            "",
            cause_type=getattr(cause, "ksql_type", None) if cause is not None else None,
            cause_message=str(cause) if cause is not None else None,
        )
    return None


def exact_numbers(properties: dict[str, Any]) -> bool:
    """ksqlDB's `use.exact.numeric.comparison` (true unless the case sets it false)."""
    value = properties.get("use.exact.numeric.comparison", True)
    return value if isinstance(value, bool) else str(value).lower() != "false"


# -- REST cases ----------------------------------------------------------------------------------


def _non_empty(value: Any) -> Any:
    """An entity as ksqlDB's test mapper writes it (Include.NON_EMPTY): no null or empty
    fields."""
    if isinstance(value, dict):
        return {
            k: _non_empty(v)
            for k, v in value.items()
            if v is not None and v != [] and v != {} and v != ""
        }
    if isinstance(value, list):
        return [_non_empty(v) for v in value]
    return value


def as_json(value: Any) -> Any:
    """A response read back as ksqlDB's test tool reads it: JSON with exact decimals."""
    from hispeed.server.streaming import encode

    return json.loads(encode(value), parse_float=Decimal)


def query_response(
    engine: Any,
    sql: str,
    properties: dict[str, Any],
    started: Callable[[], None] | None = None,
) -> tuple[int, Any]:
    """A /query answer: (200, its entries: header, rows, finalMessage) or (400, error body).

    `started` runs once the query runs (a case's inputs that the push query must see)."""
    try:
        session = QuerySession(engine, sql, properties)
        if started is not None:
            started()
    except HispeedError as e:
        # as the server's /query: a statement error naming the query
        return 400, {
            "@type": "statement_error",
            "error_code": 40001,
            "message": str(e),
            "statementText": sql,
        }
    entries: list[Any] = [{"header": query_header(session)}]
    deadline = time.monotonic() + PUSH_QUERY_SECONDS
    try:
        while not session.closed and time.monotonic() < deadline:
            # each row as the server writes it (row_entry: a tombstone marked as one)
            entries.extend(row_entry(row) for row in session.poll(0.05))
    finally:
        final = final_message(session)
        session.close()
    if final is not None:
        entries.append({"finalMessage": final})
    return 200, entries


def rest_responses_problem(
    actual: list[tuple[str, Any]],
    expected: list[dict[str, Any]],
    statements: list[str],
    *,
    verify_order: bool,
) -> str:
    """RestTestExecutor's verifyResponses: each expected response against the actual one."""
    expected = [r for r in expected if "queryProto" not in r]
    if len(actual) < len(expected):
        return f"Not enough responses: expected {len(expected)}, got {len(actual)}"
    for idx, want in enumerate(expected):
        ((kind, payload),) = want.items()
        got_kind, got = actual[idx]
        statement = statements[idx] if idx < len(statements) else None
        if kind != got_kind:
            return f"responses[{idx}]: expected a {kind} response, got a {got_kind} one"
        counts: dict[str, list[Any]] = {"actual": [], "expected": []}
        counted = _counter(counts)

        if kind == "admin":
            problem = qtt_compare.response_problem(
                as_json(_non_empty(got)),
                payload,
                statement=statement,
                path=f"responses[{idx}]->admin",
                counted=counted,
            )
            if problem:
                return problem
        else:
            rows = as_json(got)
            if len(rows) != len(payload):
                return (
                    f"responses[{idx}]: row count mismatch: expected {len(payload)}, got "
                    f"{len(rows)}: {rows[:6]}"
                )
            for i, (a, e) in enumerate(zip(rows, payload, strict=True)):
                problem = qtt_compare.response_problem(
                    a,
                    e,
                    statement=statement,
                    path=f"responses[{idx}]->query[{i}]",
                    counted=counted,
                )
                if problem:
                    return problem
        problem = _multiset_problem(counts["actual"], counts["expected"])
        if problem:
            return f"responses[{idx}]: {problem}"
    return ""


def _counter(counts: dict[str, list[Any]]) -> Callable[[Any, Any, str], None]:
    def counted(actual: Any, expected: Any, where: str) -> None:
        counts["actual"].append(actual)
        counts["expected"].append(expected)

    return counted


def _multiset_problem(actual: list[Any], expected: list[Any]) -> str:
    """RestTestExecutor's verifyResponseFields: unordered rows occur as often as expected."""

    def count(values: list[Any]) -> list[tuple[Any, int]]:
        out: list[tuple[Any, int]] = []
        for v in values:
            for i, (seen, n) in enumerate(out):
                if qtt_compare.json_equals(seen, v):
                    out[i] = (seen, n + 1)
                    break
            else:
                out.append((v, 1))
        return out

    want = count(expected)
    for value, n in count(actual):
        match = next((m for e, m in want if qtt_compare.json_equals(value, e)), None)
        if match is None:
            return f"unexpected row {value!r}; expected rows {[e for e, _ in want]}"
        if match != n:
            return f"row {value!r} occurs {n} times, expected {match}"
    return ""

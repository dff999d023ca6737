"""Post-conditions and expected errors, checked as ksqlDB's test tool checks them.

Post-conditions (ksqlDB's `PostConditionsNode`, `SourceNode`, `KeyFormatNode`): each listed
source exists with its name, type, schema (compared as a column list: names, types, key,
value or header), key format (format name, and exactly the window type and size given: none
given means unwindowed), value format name, key and value serde features (as sets), and
`isSource`; no topic matches the `blacklist` regex; each listed topic exists with equal key
and value formats (name, properties, features, window) and, when given, its partitions and
the latest schemas of its `-key` and `-value` subjects (`schema_problem`).

Expected errors (ksqlDB's `ExpectedExceptionNode` and, for REST cases, `ExpectedErrorNode`):
the error's type is the expected class or a subclass of it, its message contains the expected
text (case-sensitive) either as it is or with "\\nStatement: <statement>" after it, as
ksqlDB's `KsqlStatementException` reports it, and a cause and its message when given. A REST
error has the status expected, and a `KsqlStatementErrorMessage` names the last statement.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# -- ksqlDB's exception classes, and what each extends -----------------------------------------

_PARENTS = {
    "io.confluent.ksql.parser.exception.ParseFailedException": (
        "io.confluent.ksql.util.KsqlStatementException"
    ),
    "io.confluent.ksql.util.KsqlStatementException": "io.confluent.ksql.util.KsqlException",
    "io.confluent.ksql.util.KsqlException": "java.lang.RuntimeException",
    "io.confluent.ksql.function.KsqlFunctionException": "io.confluent.ksql.util.KsqlException",
    "org.apache.kafka.streams.errors.StreamsException": "org.apache.kafka.common.KafkaException",
    "org.apache.kafka.common.KafkaException": "java.lang.RuntimeException",
    "java.lang.RuntimeException": "java.lang.Exception",
    "java.lang.Exception": "java.lang.Throwable",
    "io.confluent.ksql.rest.entity.KsqlStatementErrorMessage": (
        "io.confluent.ksql.rest.entity.KsqlErrorMessage"
    ),
}

PARSE_FAILED = "io.confluent.ksql.parser.exception.ParseFailedException"
STATEMENT_FAILED = "io.confluent.ksql.util.KsqlStatementException"
STREAMS_FAILED = "org.apache.kafka.streams.errors.StreamsException"
STATEMENT_ERROR_MESSAGE = "io.confluent.ksql.rest.entity.KsqlStatementErrorMessage"
ERROR_MESSAGE = "io.confluent.ksql.rest.entity.KsqlErrorMessage"


def is_instance(actual: str, expected: str) -> bool:
    """Whether an exception of class `actual` is an instance of class `expected`."""
    at: str | None = actual
    while at is not None:
        if at == expected:
            return True
        at = _PARENTS.get(at)
    return False


@dataclass
class RaisedError:
    """An error as ksqlDB's test tool would see it: its class, message, statement, cause."""

    type: str
    message: str
    #: the text of the statement that failed ('' for a failure while processing records)
    statement: str = ""
    cause_type: str | None = None
    cause_message: str | None = None

    def messages(self) -> list[str]:
        """The message, and the "unlogged" one with the statement after it."""
        if not self.statement or "\nStatement: " in self.message:
            return [self.message]
        return [self.message, f"{self.message}\nStatement: {self.statement}"]


def error_problem(expected: dict[str, Any], raised: RaisedError, last_statement: str) -> str:
    """Why `raised` is not the expected exception of a (non-REST) case, or ''."""
    want_type = expected.get("type")
    if want_type and not is_instance(raised.type, want_type):
        return f"expected a {want_type}, got a {raised.type}: {raised.message}"
    want = expected.get("message")
    if want is not None and not any(want in m for m in raised.messages()):
        return f"error message differs:\n  expected to contain: {want}\n  got: {raised.message}"
    cause = expected.get("cause")
    if cause and (raised.cause_type is None or not is_instance(raised.cause_type, cause)):
        return f"expected a cause {cause}, got {raised.cause_type}"
    cause_message = expected.get("causeMessage")
    if cause_message is not None and cause_message not in (raised.cause_message or ""):
        return (
            f"expected a cause message containing {cause_message!r}, got {raised.cause_message!r}"
        )
    if raised.statement and raised.statement.strip() != last_statement.strip():
        return f"the error came from an earlier statement than the last: {raised.statement}"
    return ""


def rest_error_problem(
    expected: dict[str, Any], status: int, body: dict[str, Any], last_statement: str
) -> str:
    """Why a REST error response is not the expected error, or '' (ExpectedErrorNode)."""
    kind = {"statement_error": STATEMENT_ERROR_MESSAGE, "generic_error": ERROR_MESSAGE}.get(
        str(body.get("@type")), str(body.get("@type"))
    )
    want_type = expected.get("type")
    if want_type:
        if not is_instance(kind, want_type):
            return f"expected a {want_type}, got a {kind}: {body.get('message')}"
        if is_instance(want_type, STATEMENT_ERROR_MESSAGE) and last_statement not in str(
            body.get("statementText", "")
        ):
            return (
                f"the error names the statement {body.get('statementText')!r}, not the last "
                f"one {last_statement!r}"
            )
    want = expected.get("message")
    if want is not None and want not in str(body.get("message", "")):
        return (
            f"error message differs:\n  expected to contain: {want}\n  got: {body.get('message')}"
        )
    want_status = expected.get("status")
    if want_status is not None and want_status != status:
        return f"expected status {want_status}, got {status}: {body.get('message')}"
    return ""


# -- schemas -----------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(`(?:[^`]|``)*`|'(?:[^']|'')*'|[A-Za-z_][A-Za-z_0-9]*|\d+|[<>(),:])")
_TYPE_NAMES = {"VARCHAR": "STRING", "INT": "INTEGER"}


def _tokens(text: str) -> list[str]:
    out, at = [], 0
    text = text.strip()
    while at < len(text):
        m = _TOKEN.match(text, at)
        if not m:
            raise ValueError(f"cannot read the schema {text!r} at {at}")
        out.append(m.group(1))
        at = m.end()
        while at < len(text) and text[at].isspace():
            at += 1
    return out


def _name(token: str) -> str:
    """An identifier as ksqlDB reads it: quoted exactly, otherwise upper-cased."""
    return token[1:-1].replace("``", "`") if token.startswith("`") else token.upper()


class _SchemaReader:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.at = 0

    def peek(self) -> str:
        return self.tokens[self.at] if self.at < len(self.tokens) else ""

    def take(self, want: str | None = None) -> str:
        token = self.peek()
        if want is not None and token.upper() != want:
            raise ValueError(f"expected {want} in the schema, found {token!r}")
        self.at += 1
        return token

    def type(self) -> str:
        word = self.take().upper()
        word = _TYPE_NAMES.get(word, word)
        if word == "STRUCT":
            self.take("<")
            fields = []
            while self.peek() != ">":
                name = _name(self.take())
                fields.append(f"`{name}` {self.type()}")
                if self.peek() == ",":
                    self.take()
            self.take(">")
            return f"STRUCT<{', '.join(fields)}>"
        if word in ("ARRAY", "MAP"):
            self.take("<")
            inner = [self.type()]
            while self.peek() == ",":
                self.take()
                inner.append(self.type())
            self.take(">")
            return f"{word}<{', '.join(inner)}>"
        if word == "DECIMAL" and self.peek() == "(":
            self.take()
            precision = self.take()
            self.take(",")
            scale = self.take()
            self.take(")")
            return f"DECIMAL({precision}, {scale})"
        return word

    def columns(self) -> list[tuple[str, str, str]]:
        out = []
        while self.peek():
            name = _name(self.take())
            typ = self.type()
            namespace = "VALUE"
            if self.peek().upper() == "PRIMARY":
                self.take()
                self.take("KEY")
                namespace = "KEY"
            elif self.peek().upper() == "KEY":
                self.take()
                namespace = "KEY"
            elif self.peek().upper() == "HEADERS":
                self.take()
                namespace = "HEADERS"
            elif self.peek().upper() == "HEADER":
                self.take()
                self.take("(")
                namespace = f"HEADER({self.take()})"
                self.take(")")
            out.append((name, typ, namespace))
            if self.peek() == ",":
                self.take()
        return out


def schema_columns(text: str) -> list[tuple[str, str, str]]:
    """A schema's columns as (name, type, namespace), in order, as ksqlDB's LogicalSchema
    compares them (KEY and PRIMARY KEY are both the key)."""
    return _SchemaReader(text).columns()


# -- post-conditions ---------------------------------------------------------------------------


@dataclass
class SourceFacts:
    """What the metastore says of a source, for `SourceNode`'s checks."""

    name: str
    type: str  # STREAM TABLE
    schema: str
    key_format: str
    value_format: str
    window_type: str | None
    window_size_ms: int | None
    key_features: set[str]
    value_features: set[str]
    is_source: bool


@dataclass
class TopicFacts:
    """A topic's name, partitions and formats (ksqlDB's `PostTopicNode`)."""

    name: str
    partitions: int
    key_format: dict[str, Any] | None = None
    value_format: dict[str, Any] | None = None
    #: the latest schemas of the topic's `-key` / `-value` subjects: (schema type, text)
    key_schema: tuple[str, str] | None = None
    value_schema: tuple[str, str] | None = None


def _format_node(node: dict[str, Any] | None) -> dict[str, Any]:
    """A KeyFormat/ValueFormat as JSON, normalized for equality: empty parts dropped."""
    node = dict(node or {})
    out: dict[str, Any] = {"format": str(node.get("format", "")).upper()}
    if node.get("properties"):
        out["properties"] = {k: str(v) for k, v in node["properties"].items()}
    if node.get("features"):
        out["features"] = sorted(node["features"])
    window = node.get("windowInfo")
    if window:
        out["windowInfo"] = {k: v for k, v in window.items() if v is not None}
    return out


def post_problem(
    post: dict[str, Any], sources: dict[str, SourceFacts], topics: list[TopicFacts]
) -> str:
    """Why the metastore and topics after a case differ from its post-conditions, or ''."""
    for want in post.get("sources", []):
        problem = _source_problem(want, sources.get(want["name"]))
        if problem:
            return f"post: {want['name']}: {problem}"
    topics_node = post.get("topics") or {}
    blacklist = topics_node.get("blacklist")
    if blacklist:
        pattern = re.compile(blacklist)
        found = sorted(t.name for t in topics if pattern.search(t.name))
        if found:
            return f"post: blacklisted topics found: {found}"
    by_name = {t.name: t for t in topics}
    for want in topics_node.get("topics", []):
        got = by_name.get(want["name"])
        if got is None:
            return f"post: topic {want['name']} does not exist (topics: {sorted(by_name)})"
        if _format_node(want.get("keyFormat")) != _format_node(got.key_format):
            return (
                f"post: topic {got.name} key format {got.key_format}, expected {want['keyFormat']}"
            )
        if _format_node(want.get("valueFormat")) != _format_node(got.value_format):
            return (
                f"post: topic {got.name} value format {got.value_format}, expected "
                f"{want['valueFormat']}"
            )
        if want.get("partitions") is not None and want["partitions"] != got.partitions:
            return (
                f"post: topic {got.name} has {got.partitions} partitions, not {want['partitions']}"
            )
        for side, held in (("keySchema", got.key_schema), ("valueSchema", got.value_schema)):
            problem = schema_problem(want.get(side), held)
            if problem:
                return f"post: topic {got.name} {side}: {problem}"
    return ""


def schema_problem(want: Any, got: tuple[str, str] | None) -> str:
    """Why the registered schema `got` (type, text) is not the `keySchema`/`valueSchema` a
    post-condition gives, or '' (also when it gives none: ksqlDB then checks nothing).

    As ksqlDB's PostTopicNode compares them: a PROTOBUF schema is text, others a JSON tree
    (object members in any order). Compared by meaning, not by layout, apart from hispeed's
    formats code: JSON as parsed values (a number's kind and a boolean kept apart from
    numbers), Protobuf as the files protoc compiles both texts to."""
    if want is None:
        return ""
    if got is None:
        return "no schema is registered"
    schema_type, text = got
    if schema_type == "PROTOBUF":
        if not isinstance(want, str):
            return f"a PROTOBUF schema is registered, expected {json.dumps(want)}"
        from hispeed.testing.qtt_protobuf import compiled_file
        from hispeed.testing.qtt_serde import SerdeError

        try:
            same = compiled_file(text) == compiled_file(want)
        except SerdeError:
            same = " ".join(text.split()) == " ".join(want.split())
        return "" if same else f"registered {text!r}, expected {want!r}"
    try:
        held = json.loads(text)
    except ValueError:
        return f"registered {text!r} is not JSON, expected {json.dumps(want)}"
    if schema_type == "AVRO":
        # a named type's namespace may be written out or inherited: the same full name
        held, want = _avro_full_names(held, ""), _avro_full_names(want, "")
    if _canonical(held) != _canonical(want):
        return f"registered {_canonical(held)}, expected {_canonical(want)}"
    return ""


_AVRO_PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


def _avro_full_names(schema: Any, namespace: str) -> Any:
    """An Avro schema with each named type's (record, enum, fixed) name and namespace as one
    full name, and each reference to one by its full name, as Avro's schema resolution names
    them (a name with no dot takes the enclosing namespace)."""

    def full(name: str, ns: str) -> str:
        return name if "." in name or not ns else f"{ns}.{name}"

    if isinstance(schema, str):
        return schema if schema in _AVRO_PRIMITIVES else full(schema, namespace)
    if isinstance(schema, list):
        return [_avro_full_names(s, namespace) for s in schema]
    if not isinstance(schema, dict):
        return schema
    kind = schema.get("type")
    out = dict(schema)
    if kind in ("record", "error", "enum", "fixed") and isinstance(schema.get("name"), str):
        name = schema["name"]
        ns = name.rsplit(".", 1)[0] if "." in name else str(schema.get("namespace") or namespace)
        out.pop("namespace", None)
        out["name"] = full(name, ns)
        if isinstance(schema.get("fields"), list):
            out["fields"] = [
                {**f, "type": _avro_full_names(f.get("type"), ns)} if isinstance(f, dict) else f
                for f in schema["fields"]
            ]
        return out
    if kind == "array" and "items" in schema:
        out["items"] = _avro_full_names(schema["items"], namespace)
    elif kind == "map" and "values" in schema:
        out["values"] = _avro_full_names(schema["values"], namespace)
    elif isinstance(kind, dict | list):
        out["type"] = _avro_full_names(kind, namespace)
    return out


def _canonical(value: Any) -> str:
    # sorted members; json.dumps keeps 1, 1.0 and true apart, as Jackson's nodes do
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def _source_problem(want: dict[str, Any], got: SourceFacts | None) -> str:
    if got is None:
        return "does not exist"
    if want["type"].upper() != got.type:
        return f"is a {got.type}, expected a {want['type']}"
    if "schema" in want and schema_columns(want["schema"]) != schema_columns(got.schema):
        return f"schema is {got.schema}, expected {want['schema']}"
    key_format = want.get("keyFormat")
    if key_format is not None:
        if key_format.get("format") and key_format["format"].upper() != got.key_format:
            return f"key format {got.key_format}, expected {key_format['format']}"
        window_type = key_format.get("windowType")
        if (window_type.upper() if window_type else None) != got.window_type:
            return f"key window type {got.window_type}, expected {window_type}"
        if key_format.get("windowSize") != got.window_size_ms:
            return f"key window size {got.window_size_ms}, expected {key_format.get('windowSize')}"
    if "valueFormat" in want and want["valueFormat"] != got.value_format:
        return f"value format {got.value_format}, expected {want['valueFormat']}"
    if "keyFeatures" in want and set(want["keyFeatures"]) != got.key_features:
        return f"key features {sorted(got.key_features)}, expected {want['keyFeatures']}"
    if "valueFeatures" in want and set(want["valueFeatures"]) != got.value_features:
        return f"value features {sorted(got.value_features)}, expected {want['valueFeatures']}"
    if "isSource" in want and want["isSource"] != got.is_source:
        return f"isSource is {got.is_source}, expected {want['isSource']}"
    return ""


# -- deliberate differences --------------------------------------------------------------------

DIFFERENCES_FILE = Path(__file__).with_name("qtt_differences.json")
#: the most deliberate differences the list may hold
MAX_DIFFERENCES = 5


@dataclass
class Difference:
    """A way hispeed goes past ksqlDB on purpose: the cases it covers, and why."""

    id: str
    reason: str
    #: regular expressions the case's file and name must match in full
    file: str
    case: str
    #: what is excused: "outcome" (the whole case) or "post-topics" (its post.topics entries
    #: whose name matches `topic`)
    excuses: str = "outcome"
    topic: str = ""

    def covers(self, file: str, name: str) -> bool:
        """Whether this difference covers the case `name` of `file`."""
        return bool(re.fullmatch(self.file, file) and re.fullmatch(self.case, name))


def load_differences(path: Path = DIFFERENCES_FILE) -> list[Difference]:
    """The deliberate-difference list (at most MAX_DIFFERENCES entries, each with a reason)."""
    doc = json.loads(path.read_text())
    entries = [Difference(**e) for e in doc["differences"]]
    if len(entries) > MAX_DIFFERENCES:
        raise ValueError(f"{path} lists {len(entries)} differences, more than {MAX_DIFFERENCES}")
    for e in entries:
        if not e.reason.strip():
            raise ValueError(f"{path}: the difference {e.id} gives no reason")
        if e.excuses not in ("outcome", "post-topics"):
            raise ValueError(f"{path}: the difference {e.id} excuses {e.excuses!r}")
    return entries

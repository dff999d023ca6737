"""Run ksqlDB's query-validation test files (QTT) through the real engine and log.

Each case's statements run on a fresh engine; its input records are serialized with the
formats of the source that reads their topic, produced one by one (each fully processed
before the next, as ksqlDB's test driver does), and the records on each expected output topic
are decoded and compared in order. A case passes, fails (with a diff), or is unsupported
(with the reason: a query shape or feature hispeed does not run yet).
"""

from __future__ import annotations

import base64
import json
import logging
import re
import shutil
import struct
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from hispeed.catalog import Source
from hispeed.errors import HispeedError
from hispeed.log.base import Log
from hispeed.log.embedded import EmbeddedLog
from hispeed.plan.query import plan_query
from hispeed.runtime.pull import prepare
from hispeed.sql.parser import parse_query

SCHEMA_REGISTRY_FORMATS = ("AVRO", "PROTOBUF", "PROTOBUF_NOSR", "JSON_SR")
#: ksqlDB's test tool's topic partitions (`Topic.DEFAULT_PARTITIONS`)
_REST_PARTITIONS = 4
_SR_PATTERN = re.compile(r"\b(AVRO|PROTOBUF|PROTOBUF_NOSR|JSON_SR)\b", re.IGNORECASE)


@dataclass
class CaseResult:
    file: str
    name: str
    status: str  # passed failed unsupported skipped
    detail: str = ""
    seconds: float = 0.0


@dataclass
class Case:
    file: str
    name: str
    spec: dict[str, Any]
    statements: list[str]
    properties: dict[str, Any]
    #: from ksqlDB's REST tests: each statement is its own request (errors name its lines)
    rest: bool = False


def load_cases(paths: list[Path]) -> Iterator[Case]:
    """Every case variant (one per format and config value) of the files under `paths`."""
    files: list[Path] = []
    for p in paths:
        files += sorted(p.rglob("*.json")) if p.is_dir() else [p]
    for f in files:
        doc = json.loads(f.read_text())
        rel = f.name if f.parent.name == "query-validation-tests" else f"{f.parent.name}/{f.name}"
        rest = f.parent.name == "rest-query-validation-tests"
        for spec in doc.get("tests", []):
            if spec.get("enabled") is False:
                continue
            formats = spec.get("format") or [None]
            configs = spec.get("config") or [None]
            for fmt in formats:
                for cfg in configs:
                    name = spec["name"]
                    if fmt is not None:
                        name += f" - {fmt}"
                    if cfg is not None:
                        name += f" - {cfg}"
                    statements = [_fill(s, fmt, cfg) for s in spec.get("statements", [])]
                    props = {
                        k: _fill(v, fmt, cfg) if isinstance(v, str) else v
                        for k, v in spec.get("properties", {}).items()
                    }
                    yield Case(rel, name, spec, statements, props, rest)


def _fill(text: str, fmt: str | None, cfg: str | None) -> str:
    if fmt is not None:
        text = text.replace("{FORMAT}", fmt)
    if cfg is not None:
        text = text.replace("{CONFIG}", cfg)
    return text


def needs_schema_registry(case: Case) -> bool:
    return any(_SR_PATTERN.search(s) for s in case.statements)


def run_case(case: Case, workdir: Path, kafka: str | None = None) -> CaseResult:
    """Run one case on a fresh embedded log in `workdir`, or on the Kafka cluster at `kafka`
    (in a namespace of its own, deleted afterwards)."""
    started = time.perf_counter()
    result = _run(case, workdir, kafka)
    result.seconds = time.perf_counter() - started
    return result


def _open_log(data_dir: Path, kafka: str | None) -> Log:
    if kafka is None:
        return EmbeddedLog(data_dir, fsync="never", cleaner_interval_s=None)
    from hispeed.log.kafka import KafkaLog

    # the cases' records are stamped near 1970: kept forever, not deleted by time retention
    return KafkaLog(
        kafka,
        prefix=f"qtt-{uuid.uuid4().hex[:10]}.",
        session_timeout_ms=6000,
        topic_config={"retention.ms": -1},
    )


def _close_log(log: Log) -> None:
    if log.shared:
        from hispeed.log.kafka import KafkaLog

        assert isinstance(log, KafkaLog)
        log.delete_namespace()
    log.close()


def _run(case: Case, workdir: Path, kafka: str | None = None) -> CaseResult:
    from hispeed.engine import Engine
    from hispeed.plan.model import UnsupportedError
    from hispeed.testing import qtt_functions

    qtt_functions.register()  # ksqlDB's test-only UDFs (BAD_UDF...), fresh per case

    spec = case.spec
    if needs_schema_registry(case):
        return CaseResult(case.file, case.name, "skipped", "needs a schema registry format")
    expected_error = spec.get("expectedException") or spec.get("expectedError")
    data_dir = Path(tempfile.mkdtemp(prefix="qtt-", dir=workdir))
    log = _open_log(data_dir, kafka)
    try:
        properties = {
            "auto.offset.reset": "earliest",
            "ksql.streams.cache.max.bytes.buffering": "0",
            **case.properties,
        }
        engine = Engine(log_=log, properties=properties)
        _create_topics(case, log)
        if case.rest or "responses" in spec:
            return _run_rest(case, engine, expected_error)
        try:
            # one script, as ksqlDB's test runner sends them: errors name the script's line
            engine.execute("\n".join(case.statements))
        except UnsupportedError as e:
            return CaseResult(case.file, case.name, "unsupported", str(e))
        except HispeedError as e:
            if expected_error:
                return _check_error(case, expected_error, str(e))
            return CaseResult(case.file, case.name, "failed", f"statement failed: {e}")
        except Exception as e:  # a bug: report it as a failure of this case only
            return CaseResult(
                case.file, case.name, "failed", f"internal error: {type(e).__name__}: {e}"
            )
        if spec.get("responses") and any(
            "query" in r or "queryProto" in r for r in spec["responses"]
        ):
            return CaseResult(
                case.file,
                case.name,
                "unsupported",
                "pull and push query responses are not checked yet",
            )
        try:
            for record in spec.get("inputs", []):
                _produce(engine, record)
                _drain(engine)
        except UnsupportedError as e:
            return CaseResult(case.file, case.name, "unsupported", str(e))
        except Exception as e:
            return CaseResult(
                case.file, case.name, "failed", f"while processing inputs: {type(e).__name__}: {e}"
            )
        return _verdict(case, engine, expected_error)
    finally:
        try:
            _close_log(log)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


def _drain(engine: Any) -> None:
    """Run the case's queries; a query that failed (the engine keeps it in ERROR and goes
    on) is the case's outcome: its exception is raised here."""
    engine.drain()
    for failure in engine.runtime.failed.values():
        raise failure.error


def _run_rest(case: Case, engine: Any, expected_error: dict[str, Any] | None) -> CaseResult:
    """A REST case: statements one by one, the inputs before the first query, and each
    query's answer compared with the expected response (header schema and rows)."""
    from hispeed.plan.model import UnsupportedError

    spec = case.spec
    responses = spec.get("responses", [])
    produced = False

    def produce() -> None:
        for record in spec.get("inputs", []):
            _produce(engine, record)
            _drain(engine)

    for i, statement in enumerate(case.statements):
        is_query = statement.lstrip().upper().startswith("SELECT")
        try:
            if is_query and not produced:
                produce()
                produced = True
            expected = responses[i] if i < len(responses) else None
            if is_query:
                want = (expected or {}).get("query")
                header, rows = _query_response(engine, statement, want)
                if want is not None:
                    diff = _compare_query(
                        want, header, rows, spec.get("outputConditions", {}).get("verifyOrder")
                    )
                    if diff:
                        return CaseResult(case.file, case.name, "failed", diff)
            else:
                engine.execute(statement)
        except UnsupportedError as e:
            return CaseResult(case.file, case.name, "unsupported", str(e))
        except HispeedError as e:
            if expected_error:
                return _check_error(case, expected_error, str(e))
            return CaseResult(case.file, case.name, "failed", f"statement {i + 1} failed: {e}")
        except Exception as e:
            return CaseResult(
                case.file, case.name, "failed", f"internal error: {type(e).__name__}: {e}"
            )
    if not produced:
        produce()
    return _verdict(case, engine, expected_error)


def _verdict(case: Case, engine: Any, expected_error: dict[str, Any] | None) -> CaseResult:
    """After a case ran without a statement error: the expected error, outputs and sources."""
    if expected_error:
        return CaseResult(
            case.file,
            case.name,
            "failed",
            f"expected an error ({expected_error.get('message', '')!r}) but the "
            "statements succeeded",
        )
    problem = _compare_outputs(engine, case.spec.get("outputs", [])) or _check_post(
        engine, case.spec.get("post", {})
    )
    if problem:
        return CaseResult(case.file, case.name, "failed", problem)
    return CaseResult(case.file, case.name, "passed")


def _query_response(
    engine: Any, sql: str, want: list[dict[str, Any]] | None
) -> tuple[str, list[list[Any]]]:
    """The header schema and rows a pull or push query gives."""
    import msgspec

    from hispeed.server.streaming import json_value

    select = parse_query(sql, engine.catalog.types)
    prepared = prepare(engine.runtime.views, select) if select.emit is None else None
    plan = prepared.plan if prepared is not None else plan_query(select, engine.catalog, engine.log)
    table = plan.source.kind == "TABLE" and select.emit is None
    key_names = {c.name for c in plan.source.key_columns}
    if plan.source.window is not None:
        key_names |= {"WINDOWSTART", "WINDOWEND"}
    parts = []
    for item, out in zip(_select_items(plan), plan.outputs, strict=True):
        is_key = table and item in key_names
        parts.append(f"`{out.name}` {out.type}" + (" KEY" if is_key else ""))
    if prepared is not None and plan.source.source_table and plan.source.header_columns:
        # ksqlDB lists a source table's header columns right after its keys, marked
        headers = {c.name: k for c, k in plan.source.header_columns}
        marked = [
            f"`{o.name}` {o.type} "
            + (f"HEADER('{headers[o.name]}')" if headers[o.name] else "HEADERS")
            for o in plan.outputs
            if o.name in headers
        ]
        keyed = sum(1 for p in parts if p.endswith(" KEY"))
        parts = [p for p in parts if p.split("`")[1] not in headers]
        parts[keyed:keyed] = marked
    header = ", ".join(parts)
    names = [c.name for c in plan.outputs]
    if prepared is not None:
        dict_rows = prepared.run(engine.runtime.views)
    else:
        wanted = sum(1 for e in want or [] if "row" in e)
        dict_rows = []
        with engine.stream(sql, from_beginning=True) as q:
            deadline = time.monotonic() + 2.0
            while time.monotonic() < deadline and len(dict_rows) < max(wanted, 1):
                dict_rows += q.poll(0.1)
                if q.closed:
                    break
    encoder = msgspec.json.Encoder(decimal_format="number")
    rows = [json.loads(encoder.encode([json_value(r.get(n)) for n in names])) for r in dict_rows]
    return header, rows


def _select_items(plan: Any) -> list[str | None]:
    """The source column each output reads directly (None for expressions)."""
    from hispeed.sql import ast as _ast

    out: list[str | None] = []
    for c in plan.outputs:
        name = None
        expr_src = getattr(c, "source_expr", None)
        if isinstance(expr_src, _ast.ColumnRef):
            name = expr_src.name
        out.append(name if name is not None else c.name)
    return out


def _compare_query(
    want: list[dict[str, Any]], header: str, rows: list[list[Any]], verify_order: bool = False
) -> str:
    want_header = next((e["header"]["schema"] for e in want if "header" in e), None)
    if want_header is not None and _normalize_schema(want_header) != _normalize_schema(header):
        return f"query header: expected {want_header}, got {header}"
    want_rows = [e["row"]["columns"] for e in want if "row" in e]
    if len(want_rows) != len(rows):
        return f"query rows: expected {len(want_rows)}, got {len(rows)}: {rows[:5]}"
    if verify_order:
        for i, (w, g) in enumerate(zip(want_rows, rows, strict=True)):
            if not _same(w, g):
                return f"query row #{i}: expected {w}, got {g}"
        return ""
    # as ksqlDB's runner: rows in any order unless the case asks to verify it
    unmatched = list(rows)
    for i, w in enumerate(want_rows):
        at = next((j for j, g in enumerate(unmatched) if _same(w, g)), None)
        if at is None:
            return f"query row #{i}: expected {w} among {unmatched[:5]}"
        unmatched.pop(at)
    return ""


def _check_error(case: Case, expected: dict[str, Any], message: str) -> CaseResult:
    # ksqlDB appends the statement, reformatted, to its messages: that part is not the error
    want = str(expected.get("message", "")).split("\nStatement: ")[0].strip()
    # ksqlDB's "Line: 3, Col: 38: ..." is hispeed's "line 3:38: ...": the same place
    at = re.match(r"Line: (\d+), Col: (\d+): (.*)", want, re.S)
    if at and message.startswith(f"line {at[1]}:{at[2]}: "):
        want = at[3]
    if not want or want.lower() in message.lower():
        return CaseResult(case.file, case.name, "passed")
    return CaseResult(
        case.file,
        case.name,
        "failed",
        f"error message differs:\n  expected to contain: {want}\n  got: {message}",
    )


def _create_topics(case: Case, log: Log) -> None:
    """The case's topics, with the partitions it names; ksqlDB's REST test server gives the
    others its test tool's default of 4 (records land on the partition their key hashes to),
    its topology test driver 1."""
    default = _REST_PARTITIONS if case.rest else 1
    partitions: dict[str, int] = {}
    for t in case.spec.get("topics", []):
        partitions[t["name"]] = int(t.get("partitions", default))
    for record in case.spec.get("inputs", []):
        partitions.setdefault(record["topic"], default)
    for statement in case.statements:
        upper = statement.upper()
        if " AS SELECT" in upper or not upper.lstrip().startswith("CREATE"):
            continue
        match = re.search(r"KAFKA_TOPIC\s*=\s*'([^']*)'", statement, re.IGNORECASE)
        if not match:
            continue
        given = re.search(r"PARTITIONS\s*=\s*(\d+)", statement, re.IGNORECASE)
        if given:
            partitions[match.group(1)] = int(given.group(1))
        else:
            partitions.setdefault(match.group(1), default)
    for name, count in partitions.items():
        log.create_topic(name, count, exist_ok=True)


# -- serialization of the test's records ---------------------------------------------------------


def _source_for_topic(engine: Any, topic: str) -> Source | None:
    sources: list[Source] = [s for s in engine.catalog.sources.values() if s.topic == topic]
    if not sources:
        return None
    return next((s for s in sources if s.writer is None), sources[0])


def _produce(engine: Any, record: dict[str, Any]) -> None:
    topic = record["topic"]
    source = _source_for_topic(engine, topic)
    key = record.get("key")
    value = record.get("value")
    key_bytes = _serialize(key, source, is_key=True) if source else _raw(key)
    value_bytes = _serialize(value, source, is_key=False) if source else _raw(value)
    window = record.get("window")
    if window is not None and key_bytes is not None:
        if str(window.get("type", "")).lower() == "session":
            key_bytes += struct.pack(">qq", window["start"], window["end"])
        else:
            key_bytes += struct.pack(">q", window["start"])
    headers = [
        (h["KEY"], base64.b64decode(h["VALUE"]) if h.get("VALUE") is not None else None)
        for h in record.get("headers", [])
    ]
    engine.log.append(
        topic,
        [
            {
                "key": key_bytes,
                "value": value_bytes,
                "timestamp": record.get("timestamp", 0),
                "headers": headers,
            }
        ],
    )


def _raw(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    return json.dumps(value).encode()


def _serialize(value: Any, source: Source, *, is_key: bool) -> bytes | None:
    if value is None:
        return None
    fmt = source.key_format if is_key else source.value_format
    columns = source.key_columns if is_key else source.value_columns
    if fmt == "NONE":
        return None
    if fmt == "KAFKA":
        if not columns:
            return _raw(value)
        t = columns[0].type.name
        if isinstance(value, dict) and len(value) == 1:
            value = next(iter(value.values()))
        if t == "INTEGER":
            return struct.pack(">i", int(value))
        if t == "BIGINT":
            return struct.pack(">q", int(value))
        if t == "DOUBLE":
            return struct.pack(">d", float(value))
        if t == "BYTES":
            return base64.b64decode(value) if isinstance(value, str) else bytes(value)
        return str(value).encode() if not isinstance(value, str) else value.encode()
    if fmt == "DELIMITED":
        return value.encode() if isinstance(value, str) else str(value).encode()
    return json.dumps(value).encode()


def _deserialize(data: bytes | None, source: Source | None, *, is_key: bool) -> Any:
    if data is None:
        return None
    if source is None:
        try:
            return json.loads(data)
        except ValueError:
            return data.decode(errors="replace")
    fmt = source.key_format if is_key else source.value_format
    columns = source.key_columns if is_key else source.value_columns
    if fmt == "KAFKA" and columns:
        t = columns[0].type.name
        if t == "INTEGER" and len(data) == 4:
            return struct.unpack(">i", data)[0]
        if t == "BIGINT" and len(data) == 8:
            return struct.unpack(">q", data)[0]
        if t == "DOUBLE" and len(data) == 8:
            return struct.unpack(">d", data)[0]
        if t == "BYTES":
            return base64.b64encode(data).decode()
        return data.decode(errors="replace")
    if fmt == "DELIMITED" or fmt == "KAFKA":
        return data.decode(errors="replace")
    try:
        return json.loads(data)
    except ValueError:
        return data.decode(errors="replace")


# -- comparing outputs ------------------------------------------------------------------------


def _actual_records(engine: Any, topic: str) -> list[dict[str, Any]]:
    if topic not in engine.log.list_topics(internal=True):
        return []
    source = next(
        (s for s in engine.catalog.sources.values() if s.topic == topic and s.writer is not None),
        None,
    ) or _source_for_topic(engine, topic)
    records = []
    for p in range(len(engine.log.describe_topic(topic).partitions)):
        start, _ = engine.log.offsets(topic, p)
        for batch in engine.log.read(topic, p, start):
            for r in batch.to_pylist():
                key = r["key"]
                window = None
                if source is not None and source.window is not None and key is not None:
                    if source.window.kind == "SESSION":
                        s, e = struct.unpack(">qq", key[-16:])
                        key = key[:-16]
                        window = {"start": s, "end": e, "type": "session"}
                    else:
                        (s,) = struct.unpack(">q", key[-8:])
                        key = key[:-8]
                        window = {
                            "start": s,
                            "end": s + (source.window.size_ms or 0),
                            "type": "time",
                        }
                records.append(
                    {
                        "key": _deserialize(key, source, is_key=True),
                        "value": _deserialize(r["value"], source, is_key=False),
                        "key_bytes": key,
                        "value_bytes": r["value"],
                        "source": source,
                        "timestamp": r["timestamp"],
                        "window": window,
                        "partition": p,
                        "offset": r["offset"],
                        "headers": _headers_as_listed(r["headers"]),
                    }
                )
    return records


def _headers_as_listed(headers: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A record's headers as a QTT case lists them: KEY, and VALUE in base64 (or null)."""
    return [
        {
            "KEY": h["key"],
            "VALUE": base64.b64encode(h["value"]).decode() if h["value"] is not None else None,
        }
        for h in headers or []
    ]


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, float) and isinstance(actual, float) and expected != expected:
        return actual != actual  # NaN
    if (
        (isinstance(expected, float) or isinstance(actual, float))
        and isinstance(expected, int | float)
        and isinstance(actual, int | float)
        and not isinstance(expected, bool)
        and not isinstance(actual, bool)
    ):
        return expected == actual or abs(expected - actual) <= 1e-9 * max(abs(expected), 1)
    if isinstance(expected, dict) and isinstance(actual, dict):
        return expected.keys() == actual.keys() and all(
            _same(expected[k], actual[k]) for k in expected
        )
    if isinstance(expected, list) and isinstance(actual, list):
        return len(expected) == len(actual) and all(
            _same(e, a) for e, a in zip(expected, actual, strict=True)
        )
    if isinstance(expected, bool) != isinstance(actual, bool):
        return False
    return bool(expected == actual)


def _through_serde(data: bytes | None, source: Source | None, *, is_key: bool) -> Any:
    """Decode bytes with the sink's format and columns, as ksqlDB's test runner compares them:
    field names match case-insensitively, unknown fields are ignored, numbers take the
    column's type. Undecodable bytes stay as they are."""
    if data is None or source is None:
        return data
    from hispeed.formats.base import get_format

    columns = source.key_columns if is_key else source.value_columns
    fmt = source.key_format if is_key else source.value_format
    props = source.key_properties if is_key else source.value_properties
    try:
        result = get_format(fmt, props, is_key=is_key).decode(
            pa.array([data], pa.binary()), columns
        )
    except HispeedError:
        return data
    if result.errors or not len(result.null_rows):
        return data
    if result.null_rows[0]:
        return None
    return result.batch.to_pylist()[0]


def _same_record(
    exp: Any, act: Any, act_bytes: Any, source: Source | None, *, is_key: bool
) -> bool:
    if _same(exp, act):
        return True
    if exp is None or source is None:
        return False
    expected_bytes = _serialize(exp, source, is_key=is_key)
    return _same(
        _through_serde(expected_bytes, source, is_key=is_key),
        _through_serde(act_bytes, source, is_key=is_key),
    )


def _compare_outputs(engine: Any, outputs: list[dict[str, Any]]) -> str:
    by_topic: dict[str, list[dict[str, Any]]] = {}
    for o in outputs:
        by_topic.setdefault(o["topic"], []).append(o)
    problems = []
    for topic, expected in by_topic.items():
        actual = _actual_records(engine, topic)
        if (
            len(engine.log.describe_topic(topic).partitions) > 1
            if topic in engine.log.list_topics(internal=True)
            else False
        ):
            actual.sort(key=lambda r: r["timestamp"])
        for i, exp in enumerate(expected):
            if i >= len(actual):
                problems.append(
                    f"{topic}: expected {len(expected)} records, got {len(actual)}; "
                    f"missing from #{i}: {_show(exp)}"
                )
                break
            act = actual[i]
            diffs = []
            src = act["source"]
            if "key" in exp and not _same_record(
                exp["key"], act["key"], act["key_bytes"], src, is_key=True
            ):
                diffs.append(f"key {exp['key']!r} != {act['key']!r}")
            if "value" in exp and not _same_record(
                exp["value"], act["value"], act["value_bytes"], src, is_key=False
            ):
                diffs.append(f"value {exp['value']!r} != {act['value']!r}")
            if "timestamp" in exp and exp["timestamp"] != act["timestamp"]:
                diffs.append(f"timestamp {exp['timestamp']} != {act['timestamp']}")
            if "headers" in exp and (exp["headers"] or []) != act["headers"]:
                diffs.append(f"headers {exp['headers']} != {act['headers']}")
            if "window" in exp and exp["window"] is not None:
                w = act["window"] or {}
                if (exp["window"].get("start"), exp["window"].get("end")) != (
                    w.get("start"),
                    w.get("end"),
                ):
                    diffs.append(f"window {exp['window']} != {act['window']}")
            if diffs:
                problems.append(f"{topic} record #{i}: " + "; ".join(diffs))
                break
        else:
            if len(actual) > len(expected):
                problems.append(
                    f"{topic}: expected {len(expected)} records, got {len(actual)}; "
                    f"extra: {_show(actual[len(expected)])}"
                )
    return "\n".join(problems)


def _show(record: dict[str, Any]) -> str:
    return json.dumps(
        {k: record.get(k) for k in ("key", "value", "timestamp") if k in record}, default=str
    )


def _check_post(engine: Any, post: dict[str, Any]) -> str:
    for src in post.get("sources", []):
        name = src.get("name")
        source = engine.catalog.sources.get(name)
        if source is None:
            return f"post: source {name} does not exist"
        if "type" in src and src["type"].upper() != source.kind:
            return f"post: {name} is a {source.kind}, expected {src['type']}"
        schema = src.get("schema")
        if schema:
            want = _normalize_schema(schema)
            got = _normalize_schema(source.schema_text())
            if want != got:
                return f"post: {name} schema is {source.schema_text()}, expected {schema}"
    return ""


def _normalize_schema(text: str) -> str:
    text = text.replace("`", "").upper().replace("PRIMARY KEY", "KEY")
    text = re.sub(r"\bVARCHAR\b", "STRING", text)
    text = re.sub(r"\bINT\b", "INTEGER", text)
    text = re.sub(r"\s+", " ", text)
    text = re.sub(r"\s*,\s*", ",", text)
    text = re.sub(r"\s*<\s*", "<", text)
    text = re.sub(r"\s*>", ">", text)
    text = re.sub(r"\s*\(\s*", "(", text)
    text = re.sub(r"\s*\)", ")", text)
    return text.strip()


@dataclass
class Summary:
    results: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(r.status == "passed" for r in self.results)

    @property
    def skipped(self) -> int:
        return sum(r.status == "skipped" for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.status in ("failed", "unsupported") for r in self.results)

    def by_file(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.results:
            entry = out.setdefault(r.file, {"passed": 0, "failed": 0, "total": 0})
            if r.status == "skipped":
                continue
            entry["total"] += 1
            entry["passed" if r.status == "passed" else "failed"] += 1
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "total": self.passed + self.failed,
            "skipped": self.skipped,
            "by_file": self.by_file(),
        }


def run(
    paths: list[Path], *, name_filter: str | None = None, kafka: str | None = None
) -> Iterator[CaseResult]:
    """Every case of the files (or those whose file or name contains `name_filter`), on the
    embedded log or on the Kafka cluster at `kafka`."""
    workdir = Path(tempfile.mkdtemp(prefix="hispeed-qtt-"))
    # a case's failing query is its outcome, reported with the case: not also logged by the
    # runtime manager (which keeps it in ERROR and would retry it)
    manager_log = logging.getLogger("hispeed.runtime.manager")
    level = manager_log.level
    manager_log.setLevel(logging.CRITICAL)
    try:
        for case in load_cases(paths):
            if name_filter and name_filter.lower() not in f"{case.file} {case.name}".lower():
                continue
            yield run_case(case, workdir, kafka)
    finally:
        manager_log.setLevel(level)
        shutil.rmtree(workdir, ignore_errors=True)

"""Today's lenient comparisons, kept for `hispeed qtt --lenient` (the side-by-side figure).

Records are serialized and decoded with hispeed's own formats; a differing record is
re-decoded through the sink's format (names matched case-insensitively, unknown fields
dropped, numbers coerced), numbers match within 1e-9, multi-partition outputs are sorted by
timestamp, errors match case-insensitively and post-conditions check names, types and
schemas only. The strict comparisons (`_qtt_strict`) are the runner's figures.
"""

from __future__ import annotations

import base64
import json
import re
import struct
import time
from typing import Any

import pyarrow as pa

from hispeed.catalog import Source
from hispeed.errors import HispeedError
from hispeed.plan.query import plan_query
from hispeed.runtime.pull import prepare
from hispeed.sql.parser import parse_query


def query_response(
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


def compare_query(
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


def check_error(expected: dict[str, Any], message: str) -> str:
    """Why `message` is not the expected error (case-insensitive containment), or ''."""
    # ksqlDB appends the statement, reformatted, to its messages: that part is not the error
    want = str(expected.get("message", "")).split("\nStatement: ")[0].strip()
    # ksqlDB's "Line: 3, Col: 38: ..." is hispeed's "line 3:38: ...": the same place
    at = re.match(r"Line: (\d+), Col: (\d+): (.*)", want, re.S)
    if at and message.startswith(f"line {at[1]}:{at[2]}: "):
        want = at[3]
    if not want or want.lower() in message.lower():
        return ""
    return f"error message differs:\n  expected to contain: {want}\n  got: {message}"


# -- serialization of the test's records ---------------------------------------------------------


def _source_for_topic(engine: Any, topic: str) -> Source | None:
    sources: list[Source] = [s for s in engine.catalog.sources.values() if s.topic == topic]
    if not sources:
        return None
    return next((s for s in sources if s.writer is None), sources[0])


def produce(engine: Any, record: dict[str, Any]) -> None:
    topic = record["topic"]
    source = _source_for_topic(engine, topic)
    key = record.get("key")
    value = record.get("value")
    key_bytes = _serialize(key, source, is_key=True) if source else _raw(key)
    value_bytes = _serialize(value, source, is_key=False) if source else _raw(value)
    window = record.get("window")
    if window is not None and key_bytes is not None:
        if str(window.get("type", "")).lower() == "session":
            # hispeed's own session layout, as its engine writes it: end, then start
            key_bytes += struct.pack(">qq", window["end"], window["start"])
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
                        e, s = struct.unpack(">qq", key[-16:])
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


def compare_outputs(engine: Any, outputs: list[dict[str, Any]]) -> str:
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


def check_post(engine: Any, post: dict[str, Any]) -> str:
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

"""JSON functions: EXTRACTJSONFIELD, IS_JSON_STRING, JSON_*, TO_JSON_STRING."""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
from collections.abc import Sequence
from decimal import Decimal
from functools import lru_cache
from typing import Any

import pyarrow as pa

from hispeed.functions.registry import EvalContext, scalar
from hispeed.functions.signatures import check, reject, rows
from hispeed.sql.javatext import java_double
from hispeed.sql.types import BOOLEAN, INTEGER, STRING, SqlType, array, map_

Args = Sequence[pa.Array]
Types = Sequence[SqlType]

_MISSING = object()


def parse_json(text: str) -> Any:
    """Parse JSON keeping numbers exact (floats as Decimal); an empty text gives _MISSING."""
    if not text.strip():
        return _MISSING
    try:
        return json.loads(text, parse_float=Decimal)
    except json.JSONDecodeError as e:
        raise ValueError(f"Invalid JSON format: {text}") from e


def dump_json(value: Any) -> str:
    """Write JSON compactly, as Jackson does (exact decimals, Java doubles, no spaces)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, float):
        return java_double(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, dict):
        return "{" + ",".join(f"{dump_json(str(k))}:{dump_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(dump_json(v) for v in value) + "]"
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def _one_string(name: str, result: SqlType) -> Any:
    def resolve(arg_types: Types) -> SqlType:
        check(name, "(STRING)", arg_types, STRING)
        return result

    return resolve


@scalar("IS_JSON_STRING", _one_string("IS_JSON_STRING", BOOLEAN), handles_nulls=True)
def _is_json(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Tell whether a string parses as a JSON value (false for NULL)."""

    def one(s: Any) -> bool:
        if s is None:
            return False
        try:
            return parse_json(s) is not _MISSING
        except ValueError:
            return False

    return rows(ctx, "IS_JSON_STRING", args, rt, one, skip_nulls=False)


@scalar("JSON_ARRAY_LENGTH", _one_string("JSON_ARRAY_LENGTH", INTEGER))
def _json_array_length(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the length of a JSON array, or NULL for anything else."""

    def one(s: str) -> int | None:
        node = parse_json(s)
        return len(node) if isinstance(node, list) else None

    return rows(ctx, "JSON_ARRAY_LENGTH", args, rt, one)


@scalar("JSON_KEYS", _one_string("JSON_KEYS", array(STRING)))
def _json_keys(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the top-level keys of a JSON object, or NULL for anything else."""

    def one(s: str) -> list[str] | None:
        node = parse_json(s)
        return list(node) if isinstance(node, dict) else None

    return rows(ctx, "JSON_KEYS", args, rt, one)


@scalar("JSON_RECORDS", _one_string("JSON_RECORDS", map_(STRING, STRING)))
def _json_records(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return a JSON object's top-level entries as a map of key to JSON text (strings bare)."""

    def one(s: str) -> list[tuple[str, str]] | None:
        node = parse_json(s)
        if not isinstance(node, dict):
            return None
        return [(k, v if isinstance(v, str) else dump_json(v)) for k, v in node.items()]

    return rows(ctx, "JSON_RECORDS", args, rt, one)


@scalar("JSON_ITEMS", _one_string("JSON_ITEMS", array(STRING)))
def _json_items(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the elements of a JSON array as JSON texts."""

    def one(s: str) -> list[str]:
        node = parse_json(s)
        if not isinstance(node, list):
            raise ValueError(f"Invalid JSON format: {s} is not an array")
        return [dump_json(v) for v in node]

    return rows(ctx, "JSON_ITEMS", args, rt, one)


def _resolve_json_concat(arg_types: Types) -> SqlType:
    if not arg_types or any(t != STRING for t in arg_types):
        reject("JSON_CONCAT", "(STRING, ...)", arg_types)
    return STRING


@scalar("JSON_CONCAT", _resolve_json_concat, handles_nulls=True)
def _json_concat(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Merge JSON objects, or concatenate JSON values as arrays; NULL if any is not JSON."""

    def one(*texts: Any) -> str | None:
        if any(t is None for t in texts):
            return None
        try:
            nodes = [parse_json(t) for t in texts]
        except ValueError:
            return None
        if any(n is _MISSING for n in nodes):
            return None
        if all(isinstance(n, dict) for n in nodes):
            merged: dict[str, Any] = {}
            for n in nodes:
                merged.update(n)
            return dump_json(merged)
        out: list[Any] = []
        for n in nodes:
            out.extend(n if isinstance(n, list) else [n])
        return dump_json(out)

    return rows(ctx, "JSON_CONCAT", args, rt, one, skip_nulls=False)


def _resolve_json_contains(arg_types: Types) -> SqlType:
    accepts = "(STRING, BOOLEAN | INTEGER | BIGINT | DOUBLE | STRING)"
    if len(arg_types) != 2 or arg_types[0] != STRING:
        reject("JSON_ARRAY_CONTAINS", accepts, arg_types)
    if arg_types[1].name not in ("BOOLEAN", "INTEGER", "BIGINT", "DOUBLE", "STRING"):
        reject("JSON_ARRAY_CONTAINS", accepts, arg_types)
    return BOOLEAN


@scalar("JSON_ARRAY_CONTAINS", _resolve_json_contains, handles_nulls=True)
def _json_array_contains(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Tell whether a JSON array holds the value at its top level."""
    kind = arg_types[1].name

    def matches(element: Any, value: Any) -> bool:
        if value is None:
            return element is None
        if kind == "BOOLEAN":
            return isinstance(element, bool) and element == value
        if kind in ("INTEGER", "BIGINT"):
            return isinstance(element, int) and not isinstance(element, bool) and element == value
        if kind == "DOUBLE":
            return isinstance(element, Decimal) and float(element) == value
        return isinstance(element, str) and element == value

    def one(text: Any, value: Any) -> bool:
        if text is None:
            return False
        try:
            node = parse_json(text)
        except ValueError:
            return False
        return isinstance(node, list) and any(matches(e, value) for e in node)

    return rows(ctx, "JSON_ARRAY_CONTAINS", args, rt, one, skip_nulls=False)


# --- EXTRACTJSONFIELD ----------------------------------------------------------------------------

_PATH_TOKEN = re.compile(
    r"\.([^.\[\]]+)|\[\s*'((?:[^'\\]|\\.)*)'\s*\]|\[\s*\"((?:[^\"\\]|\\.)*)\"\s*\]|\[\s*(-?\d+)\s*\]"
)


@lru_cache(maxsize=256)
def json_path(path: str) -> tuple[str, ...]:
    """Split a JSONPath like `$.a['b'][0]` into its keys."""
    if not path.startswith("$"):
        raise ValueError(f"invalid JSON path {path!r}: must start with '$'")
    tokens: list[str] = []
    pos = 1
    while pos < len(path):
        m = _PATH_TOKEN.match(path, pos)
        if m is None:
            raise ValueError(f"invalid JSON path {path!r} at position {pos}")
        tokens.append(next(g for g in m.groups() if g is not None))
        pos = m.end()
    return tuple(tokens)


def _resolve_extract(arg_types: Types) -> SqlType:
    check("EXTRACTJSONFIELD", "(STRING json, STRING path)", arg_types, STRING, STRING)
    return STRING


@scalar("EXTRACTJSONFIELD", _resolve_extract)
def _extract_json_field(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the value at a JSONPath as text (strings bare, other values as JSON)."""

    def one(text: str, path: str) -> str | None:
        node = parse_json(text)
        if node is _MISSING:
            return None
        for token in json_path(path):
            if isinstance(node, list):
                try:
                    index = int(token)
                except ValueError:
                    return None
                if not 0 <= index < len(node):
                    return None
                node = node[index]
            elif isinstance(node, dict):
                if token not in node:
                    return None
                node = node[token]
            else:
                return None
        return node if isinstance(node, str) else dump_json(node)

    return rows(ctx, "EXTRACTJSONFIELD", args, rt, one)


# --- TO_JSON_STRING ------------------------------------------------------------------------------


def _prepare(value: Any, t: SqlType) -> Any:
    """Turn a to_pylist value of SQL type t into what TO_JSON_STRING writes."""
    if value is None:
        return None
    if t.name == "TIMESTAMP":
        ts = value if isinstance(value, dt.datetime) else dt.datetime.fromtimestamp(0)
        return ts.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts.microsecond // 1000:03d}"
    if t.name == "DATE":
        return value.isoformat()
    if t.name == "TIME":
        secs = value.hour * 3600 + value.minute * 60 + value.second
        h, m, s = secs // 3600, secs // 60 % 60, secs % 60
        return f"{h:02d}:{m:02d}" + (f":{s:02d}" if s else "")
    if t.name == "BYTES":
        return base64.b64encode(value).decode("ascii")
    if t.name == "DECIMAL":
        return value
    if t.name == "ARRAY":
        assert t.element is not None
        return [_prepare(v, t.element) for v in value]
    if t.name == "MAP":
        assert t.key is not None and t.element is not None
        entries = {str(_prepare(k, t.key)): _prepare(v, t.element) for k, v in value}
        return dict(sorted(entries.items()))
    if t.name == "STRUCT":
        fields = {n: _prepare(value.get(n), ft) for n, ft in t.fields}
        return dict(sorted(fields.items()))
    return value


def _resolve_to_json(arg_types: Types) -> SqlType:
    if len(arg_types) != 1:
        reject("TO_JSON_STRING", "(any one value)", arg_types)
    return STRING


@scalar("TO_JSON_STRING", _resolve_to_json, handles_nulls=True)
def _to_json_string(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return any value as JSON text (NULL gives 'null')."""
    t = arg_types[0]
    return rows(
        ctx, "TO_JSON_STRING", args, rt, lambda v: dump_json(_prepare(v, t)), skip_nulls=False
    )

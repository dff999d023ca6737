"""Turn an HTTP body of JSON records into log records, all or nothing.

A body is a JSON array of values, one JSON value, NDJSON (one value a line), or the
Confluent REST Proxy shape `{"records": [{"key": ..., "value": ..., "partition": ...}]}`
when sent as `application/vnd.kafka.json.v2+json`. A key comes from a field of each value
(`key_field`), one key for all (`key`), or the REST Proxy records themselves.

Sent as `application/vnd.kafka.binary.v2+json` (REST Proxy's binary embedded format), the
records' keys and values are base64 and go into the log as the bytes they encode: how
records already serialized (Avro, Protobuf or JSON Schema in Confluent's framing, by
confluent-kafka's serializers) are produced over HTTP.
"""

from __future__ import annotations

import base64
import binascii
import functools
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

import msgspec

from hispeed.errors import HispeedError

REST_PROXY_TYPE = "application/vnd.kafka.json.v2+json"
REST_PROXY_BINARY_TYPE = "application/vnd.kafka.binary.v2+json"


class IngestError(HispeedError):
    """A body or record that cannot be ingested; nothing of the request was written."""


@dataclass
class IngestBatch:
    keys: list[bytes | None]
    values: list[bytes | None]
    partitions: list[int | None]


def decode_json(data: bytes | str, what: str = "the body") -> Any:
    """`data` decoded as JSON; an IngestError (a 400) says what is wrong and at which byte.

    msgspec decodes nested arrays and objects recursively, so a few kilobytes of `[[[[...`
    exhaust Python's recursion limit: that is the sender's mistake, not the server's."""
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as e:
        raise IngestError(f"{what} is not JSON: {e}") from None
    except RecursionError:
        depth, at = nesting(data.encode() if isinstance(data, str) else data)
        raise IngestError(
            f"{what} nests arrays and objects {depth} levels deep (at byte {at}), deeper than "
            "the server reads: flatten it"
        ) from None


def nesting(data: bytes) -> tuple[int, int]:
    """The deepest nesting of JSON arrays and objects in `data`, and the byte where it is
    first reached (brackets inside strings do not count). Only run on a failure."""
    depth = deepest = at = 0
    in_string = escaped = False
    for i, c in enumerate(data):
        if in_string:
            if escaped:
                escaped = False
            elif c == 0x5C:  # backslash
                escaped = True
            elif c == 0x22:  # quote
                in_string = False
        elif c == 0x22:
            in_string = True
        elif c in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > deepest:
                deepest, at = depth, i
        elif c in (0x5D, 0x7D):  # ] }
            depth -= 1
    return deepest, at


def query_params(query: bytes) -> dict[str, str]:
    """A query string's parameters (the last of a repeated name wins), as the ASGI routes
    read them. A producer sends the same few query strings over and over: each is parsed
    once (parsing took a tenth of a one-record POST's server time)."""
    return dict(_query_items(query))


@functools.lru_cache(maxsize=256)
def _query_items(query: bytes) -> tuple[tuple[str, str], ...]:
    return tuple(parse_qsl(query.decode("latin-1"), True))


def _key_bytes(value: Any) -> bytes | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value.encode()
    if isinstance(value, bool) or not isinstance(value, int | float):
        return msgspec.json.encode(value)
    return str(value).encode()


def parse_body(
    body: bytes, content_type: str, key_field: str | None = None, key: str | None = None
) -> IngestBatch:
    """Parse and validate every record of a body; raises IngestError naming the bad one."""
    ctype = content_type.split(";")[0].strip().lower()
    if not body.strip():
        raise IngestError("the request body is empty: send a JSON value, an array, or NDJSON")
    items: list[Any]
    if ctype in ("application/x-ndjson", "application/jsonlines", "application/jsonl"):
        items = _ndjson(body)
    else:
        try:
            doc = decode_json(body)
        except IngestError:
            if b"\n" not in body.strip():
                raise
            items = _ndjson(body)  # several lines: NDJSON sent without its content type
        else:
            if ctype == REST_PROXY_TYPE:
                return _rest_proxy(doc)
            if ctype == REST_PROXY_BINARY_TYPE:
                return _rest_proxy(doc, binary=True)
            items = doc if isinstance(doc, list) else [doc]
    keys: list[bytes | None] = []
    values: list[bytes | None] = []
    fixed = key.encode() if key is not None else None
    for i, item in enumerate(items):
        if key_field is not None:
            if not isinstance(item, dict):
                raise IngestError(
                    f"record {i}: key_field={key_field!r} needs a JSON object, "
                    f"not {json_kind(item)}"
                )
            if key_field not in item:
                raise IngestError(f"record {i} has no field {key_field!r} to use as its key")
            keys.append(_key_bytes(item[key_field]))
        else:
            keys.append(fixed)
        values.append(None if item is None else _encode(item, f"record {i}"))
    return IngestBatch(keys, values, [None] * len(values))


def parse_message(
    body: bytes, content_type: str, key_field: str | None, key: str | None
) -> IngestBatch:
    """`parse_body`: the same batch or the same error, taking a short way for what nearly
    every producer sends, one JSON object as application/json."""
    if content_type != "application/json":
        return parse_body(body, content_type, key_field=key_field, key=key)
    try:
        doc = msgspec.json.decode(body)
    except (msgspec.DecodeError, RecursionError):
        doc = None
    if type(doc) is not dict or (key_field is not None and key_field not in doc):
        return parse_body(body, "application/json", key_field=key_field, key=key)
    if key_field is not None:
        record_key = _key_bytes(doc[key_field])
    else:
        record_key = key.encode() if key is not None else None
    return IngestBatch([record_key], [_encode(doc, "record 0")], [None])


def _encode(value: Any, what: str) -> bytes:
    # what decoded can fail to encode on a thread with less stack left: the same mistake
    try:
        return msgspec.json.encode(value)
    except RecursionError:
        raise IngestError(f"{what} nests arrays and objects deeper than the server reads") from None


def _ndjson(body: bytes) -> list[Any]:
    items = []
    for n, line in enumerate(body.splitlines(), start=1):
        if not line.strip():
            continue
        items.append(decode_json(line, f"line {n}"))
    return items


def json_kind(value: Any) -> str:
    """What a decoded JSON value is, in JSON's words (a client sent JSON, not Python)."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "text"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else "null"


def _base64(value: Any, what: str) -> bytes | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise IngestError(f"{what} must be base64 text (or null), not {json_kind(value)}")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise IngestError(f"{what} is not base64") from None


def _rest_proxy(doc: Any, binary: bool = False) -> IngestBatch:
    kind = REST_PROXY_BINARY_TYPE if binary else REST_PROXY_TYPE
    if not isinstance(doc, dict) or not isinstance(doc.get("records"), list):
        raise IngestError(f'a {kind} body is {{"records": [...]}}')
    batch = IngestBatch([], [], [])
    for i, rec in enumerate(doc["records"]):
        if not isinstance(rec, dict) or "value" not in rec:
            raise IngestError(f'records[{i}] needs a "value" (and may have "key", "partition")')
        part = rec.get("partition")
        if part is not None and (not isinstance(part, int) or isinstance(part, bool) or part < 0):
            raise IngestError(f"records[{i}].partition must be a partition number, not {part!r}")
        value = rec["value"]
        if binary:
            batch.keys.append(_base64(rec.get("key"), f"records[{i}].key"))
            batch.values.append(_base64(value, f"records[{i}].value"))
        else:
            batch.keys.append(_key_bytes(rec.get("key")))
            batch.values.append(None if value is None else _encode(value, f"records[{i}].value"))
        batch.partitions.append(part)
    return batch

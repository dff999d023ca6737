"""NULL handling, bytes and encodings, hashing, UUIDs, URLs and GEO_DISTANCE."""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import struct
import uuid
from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import quote_plus, unquote, unquote_plus

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.registry import EvalContext, scalar
from hispeed.functions.signatures import (
    cast,
    check,
    common_type,
    float_values,
    from_numpy,
    null_mask,
    reject,
    rows,
)
from hispeed.sql.types import BIGINT, BYTES, DOUBLE, INTEGER, STRING, SqlType

Args = Sequence[pa.Array]
Types = Sequence[SqlType]

# --- COALESCE, IFNULL, NULLIF --------------------------------------------------------------------


def _resolve_coalesce(arg_types: Types) -> SqlType:
    return common_type("COALESCE", "one or more values of one type", arg_types)


def _coalesce_arrays(args: Args, rt: SqlType) -> pa.Array:
    cols = [cast(a, rt) for a in args]
    if len(cols) == 1:
        return cols[0]
    try:
        return pc.coalesce(*cols)
    except pa.ArrowNotImplementedError:
        lists = [c.to_pylist() for c in cols]
        out = [next((v for v in vals if v is not None), None) for vals in zip(*lists, strict=True)]
        return pa.array(out, rt.to_arrow())


def _resolve_as_value(arg_types: Types) -> SqlType:
    if len(arg_types) != 1:
        reject("AS_VALUE", "one argument of any type", arg_types)
    return arg_types[0]


@scalar("AS_VALUE", _resolve_as_value, handles_nulls=True)
def _as_value(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Copy a key column into the value (the same value, as a value column)."""
    return args[0]


@scalar("COALESCE", _resolve_coalesce, handles_nulls=True)
def _coalesce(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the first non-NULL argument."""
    return _coalesce_arrays(args, rt)


def _resolve_ifnull(arg_types: Types) -> SqlType:
    if len(arg_types) != 2:
        reject("IFNULL", "(expression, altValue) of one type", arg_types)
    return common_type("IFNULL", "(expression, altValue) of one type", arg_types)


@scalar("IFNULL", _resolve_ifnull, handles_nulls=True)
def _ifnull(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the expression, or altValue when the expression is NULL."""
    return _coalesce_arrays(args, rt)


def _resolve_nullif(arg_types: Types) -> SqlType:
    if len(arg_types) != 2:
        reject("NULLIF", "(expression1, expression2) of one type", arg_types)
    common_type("NULLIF", "(expression1, expression2) of one type", arg_types)
    return arg_types[0]


@scalar("NULLIF", _resolve_nullif, handles_nulls=True)
def _nullif(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return NULL when the two arguments are equal, else the first."""
    a, b = args
    if arg_types[0] != arg_types[1]:
        common = common_type("NULLIF", "", arg_types)
        a_cmp, b_cmp = cast(a, common), cast(b, common)
    else:
        a_cmp, b_cmp = a, b
    try:
        equal = pc.fill_null(pc.equal(a_cmp, b_cmp), False)
    except pa.ArrowNotImplementedError:
        pairs = zip(a_cmp.to_pylist(), b_cmp.to_pylist(), strict=True)
        equal = pa.array([x is not None and x == y for x, y in pairs], pa.bool_())
    return pc.if_else(equal, pa.nulls(len(a), a.type), a)


# --- bytes and encodings -------------------------------------------------------------------------

_ENCODINGS = ("hex", "utf8", "ascii", "base64")


def _encoding(name: str) -> str:
    e = name.lower()
    if e not in _ENCODINGS:
        raise ValueError(
            f"unknown encoding {name!r}; supported are 'hex', 'utf8', 'ascii' and 'base64'"
        )
    return e


def _strip_hex(s: str) -> str:
    if s.startswith("0x"):
        body = s[2:]
        return "0" + body if len(s) % 2 else body
    if len(s) >= 3 and s[0] in "xX" and s[1] == "'" and s[-1] == "'":
        return s[2:-1]
    return s


def decode_text(s: str, encoding: str) -> bytes:
    """Turn text in an encoding (hex, utf8, ascii, base64) into bytes."""
    e = _encoding(encoding)
    if e == "hex":
        return binascii.unhexlify(_strip_hex(s))
    if e == "utf8":
        return s.encode("utf-8")
    if e == "ascii":
        return s.encode("ascii", errors="replace")
    body = s.strip().encode("ascii")
    return base64.b64decode(body + b"=" * (-len(body) % 4))


def encode_bytes(b: bytes, encoding: str, *, upper_hex: bool = True) -> str:
    """Turn bytes into text in an encoding (hex, utf8, ascii, base64)."""
    e = _encoding(encoding)
    if e == "hex":
        h = b.hex()
        return h.upper() if upper_hex else h
    if e == "utf8":
        return b.decode("utf-8", errors="replace")
    if e == "ascii":
        return "".join(chr(c) if c < 128 else "\ufffd" for c in b)
    return base64.b64encode(b).decode("ascii")


def _resolve_to_bytes(arg_types: Types) -> SqlType:
    check("TO_BYTES", "(STRING, STRING encoding)", arg_types, STRING, STRING)
    return BYTES


@scalar("TO_BYTES", _resolve_to_bytes)
def _to_bytes(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Convert a string in an encoding (hex, utf8, ascii, base64) to bytes."""
    return rows(ctx, "TO_BYTES", args, rt, decode_text)


def _resolve_from_bytes(arg_types: Types) -> SqlType:
    check("FROM_BYTES", "(BYTES, STRING encoding)", arg_types, BYTES, STRING)
    return STRING


@scalar("FROM_BYTES", _resolve_from_bytes)
def _from_bytes(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Convert bytes to a string in an encoding (hex, utf8, ascii, base64)."""
    return rows(ctx, "FROM_BYTES", args, rt, encode_bytes)


def _resolve_encode(arg_types: Types) -> SqlType:
    check(
        "ENCODE",
        "(STRING, STRING input_encoding, STRING output_encoding)",
        arg_types,
        STRING,
        STRING,
        STRING,
    )
    return STRING


def _encode_one(s: str, source: str, target: str) -> str:
    src, dst = _encoding(source), _encoding(target)
    if src == dst:
        raise ValueError("supported input and output encodings are: hex, utf8, ascii and base64")
    data = decode_text(s, src)
    return encode_bytes(data, dst, upper_hex=False)


@scalar("ENCODE", _resolve_encode)
def _encode(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Re-encode a string from one encoding (hex, utf8, ascii, base64) to another."""
    return rows(ctx, "ENCODE", args, rt, _encode_one)


def _from_bytes_fn(name: str, size: int, fmt: str, result: SqlType) -> None:
    accepts = "(BYTES[, STRING byte_order])"

    def resolve(arg_types: Types) -> SqlType:
        if len(arg_types) not in (1, 2):
            reject(name, accepts, arg_types)
        check(name, accepts, arg_types, BYTES, *([STRING] * (len(arg_types) - 1)))
        return result

    def one(value: bytes, order: str = "BIG_ENDIAN") -> Any:
        if order.upper() not in ("BIG_ENDIAN", "LITTLE_ENDIAN"):
            raise ValueError(f"byte order must be BIG_ENDIAN or LITTLE_ENDIAN, not {order!r}")
        if len(value) != size:
            raise ValueError(f"expected {size} bytes, got {len(value)}")
        prefix = ">" if order.upper() == "BIG_ENDIAN" else "<"
        return struct.unpack(prefix + fmt, value)[0]

    def evaluate(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
        return rows(ctx, name, args, rt, one)

    doc = f"Read a {size}-byte {result} from bytes, big-endian unless told LITTLE_ENDIAN."
    scalar(name, resolve, description=doc)(evaluate)


_from_bytes_fn("INT_FROM_BYTES", 4, "i", INTEGER)
_from_bytes_fn("BIGINT_FROM_BYTES", 8, "q", BIGINT)
_from_bytes_fn("DOUBLE_FROM_BYTES", 8, "d", DOUBLE)


def _resolve_md5(arg_types: Types) -> SqlType:
    check("MD5", "(STRING)", arg_types, STRING)
    return STRING


@scalar("MD5", _resolve_md5)
def _md5(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the hex MD5 digest of a string's UTF-8 bytes."""
    return rows(ctx, "MD5", args, rt, lambda s: hashlib.md5(s.encode("utf-8")).hexdigest())


def _resolve_uuid(arg_types: Types) -> SqlType:
    if len(arg_types) > 1 or (arg_types and arg_types[0] != BYTES):
        reject("UUID", "() or (BYTES)", arg_types)
    return STRING


def _uuid_from_bytes(b: bytes) -> str | None:
    return str(uuid.UUID(bytes=b)) if len(b) == 16 else None


@scalar("UUID", _resolve_uuid, deterministic=False)
def _uuid(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return a random (version 4) UUID, or the UUID held in 16 bytes."""
    if args:
        return rows(ctx, "UUID", args, rt, _uuid_from_bytes)
    return pa.array([str(uuid.uuid4())], pa.string())


# --- URLs ----------------------------------------------------------------------------------------

_URI_BAD = re.compile(r"[\x00-\x20\"<>\\^`{|}\x7f]|%(?![0-9A-Fa-f]{2})")
_URI = re.compile(
    r"^(?:([A-Za-z][A-Za-z0-9+.\-]*):)?(?://([^/?#]*))?([^?#]*)(?:\?([^#]*))?(?:#(.*))?$"
)


class _Uri:
    """The parts of a URI, decoded like java.net.URI's getters."""

    def __init__(self, text: str) -> None:
        if _URI_BAD.search(text):
            raise ValueError(f"URL input has invalid syntax: {text}")
        m = _URI.match(text)
        if m is None:  # pragma: no cover - the pattern matches every string
            raise ValueError(f"URL input has invalid syntax: {text}")
        self.scheme: str | None = m[1]
        authority = m[2]
        self.host: str | None = None
        self.port: int | None = None
        if authority is not None:
            hostport = authority.rsplit("@", 1)[-1]
            if hostport.startswith("["):
                end = hostport.find("]")
                self.host = hostport[: end + 1]
                rest = hostport[end + 1 :]
            else:
                self.host, _, rest = hostport.partition(":")
                rest = ":" + rest if _ else ""
            if rest.startswith(":") and rest[1:]:
                if not rest[1:].isdigit():
                    raise ValueError(f"URL input has invalid syntax: {text}")
                self.port = int(rest[1:])
            self.host = self.host or None
        self.path = unquote(m[3])
        self.query = None if m[4] is None else unquote(m[4])
        self.fragment = None if m[5] is None else unquote(m[5])


def _resolve_url(name: str, result: SqlType) -> Callable[[Types], SqlType]:
    def resolve(arg_types: Types) -> SqlType:
        check(name, "(STRING)", arg_types, STRING)
        return result

    return resolve


def _url_part(name: str, part: str, result: SqlType, doc: str) -> None:
    def evaluate(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
        return rows(ctx, name, args, rt, lambda s: getattr(_Uri(s), part))

    scalar(name, _resolve_url(name, result), description=doc)(evaluate)


_url_part("URL_EXTRACT_FRAGMENT", "fragment", STRING, "Return the decoded fragment of a URL.")
_url_part("URL_EXTRACT_HOST", "host", STRING, "Return the host of a URL.")
_url_part("URL_EXTRACT_PATH", "path", STRING, "Return the decoded path of a URL.")
_url_part("URL_EXTRACT_PORT", "port", INTEGER, "Return the explicit port of a URL.")
_url_part("URL_EXTRACT_PROTOCOL", "scheme", STRING, "Return the scheme of a URL.")
_url_part("URL_EXTRACT_QUERY", "query", STRING, "Return the decoded query string of a URL.")


def _resolve_url_param(arg_types: Types) -> SqlType:
    check("URL_EXTRACT_PARAMETER", "(STRING url, STRING name)", arg_types, STRING, STRING)
    return STRING


def _url_param_one(url: str, name: str) -> str | None:
    query = _Uri(url).query
    if query is None:
        return None
    for param in query.split("&"):
        key, eq, value = param.partition("=")
        if key == name:
            return value if eq else ""
    return None


@scalar("URL_EXTRACT_PARAMETER", _resolve_url_param)
def _url_param(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the value of a named parameter in a URL's query string."""
    return rows(ctx, "URL_EXTRACT_PARAMETER", args, rt, _url_param_one)


@scalar("URL_ENCODE_PARAM", _resolve_url("URL_ENCODE_PARAM", STRING))
def _url_encode(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Escape a value for use as a URL query parameter (form encoding)."""

    def one(s: str) -> str:
        return quote_plus(s, safe="-_.*").replace("~", "%7E")

    return rows(ctx, "URL_ENCODE_PARAM", args, rt, one)


@scalar("URL_DECODE_PARAM", _resolve_url("URL_DECODE_PARAM", STRING))
def _url_decode(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Unescape a form-encoded URL parameter."""

    def one(s: str) -> str:
        if re.search(r"%(?![0-9A-Fa-f]{2})", s):
            raise ValueError(f"incomplete escape in {s!r}")
        return unquote_plus(s, errors="strict")

    return rows(ctx, "URL_DECODE_PARAM", args, rt, one)


# --- GEO_DISTANCE --------------------------------------------------------------------------------

_MILES = ("mi", "mile", "miles")
_KMS = ("km", "kilometer", "kilometers", "kilometre", "kilometres")


def _resolve_geo(arg_types: Types) -> SqlType:
    accepts = "(DOUBLE lat1, DOUBLE lon1, DOUBLE lat2, DOUBLE lon2[, STRING unit])"
    if len(arg_types) not in (4, 5):
        reject("GEO_DISTANCE", accepts, arg_types)
    check(
        "GEO_DISTANCE", accepts, arg_types, *(["NUMERIC"] * 4), *([STRING] * (len(arg_types) - 4))
    )
    return DOUBLE


@scalar("GEO_DISTANCE", _resolve_geo)
def _geo_distance(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return the great-circle distance between two points in km (or miles if told)."""
    lat1, lon1, lat2, lon2 = (float_values(a) for a in args[:4])
    mask = null_mask(*args[:4])
    radius = np.full(len(lat1), 6371.0)
    if len(args) == 5:
        for i, unit in enumerate(args[4].to_pylist()):
            u = (unit or "").strip().lower()
            if u in _MILES:
                radius[i] = 3959.0
            elif u and u not in _KMS:
                if not mask[i]:
                    ctx.error(i, f"GEO_DISTANCE: units must be one of {', '.join(_MILES + _KMS)}")
                mask[i] = True
    with np.errstate(invalid="ignore"):
        bad = (
            (np.abs(lat1) > 90) | (np.abs(lat2) > 90) | (np.abs(lon1) > 180) | (np.abs(lon2) > 180)
        )
    for row in np.flatnonzero(bad & ~mask).tolist():
        ctx.error(row, "GEO_DISTANCE: latitude must be in -90..90 and longitude in -180..180")
    mask = mask | bad
    # libm's scalar functions, row by row, in ksqlDB's order of operations: numpy's vectorized
    # sin/cos/arcsin may differ from them in the last bit, and ksqlDB's results are Java's
    dist = np.zeros(len(lat1))
    for i in np.flatnonzero(~mask).tolist():
        dist[i] = _haversine(lat1[i], lon1[i], lat2[i], lon2[i]) * radius[i]
    return from_numpy(dist, mask, DOUBLE)


def _haversine(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """The central angle between two points (ksqlDB's GeoDistance, before the radius)."""
    d_lat = math.radians(lat2 - lat1)
    d_lon = math.radians(lon2 - lon1)
    a = math.sin(d_lat / 2) ** 2 + math.sin(d_lon / 2) ** 2 * math.cos(
        math.radians(lat1)
    ) * math.cos(math.radians(lat2))
    return 2 * math.asin(math.sqrt(a))

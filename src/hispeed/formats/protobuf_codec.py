"""Protobuf messages <-> column values, a batch at a time, as ksqlDB's protobuf serdes map them.

A `Reader` is built once per (message descriptor, declared columns): a getter per column that
reads one parsed message's field into the Python value its Arrow column takes. Decoding parses
each record with the runtime's (upb) message class, collects one Python list per column and
builds each Arrow array once per batch. A `Writer` is the reverse: one setter per column
filling a fresh message from the batch's values.

What a field reads as (Confluent's `ProtobufData.toConnectData`, then ksqlDB's translator):
a proto3 scalar without `optional` reads its default when unset (0, "", false); an `optional`
scalar and any message field read null when unset; a repeated field reads [] when empty and a
map {}; a `google.protobuf.*Value` wrapper reads as its value; an enum as its symbol's name;
`google.protobuf.Timestamp`, `google.type.Date`, `google.type.TimeOfDay` and
`confluent.type.Decimal` as TIMESTAMP, DATE, TIME and DECIMAL. Columns and struct fields are
matched to message fields by name, exactly and then ignoring case (a column the message lacks
reads null).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from hispeed.formats.base import Column, FormatError
from hispeed.formats.protobuf_schema import (
    DATE_TYPE,
    DECIMAL_TYPE,
    TIME_TYPE,
    TIMESTAMP_TYPE,
    UNWRAPPED,
    field_sql_type,
    is_map_entry,
    message_class,
)
from hispeed.sql.types import SqlType

Getter = Callable[[Any], Any]
Setter = Callable[[Any, Any], None]

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_EPOCH = dt.datetime(1970, 1, 1)
_MAX_DEPTH = 64


class MessageError(FormatError):
    """A value that does not fit the message (or a message that does not fit the column)."""


def find_field(message: Descriptor, name: str) -> FieldDescriptor | None:
    """The message's field called `name`, exactly or else ignoring case."""
    exact = message.fields_by_name.get(name)
    if exact is not None:
        return exact
    upper = name.upper()
    for f in message.fields:
        if f.name.upper() == upper:
            return f
    return None


def _kind(field: FieldDescriptor) -> str:
    """What a field holds: a message's full name, "enum", or "scalar"."""
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return str(field.message_type.full_name)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return "enum"
    return "scalar"


# -- reading ------------------------------------------------------------------------------


def _scalar_reader(field: FieldDescriptor, t: SqlType) -> Callable[[Any], Any]:
    """Turn one element of the field (already read from the message) into a value of `t`."""
    kind = _kind(field)
    name = t.name
    if kind == "enum":
        names = {v.number: v.name for v in field.enum_type.values}
        if name != "STRING":
            raise MessageError(f"cannot read the enum {field.full_name} as {t}")
        return lambda v: names.get(v, str(v))
    if kind in UNWRAPPED:
        inner = UNWRAPPED[kind]
        _check_compatible(field, inner, t)
        return _coerce(inner, t, lambda v: v.value)
    if kind == TIMESTAMP_TYPE:
        _check_compatible(field, SqlType("TIMESTAMP"), t)
        return lambda v: v.seconds * 1000 + v.nanos // 1_000_000
    if kind == DATE_TYPE:
        _check_compatible(field, SqlType("DATE"), t)
        return lambda v: dt.date(v.year, v.month, v.day).toordinal() - _EPOCH_ORDINAL
    if kind == TIME_TYPE:
        _check_compatible(field, SqlType("TIME"), t)
        return lambda v: ((v.hours * 60 + v.minutes) * 60 + v.seconds) * 1000 + v.nanos // 10**6
    if kind == DECIMAL_TYPE:
        if name != "DECIMAL":
            raise MessageError(f"cannot read the decimal field {field.full_name} as {t}")
        quantum = Decimal(1).scaleb(-(t.scale or 0))

        def read_decimal(v: Any) -> Decimal:
            unscaled = int.from_bytes(v.value, "big", signed=True)
            return Decimal(unscaled).scaleb(-v.scale).quantize(quantum, ROUND_HALF_UP)

        return read_decimal
    if kind != "scalar":  # any other message: a STRUCT
        if name != "STRUCT":
            raise MessageError(f"cannot read the message field {field.full_name} as {t}")
        reader = struct_reader(field.message_type, t, depth=1)
        return reader
    source = _scalar_sql(field)
    _check_compatible(field, source, t)
    return _coerce(source, t, lambda v: v)


def _scalar_sql(field: FieldDescriptor) -> SqlType:
    t = field_sql_type(field)
    return t.element if t.name == "ARRAY" and t.element is not None else t


def _check_compatible(field: FieldDescriptor, source: SqlType, target: SqlType) -> None:
    ok = source.name == target.name or (
        source.name in ("INTEGER", "BIGINT") and target.name in ("INTEGER", "BIGINT", "DOUBLE")
    )
    if not ok:
        raise MessageError(f"cannot read the field {field.full_name} ({source}) as {target}")


def _coerce(source: SqlType, target: SqlType, get: Callable[[Any], Any]) -> Callable[[Any], Any]:
    if source.name == target.name or target.name == "BIGINT":
        return get
    if target.name == "DOUBLE":
        return lambda v: float(get(v))
    if target.name == "INTEGER":  # a BIGINT field read as INT: Java's int cast wraps

        def narrow(v: Any) -> int:
            n = int(get(v)) & 0xFFFFFFFF
            return n - (1 << 32) if n >> 31 else n

        return narrow
    return get


def field_getter(field: FieldDescriptor, t: SqlType) -> Getter:
    """Read `field` of a parsed message as a value of `t` (see the module's notes)."""
    fname = field.name
    if field.is_repeated:
        if is_map_entry(field):
            if t.name != "MAP" or t.element is None or t.key is None:
                raise MessageError(f"cannot read the map field {field.full_name} as {t}")
            key_f, value_f = field.message_type.fields
            if field.message_type.GetOptions().map_entry:  # a proto `map<K, V>` field
                read_key = _scalar_reader(key_f, t.key)
                read_value = _scalar_reader(value_f, t.element)
                return lambda m: [
                    (read_key(k), read_value(v)) for k, v in getattr(m, fname).items()
                ]
            # an entry message written out (as Confluent's generated schemas have them)
            get_key = field_getter(key_f, t.key)
            get_value = field_getter(value_f, t.element)
            return lambda m: [(get_key(e), get_value(e)) for e in getattr(m, fname)]
        if t.name != "ARRAY" or t.element is None:
            raise MessageError(f"cannot read the repeated field {field.full_name} as {t}")
        read = _scalar_reader(field, t.element)
        return lambda m: [read(v) for v in getattr(m, fname)]
    read = _scalar_reader(field, t)
    if field.has_presence:  # message fields and `optional` scalars: null when unset
        return lambda m: read(getattr(m, fname)) if m.HasField(fname) else None
    return lambda m: read(getattr(m, fname))


def struct_reader(message: Descriptor, t: SqlType, depth: int = 0) -> Getter:
    """Read a message as a STRUCT value (a dict by `t`'s field names)."""
    if depth > _MAX_DEPTH:
        raise MessageError(f"the message {message.full_name} nests too deeply")
    getters: list[tuple[str, Getter | None]] = []
    for name, ft in t.fields:
        f = find_field(message, name)
        getters.append((name, field_getter(f, ft) if f is not None else None))
    return lambda m: {n: (g(m) if g is not None else None) for n, g in getters}


class Reader:
    """Reads parsed messages of one descriptor into per-column values."""

    def __init__(
        self, message: Descriptor, columns: Sequence[Column], *, unwrapped: bool = False
    ) -> None:
        self.message = message
        self.cls = message_class(message)
        if unwrapped:  # the record is the one column's value itself
            (column,) = columns
            wrapped_field = _root_value_field(message)
            if wrapped_field is not None:
                self.getters = [field_getter(wrapped_field, column.type)]
            else:
                self.getters = [struct_reader(message, column.type)]
            return
        getters: list[Getter] = []
        for c in columns:
            f = find_field(message, c.name)
            getters.append(field_getter(f, c.type) if f is not None else (lambda m: None))
        self.getters = getters

    def read(self, payload: bytes) -> list[Any]:
        """The column values of one record's message bytes (raises on bad bytes)."""
        m = self.cls.FromString(payload)
        return [g(m) for g in self.getters]


def _root_value_field(message: Descriptor) -> FieldDescriptor | None:
    if message.full_name in UNWRAPPED:
        return message.fields_by_name["value"]
    return None


# -- writing ------------------------------------------------------------------------------


def _element_writer(field: FieldDescriptor, t: SqlType) -> Callable[[Any, Any], None] | None:
    """For message-typed fields: fill a sub-message from a value; None for plain scalars."""
    kind = _kind(field)
    if kind in UNWRAPPED:
        conv = _to_proto_scalar(field.message_type.fields_by_name["value"], t)

        def wrap(sub: Any, v: Any) -> None:
            sub.value = conv(v)

        return wrap
    if kind == TIMESTAMP_TYPE:

        def ts(sub: Any, v: Any) -> None:
            ms = _millis(v)
            sub.seconds, rem = divmod(ms, 1000)
            sub.nanos = rem * 1_000_000

        return ts
    if kind == DATE_TYPE:

        def date(sub: Any, v: Any) -> None:
            d = v if isinstance(v, dt.date) else dt.date.fromordinal(_EPOCH_ORDINAL + int(v))
            sub.year, sub.month, sub.day = d.year, d.month, d.day

        return date
    if kind == TIME_TYPE:

        def time(sub: Any, v: Any) -> None:
            if isinstance(v, dt.time):
                v = ((v.hour * 60 + v.minute) * 60 + v.second) * 1000 + v.microsecond // 1000
            ms = int(v)
            sub.hours, rest = divmod(ms, 3_600_000)
            sub.minutes, rest = divmod(rest, 60_000)
            sub.seconds, rest = divmod(rest, 1000)
            sub.nanos = rest * 1_000_000

        return time
    if kind == DECIMAL_TYPE:

        def decimal(sub: Any, v: Any) -> None:
            d = Decimal(v)
            sign, digits, exponent = d.as_tuple()
            assert isinstance(exponent, int)
            unscaled = int("".join(map(str, digits)) or "0") * (-1 if sign else 1)
            sub.value = unscaled.to_bytes(max(1, (unscaled.bit_length() + 8) // 8), "big",
                                          signed=True)  # fmt: skip
            sub.precision = max(1, len(str(abs(unscaled))))
            sub.scale = -exponent

        return decimal
    if kind not in ("scalar", "enum"):
        if t.name != "STRUCT":
            raise MessageError(f"cannot write a {t} value to the message field {field.full_name}")
        return struct_writer(field.message_type, t)
    return None


def _millis(v: Any) -> int:
    if isinstance(v, dt.datetime):
        if v.tzinfo is not None:
            v = v.astimezone(dt.UTC).replace(tzinfo=None)
        return int((v - _EPOCH) // dt.timedelta(milliseconds=1))
    return int(v)


def _to_proto_scalar(field: FieldDescriptor, t: SqlType) -> Callable[[Any], Any]:
    if field.type == FieldDescriptor.TYPE_ENUM:
        numbers = {v.name: v.number for v in field.enum_type.values}

        def enum(v: Any) -> int:
            if v not in numbers:
                raise MessageError(f"{v!r} is not a symbol of the enum {field.enum_type.full_name}")
            return int(numbers[v])

        return enum
    if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return float
    if field.type in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        return lambda v: int(v) & 0xFFFFFFFF
    if field.type in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        return lambda v: int(v) & 0xFFFFFFFFFFFFFFFF
    if field.cpp_type in (FieldDescriptor.CPPTYPE_INT32,):

        def int32(v: Any) -> int:
            n = int(v) & 0xFFFFFFFF
            return n - (1 << 32) if n >> 31 else n

        return int32
    if field.cpp_type == FieldDescriptor.CPPTYPE_INT64:
        return int
    return lambda v: v


def field_setter(field: FieldDescriptor, t: SqlType) -> Setter:
    """Write a value of `t` into `field` of a message being built (None: leave it unset)."""
    fname = field.name
    if field.is_repeated:
        if is_map_entry(field):
            if t.name != "MAP" or t.element is None or t.key is None:
                raise MessageError(f"cannot write a {t} value to the map field {field.full_name}")
            key_f, value_f = field.message_type.fields
            if field.message_type.GetOptions().map_entry:  # a proto `map<K, V>` field
                key_conv = _to_proto_scalar(key_f, t.key)
                fill_value = _element_writer(value_f, t.element)
                value_conv = _to_proto_scalar(value_f, t.element)

                def set_map(m: Any, v: Any) -> None:
                    target = getattr(m, fname)
                    for k, x in v.items() if isinstance(v, dict) else v or ():
                        if k is None:
                            raise MessageError(f"a null key in the map field {field.full_name}")
                        if fill_value is not None:
                            sub = target[key_conv(k)]
                            if x is not None:
                                fill_value(sub, x)
                        elif x is not None:
                            target[key_conv(k)] = value_conv(x)
                        else:
                            target[key_conv(k)] = value_f.default_value

                return set_map
            set_key = field_setter(key_f, t.key)
            set_value = field_setter(value_f, t.element)

            def set_entries(m: Any, v: Any) -> None:
                target = getattr(m, fname)
                for k, x in v.items() if isinstance(v, dict) else v or ():
                    e = target.add()
                    set_key(e, k)
                    set_value(e, x)

            return set_entries
        if t.name != "ARRAY" or t.element is None:
            raise MessageError(f"cannot write a {t} value to the repeated field {field.full_name}")
        fill = _element_writer(field, t.element)
        conv = _to_proto_scalar(field, t.element)

        def set_list(m: Any, v: Any) -> None:
            if not v:
                return
            target = getattr(m, fname)
            if fill is not None:
                for x in v:
                    sub = target.add()
                    if x is not None:
                        fill(sub, x)
            else:
                if any(x is None for x in v):
                    raise MessageError(f"a null element in the repeated field {field.full_name}")
                target.extend(conv(x) for x in v)

        return set_list
    fill = _element_writer(field, t)
    if fill is not None:

        def set_message(m: Any, v: Any) -> None:
            if v is not None:
                sub = getattr(m, fname)
                sub.SetInParent()
                fill(sub, v)

        return set_message
    conv = _to_proto_scalar(field, t)

    def set_scalar(m: Any, v: Any) -> None:
        if v is not None:
            setattr(m, fname, conv(v))

    return set_scalar


def struct_writer(message: Descriptor, t: SqlType) -> Callable[[Any, Any], None]:
    """Fill a sub-message from a STRUCT value (a dict)."""
    setters: list[tuple[str, Setter]] = []
    for name, ft in t.fields:
        f = find_field(message, name)
        if f is not None:
            setters.append((name, field_setter(f, ft)))

    def fill(sub: Any, v: Any) -> None:
        for name, s in setters:
            s(sub, v.get(name))

    return fill


class Writer:
    """Builds messages of one descriptor from per-column values."""

    def __init__(
        self, message: Descriptor, columns: Sequence[Column], *, unwrapped: bool = False
    ) -> None:
        self.cls = message_class(message)
        self.setters: list[Setter]
        if unwrapped:
            (column,) = columns
            value_field = _root_value_field(message)
            if value_field is not None:
                self.setters = [field_setter(value_field, column.type)]
            else:
                fill = struct_writer(message, column.type)
                self.setters = [lambda m, v: fill(m, v) if v is not None else None]
            return
        setters: list[Setter] = []
        for c in columns:
            f = find_field(message, c.name)
            if f is None:
                raise FormatError(
                    f"the protobuf message {message.full_name} has no field for column `{c.name}`"
                )
            setters.append(field_setter(f, c.type))
        self.setters = setters

    def write(self, values: Sequence[Any]) -> bytes:
        """One record's message bytes from its column values."""
        m = self.cls()
        for s, v in zip(self.setters, values, strict=True):
            s(m, v)
        return bytes(m.SerializeToString())

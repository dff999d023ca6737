"""ksqlDB's SQL types and their Arrow columns.

| SQL                  | Arrow                      |
|----------------------|----------------------------|
| BOOLEAN              | bool                       |
| INT / INTEGER        | int32                      |
| BIGINT               | int64                      |
| DOUBLE               | float64                    |
| DECIMAL(p, s)        | decimal128(p, s)           |
| STRING / VARCHAR     | string                     |
| BYTES                | binary                     |
| TIMESTAMP            | timestamp[ms]              |
| DATE                 | date32                     |
| TIME                 | time32[ms]                 |
| ARRAY<T>             | list<T>                    |
| MAP<K, V>            | map<K, V>                  |
| STRUCT<a T, ...>     | struct<a: T, ...>          |
"""

from __future__ import annotations

from dataclasses import dataclass

import pyarrow as pa

from hispeed.errors import HispeedError

_NAMES = {
    "BOOLEAN": "BOOLEAN",
    "INT": "INTEGER",
    "INTEGER": "INTEGER",
    "BIGINT": "BIGINT",
    "LONG": "BIGINT",
    "DOUBLE": "DOUBLE",
    "STRING": "STRING",
    "VARCHAR": "STRING",
    "BYTES": "BYTES",
    "TIMESTAMP": "TIMESTAMP",
    "DATE": "DATE",
    "TIME": "TIME",
    "DECIMAL": "DECIMAL",
    "ARRAY": "ARRAY",
    "MAP": "MAP",
    "STRUCT": "STRUCT",
}


@dataclass(frozen=True)
class SqlType:
    """A SQL type. Build with the constants and constructors below, not directly."""

    name: str
    precision: int | None = None
    scale: int | None = None
    element: SqlType | None = None  # ARRAY's element, MAP's value
    key: SqlType | None = None  # MAP's key
    fields: tuple[tuple[str, SqlType], ...] = ()  # STRUCT's fields, in order

    def __str__(self) -> str:
        if self.name == "DECIMAL":
            return f"DECIMAL({self.precision}, {self.scale})"
        if self.name == "ARRAY":
            return f"ARRAY<{self.element}>"
        if self.name == "MAP":
            return f"MAP<{self.key}, {self.element}>"
        if self.name == "STRUCT":
            return "STRUCT<" + ", ".join(f"`{n}` {t}" for n, t in self.fields) + ">"
        return self.name

    @property
    def is_numeric(self) -> bool:
        return self.name in ("INTEGER", "BIGINT", "DOUBLE", "DECIMAL")

    @property
    def is_integral(self) -> bool:
        return self.name in ("INTEGER", "BIGINT")

    @property
    def is_temporal(self) -> bool:
        return self.name in ("TIMESTAMP", "DATE", "TIME")

    def field(self, name: str) -> SqlType | None:
        """A STRUCT field's type by name (exact, then case-insensitive), or None."""
        for n, t in self.fields:
            if n == name:
                return t
        upper = name.upper()
        for n, t in self.fields:
            if n.upper() == upper:
                return t
        return None

    def to_arrow(self) -> pa.DataType:
        simple = _ARROW.get(self.name)
        if simple is not None:
            return simple
        if self.name == "DECIMAL":
            assert self.precision is not None and self.scale is not None
            return pa.decimal128(self.precision, self.scale)
        if self.name == "ARRAY":
            assert self.element is not None
            return pa.list_(self.element.to_arrow())
        if self.name == "MAP":
            assert self.key is not None and self.element is not None
            return pa.map_(self.key.to_arrow(), self.element.to_arrow())
        if self.name == "STRUCT":
            return pa.struct([pa.field(n, t.to_arrow()) for n, t in self.fields])
        raise AssertionError(self.name)


BOOLEAN = SqlType("BOOLEAN")
INTEGER = SqlType("INTEGER")
BIGINT = SqlType("BIGINT")
DOUBLE = SqlType("DOUBLE")
STRING = SqlType("STRING")
BYTES = SqlType("BYTES")
TIMESTAMP = SqlType("TIMESTAMP")
DATE = SqlType("DATE")
TIME = SqlType("TIME")

_ARROW: dict[str, pa.DataType] = {
    "BOOLEAN": pa.bool_(),
    "INTEGER": pa.int32(),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
    "STRING": pa.string(),
    "BYTES": pa.binary(),
    "TIMESTAMP": pa.timestamp("ms"),
    "DATE": pa.date32(),
    "TIME": pa.time32("ms"),
}


def decimal(precision: int, scale: int) -> SqlType:
    if not 1 <= precision <= 38:
        raise HispeedError(f"DECIMAL precision must be 1 to 38, not {precision}")
    if not 0 <= scale <= precision:
        raise HispeedError(f"DECIMAL scale must be 0 to the precision ({precision}), not {scale}")
    return SqlType("DECIMAL", precision=precision, scale=scale)


def array(element: SqlType) -> SqlType:
    return SqlType("ARRAY", element=element)


def map_(key: SqlType, value: SqlType) -> SqlType:
    return SqlType("MAP", key=key, element=value)


def struct(fields: list[tuple[str, SqlType]] | tuple[tuple[str, SqlType], ...]) -> SqlType:
    return SqlType("STRUCT", fields=tuple(fields))


def by_name(name: str) -> SqlType | None:
    """A parameterless type by any of its spellings (INT, VARCHAR...), or None."""
    canonical = _NAMES.get(name.upper())
    if canonical is None or canonical in ("DECIMAL", "ARRAY", "MAP", "STRUCT"):
        return None
    return SqlType(canonical)


def from_arrow(t: pa.DataType) -> SqlType:
    """The SQL type of an Arrow type (the inverse of `to_arrow`, widening where needed)."""
    if pa.types.is_boolean(t):
        return BOOLEAN
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_int32(t):
        return INTEGER
    if pa.types.is_integer(t):
        return BIGINT
    if pa.types.is_floating(t):
        return DOUBLE
    if pa.types.is_decimal(t):
        return decimal(t.precision, t.scale)
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return STRING
    if pa.types.is_binary(t) or pa.types.is_large_binary(t):
        return BYTES
    if pa.types.is_timestamp(t):
        return TIMESTAMP
    if pa.types.is_date(t):
        return DATE
    if pa.types.is_time(t):
        return TIME
    if pa.types.is_map(t):
        return map_(from_arrow(t.key_type), from_arrow(t.item_type))
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return array(from_arrow(t.value_type))
    if pa.types.is_struct(t):
        return struct([(t.field(i).name, from_arrow(t.field(i).type)) for i in range(t.num_fields)])
    if pa.types.is_null(t):
        return STRING
    raise HispeedError(f"no SQL type for Arrow type {t}")


def widest_numeric(a: SqlType, b: SqlType) -> SqlType:
    """The type arithmetic on a and b gives (INTEGER < BIGINT < DECIMAL < DOUBLE)."""
    order = ["INTEGER", "BIGINT", "DECIMAL", "DOUBLE"]
    if a.name == "DECIMAL" and b.name == "DECIMAL":
        assert a.precision is not None and a.scale is not None
        assert b.precision is not None and b.scale is not None
        scale = max(a.scale, b.scale)
        digits = max(a.precision - a.scale, b.precision - b.scale)
        return decimal(min(digits + scale, 38), scale)
    if a.name == "DECIMAL" and b.is_integral:
        return widest_numeric(a, integral_as_decimal(b))
    if b.name == "DECIMAL" and a.is_integral:
        return widest_numeric(integral_as_decimal(a), b)
    return a if order.index(a.name) >= order.index(b.name) else b


def integral_as_decimal(t: SqlType) -> SqlType:
    return decimal(10, 0) if t.name == "INTEGER" else decimal(19, 0)

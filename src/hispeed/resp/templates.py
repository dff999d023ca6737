"""Key templates and the text of values, shared by the Redis sink, source and lookups.

A template like `'leaderboard:{WINDOWSTART}'`, `'device:{KEY}'` or `'{DEVICE}:latest'` fills
`{KEY}` from the record's key (several key columns joined with `:`), `{TOPIC}` and
`{PARTITION}` from where the record came from (unless a column has that name), and any
other `{NAME}` from the row's column of that name, case-insensitively (the key columns of a
deleted row included).
"""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Mapping
from typing import Any

import msgspec

_JSON = msgspec.json.Encoder(enc_hook=str, decimal_format="number")
_FIELD = re.compile(r"\{([^{}]+)\}")


#: what `row.get(name, MISSING)` gives for a column the row does not have
MISSING = object()


class TemplateError(Exception):
    """A record whose key cannot be made from the template: the message says why."""


def to_text(value: Any) -> str:
    """A value as Redis stores it: text; numbers as Python prints them; booleans as
    true/false; dates in ISO 8601; maps and lists as JSON."""
    t = type(value)
    if t is str:
        return value  # type: ignore[no-any-return]
    if t is int:
        return str(value)
    if t is float:
        return repr(value)
    if t is bool:
        return "true" if value else "false"
    if t is bytes:
        return value.decode("utf-8", "surrogateescape")  # type: ignore[no-any-return]
    if isinstance(value, dict | list | tuple):
        return to_json(value)
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    return str(value)


def to_json(value: Any) -> str:
    """JSON text of a row or value (decimals as numbers, unknown types as their str)."""
    return _JSON.encode(value).decode()


def key_text(key: Any) -> str:
    """The text of a record key: one key column's value, or several joined with ':'."""
    if isinstance(key, Mapping):
        return ":".join(to_text(v) for v in key.values())
    return to_text(key)


def _lookup(name: str, row: Mapping[str, Any]) -> tuple[bool, Any]:
    """Column `name` of `row`, its case ignored: (found, value)."""
    if name in row:
        return True, row[name]
    lowered = name.lower()
    for k, v in row.items():
        if k.lower() == lowered:
            return True, v
    return False, None


class KeyTemplate:
    """A compiled key template (see the module's docstring)."""

    def __init__(self, text: str, option: str) -> None:
        self.text = text
        #: the property it came from, for error messages
        self.option = option
        self.parts: list[tuple[str, str | None]] = []
        pos = 0
        for m in _FIELD.finditer(text):
            self.parts.append((text[pos : m.start()], m.group(1).strip()))
            pos = m.end()
        if pos < len(text):
            self.parts.append((text[pos:], None))
        self.fields = [name for _, name in self.parts if name is not None]
        self.only_key = text == "{KEY}" or text == "{key}"
        self.constant = not self.fields
        #: (before, field, after) for a template of one field
        self.single: tuple[str, str, str] | None = None
        if len(self.fields) == 1:
            before = self.parts[0][0]
            after = self.parts[1][0] if len(self.parts) > 1 else ""
            self.single = (before, self.fields[0], after)

    def fill_all(
        self,
        keys: list[Any],
        rows: list[dict[str, Any] | None],
        key_columns: list[str] | None = None,
        topic: str = "",
        partition: int = 0,
    ) -> tuple[list[str | None], list[tuple[int, str]]]:
        """`fill` for every record of a batch: the keys (None where it failed) and the
        (record index, message) of the failures. Templates of one field take a fast path."""
        n = len(keys)
        if self.constant:
            return [self.text] * n, []
        out: list[str | None] = []
        errors: list[tuple[int, str]] = []
        if self.single is None:
            for i in range(n):
                out.append(self._fill_one(keys, rows, i, key_columns, topic, partition, errors))
            return out, errors
        before, name, after = self.single
        if name.upper() == "KEY":
            values: list[Any] = keys
        else:
            actual = name
            for row in rows:
                if row is not None:
                    actual = next((c for c in row if c.lower() == name.lower()), name)
                    break
            values = [MISSING if r is None else r.get(actual, MISSING) for r in rows]
        if set(map(type, values)) == {str}:  # the common case, without a test per record
            if before or after:
                return [before + v + after for v in values], errors
            return list(values), errors
        for i in range(n):
            v = values[i]
            t = type(v)
            if t is str:
                out.append(before + v + after if before or after else v)
            elif t is int:
                out.append(f"{before}{v}{after}")
            else:
                out.append(self._fill_one(keys, rows, i, key_columns, topic, partition, errors))
        return out, errors

    def _fill_one(
        self,
        keys: list[Any],
        rows: list[dict[str, Any] | None],
        i: int,
        key_columns: list[str] | None,
        topic: str,
        partition: int,
        errors: list[tuple[int, str]],
    ) -> str | None:
        try:
            return self.fill(keys[i], rows[i], key_columns, topic, partition)
        except TemplateError as e:
            errors.append((i, str(e)))
            return None

    def fill(
        self,
        key: Any,
        row: Mapping[str, Any] | None,
        key_columns: list[str] | None = None,
        topic: str = "",
        partition: int = 0,
    ) -> str:
        """The key for one record; TemplateError when a part is missing or null."""
        if self.only_key:
            if key is None:
                raise TemplateError(f"'{self.option}' {self.text} needs a key; the record has none")
            return key_text(key)
        if self.constant:
            return self.text
        out = []
        for literal, name in self.parts:
            out.append(literal)
            if name is not None:
                out.append(self._part(name, key, row, key_columns, topic, partition))
        return "".join(out)

    def _part(
        self,
        name: str,
        key: Any,
        row: Mapping[str, Any] | None,
        key_columns: list[str] | None,
        topic: str,
        partition: int,
    ) -> str:
        upper = name.upper()
        if upper == "KEY":
            if key is None:
                raise TemplateError(f"'{self.option}' {self.text} needs a key; the record has none")
            return key_text(key)
        found, value = _lookup(name, row) if row is not None else (False, None)
        if not found and isinstance(key, Mapping):
            found, value = _lookup(name, key)
        if (
            not found
            and key_columns
            and len(key_columns) == 1
            and key_columns[0].lower() == name.lower()
        ):
            found, value = True, key
        if not found and upper == "TOPIC":
            return topic
        if not found and upper == "PARTITION":
            return str(partition)
        if not found:
            what = "a deleted row has only its key" if row is None else "the record has no such"
            raise TemplateError(f"'{self.option}' {self.text} needs column {name} ({what})")
        if value is None:
            raise TemplateError(f"'{self.option}' {self.text} needs column {name}, which is null")
        return to_text(value)


def column_value(row: Mapping[str, Any], name: str) -> tuple[bool, Any]:
    """Column `name` of `row`, its case ignored: (found, value)."""
    return _lookup(name, row)


__all__ = [
    "MISSING",
    "KeyTemplate",
    "TemplateError",
    "column_value",
    "key_text",
    "to_json",
    "to_text",
]

"""What every mode of the Redis sink shares: the `Plan` of a batch's commands, the `Writer`
base class (key template, TTL options, record failures) and the helpers that make RESP text a
column at a time. The modes themselves are in `_redis_writers`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import chain, repeat
from typing import Any, ClassVar

from hispeed.connectors.base import ConnectorError, SinkBatch
from hispeed.resp.client import ENCODING, ERRORS, RedisConnection, ReplyError, command, text
from hispeed.resp.templates import KeyTemplate, column_value, to_json, to_text

Row = Mapping[str, Any]


class SkippedError(Exception):
    """The record was failed (`batch.fail`) while its command was being made."""


#: commands a writer makes before it sends them, so that Redis works while the rest is made
FLUSH_EVERY = 512


class Plan:
    """The commands for one batch: their text, who they write for, and their keys.

    With `send`, `flush()` sends the commands made so far (writers call it every
    FLUSH_EVERY commands); the caller sends the rest and then reads every reply.
    """

    __slots__ = ("_send", "keys", "owners", "parts", "sent", "simple")

    def __init__(self, send: Callable[[str], None] | None = None) -> None:
        self.parts: list[str] = []
        #: per command: the index of its record, or a list of the indices of its records
        self.owners: list[int | list[int]] = []
        self.keys: list[str] = []
        #: every reply is one line (see RedisConnection.send_batch)
        self.simple = True
        #: commands already sent
        self.sent = 0
        self._send = send

    def add(self, text: str, owner: int | list[int], key: str) -> None:
        self.parts.append(text)
        self.owners.append(owner)
        self.keys.append(key)

    def flush(self) -> None:
        if self._send is not None and len(self.parts) > self.sent:
            self._send("".join(self.parts[self.sent :]))
            self.sent = len(self.parts)

    def rest(self) -> str:
        """The text of the commands not sent yet."""
        return "".join(self.parts[self.sent :])


def byte_length(s: str) -> int:
    """The length of `s` in bytes, as the protocol counts it."""
    return len(s.encode(ENCODING, ERRORS))


def value_text(v: Any) -> str:
    """to_text for what is not a str (the callers test for str first)."""
    t = type(v)
    if t is float:
        return repr(v)
    if t is int:
        return str(v)
    return to_text(v)


def texts_of(values: Sequence[Any]) -> list[str] | None:
    """Values as text, a column at a time; None when one of them is null."""
    types = set(map(type, values))
    if types == {str}:
        return list(values)
    if type(None) in types:
        return None
    if types == {int}:
        return list(map(str, values))
    if types == {float}:
        return list(map(repr, values))
    return [v if type(v) is str else value_text(v) for v in values]


#: the text of small lengths and the line end after them, looked up rather than made
_SIZES = tuple(f"{n}\r\n" for n in range(4096))


def _lengths(texts: list[str]) -> Iterable[str]:
    """The byte length of each text, as text, and the line end after it."""
    if all(map(str.isascii, texts)):
        sizes = list(map(len, texts))
        if max(sizes, default=0) < len(_SIZES):
            return map(_SIZES.__getitem__, sizes)
        return [f"{n}\r\n" for n in sizes]
    return [f"{len(t) if t.isascii() else byte_length(t)}\r\n" for t in texts]


def commands_text(head: str, args: list[tuple[str, list[str]]]) -> str:
    """The text of many commands of one shape: `head` (like `*4\\r\\n$4\\r\\nHSET\\r\\n`),
    then per (before, texts) the constant `before` (bulk text, may be empty) and the bulk
    string of texts[i], for every i. Made in C loops, without Python code per command: the
    pieces are zipped, chained and joined."""
    pieces: list[Iterable[str]] = []
    before = head
    for prefix, texts in args:
        pieces += [repeat(before + prefix + "$"), _lengths(texts), texts]
        before = "\r\n"
    pieces.append(repeat("\r\n"))
    return "".join(chain.from_iterable(zip(*pieces, strict=False)))


def describe_record(batch: SinkBatch, i: int) -> str:
    """'record at offset 12 (key 'd1')', for error messages."""
    return f"record at offset {batch.offsets[i]} (key {batch.keys[i]!r})"


def as_number(value: Any) -> float | int | None:
    """A score, increment or TTL as a number; None when it is not one."""
    if type(value) is int or type(value) is float:
        return value
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if number.is_integer() and not isinstance(value, float):
        return int(number)
    return number


def int_option(config: Mapping[str, str], key: str, sink: str) -> int | None:
    """A positive whole-number property of the sink (None when not set)."""
    raw = config.get(key)
    if raw is None or raw.strip() == "":
        return None
    try:
        value = int(raw)
    except ValueError:
        raise ConnectorError(
            f"connector {sink}: '{key}' must be a whole number, not {raw!r}"
        ) from None
    if value <= 0:
        raise ConnectorError(f"connector {sink}: '{key}' must be above 0, not {value}")
    return value


class Writer:
    """The base of the modes: the key template, TTL options and record failures."""

    mode: ClassVar[str]
    #: what a replay of a batch does (for DESCRIBE CONNECTOR and the docs)
    guarantee: str
    #: whether 'ttl.seconds' / 'ttl.column' apply
    expires: ClassVar[bool] = True

    def __init__(self, sink: str, config: Mapping[str, str]) -> None:
        self.sink = sink
        self.config = config
        self.key = KeyTemplate(config.get("key.template", "{KEY}"), "key.template")
        self.ttl_seconds = int_option(config, "ttl.seconds", sink)
        self.ttl_column = config.get("ttl.column") or None
        if not self.expires and (self.ttl_seconds or self.ttl_column):
            raise ConnectorError(f"connector {sink}: mode {self.mode} writes no keys to expire")

    def plan(self, batch: SinkBatch, plan: Plan) -> None:
        """Append the commands for `batch` to `plan`; `batch.fail` what cannot be written."""
        raise ConnectorError(f"connector {self.sink}: mode {self.mode} cannot write")

    def settle(
        self, conn: RedisConnection, batch: SinkBatch, plan: Plan, errors: list[tuple[int, str]]
    ) -> list[tuple[int, str]]:
        """The error replies that are failures (a mode may know some are not)."""
        return errors

    def fail(self, batch: SinkBatch, i: int, message: str) -> None:
        batch.fail(i, f"connector {self.sink}: {describe_record(batch, i)}: {message}")

    def template(self, option: str, example: str) -> KeyTemplate:
        """The template in `option` (else in 'key.template'), which this mode needs."""
        text = self.config.get(option) or self.config.get("key.template")
        if not text:
            raise ConnectorError(
                f"connector {self.sink}: mode {self.mode} needs '{option}' "
                f"(a template like '{example}')"
            )
        return KeyTemplate(text, option)

    def keys_of(self, template: KeyTemplate, batch: SinkBatch) -> list[str | None]:
        """The key of every record (None where it was failed)."""
        texts, errors = template.fill_all(
            batch.keys, batch.rows, batch.key_columns, batch.topic, batch.partition
        )
        for i, message in errors:
            self.fail(batch, i, message)
        return texts

    def column(self, batch: SinkBatch, i: int, name: str, option: str) -> tuple[bool, Any]:
        """Column `name` of record i's row; (False, None) after failing it when it has none."""
        row = batch.rows[i]
        assert row is not None
        found, value = column_value(row, name)
        if not found:
            self.fail(batch, i, f"'{option}' names column {name}, which the record does not have")
        return found, value

    def ttl_command(self, key: str, row: Row | None) -> str | None:
        """EXPIRE (or PEXPIRE for a fraction of a second) for a key just written, or None."""
        if self.ttl_column is not None and row is not None:
            _, value = column_value(row, self.ttl_column)
            seconds = as_number(value)
            if seconds is not None and seconds > 0:
                if type(seconds) is int:
                    return command("EXPIRE", key, str(seconds))
                return command("PEXPIRE", key, str(max(1, round(seconds * 1000))))
        if self.ttl_seconds is not None:
            return command("EXPIRE", key, str(self.ttl_seconds))
        return None

    def payload(self, row: Row, column: str | None, batch: SinkBatch, i: int) -> str | None:
        """The text a string, list or channel gets: one column's value or the row as JSON.
        None when the column is null; SkippedError after failing a record without that column."""
        if column is None:
            return to_json(row)
        found, value = self.column(batch, i, column, "value.column")
        if not found:
            raise SkippedError
        return None if value is None else to_text(value)


def owner_of(indices: list[int]) -> int | list[int]:
    """What `Plan.add` takes as a command's owner: one record's index, or several."""
    return indices[0] if len(indices) == 1 else indices


def reply_text(reply: Any) -> str:
    """A reply as text, for messages."""
    if isinstance(reply, ReplyError):
        return reply.message
    if isinstance(reply, bytes):
        return text(reply)
    return str(reply)


__all__ = [
    "FLUSH_EVERY",
    "Plan",
    "Row",
    "SkippedError",
    "Writer",
    "as_number",
    "byte_length",
    "commands_text",
    "describe_record",
    "int_option",
    "owner_of",
    "reply_text",
    "texts_of",
    "value_text",
]

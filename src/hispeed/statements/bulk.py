"""Rows into a stream or table in bulk: `insert_many` of a list of rows, an Arrow table, a
Polars or pandas DataFrame, and `RowBuffer`, which gathers `Engine.insert`'s single rows and
inserts them through `insert_many` (one encoding per column, one append, per batch)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import msgspec
import pyarrow as pa

from hispeed.catalog import Catalog, Source
from hispeed.errors import HispeedError
from hispeed.formats.base import get_format
from hispeed.log.base import AppendResult, Log
from hispeed.registry import SchemaRegistry
from hispeed.sql import types as T
from hispeed.statements.inserts import append_rows

log = logging.getLogger(__name__)

ROWTIME = "ROWTIME"


def insert_many(
    catalog: Catalog, log_: Log, name: str, data: Any, registry: SchemaRegistry | None = None
) -> AppendResult:
    """Insert many rows into the stream or table `name` in one append.

    `data`: a list (or iterable) of mappings of column names to Python values, a pyarrow
    Table or RecordBatch, or a Polars or pandas DataFrame. Column names match the source's
    exactly or in any case (`id` for ID); a ROWTIME column gives the records' timestamps
    (ms; otherwise now). Values are cast to the columns' types; a value that does not fit
    raises a `HispeedError` naming its row and column, and nothing is inserted.
    """
    target = catalog.get(name.upper())
    table = _as_table(data)
    values, timestamps, n = _columns(target, table) if table is not None else _rows(target, data)
    if n == 0:
        return AppendResult(*_empty())
    return append_rows(log_, target, values, timestamps, n, registry)


def _empty() -> tuple[Any, Any]:
    import numpy as np

    return np.empty(0, np.int32), np.empty(0, np.int64)


def _as_table(data: Any) -> pa.Table | None:
    """An Arrow table of a table, batch or DataFrame; None for rows (mappings)."""
    if isinstance(data, pa.Table):
        return data
    if isinstance(data, pa.RecordBatch):
        return pa.Table.from_batches([data])
    module = type(data).__module__.split(".")[0]
    if module == "polars":
        table: pa.Table = data.to_arrow()
        return table
    if module == "pandas":
        return pa.Table.from_pandas(data, preserve_index=False)
    if isinstance(data, Mapping):
        raise HispeedError("insert_many takes many rows: a list of mappings, not one mapping")
    return None


def _source_names(target: Source, given: Iterable[str]) -> dict[str, str]:
    """Each of the target's columns (and ROWTIME) to the given name that stands for it."""
    given = list(given)
    exact = set(given)
    by_upper: dict[str, list[str]] = {}
    for g in given:
        by_upper.setdefault(g.upper(), []).append(g)
    out: dict[str, str] = {}
    for name in [*(c.name for c in (*target.key_columns, *target.value_columns)), ROWTIME]:
        if name in exact:
            out[name] = name
        elif len(by_upper.get(name.upper(), [])) == 1:
            out[name] = by_upper[name.upper()][0]
    return out


def _columns(target: Source, table: pa.Table) -> tuple[dict[str, pa.Array], pa.Array | None, int]:
    names = _source_names(target, table.column_names)
    values: dict[str, pa.Array] = {}
    for c in (*target.key_columns, *target.value_columns):
        if c.name not in names:
            continue
        column = table.column(names[c.name]).combine_chunks()
        try:
            values[c.name] = column.cast(c.type.to_arrow())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as e:
            raise HispeedError(
                f"{target.name}.{c.name} is {c.type}: column {names[c.name]!r} of type "
                f"{column.type} does not fit ({e})"
            ) from None
    timestamps = None
    if ROWTIME in names:
        try:
            timestamps = table.column(names[ROWTIME]).combine_chunks().cast(pa.int64())
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
            raise HispeedError(f"ROWTIME must be whole milliseconds ({e})") from None
    return values, timestamps, table.num_rows


def _rows(
    target: Source, data: Iterable[Mapping[str, Any]]
) -> tuple[dict[str, pa.Array], pa.Array | None, int]:
    rows = data if isinstance(data, list) else list(data)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise HispeedError(
                f"row {i} must be a mapping of column names to values, not {type(row).__name__}"
            )
    keys: set[str] = set().union(*rows) if rows else set()
    names = _source_names(target, keys)
    values: dict[str, pa.Array] = {}
    for c in (*target.key_columns, *target.value_columns):
        if c.name in names:
            given = names[c.name]
            values[c.name] = _array(target, c.name, c.type, [row.get(given) for row in rows])
    timestamps = None
    if ROWTIME in names:
        timestamps = _array(target, ROWTIME, T.BIGINT, [row.get(names[ROWTIME]) for row in rows])
    return values, timestamps, len(rows)


def _array(target: Source, name: str, sql_type: T.SqlType, values: list[Any]) -> pa.Array:
    """One column's values as an array of its type; the first that does not fit is named."""
    arrow = sql_type.to_arrow()
    try:
        return pa.array(values, arrow)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError):
        pass
    for i, v in enumerate(values):
        try:
            pa.array([v], arrow)
        except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError, ValueError) as e:
            raise HispeedError(
                f"row {i}: {target.name}.{name} is {sql_type}: {v!r} does not fit ({e})"
            ) from None
    raise HispeedError(f"{target.name}.{name} is {sql_type}: its values do not fit")


# -- Engine.insert: single rows, gathered ------------------------------------------------------

_INT_RANGES = {"INTEGER": 1 << 31, "BIGINT": 1 << 63}


def _fast_check(sql_type: T.SqlType) -> Callable[[Any], bool] | None:
    """A check of a Python value that implies Arrow takes it as `sql_type`, for the common
    types; None: ask Arrow for each value."""
    if sql_type == T.STRING:
        return lambda v: type(v) is str
    if sql_type == T.DOUBLE:
        return lambda v: type(v) is float
    if sql_type == T.BOOLEAN:
        return lambda v: type(v) is bool
    if sql_type in (T.INTEGER, T.BIGINT):
        bound = _INT_RANGES[str(sql_type)]
        return lambda v: type(v) is int and -bound <= v < bound
    return None


_Check = tuple[str, T.SqlType, Callable[[Any], bool] | None]
_RowEncoder = Callable[[Sequence[Any]], bytes | None]


class _Plan:
    """A source's single-row insert path, made once per source object: each column's check,
    and, when every column has a plain type and both formats write plain Python values
    (`Format.row_encoder`), the key's and the value's encoders (no Arrow per row)."""

    __slots__ = ("checks", "encode_key", "encode_value", "keys", "target")

    def __init__(self, target: Source) -> None:
        self.target = target
        columns = [*target.key_columns, *target.value_columns]
        self.checks: list[_Check] = [(c.name, c.type, _fast_check(c.type)) for c in columns]
        self.keys = len(target.key_columns)
        self.encode_key: _RowEncoder | None = None
        self.encode_value: _RowEncoder | None = None
        if all(check is not None for _, _, check in self.checks):
            key_fmt = get_format(target.key_format, target.key_properties, is_key=True)
            value_fmt = get_format(target.value_format, target.value_properties)
            self.encode_key = key_fmt.row_encoder(target.key_columns)
            self.encode_value = value_fmt.row_encoder(target.value_columns)

    def encode(self, values: list[Any]) -> tuple[bytes | None, bytes | None] | None:
        """(key, value) bytes of a row of plain values; None when this path cannot write it
        (`append_rows` then does, as for any other row)."""
        if self.encode_key is None or self.encode_value is None:
            return None
        try:
            return self.encode_key(values[: self.keys]), self.encode_value(values[self.keys :])
        except (UnicodeError, msgspec.EncodeError, OverflowError, ValueError, TypeError):
            return None  # text no codec takes (a lone surrogate): Arrow's path says why


class _Pending:
    """One source's rows waiting to be inserted: each row's values in column order."""

    __slots__ = ("checks", "names", "rows", "stamps", "target")

    def __init__(self, target: Source, checks: list[_Check] | None = None) -> None:
        self.target = target
        columns = [*target.key_columns, *target.value_columns]
        self.names = [c.name for c in columns]
        self.checks = checks or [(c.name, c.type, _fast_check(c.type)) for c in columns]
        self.rows: list[tuple[Any, ...]] = []
        self.stamps: list[int] = []


class RowBuffer:
    """`Engine.insert`'s rows: checked at once, inserted together within `linger_ms` (0:
    each row appended alone before `add` returns).

    A row is checked when it is added (a value of the wrong type raises there, as it always
    did); rows then wait, per source, for `linger_ms` after the first of them, or until
    `max_rows` wait, and go in as one `insert_many` (one encoding per column, one append) on
    a background thread. `flush()` inserts what waits now. A batch that fails anyway (the log
    closed, a disk full) raises from the next `add` or `flush`, saying how many rows it lost.
    """

    def __init__(
        self,
        catalog: Catalog,
        log_: Log,
        linger_ms: float,
        max_rows: int = 100_000,
        registry: SchemaRegistry | None = None,
    ) -> None:
        self._registry = registry
        self._catalog = catalog
        self._log = log_
        self.linger_s = linger_ms / 1000
        self.max_rows = max_rows
        self._pending: dict[int, _Pending] = {}
        self._plans: dict[str, _Plan] = {}  # by the name `add` was given
        self._waiting = 0
        self._lock = threading.Lock()  # the pending rows
        self._flush_lock = threading.Lock()  # one flush at a time, so batches keep their order
        self._wake = threading.Condition(self._lock)
        self._failure: HispeedError | None = None
        self._closed = False
        self._thread: threading.Thread | None = None

    def add(self, name: str, row: Mapping[str, Any], timestamp: int | None) -> None:
        """Check one row and queue it (see the class's docstring)."""
        if self._failure is not None:
            self._raise_failure()
        target = self._catalog.get(name.upper())
        plan = self._plans.get(name)
        if plan is None or plan.target is not target:  # (one dropped and made again is new)
            plan = self._plans[name] = _Plan(target)
        checks = plan.checks
        values = []
        plain = True
        for col, sql_type, check in checks:
            v = row.get(col)
            if v is not None and (check is None or not check(v)):
                plain = False
                try:
                    pa.array([v], sql_type.to_arrow())
                except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as e:
                    raise HispeedError(
                        f"{target.name}.{col} is {sql_type}: {v!r} does not fit ({e})"
                    ) from None
            values.append(v)
        stamp = time.time_ns() // 1_000_000 if timestamp is None else int(timestamp)
        if self.linger_s == 0:  # no gathering: this row alone, in the log before returning
            encoded = plan.encode(values) if plain else None
            if encoded is not None:  # the same bytes `append_rows` writes, without Arrow
                with self._flush_lock:
                    self._log.append_one(target.topic, encoded[0], encoded[1], stamp)
                return
            alone = _Pending(target, checks)
            alone.rows.append(tuple(values))
            alone.stamps.append(stamp)
            with self._flush_lock:  # after rows an earlier flush is appending
                self._insert(alone)
            return
        with self._lock:
            if self._closed:
                raise HispeedError("the engine is closed")
            # by the source object: one dropped and made again is another (with its rows)
            current = self._pending.get(id(target))
            if current is None:
                current = self._pending[id(target)] = _Pending(target, checks)
            current.rows.append(tuple(values))
            current.stamps.append(stamp)
            self._waiting += 1
            waiting = self._waiting
            if waiting == 1:
                self._start()
                self._wake.notify()
        if waiting >= self.max_rows:
            self.flush()  # the caller waits: memory stays bounded

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(
                target=self._run, name="hispeed-insert-rows", daemon=True
            )
            self._thread.start()

    def flush(self) -> None:
        """Insert every waiting row now; raises what a failed batch raised."""
        with self._flush_lock:
            with self._lock:
                taken = [p for p in self._pending.values() if p.rows]
                self._pending = {}
                self._waiting = 0
            for pending in taken:
                try:
                    self._insert(pending)
                except Exception as e:
                    failure = HispeedError(
                        f"{len(pending.rows)} row(s) inserted into {pending.target.name} could "
                        f"not be appended: {e}"
                    )
                    failure.__cause__ = e
                    self._failure = self._failure or failure
        self._raise_failure()

    def _insert(self, pending: _Pending) -> None:
        target = pending.target
        columns = list(zip(*pending.rows, strict=True))
        values = {
            name: _array(target, name, sql_type, list(column))
            for (name, sql_type, _check), column in zip(pending.checks, columns, strict=True)
        }
        stamps = pa.array(pending.stamps, pa.int64())
        append_rows(self._log, target, values, stamps, len(pending.rows), self._registry)

    def _raise_failure(self) -> None:
        failure, self._failure = self._failure, None
        if failure is not None:
            raise failure

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._waiting and not self._closed:
                    self._wake.wait()
                if self._closed:
                    return
            time.sleep(self.linger_s)  # the linger: more rows join the first one
            try:
                self.flush()
            except HispeedError as e:  # kept: the next add or flush raises it
                self._failure = self._failure or e
                log.error("inserted rows were lost: %s", e)

    def close(self) -> None:
        """Insert what waits, then stop the background thread."""
        try:
            self.flush()
        finally:
            with self._lock:
                self._closed = True
                self._wake.notify_all()
            if self._thread is not None:
                self._thread.join()

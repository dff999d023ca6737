"""Date and time functions (FORMAT_TIMESTAMP, PARSE_DATE, DATEADD, CONVERT_TZ...)."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.functions.javatime import (
    OptionalSection,
    PatternField,
    PatternItem,
    datetime_of,
    epoch_day,
    epoch_millis,
    format_java,
    from_millis,
    java_pattern,
    parse_java,
    zone,
)
from hispeed.functions.javatime_columns import format_instants
from hispeed.functions.registry import EvalContext, scalar
from hispeed.functions.signatures import check, constant, mask_nulls, rows
from hispeed.sql.types import BIGINT, DATE, INTEGER, STRING, TIME, TIMESTAMP, SqlType

Args = Sequence[pa.Array]
Types = Sequence[SqlType]


# --- resolvers -----------------------------------------------------------------------------------


def _fixed(
    name: str, accepts: str, result: SqlType, *params: SqlType
) -> Callable[[Types], SqlType]:
    def resolve(arg_types: Types) -> SqlType:
        check(name, accepts, arg_types, *params)
        return result

    return resolve


def _with_zone(
    name: str, accepts: str, result: SqlType, *params: SqlType
) -> Callable[[Types], SqlType]:
    def resolve(arg_types: Types) -> SqlType:
        if len(arg_types) == len(params) + 1:
            check(name, accepts, arg_types, *params, STRING)
        else:
            check(name, accepts, arg_types, *params)
        return result

    return resolve


def _ts_millis(arr: pa.Array) -> pa.Array:
    return pc.cast(arr, pa.int64()) if pa.types.is_timestamp(arr.type) else arr


# --- formatting ----------------------------------------------------------------------------------


def format_millis_row(ms: int, pattern: str, tz: str = "UTC") -> str:
    """One instant's text: the row-by-row reference of TIMESTAMPTOSTRING and FORMAT_TIMESTAMP."""
    return format_java(java_pattern(pattern), from_millis(ms, zone(tz)))


def _format_millis(ctx: EvalContext, name: str, cols: Args, rt: SqlType) -> pa.Array:
    """Epoch milliseconds formatted with a pattern (and zone): by column when the pattern and
    the zone are the same in every row (`javatime_columns`), else row by row."""
    same_pattern, pattern = constant(cols[1])
    same_zone, tz = constant(cols[2]) if len(cols) > 2 else (True, "UTC")
    if same_pattern and same_zone and pattern is not None and tz is not None:
        try:
            tzinfo = zone(tz)
        except ValueError:
            tzinfo = None  # the row path reports the bad zone for each row
        out = format_instants(cols[0], pattern, tzinfo) if tzinfo is not None else None
        if out is not None:
            return mask_nulls(out, *cols)
    return rows(ctx, name, cols, rt, format_millis_row)


@scalar(
    "FORMAT_TIMESTAMP",
    _with_zone("FORMAT_TIMESTAMP", "(TIMESTAMP, STRING[, STRING zone])", STRING, TIMESTAMP, STRING),
)
def _format_timestamp(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Format a TIMESTAMP with a Java date-time pattern, in UTC or the given zone."""
    return _format_millis(ctx, "FORMAT_TIMESTAMP", [_ts_millis(args[0]), *args[1:]], rt)


@scalar(
    "TIMESTAMPTOSTRING",
    _with_zone("TIMESTAMPTOSTRING", "(BIGINT, STRING[, STRING zone])", STRING, BIGINT, STRING),
)
def _timestamp_to_string(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Format epoch milliseconds with a Java date-time pattern, in UTC or the given zone."""
    return _format_millis(ctx, "TIMESTAMPTOSTRING", [pc.cast(args[0], pa.int64()), *args[1:]], rt)


def _format_days(days: int, pattern: str) -> str:
    d = dt.date(1970, 1, 1) + dt.timedelta(days=days)
    items = java_pattern(pattern)
    return format_java(items, dt.datetime(d.year, d.month, d.day, tzinfo=dt.UTC))


@scalar("FORMAT_DATE", _fixed("FORMAT_DATE", "(DATE, STRING)", STRING, DATE, STRING))
def _format_date(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Format a DATE with a Java date pattern."""
    return rows(ctx, "FORMAT_DATE", [pc.cast(args[0], pa.int32()), args[1]], rt, _format_days)


@scalar("DATETOSTRING", _fixed("DATETOSTRING", "(INTEGER days, STRING)", STRING, INTEGER, STRING))
def _date_to_string(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Format days since the epoch with a Java date pattern."""
    return rows(ctx, "DATETOSTRING", args, rt, _format_days)


@scalar("FORMAT_TIME", _fixed("FORMAT_TIME", "(TIME, STRING)", STRING, TIME, STRING))
def _format_time(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Format a TIME with a Java time pattern."""

    def one(ms: int, pattern: str) -> str:
        items = java_pattern(pattern)
        _reject_fields(items, "yuMLdDEGQqe", "Time format contains date field.")
        return format_java(items, from_millis(ms, dt.UTC))

    return rows(ctx, "FORMAT_TIME", [pc.cast(args[0], pa.int32()), args[1]], rt, one)


def _reject_fields(items: Sequence[PatternItem], letters: str, message: str) -> None:
    for item in items:
        if isinstance(item, OptionalSection):
            _reject_fields(item.items, letters, message)
        elif isinstance(item, PatternField) and item.letter in letters:
            raise ValueError(message)


# --- parsing -------------------------------------------------------------------------------------


def _parse_millis(text: str, pattern: str, tz: str = "UTC") -> int:
    return epoch_millis(datetime_of(parse_java(pattern, text), zone(tz)))


@scalar(
    "PARSE_TIMESTAMP",
    _with_zone("PARSE_TIMESTAMP", "(STRING, STRING[, STRING zone])", TIMESTAMP, STRING, STRING),
)
def _parse_timestamp(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Parse a TIMESTAMP with a Java date-time pattern, in UTC or the given zone."""
    out = rows(ctx, "PARSE_TIMESTAMP", args, BIGINT, _parse_millis)
    return pc.cast(out, pa.timestamp("ms"))


@scalar(
    "STRINGTOTIMESTAMP",
    _with_zone("STRINGTOTIMESTAMP", "(STRING, STRING[, STRING zone])", BIGINT, STRING, STRING),
)
def _string_to_timestamp(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Parse epoch milliseconds with a Java date-time pattern, in UTC or the given zone."""
    return rows(ctx, "STRINGTOTIMESTAMP", args, rt, _parse_millis)


def _parse_days(text: str, pattern: str) -> int:
    p = parse_java(pattern, text)
    if p.has_time and (p.hour or p.minute or p.second or p.micro):
        raise ValueError("Date format contains time field.")
    return epoch_day(datetime_of(p, dt.UTC).date())


@scalar("PARSE_DATE", _fixed("PARSE_DATE", "(STRING, STRING)", DATE, STRING, STRING))
def _parse_date(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Parse a DATE with a Java date pattern."""
    return pc.cast(rows(ctx, "PARSE_DATE", args, INTEGER, _parse_days), pa.date32())


@scalar("STRINGTODATE", _fixed("STRINGTODATE", "(STRING, STRING)", INTEGER, STRING, STRING))
def _string_to_date(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Parse days since the epoch with a Java date pattern."""
    return rows(ctx, "STRINGTODATE", args, rt, _parse_days)


@scalar("PARSE_TIME", _fixed("PARSE_TIME", "(STRING, STRING)", TIME, STRING, STRING))
def _parse_time(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Parse a TIME with a Java time pattern."""

    def one(text: str, pattern: str) -> int:
        _reject_fields(java_pattern(pattern), "yuMLdDEGQqe", "Time format contains date field.")
        p = parse_java(pattern, text)
        return ((p.hour * 60 + p.minute) * 60 + p.second) * 1000 + p.micro // 1000

    return pc.cast(rows(ctx, "PARSE_TIME", args, INTEGER, one), pa.time32("ms"))


# --- arithmetic ----------------------------------------------------------------------------------

_UNIT_MILLIS = {
    "MILLISECOND": 1,
    "SECOND": 1000,
    "MINUTE": 60_000,
    "HOUR": 3_600_000,
    "DAY": 86_400_000,
}


def unit_millis(unit: str) -> int:
    """Milliseconds in a time unit (DAYS, HOUR, MILLISECONDS...)."""
    u = unit.strip().upper()
    u = u[:-1] if u.endswith("S") else u
    if u not in _UNIT_MILLIS:
        raise ValueError(
            f"unknown time unit {unit!r}; use MILLISECONDS, SECONDS, MINUTES, HOURS or DAYS"
        )
    return _UNIT_MILLIS[u]


def _unit_delta(args: Args) -> Any:
    """Per-row interval in ms from (unit, interval) columns, as int64 numpy (0 where NULL)."""
    units = args[0].to_pylist()
    same = len(set(units)) == 1 and units[0] is not None
    intervals = np.asarray(pc.fill_null(pc.cast(args[1], pa.int64()), 0).to_numpy(), np.int64)
    if same:
        return intervals * unit_millis(units[0])
    scale = np.array([unit_millis(u) if u is not None else 0 for u in units], np.int64)
    return intervals * scale


def _arith(name: str, target: SqlType, sign: int, doc: str) -> None:
    accepts = f"(unit, INTEGER, {target})"

    def resolve(arg_types: Types) -> SqlType:
        check(name, accepts, arg_types, STRING, INTEGER, target)
        return target

    def evaluate(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
        mask = np.zeros(len(args[2]), dtype=bool)
        for a in args:
            if a.null_count:
                mask |= np.asarray(a.is_null().to_numpy(zero_copy_only=False), dtype=bool)
        try:
            delta = _unit_delta(args) * sign
        except ValueError as e:
            for i in range(len(args[2])):
                ctx.error(i, f"{name}: {e}")
            return pa.nulls(len(args[2]), rt.to_arrow())
        if target == DATE:
            days = np.asarray(pc.fill_null(pc.cast(args[2], pa.int32()), 0).to_numpy(), np.int64)
            total = days * 86_400_000 + delta
            out = np.trunc(total / 86_400_000).astype(np.int32)  # Java truncates towards zero
            return pa.array(out, pa.int32(), mask=mask).cast(pa.date32())
        if target == TIME:
            ms = np.asarray(pc.fill_null(pc.cast(args[2], pa.int32()), 0).to_numpy(), np.int64)
            out = np.mod(ms + delta, 86_400_000).astype(np.int32)
            return pa.array(out, pa.int32(), mask=mask).cast(pa.time32("ms"))
        ms = np.asarray(pc.fill_null(pc.cast(args[2], pa.int64()), 0).to_numpy(), np.int64)
        return pa.array(ms + delta, pa.int64(), mask=mask).cast(pa.timestamp("ms"))

    scalar(name, resolve, description=doc)(evaluate)


_arith("DATEADD", DATE, 1, "Add an interval (unit, count) to a DATE.")
_arith("DATESUB", DATE, -1, "Subtract an interval (unit, count) from a DATE.")
_arith("TIMEADD", TIME, 1, "Add an interval (unit, count) to a TIME, wrapping at midnight.")
_arith("TIMESUB", TIME, -1, "Subtract an interval (unit, count) from a TIME, wrapping at midnight.")
_arith("TIMESTAMPADD", TIMESTAMP, 1, "Add an interval (unit, count) to a TIMESTAMP.")
_arith("TIMESTAMPSUB", TIMESTAMP, -1, "Subtract an interval (unit, count) from a TIMESTAMP.")


@scalar(
    "CONVERT_TZ",
    _fixed(
        "CONVERT_TZ",
        "(TIMESTAMP, STRING from_zone, STRING to_zone)",
        TIMESTAMP,
        TIMESTAMP,
        STRING,
        STRING,
    ),
)
def _convert_tz(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Shift a TIMESTAMP's wall-clock time from one time zone to another."""

    def one(ms: int, source: str, target: str) -> int:
        instant = from_millis(ms, dt.UTC)
        to_off = instant.astimezone(zone(target)).utcoffset() or dt.timedelta()
        from_off = instant.astimezone(zone(source)).utcoffset() or dt.timedelta()
        return ms + int((to_off - from_off).total_seconds() * 1000)

    out = rows(ctx, "CONVERT_TZ", [_ts_millis(args[0]), args[1], args[2]], BIGINT, one)
    return pc.cast(out, pa.timestamp("ms"))


# --- conversions ---------------------------------------------------------------------------------


@scalar("FROM_DAYS", _fixed("FROM_DAYS", "(INTEGER)", DATE, INTEGER))
def _from_days(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Convert days since the epoch to a DATE."""
    return pc.cast(pc.cast(args[0], pa.int32()), pa.date32())


@scalar("FROM_UNIXTIME", _fixed("FROM_UNIXTIME", "(BIGINT)", TIMESTAMP, BIGINT))
def _from_unixtime(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Convert epoch milliseconds to a TIMESTAMP."""
    return pc.cast(pc.cast(args[0], pa.int64()), pa.timestamp("ms"))


def _resolve_unix(name: str, param: SqlType, result: SqlType) -> Callable[[Types], SqlType]:
    def resolve(arg_types: Types) -> SqlType:
        if arg_types:
            check(name, f"() or ({param})", arg_types, param)
        return result

    return resolve


@scalar("UNIX_DATE", _resolve_unix("UNIX_DATE", DATE, INTEGER), deterministic=False)
def _unix_date(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return a DATE (default today) as days since the epoch."""
    if args:
        return pc.cast(args[0], pa.int32())
    return pa.array([epoch_day(dt.date.today())], pa.int32())


@scalar("UNIX_TIMESTAMP", _resolve_unix("UNIX_TIMESTAMP", TIMESTAMP, BIGINT), deterministic=False)
def _unix_timestamp(ctx: EvalContext, args: Args, arg_types: Types, rt: SqlType) -> pa.Array:
    """Return a TIMESTAMP (default now) as epoch milliseconds."""
    if args:
        return pc.cast(args[0], pa.int64())
    return pa.array([time.time_ns() // 1_000_000], pa.int64())

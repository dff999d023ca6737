"""Integer `/` and `%` are Java's, exact over the whole BIGINT and INTEGER range, and a record
whose value is past 2^53 (a snowflake id, a nanosecond time) neither stops a query nor comes out
wrong: checked against Python's exact integers."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import pyarrow as pa
import pytest

from hispeed.engine import Engine
from hispeed.expr.compiler import compile_expr
from hispeed.expr.scope import Scope, ScopeColumn
from hispeed.functions.registry import EvalContext
from hispeed.sql import types as T
from hispeed.sql.parser import parse_expression

LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1


def java(op: str, a: int, b: int, bits: int) -> int:
    """Java's long (or int) `/` and `%` from Python's exact integers: the quotient truncates
    toward zero, the remainder has the dividend's sign, overflow wraps."""
    q = abs(a) // abs(b) * (1 if (a < 0) == (b < 0) else -1)
    value = q if op == "/" else a - b * q
    half = 2 ** (bits - 1)
    return (value + half) % (2 * half) - half


def printed(engine: Engine, topic: str) -> list[dict]:
    rows = engine.execute(f"PRINT '{topic}' FROM BEGINNING LIMIT 5;")[0].rows
    return [json.loads(r["value"]) for r in rows]


def evaluate(text: str, a: list[int | None], b: list[int | None], typ: T.SqlType) -> tuple:
    scope = Scope([ScopeColumn("A", typ, "A"), ScopeColumn("B", typ, "B")])
    batch = pa.RecordBatch.from_arrays(
        [pa.array(a, typ.to_arrow()), pa.array(b, typ.to_arrow())], names=["A", "B"]
    )
    ctx = EvalContext()
    return compile_expr(parse_expression(text), scope)(batch, ctx).to_pylist(), ctx.errors


def operands(bits: int) -> tuple[list[int], list[int]]:
    rng = random.Random(bits)
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    edges = [low, low + 1, -(2**53) - 1, -(2**53), -7, -1, 1, 7, 2**53, 2**53 + 1, high - 1, high]
    edges = [v for v in edges if low <= v <= high]
    values = edges + [rng.randint(low, high) for _ in range(200)]
    values += [rng.randint(-(10**6), 10**6) for _ in range(100)]
    divisors = [v for v in values if v != 0] + [-1, 1, 2, 3, 16, 1000, 10**9 + 7]
    a = [rng.choice(values) for _ in range(3000)] + edges * 2
    b = [rng.choice(divisors) for _ in range(3000)] + [-1] * len(edges) + [3] * len(edges)
    return a, b


@pytest.mark.parametrize("op", ["/", "%"])
@pytest.mark.parametrize(("typ", "bits"), [(T.BIGINT, 64), (T.INTEGER, 32)])
def test_integer_division_is_javas_over_the_whole_range(op: str, typ: T.SqlType, bits: int) -> None:
    a, b = operands(bits)
    result, errors = evaluate(f"A {op} B", a, b, typ)
    assert result == [java(op, x, y, bits) for x, y in zip(a, b, strict=True)]
    assert errors == []


def test_near_two_to_the_53_the_quotient_is_exact() -> None:
    # float64 rounds 2^53 + 1 to 2^53: a float route gives 3002399751580330 and remainder 2
    a = [2**53 + 1, 2**53 + 3, 3 * (2**53 // 3) + 3, LONG_MAX, LONG_MIN]
    b = [3, 3, 3, 2, -1]
    q, _ = evaluate("A / B", a, b, T.BIGINT)
    r, _ = evaluate("A % B", a, b, T.BIGINT)
    assert q == [java("/", x, y, 64) for x, y in zip(a, b, strict=True)]
    assert r == [java("%", x, y, 64) for x, y in zip(a, b, strict=True)]
    assert q[-1] == LONG_MIN  # Java's Long.MIN_VALUE / -1 overflows to itself


def test_division_by_zero_and_null_are_null_and_only_zero_is_reported() -> None:
    result, errors = evaluate("A % B", [2**62 + 5, None, 7, 9, 2**60], [0, 3, None, 0, 7], T.BIGINT)
    assert result == [None, None, None, None, 2**60 % 7]
    assert errors == [(0, "% by zero"), (3, "% by zero")]


def test_a_query_on_values_past_two_to_the_53_goes_on_and_is_exact() -> None:
    ids = [17, 1_733_500_000_000_000_001, 9_007_199_254_740_993, -(2**62) - 3, 5]
    times = [1000, 1_733_500_000_000_000_000, 2000, 3000, 25_000]
    with tempfile.TemporaryDirectory() as tmp:
        engine = Engine(
            Path(tmp) / "data",
            fsync="never",
            properties={"ksql.streams.cache.max.bytes.buffering": "0"},
        )
        try:
            engine.execute(
                "CREATE STREAM s (k STRING KEY, id BIGINT, ts BIGINT) WITH (kafka_topic='s', "
                "value_format='JSON', partitions=1);"
                "CREATE STREAM m AS SELECT k, id % 16 AS shard, id / 1000 AS q FROM s;"
                "CREATE STREAM tumbled AS SELECT * FROM TABLE(TUMBLE(TABLE s, DESCRIPTOR(ts), "
                "INTERVAL '10' SECONDS));"
            )
            for i, (v, ts) in enumerate(zip(ids, times, strict=True)):
                engine.insert("s", {"K": f"k{i}", "ID": v, "TS": ts})
                engine.drain()
            states = {q["id"]: q["state"] for q in engine.execute("SHOW QUERIES;")[0].rows}
            assert set(states.values()) == {"RUNNING"}
            assert printed(engine, "M") == [
                {"SHARD": java("%", v, 16, 64), "Q": java("/", v, 1000, 64)} for v in ids
            ]
            # every record is windowed, the nanosecond time too, at its floor to 10 s
            assert [(r["TS"], r["WINDOW_START"]) for r in printed(engine, "TUMBLED")] == [
                (ts, ts - ts % 10_000) for ts in times
            ]
        finally:
            engine.close()

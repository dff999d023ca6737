"""Compare records and responses as ksqlDB's test tool does, and nowhere more leniently.

A port of the rules of ksqlDB's `ExpectedRecordComparator` and of the record checks of its
`TestExecutor` (QTT) and `RestTestExecutor` (RQTT). The expected side is the case's JSON as
Jackson reads it with exact decimals (an integer literal is an Int, Long or BigInteger node
by range; a literal with a fraction or exponent a decimal node keeping its scale); the actual
side is what `qtt_serde` decoded: Java's numbers as `JavaNumber`, maps, lists, strings,
booleans, null, and `Windowed` keys.

Where ksqlDB is lenient this is too, and nowhere else:
- an Integer or Long actual matches an expected number whose `intValue()`/`longValue()` is
  equal (Java truncates a decimal node, so 1.5 matches an Integer 1);
- a Double actual matches within 0.000001;
- a struct's expected field names are looked up as written, then upper-cased;
- a BigDecimal actual equals an expected text whose BigDecimal equals it.
Everything else is exact: a BigDecimal never matches an integer literal unless its scale is
0 or less (1.0 is not 1), a map has exactly the expected number of fields, types never mix.
One rule is forced by the case files rather than chosen: their decimal literals went through
binary doubles when they were copied, so a BigDecimal is compared with one as a double
(`same_double`), not with its scale.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any

from hispeed.testing.qtt_serde import (
    INT_MAX,
    INT_MIN,
    LONG_MAX,
    LONG_MIN,
    JavaNumber,
    Window,
    Windowed,
    wrap,
)


def _unscaled(d: Decimal) -> tuple[int, int]:
    """Java's BigDecimal identity: (unscaled value, scale)."""
    sign, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)
    unscaled = int("".join(map(str, digits)) or "0")
    return (-unscaled if sign else unscaled), -exponent


def decimal_equals(a: Decimal, b: Decimal) -> bool:
    """Java's `BigDecimal.equals`: the same value and the same scale."""
    return _unscaled(a) == _unscaled(b)


def same_double(expected: Decimal, actual: Decimal) -> bool:
    """Whether an expected decimal literal of the shared case files matches a BigDecimal.

    ksqlDB compares the two with `BigDecimal.equals` (value and scale). The shared copies of
    the case files were written back through binary doubles, so a literal there is the
    shortest text of a double (ksqlDB's `10.0000` reads `10.0`, `1.0E12` reads `1e+12`): its
    scale and any digits past a double's precision are lost. The closest check those files
    allow is that both are the same double; any actual that ksqlDB's check would accept
    against the original literal passes it.
    """
    return float(expected) == float(actual)


def _truncated(expected: int | Decimal) -> int:
    return int(expected)  # Python's int() truncates toward zero, as Java's intValue()


def _compare_number(actual: Any, expected: int | Decimal) -> bool:
    if not isinstance(actual, JavaNumber):
        return False
    value = actual.value
    if actual.kind == "Integer":
        return wrap(_truncated(expected), 32) == value
    if actual.kind == "Long":
        return wrap(_truncated(expected), 64) == value
    if actual.kind == "Double":
        assert isinstance(value, float)
        try:
            return abs(float(expected) - value) < 0.000_001
        except OverflowError:
            return False
    if actual.kind == "BigDecimal":
        assert isinstance(value, Decimal)
        if isinstance(expected, int):
            if not LONG_MIN <= expected <= LONG_MAX:
                return False  # a BigInteger node is not compared with a BigDecimal
            unscaled, scale = _unscaled(value)
            if scale > 0:
                return False
            exact: int = unscaled * 10**-scale
            # Java's longValueExact() throws for a value past a long: the check fails
            return LONG_MIN <= exact <= LONG_MAX and exact == expected
        return same_double(expected, value)
    return False  # a BigInteger actual matches no node


def _compare_text(actual: Any, expected: str) -> bool:
    if isinstance(actual, str):
        return actual == expected
    if isinstance(actual, JavaNumber) and actual.kind == "BigDecimal":
        assert isinstance(actual.value, Decimal)
        try:
            want = Decimal(expected)
        except InvalidOperation:
            return False  # Java's NumberFormatException: the check fails
        # "NaN" or "Infinity" is no BigDecimal either
        return want.is_finite() and decimal_equals(want, actual.value)
    if isinstance(actual, bytes | bytearray):
        return expected == base64.b64encode(actual).decode()
    return False


def _compare_struct(actual: Any, expected: dict[str, Any]) -> bool:
    if not isinstance(actual, dict) or len(actual) != len(expected):
        return False
    for name, want in expected.items():
        got = actual.get(name)
        if got is None:
            got = actual.get(name.upper())
        if not matches(got, want):
            return False
    return True


def _compare_array(actual: Any, expected: list[Any]) -> bool:
    if not isinstance(actual, list) or len(actual) != len(expected):
        return False
    return all(matches(a, e) for a, e in zip(actual, expected, strict=True))


def matches(actual: Any, expected: Any) -> bool:
    """Whether the decoded `actual` matches the expected JSON node (ksqlDB's comparator)."""
    if expected is None:
        return actual is None
    if isinstance(expected, bool):
        return isinstance(actual, bool) and actual == expected
    if isinstance(expected, int | Decimal):
        return _compare_number(actual, expected)
    if isinstance(expected, float):
        raise TypeError("expected values are read with exact decimals, not floats")
    if isinstance(expected, str):
        return _compare_text(actual, expected)
    if isinstance(expected, dict):
        return _compare_struct(actual, expected)
    if isinstance(expected, list):
        return _compare_array(actual, expected)
    raise TypeError(f"KSQL Testing Tool cannot expect JSON node type: {type(expected).__name__}")


def headers_match(actual: list[tuple[str, bytes | None]], expected: list[dict[str, Any]]) -> bool:
    """The same headers in the same order: keys equal, values byte for byte (null is null)."""
    if len(actual) != len(expected):
        return False
    for (key, value), want in zip(actual, expected, strict=True):
        raw = want.get("VALUE")
        want_value = base64.b64decode(raw) if raw is not None else None
        if key != want.get("KEY") or value != want_value:
            return False
    return True


def expected_window(spec: dict[str, Any] | None) -> Window | None:
    """A case record's `window` as ksqlDB's `WindowData` reads it (type is required)."""
    if spec is None:
        return None
    kind = str(spec["type"]).upper()
    if kind not in ("TIME", "SESSION"):
        raise ValueError(f"window type must be TIME or SESSION, not {spec['type']!r}")
    return Window(kind, int(spec["start"]), int(spec["end"]))


def record_problem(
    expected: dict[str, Any],
    key: Any,
    value: Any,
    timestamp: int,
    headers: list[tuple[str, bytes | None]],
    *,
    ran_with_insert_statements: bool,
) -> str:
    """Why an output record does not match its expected record (TestExecutor's rules), or ''.

    A missing `key` means a null key; a missing `headers` means no headers; a missing
    `timestamp` means any; an expected `window` needs a windowed key with the same window
    type, start and end, and an actual windowed key with no expected window fails.
    """
    want_key = expected.get("key")
    window = expected_window(expected.get("window"))
    if window is not None:
        if not isinstance(key, Windowed):
            return f"key: expected a {window.kind} window {window}, got the unwindowed {key!r}"
        if key.window != window:
            return f"window: expected {window}, got {key.window}"
        if not matches(key.key, want_key):
            return f"key: expected {want_key!r}, got {key.key!r}"
    elif not matches(key, want_key):
        return f"key: expected {want_key!r}, got {key!r}"
    if "value" not in expected:
        return "the expected record has no value (ksqlDB requires one)"
    if not matches(value, expected["value"]):
        return f"value: expected {expected['value']!r}, got {value!r}"
    if not headers_match(headers, expected.get("headers") or []):
        return f"headers: expected {expected.get('headers') or []}, got {headers}"
    want_ts = expected.get("timestamp", timestamp)
    if want_ts != timestamp and (not ran_with_insert_statements or want_ts != 0):
        return f"timestamp: expected {want_ts}, got {timestamp}"
    return ""


# -- RQTT -------------------------------------------------------------------------------------


def java_equals(actual: Any, expected: Any) -> bool:
    """Java's `Objects.equals` over the objects Jackson and the deserializers make."""
    if isinstance(actual, Windowed) or isinstance(expected, Windowed):
        return (
            isinstance(actual, Windowed)
            and isinstance(expected, Windowed)
            and actual.window == expected.window
            and java_equals(actual.key, expected.key)
        )
    if isinstance(actual, JavaNumber) or isinstance(expected, JavaNumber):
        if not (isinstance(actual, JavaNumber) and isinstance(expected, JavaNumber)):
            return False
        if actual.kind != expected.kind:
            return False
        if actual.kind == "BigDecimal":
            assert isinstance(actual.value, Decimal) and isinstance(expected.value, Decimal)
            # one side is a literal of the case files: see same_double
            return same_double(expected.value, actual.value)
        if actual.kind == "Double":
            return actual.value == expected.value or (
                math.isnan(float(actual.value)) and math.isnan(float(expected.value))
            )
        return actual.value == expected.value
    if isinstance(actual, dict) and isinstance(expected, dict):
        return actual.keys() == expected.keys() and all(
            java_equals(actual[k], expected[k]) for k in actual
        )
    if isinstance(actual, list) and isinstance(expected, list):
        return len(actual) == len(expected) and all(
            java_equals(a, e) for a, e in zip(actual, expected, strict=True)
        )
    if type(actual) is not type(expected):
        return False
    return bool(actual == expected)


def as_java_object(spec: Any) -> Any:
    """A case's JSON value as `RecordNode.buildJson` makes it: Jackson's Object, with
    integers as Integer/Long/BigInteger and decimals as BigDecimal."""
    if isinstance(spec, bool) or spec is None or isinstance(spec, str):
        return spec
    if isinstance(spec, int):
        if INT_MIN <= spec <= INT_MAX:
            return JavaNumber("Integer", spec)
        if LONG_MIN <= spec <= LONG_MAX:
            return JavaNumber("Long", spec)
        return JavaNumber("BigInteger", spec)
    if isinstance(spec, Decimal):
        return JavaNumber("BigDecimal", spec)
    if isinstance(spec, list):
        return [as_java_object(v) for v in spec]
    if isinstance(spec, dict):
        return {k: as_java_object(v) for k, v in spec.items()}
    raise TypeError(f"unexpected JSON value {spec!r}")


def coerce_expected_key(expected: Any, actual: Any) -> Any:
    """RestTestExecutor's `coerceExpectedKey`: BigDecimal to Double, Integer to Long, as the
    actual key is."""
    if actual is None or expected is None:
        return expected
    a = actual.key if isinstance(actual, Windowed) else actual
    e = expected.key if isinstance(expected, Windowed) else expected
    # ksqlDB coerces the whole key object only: a Windowed is never coerced
    if isinstance(actual, Windowed) or isinstance(expected, Windowed):
        return expected
    if isinstance(a, JavaNumber) and isinstance(e, JavaNumber):
        if a.kind == "Double" and e.kind == "BigDecimal":
            return JavaNumber("Double", float(e.value))
        if a.kind == "Long" and e.kind == "Integer":
            return JavaNumber("Long", e.value)
    return expected


def rest_record_problem(expected: dict[str, Any], key: Any, value: Any, timestamp: int) -> str:
    """Why an output record of a REST case differs (RestTestExecutor's rules), or ''.

    The key compares with Java's equals after ksqlDB's coercion; the value with the
    comparator; the timestamp exactly when given; headers are not compared."""
    want_key = as_java_object(expected.get("key"))
    window = expected_window(expected.get("window"))
    if window is not None:
        want_key = Windowed(want_key, window)
    want_key = coerce_expected_key(want_key, key)
    if not java_equals(key, want_key):
        return f"key: expected {want_key!r}, got {key!r}"
    if "value" not in expected:
        return "the expected record has no value (ksqlDB requires one)"
    if not matches(value, expected["value"]):
        return f"value: expected {expected['value']!r}, got {value!r}"
    want_ts = expected.get("timestamp", timestamp)
    if want_ts != timestamp:
        return f"timestamp: expected {want_ts}, got {timestamp}"
    return ""


def response_problem(
    actual: Any,
    expected: dict[str, Any],
    *,
    statement: str | None,
    path: str,
    counted: Callable[[Any, Any, str], None],
) -> str:
    """RestTestExecutor's `matchResponseFields`: every expected field is in `actual` with an
    equal value (`field|startsWith` compares a prefix; `{STATEMENT}` is the statement's
    text); unordered rows go to `counted` instead, compared as multisets afterwards."""
    if not isinstance(actual, dict):
        return f"Response mismatch at {path}: expected an object, got {actual!r}"
    for raw_key, raw_value in expected.items():
        name, _, operator = raw_key.partition("|")
        want = raw_value
        if isinstance(want, str) and statement is not None:
            want = want.replace("{STATEMENT}", statement)
        if name not in actual:
            return f"Response mismatch at {path}: no field {name!r} in {actual!r}"
        got = actual[name]
        where = f"{path}->{name}"
        if isinstance(want, dict):
            problem = response_problem(got, want, statement=statement, path=where, counted=counted)
            if problem:
                return problem
        elif operator.upper() == "STARTSWITH" or operator.upper() == "STARTS_WITH":
            if not isinstance(got, str) or not isinstance(want, str) or not got.startswith(want):
                return f"Response mismatch at {where}: {got!r} does not start with {want!r}"
        elif operator:
            raise ValueError(f"unknown match operator {operator!r}")
        elif "query" in where and "row" in where and name.lower() == "columns":
            counted(got, want, where)
        elif not json_equals(got, want):
            return f"Response mismatch at {where}: expected {want!r}, got {got!r}"
    return ""


def json_equals(actual: Any, expected: Any) -> bool:
    """Equality of two values read by Jackson with exact decimals (`is(expected)`): an
    Integer is not a Long, a decimal's scale counts."""
    return java_equals(as_java_object(actual), as_java_object(expected))

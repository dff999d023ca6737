"""ksqlDB's test-only scalar functions that the conformance runner registers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hispeed.functions.registry import SCALAR_FUNCTIONS, FunctionTypeError, lookup
from hispeed.sql.types import (
    BIGINT,
    BOOLEAN,
    DOUBLE,
    INTEGER,
    STRING,
    SqlType,
    decimal,
    struct,
)
from hispeed.testing import qtt, qtt_functions
from tests.functions.util import call, col, values

STRUCT_A = struct([("A", STRING)])


@pytest.fixture(autouse=True)
def registered() -> Iterator[None]:
    qtt_functions.unregister()  # the runner may have registered them earlier in this process
    qtt_functions.register()
    yield
    qtt_functions.unregister()
    assert all(name not in SCALAR_FUNCTIONS for name in qtt_functions.NAMES)


def _resolve(name: str, *types: SqlType) -> SqlType:
    fn = lookup(name)
    assert fn is not None
    return fn.resolve(list(types))


def test_register_is_idempotent_and_keeps_the_first_registration() -> None:
    before = {name: SCALAR_FUNCTIONS[name] for name in qtt_functions.NAMES}
    qtt_functions.register()
    qtt_functions.register()
    assert {name: SCALAR_FUNCTIONS[name] for name in qtt_functions.NAMES} == before
    assert lookup("bad_udf") is before["BAD_UDF"]
    assert lookup("WhenCondition") is before["WHENCONDITION"]


def test_the_built_ins_do_not_include_them() -> None:
    qtt_functions.unregister()
    assert all(lookup(name) is None for name in qtt_functions.NAMES)
    assert lookup("ABS") is not None  # built-ins are still there
    qtt_functions.register()  # for the fixture's teardown


def test_bad_udf_int_always_fails() -> None:
    assert _resolve("BAD_UDF", INTEGER) == STRING
    out, ctx = call("BAD_UDF", col(INTEGER, 1, None, 3))
    assert out == [None, None, None]
    assert ctx.errors == [(0, "BAD_UDF: boom!"), (1, "BAD_UDF: boom!"), (2, "BAD_UDF: boom!")]


def test_bad_udf_boolean_fails_when_true() -> None:
    assert _resolve("BAD_UDF", BOOLEAN) == INTEGER
    out, ctx = call("BAD_UDF", col(BOOLEAN, False, True, None, False))
    assert out == [0, None, None, 0]
    assert ctx.errors[0] == (1, "BAD_UDF: You asked me to throw...")
    # NULL cannot reach Java's primitive boolean parameter
    assert ctx.errors[1][0] == 2
    assert "NULL" in ctx.errors[1][1]
    assert len(ctx.errors) == 2


def test_bad_udf_string_drops_every_other_call_across_batches() -> None:
    assert _resolve("BAD_UDF", STRING) == STRING
    assert values("BAD_UDF", col(STRING, "a", "b", "c")) == [None, "b", None]
    # the count goes on in the next batch: this is the 4th call, 5th call...
    assert values("BAD_UDF", col(STRING, "d", None, "f")) == ["d", None, "f"]
    # register() starts the count again, as a fresh ksqlDB query does
    qtt_functions.register()
    assert values("BAD_UDF", col(STRING, "a", "b")) == [None, "b"]
    fn = lookup("BAD_UDF")
    assert fn is not None
    assert not fn.deterministic


def test_bad_udf_rejects_other_types() -> None:
    # BIGINT does not narrow to INT
    for t in (BIGINT, DOUBLE):
        with pytest.raises(FunctionTypeError, match="BAD_UDF takes"):
            _resolve("BAD_UDF", t)
    with pytest.raises(FunctionTypeError):
        _resolve("BAD_UDF", INTEGER, INTEGER)


def test_whencondition() -> None:
    assert _resolve("WHENCONDITION", BOOLEAN, BOOLEAN) == BOOLEAN
    out, ctx = call(
        "WHENCONDITION",
        col(BOOLEAN, True, False, True, None, True),
        col(BOOLEAN, True, True, False, True, None),
    )
    assert out == [True, False, None, None, None]
    assert ctx.errors[0] == (2, "WHENCONDITION: When condition in case is not running lazily!")
    assert [row for row, _ in ctx.errors] == [2, 3, 4]
    with pytest.raises(FunctionTypeError):
        _resolve("WHENCONDITION", INTEGER, BOOLEAN)


def test_whenresult() -> None:
    assert _resolve("WHENRESULT", INTEGER, BOOLEAN) == INTEGER
    out, ctx = call("WHENRESULT", col(INTEGER, 100, 200), col(BOOLEAN, True, False))
    assert out == [100, None]
    assert ctx.errors == [(1, "WHENRESULT: Then expression in case is not running lazily!")]
    with pytest.raises(FunctionTypeError):
        _resolve("WHENRESULT", BIGINT, BOOLEAN)


@pytest.mark.parametrize(
    ("types", "method"),
    [
        ((INTEGER, STRING), "doStuffIntString"),
        ((BIGINT, STRING), "doStuffLongString"),
        ((INTEGER, INTEGER, STRING), "doStuffLongLongString"),
        ((BIGINT, BIGINT, STRING), "doStuffLongLongString"),
        ((BIGINT,), "doStuffLongVarargs"),
        ((INTEGER,), "doStuffLongVarargs"),
        ((BIGINT, INTEGER, BIGINT, BIGINT, BIGINT), "doStuffLongVarargs"),
        ((BIGINT, BIGINT), "doStuffLongVarargs"),
    ],
)
def test_test_udf_returns_the_chosen_overload(types: tuple[SqlType, ...], method: str) -> None:
    assert _resolve("TEST_UDF", *types) == STRING
    samples: dict[str, Any] = {"INTEGER": 1, "BIGINT": 2, "STRING": "x"}
    columns = [col(t, samples[t.name], samples[t.name]) for t in types]
    assert values("TEST_UDF", *columns) == [method, method]


def test_test_udf_nulls() -> None:
    # a NULL STRING is passed to the method, which ignores it
    assert values("TEST_UDF", col(BIGINT, 0), col(STRING, None)) == ["doStuffLongString"]
    assert values("TEST_UDF", col(BIGINT, 0), col(BIGINT, 0), col(STRING, None)) == [
        "doStuffLongLongString"
    ]
    # a NULL for a primitive long fails the row
    out, ctx = call("TEST_UDF", col(BIGINT, 1, None), col(STRING, "x", "y"))
    assert out == ["doStuffLongString", None]
    assert len(ctx.errors) == 1
    assert ctx.errors[0][0] == 1
    assert ctx.errors[0][1].startswith("TEST_UDF: argument 1 is NULL")
    out, ctx = call("TEST_UDF", col(BIGINT, 1, 2), col(BIGINT, 1, None), col(BIGINT, 1, 2))
    assert out == ["doStuffLongVarargs", None]
    assert [row for row, _ in ctx.errors] == [1]


def test_test_udf_struct() -> None:
    assert _resolve("TEST_UDF", STRUCT_A) == STRING
    out, ctx = call("TEST_UDF", col(STRUCT_A, {"A": "1"}, {"A": None}, None))
    assert out == ["1", None, None]
    assert len(ctx.errors) == 1
    assert ctx.errors[0][0] == 2
    # only a struct of exactly A STRING (no casts inside structs)
    for other in (
        struct([("A", INTEGER)]),
        struct([("B", STRING)]),
        struct([("A", STRING), ("B", STRING)]),
    ):
        with pytest.raises(FunctionTypeError):
            _resolve("TEST_UDF", other)


def test_test_udf_without_arguments() -> None:
    assert _resolve("TEST_UDF") == STRUCT_A
    assert values("TEST_UDF") == [{"A": "foo"}]


def test_test_udf_rejects_what_no_overload_takes() -> None:
    with pytest.raises(FunctionTypeError, match=r"\(BIGINT\.\.\.\)"):
        _resolve("TEST_UDF", STRING)
    with pytest.raises(FunctionTypeError):
        _resolve("TEST_UDF", decimal(4, 2), STRING)
    with pytest.raises(FunctionTypeError):
        _resolve("TEST_UDF", DOUBLE)


def test_tostruct() -> None:
    assert _resolve("TOSTRUCT", STRING) == STRUCT_A
    assert values("TOSTRUCT", col(STRING, "a", None)) == [{"A": "a"}, {"A": None}]
    with pytest.raises(FunctionTypeError):
        _resolve("TOSTRUCT", INTEGER)


def _run_case(tmp_path: Path, spec: dict[str, Any]) -> qtt.CaseResult:
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"tests": [spec]}))
    results = list(qtt.run([path]))
    assert len(results) == 1
    return results[0]


def test_a_query_repartitioned_by_a_throwing_function(tmp_path: Path) -> None:
    result = _run_case(
        tmp_path,
        {
            "name": "partition by bad_udf",
            "statements": [
                "CREATE STREAM TEST (K STRING KEY, ID BIGINT, T BOOLEAN) "
                "WITH (kafka_topic='test_topic', value_format='JSON');",
                "CREATE STREAM R AS SELECT BAD_UDF(T), ID, TOSTRUCT(K) AS S FROM TEST "
                "PARTITION BY BAD_UDF(T);",
            ],
            "inputs": [
                {"topic": "test_topic", "key": "a", "value": {"ID": 1, "T": False}},
                {"topic": "test_topic", "key": "b", "value": {"ID": 2, "T": True}},
            ],
            "outputs": [
                {"topic": "R", "key": 0, "value": {"ID": 1, "S": {"A": "a"}}},
                {"topic": "R", "key": None, "value": {"ID": 2, "S": {"A": "b"}}},
            ],
        },
    )
    assert result.status == "passed", result.detail

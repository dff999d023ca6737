"""A mutation-based SQL fuzzer: statements from ksqlDB's conformance cases and from this
project's tests, mutated (tokens dropped, swapped, duplicated, extreme literals, deep nesting,
unicode), each run through `Engine.execute` on a fresh embedded engine. What a user may see is
success or a HispeedError, a SqlError with its line and column; never another exception, and
never a statement that runs past its deadline.

CI explores a fixed number of examples (derandomized by the "ci" profile in conftest.py);
raise HISPEED_SQL_FUZZ_EXAMPLES locally to search longer.
"""

from __future__ import annotations

import ast
import json
import os
import re
import tempfile
import threading
from functools import cache
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError

ROOT = Path(__file__).parents[2]
CONFORMANCE = Path(
    os.environ.get("HISPEED_CONFORMANCE_DIR", ROOT.parent / "shared" / "conformance" / "ksql-qtt")
)
EXAMPLES = int(os.environ.get("HISPEED_SQL_FUZZ_EXAMPLES", "150"))
#: how long one statement may take on a busy 2-core machine before it counts as a hang
DEADLINE_S = 20.0
_TOPIC = re.compile(r"kafka_topic\s*=\s*'([A-Za-z0-9._-]{1,200})'", re.IGNORECASE)
_STARTS = ("CREATE ", "INSERT ", "SELECT ", "DROP ", "SHOW ", "DESCRIBE ", "EXPLAIN ", "PRINT ")
_TOKEN = re.compile(
    r"'(?:[^']|'')*'|\"[^\"]*\"|`[^`]*`|[A-Za-z_][A-Za-z_0-9]*|\d+(?:\.\d*)?(?:[eE][-+]?\d+)?"
    r"|->|:=|=>|<=|>=|<>|!=|\|\||\S"
)
EXTREMES = [
    "1e309",
    "-1e309",
    "9223372036854775808",
    "-9223372036854775809",
    "2147483648",
    "123456789012345678901234567890123456789.5",
    "0",
    "-1",
    "NULL",
    "''",
    "'\\u0000'",
    "'\U0001f4a5'",
    "'" + "x" * 5000 + "'",
    '"\u540d\u524d"',
    "`\u00e9`",
    "ARRAY[]",
    "MAP()",
    "STRUCT()",
    "ARRAY[NULL]",
    "CAST(NULL AS ARRAY<MAP<STRING, STRUCT<A INT>>>)",
    "'2020-13-45T99:99:99'",
    "1.0E-400",
    "TRUE",
    ";",
    "*",
]
KEYWORDS = [
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP BY",
    "WINDOW TUMBLING (SIZE 1 SECOND)",
    "EMIT",
    "CHANGES",
    "FINAL",
    "JOIN",
    "WITHIN 1 SECOND",
    "ON",
    "AS",
    "AND",
    "OR",
    "NOT",
    "CASE",
    "WHEN",
    "END",
    "PARTITION BY",
    "HAVING",
    "LIMIT",
    "KEY",
    "PRIMARY KEY",
    "EXPLODE(",
    "TABLE",
    "STREAM",
    "(",
    ")",
    ",",
    "=>",
    "->",
    "[",
    "]",
]


_REGISTRY_FORMATS = re.compile(r"AVRO|PROTOBUF|JSON_SR", re.IGNORECASE)


def _conformance_cases() -> list[list[str]]:
    cases: list[list[str]] = []
    for path in sorted(CONFORMANCE.rglob("*.json")):
        for test in json.loads(path.read_text()).get("tests", []):
            statements = test.get("statements")
            if not statements or not all(isinstance(s, str) for s in statements):
                continue
            formats = test.get("format") or ["JSON"]
            fmt = "JSON" if "JSON" in formats else formats[0]
            case = [s.replace("{FORMAT}", fmt) for s in statements]
            if not any(_REGISTRY_FORMATS.search(s) for s in case):  # no schema registry here
                cases.append(case)
    return cases


def _project_statements() -> list[list[str]]:
    """SQL written as string constants in this project's tests, each a case of its own."""
    found: list[list[str]] = []
    for path in sorted((ROOT / "tests").rglob("test_*.py")):
        if path.parent.name == "faults":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value.strip()
                if text.upper().startswith(_STARTS) and len(text) < 2000:
                    found.append([text])
    return found


@cache
def seeds() -> list[list[str]]:
    cases = _project_statements()
    if CONFORMANCE.is_dir():
        cases += _conformance_cases()
    return cases


def tokens(sql: str) -> list[str]:
    return _TOKEN.findall(sql)


#: extreme literals and deep nesting twice as often: they keep more statements valid
MUTATIONS = ["extreme", "nest", "extreme", "nest", "drop", "swap", "duplicate", "keyword"]
MUTATIONS += ["unicode", "truncate"]


@st.composite
def mutated_cases(draw: st.DrawFn) -> list[str]:
    """A seed case whose last statement (the one the case is about) is mutated 1-3 times."""
    case = list(draw(st.sampled_from(seeds())))
    toks = tokens(case[-1]) or ["SELECT"]
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(MUTATIONS))
        # a literal where there is one: the statement may stay valid and go past the parser
        literals = [j for j, t in enumerate(toks) if t[0] in "'0123456789"]
        if kind in ("extreme", "nest") and literals:
            i = draw(st.sampled_from(literals))
        else:
            i = draw(st.integers(0, len(toks) - 1))
        if kind == "drop" and len(toks) > 1:
            del toks[i]
        elif kind == "swap" and i + 1 < len(toks):
            toks[i], toks[i + 1] = toks[i + 1], toks[i]
        elif kind == "duplicate":
            toks[i:i] = [toks[i]] * draw(st.integers(1, 4))
        elif kind == "extreme":
            toks[i] = draw(st.sampled_from(EXTREMES))
        elif kind == "nest":
            depth = draw(st.sampled_from([3, 63, 70, 300]))
            wrap = draw(st.sampled_from(["(", "ABS(", "NOT ", "- ", "ARRAY["]))
            close = {"(": ")", "ABS(": ")", "ARRAY[": "]"}.get(wrap, "")
            toks[i] = wrap * depth + toks[i] + close * depth
        elif kind == "keyword":
            toks.insert(i, draw(st.sampled_from(KEYWORDS)))
        elif kind == "unicode":
            toks.insert(i, draw(st.text(min_size=1, max_size=3)))
        elif kind == "truncate":
            toks = toks[: max(1, i)]
    case[-1] = " ".join(toks)
    return case


class StatementHangError(AssertionError):
    """A statement ran past its deadline."""


def run_with_deadline(engine: Engine, sql: str) -> BaseException | None:
    """`engine.execute(sql)` in a thread; what it raised (None: success); StatementHangError
    past the deadline (the thread is left behind: a hung statement cannot be stopped)."""
    outcome: list[BaseException | None] = []

    def target() -> None:
        try:
            engine.execute(sql)
            outcome.append(None)
        except BaseException as e:  # judged by the caller
            outcome.append(e)

    thread = threading.Thread(target=target, daemon=True, name="sql-fuzz")
    thread.start()
    thread.join(DEADLINE_S)
    if thread.is_alive():
        raise StatementHangError(f"no answer within {DEADLINE_S} s to: {sql[:500]}")
    return outcome[0]


def check(sql: str, error: BaseException | None) -> None:
    if error is None:
        return
    assert isinstance(error, HispeedError), (
        f"{type(error).__name__}: {error} -- an internal error for: {sql[:1000]}"
    )
    if isinstance(error, SqlError):
        assert error.line >= 1, f"{error} has no line: {sql[:1000]}"
        assert error.column >= 1, f"{error} has no column: {sql[:1000]}"


def test_there_are_seeds() -> None:
    assert len(seeds()) > 100


@pytest.mark.slow
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(case=mutated_cases())
def test_mutated_sql_gets_an_answer_or_a_clear_error(case: list[str]) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="sql-fuzz-") as data,
        Engine(Path(data), fsync="never") as engine,
    ):
        # the topics the case names, as the conformance runner creates them
        for topic in sorted({t for sql in case for t in _TOPIC.findall(sql)}):
            engine.log.create_topic(topic, 1, exist_ok=True)
        for sql in case:
            check(sql, run_with_deadline(engine, sql))


# -- queries over records -----------------------------------------------------------------------
#: extreme values for a literal of a query that then runs over the case's records
RUNTIME_LITERALS = [*EXTREMES[:13], "'a'", "1.5", "-0.0", "'NaN'", "'%'", "'.*('", "'$..'", "'X'"]


@cache
def cases_with_inputs() -> list[tuple[list[str], list[dict[str, object]]]]:
    """Conformance cases that feed records to their queries, without schema-registry formats
    and without an expected error."""
    found: list[tuple[list[str], list[dict[str, object]]]] = []
    if not CONFORMANCE.is_dir():
        return found
    for path in sorted(CONFORMANCE.rglob("*.json")):
        for test in json.loads(path.read_text()).get("tests", []):
            statements, inputs = test.get("statements"), test.get("inputs")
            if not statements or not inputs or test.get("expectedException"):
                continue
            case = [str(s).replace("{FORMAT}", "JSON") for s in statements]
            if not any(_REGISTRY_FORMATS.search(s) for s in case):
                found.append((case, inputs))
    return found


@st.composite
def queries_over_records(draw: st.DrawFn) -> tuple[list[str], list[dict[str, object]]]:
    """A case whose last statement has one or two literals replaced by extreme values."""
    case, inputs = draw(st.sampled_from(cases_with_inputs()))
    toks = tokens(case[-1])
    literals = [j for j, t in enumerate(toks) if t[0] in "'0123456789"]
    for _ in range(draw(st.integers(1, 2)) if literals else 0):
        toks[draw(st.sampled_from(literals))] = draw(st.sampled_from(RUNTIME_LITERALS))
    return [*case[:-1], " ".join(toks)], inputs


def _raw(value: object) -> bytes | None:
    if value is None:
        return None
    return (value if isinstance(value, str) else json.dumps(value)).encode()


@pytest.mark.slow
@pytest.mark.skipif(not CONFORMANCE.is_dir(), reason="needs the shared conformance cases")
@settings(
    max_examples=max(EXAMPLES // 3, 1),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(example=queries_over_records())
def test_queries_with_extreme_literals_never_fail_on_their_records(
    example: tuple[list[str], list[dict[str, object]]],
) -> None:
    """A query that was accepted computes its records: a value it cannot compute is a row
    error (NULL and the processing log), never a failure of the query that is no
    HispeedError (an internal error, which stops the query)."""
    case, inputs = example
    with (
        tempfile.TemporaryDirectory(prefix="sql-fuzz-") as data,
        Engine(Path(data), fsync="never") as engine,
    ):
        for topic in sorted({t for sql in case for t in _TOPIC.findall(sql)}):
            engine.log.create_topic(topic, 1, exist_ok=True)
        for sql in case:
            error = run_with_deadline(engine, sql)
            check(sql, error)
            if error is not None:
                return  # refused: the statement fuzzer's concern
        topics = set(engine.log.list_topics())
        for record in inputs:
            if record.get("topic") in topics:
                row = {"key": [_raw(record.get("key"))], "value": [_raw(record.get("value"))]}
                engine.log.append(str(record["topic"]), pa.record_batch(row))
        engine.drain(timeout=DEADLINE_S)
        internal = {
            query: f"{type(failure.error).__name__}: {failure.error}"
            for query, failure in engine.runtime.failed.items()
            if not isinstance(failure.error, HispeedError)
        }
        assert not internal, f"{internal} for: {case[-1][:1000]}"

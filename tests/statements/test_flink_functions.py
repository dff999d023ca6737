"""Flink's CREATE FUNCTION: a Python function by import path (LANGUAGE PYTHON), a Java class
through the Python implementations hispeed ships, and the errors for what it cannot run
(docs/sql.md, "Flink's CREATE FUNCTION"). Outputs decoded with `json`, expected values
computed in the test with Python's own string methods."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import SqlError
from hispeed.functions.udf.flink import CREATED
from hispeed.udf import USER_FUNCTIONS, unregister

WORDS = ["a cat", None, "", "cc c", "éclair crème"]
SOURCE = (
    "CREATE TABLE words (id BIGINT, w VARCHAR) WITH ('connector' = 'kafka', 'topic' = 'words', "
    "'format' = 'json', 'partitions' = '1');"
    "CREATE TABLE counted (id BIGINT, n BIGINT) WITH ('connector' = 'blackhole');"
)


@pytest.fixture
def module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Python module on the path with typed and untyped functions; the functions
    registered by the test are unregistered after it."""
    name = f"flink_udfs_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(
        textwrap.dedent(
            """
            def vowels(s: str) -> int:
                return sum(ch in "aeiou" for ch in s)

            def untyped(s):
                return len(s)

            NOT_A_FUNCTION = 3
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name
    for fn in ("VOWELS", "COUNT_CHAR", "UNTYPED", "F"):
        unregister(fn)
        CREATED.pop(fn, None)


def _counted(engine: Engine, query: str) -> dict[int, int | None]:
    engine.execute(SOURCE)
    for i, w in enumerate(WORDS):
        text = "NULL" if w is None else "'" + w + "'"
        engine.execute(f"INSERT INTO words (id, w) VALUES ({i}, {text});")
    engine.execute(query)
    engine.drain()
    values = engine.log.read_table("COUNTED", 0).column("value").to_pylist()
    return {v["ID"]: v["N"] for v in map(json.loads, values)}


def test_python_function_by_import_path(tmp_path: Path, module: str) -> None:
    with Engine(tmp_path / "data") as engine:
        result = engine.execute(
            f"CREATE TEMPORARY SYSTEM FUNCTION IF NOT EXISTS vowels AS '{module}.vowels' "
            "LANGUAGE PYTHON;"
        )
        assert "created" in result[0].message
        got = _counted(engine, "INSERT INTO counted SELECT id, vowels(w) FROM words;")
    want = {i: None if w is None else sum(ch in "aeiou" for ch in w) for i, w in enumerate(WORDS)}
    assert got == want
    assert USER_FUNCTIONS["VOWELS"].overloads[0].returns == "BIGINT"


def test_nexmark_count_char_is_the_java_class_in_python(tmp_path: Path, module: str) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute("CREATE FUNCTION count_char AS 'com.github.nexmark.flink.udf.CountChar';")
        got = _counted(engine, "INSERT INTO counted SELECT id, count_char(w, 'c') FROM words;")
    # Nexmark's CountChar counts the bytes equal to the character's first byte; NULL: 0
    want = {i: 0 if w is None else w.encode().count(b"c") for i, w in enumerate(WORDS)}
    assert got == want


def test_a_restart_registers_the_function_again(tmp_path: Path, module: str) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(f"CREATE FUNCTION vowels AS '{module}.vowels' LANGUAGE PYTHON;")
    unregister("VOWELS")  # as a new process would start without it
    with Engine(tmp_path / "data") as engine:
        assert "VOWELS" in USER_FUNCTIONS
        got = _counted(engine, "INSERT INTO counted SELECT id, vowels(w) FROM words;")
    assert got[0] == 2  # 'a cat'


@pytest.mark.parametrize(
    ("statement", "message", "column"),
    [
        (
            "CREATE FUNCTION f AS\n  'com.example.Other';",
            "Java class 'com.example.Other' cannot run in hispeed.*LANGUAGE PYTHON",
            3,
        ),
        ("CREATE FUNCTION f AS\n  '{m}.untyped' LANGUAGE PYTHON;", "needs a type annotation", 3),
        ("CREATE FUNCTION f AS\n  '{m}.NOT_A_FUNCTION' LANGUAGE PYTHON;", "has no function", 3),
        ("CREATE FUNCTION f AS\n  '{m}.missing' LANGUAGE PYTHON;", "has no attribute", 3),
        ("CREATE FUNCTION f AS\n  'no_such_module_x.f' LANGUAGE PYTHON;", "could not be", 3),
        ("CREATE FUNCTION f AS\n  'nodots' LANGUAGE PYTHON;", "'module.function'", 3),
        ("CREATE FUNCTION f AS 'x.f'\n  LANGUAGE COBOL;", "takes JAVA, SCALA or PYTHON", 12),
        ("CREATE FUNCTION f AS 'x.F'\n  USING JAR '/f.jar';", "USING JAR", 3),
        ("CREATE FUNCTION abs AS\n  '{m}.vowels' LANGUAGE PYTHON;", "built-in function", 3),
    ],
)
def test_what_cannot_run_is_refused_at_its_place(
    tmp_path: Path, module: str, statement: str, message: str, column: int
) -> None:
    with Engine(tmp_path / "data") as engine, pytest.raises(SqlError, match=message) as caught:
        engine.execute(statement.replace("{m}", module))
    assert (caught.value.line, caught.value.column) == (2, column)
    assert "F" not in USER_FUNCTIONS


def test_a_name_in_use_is_refused_unless_if_not_exists(tmp_path: Path, module: str) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(f"CREATE FUNCTION f AS '{module}.vowels' LANGUAGE PYTHON;")
        # the same again (a second engine, a replay) is the same function
        engine.execute(f"CREATE FUNCTION f AS '{module}.vowels' LANGUAGE PYTHON;")
        with pytest.raises(SqlError, match="Function F already exists") as caught:
            engine.execute(
                "CREATE FUNCTION f AS 'com.github.nexmark.flink.udf.CountChar';",
            )
        assert (caught.value.line, caught.value.column) == (1, 1)
        result = engine.execute(
            "CREATE FUNCTION IF NOT EXISTS f AS 'com.github.nexmark.flink.udf.CountChar';"
        )
        assert "already exists" in result[0].message

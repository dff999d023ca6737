"""Flink's CREATE FUNCTION: a Python function registered as a SQL scalar function, found by
its import path (LANGUAGE PYTHON) or, for a Java class, through the Python implementations
hispeed ships (functions/udf/flink.py; docs/sql.md, "Flink's CREATE FUNCTION")."""

from __future__ import annotations

from hispeed.errors import SqlError
from hispeed.functions.udf.catalog import UdfError
from hispeed.functions.udf.flink import CREATED, register
from hispeed.sql.flink_function import FlinkFunction
from hispeed.statements.base import Call, EngineParts
from hispeed.statements.result import Result


def create_function(parts: EngineParts, stmt: FlinkFunction, call: Call) -> Result:
    """Register the function; refuse a name taken (unless IF NOT EXISTS) and an
    implementation hispeed cannot run, at the identifier's line and column."""
    try:
        registered = register(stmt.name, stmt.identifier, stmt.language)
    except UdfError as e:
        raise SqlError(f"CREATE FUNCTION {stmt.name}: {e}", *stmt.identifier_pos) from e
    if not registered:
        if stmt.if_not_exists or call.replay:
            return Result("status", f"Function {stmt.name} already exists")
        other = CREATED.get(stmt.name)
        was = f" (as '{other}')" if other else " (a Python UDF)"
        raise SqlError(f"Function {stmt.name} already exists{was}", *stmt.pos)
    language = "Python" if stmt.language == "PYTHON" else f"Python for {stmt.language.title()}"
    return Result("status", f"Function {stmt.name} created ({language} '{stmt.identifier}')")


__all__ = ["create_function"]

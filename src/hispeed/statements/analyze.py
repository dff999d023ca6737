"""ANALYZE <query>: analytical SQL (DuckDB's) over the sources' history, as rows."""

from __future__ import annotations

from hispeed.errors import HispeedError
from hispeed.runtime.analytic import run_analysis
from hispeed.sql import ast
from hispeed.statements.base import Call, EngineParts
from hispeed.statements.result import Result

#: the engine property bounding the rows an ANALYZE statement answers with (its rows are
#: built in memory and sent whole); `Engine.analyze` has no such bound
MAX_ROWS = "analyze.max.rows"
DEFAULT_MAX_ROWS = 100_000


def analyze(parts: EngineParts, stmt: ast.Analyze, call: Call) -> Result:
    """Run the statement's query; its rows, and its columns in order in `info`."""
    table = run_analysis(parts.context, stmt.sql, origin=(stmt.line, stmt.column))
    most = int(call.props.get(MAX_ROWS, DEFAULT_MAX_ROWS))
    if table.num_rows > most:
        raise HispeedError(
            f"ANALYZE answers with at most {most:,} rows (the server's analyze_max_rows, the "
            f"engine property '{MAX_ROWS}'), and this query has {table.num_rows:,}: aggregate "
            "more, add a LIMIT, or call Engine.analyze from Python, which has no bound."
        )
    rows = table.to_pylist(maps_as_pydicts="strict")
    return Result("analysis", rows=rows, info={"columns": table.column_names})

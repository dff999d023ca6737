"""CREATE FUNCTION refuses the Flink names of built-ins too (UPPER, LOWER, CHAR_LENGTH, ...),
as it refuses LEN and ABS (docs/sql.md, "Flink's CREATE FUNCTION"): before, UPPER was taken
and replaced the built-in process-wide."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError


@pytest.mark.parametrize("name", ["upper", "lower", "char_length", "len"])
def test_a_builtin_name_is_refused(tmp_path: Path, name: str) -> None:
    (tmp_path / "udf_names_mod.py").write_text("def good(s: str) -> int:\n    return len(s)\n")
    sys.path.insert(0, str(tmp_path))
    engine = Engine(tmp_path / "data", fsync="never")
    try:
        with pytest.raises(HispeedError, match="is a built-in function"):
            engine.execute(f"CREATE FUNCTION {name} AS 'udf_names_mod.good' LANGUAGE PYTHON;")
    finally:
        engine.close()
        sys.path.remove(str(tmp_path))
        sys.modules.pop("udf_names_mod", None)

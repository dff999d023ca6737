"""kill -9 an engine running a Top-N query, again and again: the state comes back from the
changelog, and the table its changes leave equals DuckDB's ROW_NUMBER over every row."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import duckdb
import pytest

from hispeed.log import EmbeddedLog
from hispeed.testing import children

#: this file's own DuckDB database (the process-wide default one is shared by every test)
DUCK = duckdb.connect()

CHILD = Path(__file__).with_name("_topn_child.py")
ROOT = Path(__file__).parents[2]
TOTAL = 700


def run_child(data_dir: Path, kill_after: tuple[int, float] | None) -> bool:
    """Run the child to its end or kill -9 it mid-stream (hispeed.testing.children)."""
    return children.run_child(CHILD, [str(data_dir), str(TOTAL)], kill_after, [ROOT / "src", ROOT])


def read(log: EmbeddedLog, topic: str) -> list[tuple[Any, Any]]:
    out = []
    for p in range(len(log.describe_topic(topic).partitions)):
        for r in log.read_table(topic, p).to_pylist():
            value = None if r["value"] is None else json.loads(r["value"])
            out.append((r["key"], value))
    return out


@pytest.mark.slow
def test_top_n_state_survives_kills(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rng = random.Random(5)
    for _ in range(3):
        run_child(data_dir, kill_after=(rng.randint(1, 10), rng.uniform(0, 0.02)))
    assert run_child(data_dir, kill_after=None)
    with EmbeddedLog(data_dir, cleaner_interval_s=None) as log:
        rows = [v for _, v in read(log, "s")]
        changes = read(log, "TOP4")
    assert len(rows) == TOTAL
    final: dict[bytes, Any] = {}
    for key, value in changes:
        final[key] = None if value is None else {**json.loads(key), **value}
    got = {tuple(sorted(v.items())) for v in final.values() if v is not None}
    s = DUCK.sql(  # noqa: F841 (duckdb reads it by name)
        "select * from (values "
        + ", ".join(f"('{r['K']}', '{r['G']}', {r['V']})" for r in rows)
        + ") as t(k, g, v)"
    )
    result = DUCK.sql(
        "select * from (select g, k, v, row_number() over (partition by g order by v desc) "
        "as rn from s) where rn <= 4"
    )
    names = [c.upper() for c in result.columns]
    expected = {tuple(sorted(zip(names, r, strict=True))) for r in result.fetchall()}
    assert len(expected) == 20
    assert got == expected

"""`hispeed.jupyter`: rows as HTML tables in a notebook (the live push query is checked by
the course notebook's test, in a real kernel)."""

from __future__ import annotations

from pathlib import Path

from hispeed.engine import Engine
from hispeed.jupyter import SHOWN_ROWS, Rows


def test_rows_are_a_list_shown_as_an_escaped_table() -> None:
    rows = Rows([{"A": 1, "B": "<b>x</b>"}, {"A": None, "C": 2.5}])
    assert rows == [{"A": 1, "B": "<b>x</b>"}, {"A": None, "C": 2.5}]
    assert rows.columns() == ["A", "B", "C"]
    shown = rows._repr_html_()
    assert "<th>A</th><th>B</th><th>C</th>" in shown
    assert "<td>1</td><td>&lt;b&gt;x&lt;/b&gt;</td><td></td>" in shown
    assert "2 rows" in shown
    many = Rows({"N": i} for i in range(SHOWN_ROWS + 7))
    assert many._repr_html_().count("<tr>") == SHOWN_ROWS + 1  # the heading and 50 rows
    assert f"{SHOWN_ROWS + 7} rows, the first {SHOWN_ROWS} shown" in many._repr_html_()


def test_query_and_analyze_rows_render_as_tables(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE TABLE t (id STRING PRIMARY KEY, x INT) "
            "WITH (kafka_topic='t', value_format='JSON', partitions=1);"
        )
        engine.insert("t", {"ID": "a", "X": 1})
        engine.execute("CREATE TABLE q AS SELECT * FROM t;")
        engine.drain()
        pulled = engine.query("SELECT * FROM q")
        analyzed = engine.analyze("SELECT id, x FROM t", format="rows")
    for rows in (pulled, analyzed):
        assert "<td>a</td><td>1</td>" in rows._repr_html_()

"""A DELIMITED value whose only column is NULL is written '""' (Commons CSV quotes an empty
first field, as ksqlDB writes it), not empty bytes, so it reads back as the row (k, NULL):
a table keeps it and a lookup join finds it. A tombstone is a null value, not b''."""

from __future__ import annotations

from pathlib import Path

from hispeed.engine import Engine


def test_a_row_of_one_null_column_survives_a_table(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "data", fsync="never")
    try:
        engine.execute(
            "CREATE TABLE tt (k BIGINT PRIMARY KEY, v VARCHAR) "
            "WITH (kafka_topic='tt', value_format='DELIMITED', partitions=1);"
        )
        engine.insert("tt", {"K": 7, "V": None}, timestamp=1)
        engine.insert("tt", {"K": 8, "V": "x"}, timestamp=2)
        engine.execute("CREATE TABLE tcopy AS SELECT * FROM tt;")
        engine.drain()
        assert engine.log.read_table("tt", 0).column("value").to_pylist() == [b'""', b"x"]
        rows = engine.query("SELECT * FROM tcopy;")
        assert sorted(rows, key=lambda r: r["K"]) == [{"K": 7, "V": None}, {"K": 8, "V": "x"}]
    finally:
        engine.close()


def test_a_csv_line_with_its_value_empty_joins(tmp_path: Path) -> None:
    path = tmp_path / "side.csv"
    path.write_text("1,a\n3,\n5,e\n")
    engine = Engine(tmp_path / "data", fsync="never")
    try:
        engine.execute(
            f"CREATE TABLE side (k BIGINT, v VARCHAR) WITH ('connector'='filesystem',"
            f"'path'='{path}','format'='csv');"
            "CREATE STREAM st (k BIGINT KEY, x INT) "
            "WITH (kafka_topic='st', value_format='JSON', partitions=1);"
            "CREATE TABLE out_j (k BIGINT, x INT, v VARCHAR) WITH ('connector'='blackhole');"
            "INSERT INTO out_j SELECT s.k, s.x, l.v FROM (SELECT *, PROCTIME() AS pt FROM st) s "
            "JOIN side FOR SYSTEM_TIME AS OF s.pt AS l ON s.k = l.k;"
        )
        for k in [1, 3, 5]:
            engine.insert("st", {"K": k, "X": k}, timestamp=20)
        engine.drain()
        values = engine.log.read_table("OUT_J", 0).column("value").to_pylist()
        assert values == [b'{"X":1,"V":"a"}', b'{"X":3,"V":null}', b'{"X":5,"V":"e"}']
    finally:
        engine.close()

"""The runtime manager: each engine's tasks, push-query feeds and pull views are its own."""

from __future__ import annotations

from pathlib import Path

from hispeed.engine import Engine

STREAM = (
    "CREATE STREAM readings (id STRING KEY, x DOUBLE) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
)


def test_two_engines_keep_their_running_apart(tmp_path: Path) -> None:
    with (
        Engine(tmp_path / "a", fsync="never") as a,
        Engine(tmp_path / "b", fsync="never") as b,
    ):
        for engine in (a, b):
            engine.execute(STREAM)
        a.execute("CREATE TABLE peaks AS SELECT id, MAX(x) AS peak FROM readings GROUP BY id;")
        a.insert("readings", {"ID": "d", "X": 2.0})
        a.drain()
        with a.stream("SELECT id FROM readings EMIT CHANGES;"):
            assert len(a.runtime.feeds) == 1
            assert len(b.runtime.feeds) == 0
        assert len(a.runtime.feeds) == 0
        assert a.query("SELECT * FROM peaks;") == [{"ID": "d", "PEAK": 2.0}]
        assert set(a.runtime.views.views) == {"PEAKS"}
        assert not b.runtime.views.views
        assert list(a.tasks) == ["CTAS_PEAKS_0"]
        assert not b.tasks


def test_the_loop_runs_until_close(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "data", fsync="never")
    assert not engine.runtime.running
    engine.start()
    assert engine.runtime.running
    engine.close()

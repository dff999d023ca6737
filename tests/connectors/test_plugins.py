"""Connectors from installed packages: the `hispeed.connectors` entry point, and its errors.

Each test installs a package the way pip leaves one on sys.path (a `*.dist-info` directory
with `entry_points.txt`, and the package's module beside it), so `importlib.metadata` finds
it as it finds a `pip install`ed one.
"""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hispeed.connectors import base
from hispeed.connectors.base import ConnectorError, SinkConnector, connector_class, register
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.testing.wait import wait_for

Install = Callable[..., None]

SINK_MODULE = """
import json
from pathlib import Path
from hispeed.connectors import SinkBatch, SinkConnector

class LinesSink(SinkConnector):
    names = ("{name}",)

    def start(self) -> None:
        self.path = Path(self.option("path"))

    def write(self, batch: SinkBatch) -> None:
        with self.path.open("a") as f:
            for key, row in zip(batch.keys, batch.rows):
                f.write(json.dumps({{"key": key, "row": row}}) + "\\n")

    def stop(self) -> None:
        pass
"""


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Install]:
    """install(dist, {entry name: 'module:Class'}, {module: source}): a package on sys.path,
    gone (module, registrations) after the test."""
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.syspath_prepend(str(site))
    registered = dict(base._REGISTRY)
    modules: list[str] = []

    def make(dist: str, entry_points: dict[str, str], sources: dict[str, str]) -> None:
        info = site / f"{dist.replace('-', '_')}-1.0.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
        lines = "".join(f"{name} = {value}\n" for name, value in entry_points.items())
        (info / "entry_points.txt").write_text(f"[hispeed.connectors]\n{lines}")
        for module, source in sources.items():
            (site / f"{module}.py").write_text(textwrap.dedent(source))
            modules.append(module)

    yield make
    for module in modules:
        sys.modules.pop(module, None)
    base._REGISTRY.clear()
    base._REGISTRY.update(registered)


def test_an_installed_package_sink_works_by_its_entry_point_name(
    install: Install, tmp_path: Path
) -> None:
    install(
        "hispeed-connector-lines",
        {"lines": "lines_plugin:LinesSink"},
        {"lines_plugin": SINK_MODULE.format(name="lines")},
    )
    assert "lines" in base.known_connectors()
    out = tmp_path / "out.jsonl"
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM r (id STRING KEY, x INT) WITH (kafka_topic='r', value_format='JSON', "
            f"partitions=1); CREATE SINK CONNECTOR l WITH ('connector.class'='LINES', "
            f"'source'='r', 'path'='{out}');"
        )
        engine.insert("r", {"ID": "a", "X": 1})
        wait_for(lambda: out.exists() and out.read_text().count("\n") == 1)
        assert out.read_text() == '{"key": "a", "row": {"ID": "a", "X": 1}}\n'
        assert engine.execute("SHOW CONNECTORS;")[0].rows[0]["className"] == "LINES"


def test_an_unknown_class_lists_the_known_ones_and_the_installed_packages(
    install: Install,
) -> None:
    install("hispeed-connector-lines", {"lines": "lines_plugin2:LinesSink"}, {})
    with pytest.raises(ConnectorError) as e:
        connector_class("nope", "SINK")
    message = str(e.value)
    assert message.startswith("no sink connector class 'nope' (known: ")
    assert "redis" in message
    assert "datagen" not in message.split(";")[0]  # a source
    assert "from installed packages: lines" in message


def test_a_package_that_fails_to_import_is_named_with_its_error(
    install: Install, tmp_path: Path
) -> None:
    install(
        "hispeed-connector-broken",
        {"broken": "broken_plugin:Sink"},
        {"broken_plugin": "import not_a_module_anywhere_xyz\n"},
    )
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM r (x INT) WITH (kafka_topic='r', value_format='JSON', partitions=1);"
        )
        with pytest.raises(HispeedError) as e:
            engine.execute(
                "CREATE SINK CONNECTOR b WITH ('connector.class'='broken', 'source'='r');"
            )
    assert str(e.value) == (
        "connector class 'broken' of package hispeed-connector-broken (broken_plugin:Sink) "
        "failed to import: ModuleNotFoundError: No module named 'not_a_module_anywhere_xyz'"
    )


def test_an_entry_point_to_something_else_than_a_connector_is_refused(install: Install) -> None:
    install("hispeed-connector-odd", {"odd": "odd_plugin:THING"}, {"odd_plugin": "THING = 3\n"})
    with pytest.raises(ConnectorError, match="is not a SinkConnector or SourceConnector"):
        connector_class("odd", "SINK")


def test_two_packages_offering_one_name_is_an_error_naming_both(install: Install) -> None:
    install(
        "hispeed-connector-a",
        {"twice": "twice_a:LinesSink"},
        {"twice_a": SINK_MODULE.format(name="twice")},
    )
    install(
        "hispeed-connector-b",
        {"twice": "twice_b:LinesSink"},
        {"twice_b": SINK_MODULE.format(name="twice")},
    )
    with pytest.raises(ConnectorError) as e:
        connector_class("twice", "SINK")
    assert "offered by more than one installed package" in str(e.value)
    assert "hispeed-connector-a (twice_a:LinesSink)" in str(e.value)
    assert "hispeed-connector-b (twice_b:LinesSink)" in str(e.value)


def test_a_package_offering_a_built_in_name_is_a_clash(install: Install) -> None:
    install(
        "hispeed-connector-redis2",
        {"redis": "redis2:LinesSink"},
        {"redis2": SINK_MODULE.format(name="redis2")},
    )
    with pytest.raises(ConnectorError) as e:
        connector_class("redis", "SINK")
    assert "connector class name 'redis' is taken twice" in str(e.value)
    assert "hispeed.connectors.redis.RedisSink" in str(e.value)
    assert "package hispeed-connector-redis2 (redis2:LinesSink)" in str(e.value)


def test_register_refuses_a_name_another_class_has(install: Install) -> None:
    class Again(SinkConnector):
        names = ("Redis",)

        def start(self) -> None: ...
        def write(self, batch: base.SinkBatch) -> None: ...
        def stop(self) -> None: ...

    with pytest.raises(ConnectorError, match="'Redis' is taken twice"):
        register(Again)
    assert connector_class("redis", "SINK").__name__ == "RedisSink"

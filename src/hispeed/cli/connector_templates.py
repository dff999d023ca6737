"""The files `hispeed connector new` writes: a package offering one connector.

Each is a `string.Template`; `${name}` is the connector.class name, `${package}` the
distribution, `${module}` the import name, `${cls}` the class, `${hispeed}` the version of
hispeed it was made with (its lowest dependency), `${kind}` sink or source.
"""

from __future__ import annotations

from string import Template

PYPROJECT = Template("""\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "${package}"
version = "0.1.0"
description = "A hispeed ${kind} connector: 'connector.class'='${name}'"
readme = "README.md"
requires-python = ">=3.11"
dependencies = ["hispeed>=${hispeed}"]

[project.optional-dependencies]
test = ["pytest>=7"]

# what makes 'connector.class'='${name}' work once the package is installed
[project.entry-points."hispeed.connectors"]
${name} = "${module}:${cls}"

[tool.setuptools.packages.find]
where = ["src"]

[tool.pytest.ini_options]
testpaths = ["tests"]
""")

SINK = Template('''\
"""The `${name}` sink connector: writes each record as a JSON line to a file.

    CREATE SINK CONNECTOR out WITH ('connector.class'='${name}', 'source'='READINGS',
      'path'='/tmp/readings.jsonl');

A skeleton to replace with your system's writes; the contract (hispeed's docs/connectors-api.md):
`start` connects, `write` is given one batch at a time and must be safe to repeat after a
crash (the batch's offsets are committed only when it returns), `stop` releases.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TextIO

from hispeed.connectors import ConnectorError, RetriableError, SinkBatch, SinkConnector


class ${cls}(SinkConnector):
    """Appends `{"key": ..., "row": {...}}` per record to 'path'; a tombstone's row is null."""

    names = ("${name}",)

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        super().__init__(name, config)
        # check the properties here (connect to nothing yet): a ConnectorError fails CREATE
        self.path = Path(self.option("path"))
        if self.path.is_dir():
            raise ConnectorError(f"connector {name}: 'path' {self.path} is a directory")
        self.file: TextIO | None = None

    def start(self) -> None:
        try:
            self.file = self.path.open("a", encoding="utf-8")
        except OSError as e:
            raise RetriableError(f"cannot open {self.path}: {e}") from e  # tried again later

    def write(self, batch: SinkBatch) -> None:
        assert self.file is not None, "write() before start()"
        try:
            for i, (key, row) in enumerate(zip(batch.keys, batch.rows, strict=True)):
                try:
                    line = json.dumps({"key": key, "row": row})
                except (TypeError, ValueError) as e:
                    batch.fail(i, f"record at offset {batch.offsets[i]} is not JSON: {e}")
                    continue
                self.file.write(line + "\\n")
            self.file.flush()
        except OSError as e:  # a full disk, say: the runner retries the whole batch
            raise RetriableError(f"cannot write {self.path}: {e}") from e

    def stop(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    def details(self) -> dict[str, Any]:
        return {"path": str(self.path)}


__all__ = ["${cls}"]
''')

SOURCE = Template('''\
"""The `${name}` source connector: counts 0, 1, 2, ... into a topic.

    CREATE SOURCE CONNECTOR numbers WITH ('connector.class'='${name}', 'limit'='1000',
      'kafka.topic'='numbers');

A skeleton to replace with your system's reads; the contract (hispeed's docs/connectors-api.md):
`start(position)` connects and resumes after the last committed position, `poll(timeout)`
returns what arrived within `timeout` seconds (each record with its position), `stop`
releases.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from typing import Any

from hispeed.connectors import ConnectorError, SourceConnector, SourceRecord


class ${cls}(SourceConnector):
    """Records `{"N": n}` keyed by n, up to 'limit' (100), 'batch' (10) a poll."""

    names = ("${name}",)

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        super().__init__(name, config)
        try:
            self.limit = int(self.option("limit", "100"))
            self.batch = int(self.option("batch", "10"))
        except ValueError as e:
            raise ConnectorError(f"connector {name}: {e}") from None
        self.next = 0

    def default_topic(self) -> str | None:
        return "${name}"

    def start(self, position: Any) -> None:
        self.next = 0 if position is None else int(position) + 1

    def poll(self, timeout: float) -> list[SourceRecord]:
        if self.next >= self.limit:
            time.sleep(timeout)  # nothing more: wait as long as asked, no longer
            return []
        end = min(self.limit, self.next + self.batch)
        out = [
            SourceRecord(key=str(n).encode(), value=json.dumps({"N": n}).encode(), position=n)
            for n in range(self.next, end)
        ]
        self.next = end
        return out

    def stop(self) -> None:
        self.limit = self.next

    def details(self) -> dict[str, Any]:
        return {"next": self.next}


__all__ = ["${cls}"]
''')

SINK_TEST = Template('''\
"""Tests of the `${name}` sink: alone, then in a hispeed Engine by its connector.class."""

from __future__ import annotations

import json
from pathlib import Path

from hispeed import Engine
from hispeed.testing.connectors import sink_batch
from hispeed.testing.wait import wait_for

from ${module} import ${cls}


def test_each_record_is_a_json_line(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    sink = ${cls}("test", {"path": str(out)})
    sink.start()
    sink.write(sink_batch([{"ID": "a", "X": 1}, None], keys=["a", "b"]))
    sink.stop()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert lines == [{"key": "a", "row": {"ID": "a", "X": 1}}, {"key": "b", "row": None}]


def test_it_runs_in_an_engine_by_its_connector_class(tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM readings (id STRING KEY, x INT) "
            "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
            "CREATE SINK CONNECTOR out WITH ('connector.class'='${name}', "
            f"'source'='readings', 'path'='{out}');"
        )
        engine.insert("readings", {"ID": "a", "X": 1})
        engine.insert("readings", {"ID": "b", "X": 2})
        wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 2)
        rows = [json.loads(line)["row"] for line in out.read_text().splitlines()]
        assert rows == [{"ID": "a", "X": 1}, {"ID": "b", "X": 2}]
''')

SOURCE_TEST = Template('''\
"""Tests of the `${name}` source: alone, then in a hispeed Engine by its connector.class."""

from __future__ import annotations

import json
from pathlib import Path

from hispeed import Engine
from hispeed.testing.connectors import collect
from hispeed.testing.wait import wait_for

from ${module} import ${cls}


def test_it_resumes_after_its_position() -> None:
    records = collect(${cls}("test", {"limit": "5", "batch": "2"}), 3, position=1)
    assert [r.position for r in records] == [2, 3, 4]
    assert json.loads(records[0].value or b"") == {"N": 2}


def test_it_runs_in_an_engine_by_its_connector_class(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE SOURCE CONNECTOR numbers WITH ('connector.class'='${name}', "
            "'limit'='5', 'kafka.topic'='numbers');"
        )
        wait_for(lambda: engine.execute("DESCRIBE CONNECTOR numbers;")[0].info["records"] == 5)
        values = [
            json.loads(v)
            for batch in engine.log.read("numbers", 0, 0)
            for v in batch.column("value").to_pylist()
        ]
        assert values == [{"N": n} for n in range(5)]
''')

README = Template("""\
# ${package}

A [hispeed](https://pypi.org/project/hispeed/) ${kind} connector: once this package is
installed, `'connector.class'='${name}'` works in hispeed (in a program's `Engine` and in
`hispeed server`), found through the `hispeed.connectors` entry point in `pyproject.toml`.

```sql
${example}
```

## Develop

```bash
pip install -e '.[test]'
pytest
```

`src/${module}/__init__.py` holds the connector, `tests/` its tests (with hispeed's helpers
in `hispeed.testing.connectors`). The connector API is described in hispeed's
`docs/connectors-api.md`: raise `ConnectorError` for a bad configuration and
`RetriableError` for a failure that may pass; hispeed does the rest (positions, retries,
the processing log).
""")

SINK_EXAMPLE = (
    "CREATE SINK CONNECTOR out WITH ('connector.class'='${name}', 'source'='READINGS',\n"
    "  'path'='/tmp/readings.jsonl');"
)
SOURCE_EXAMPLE = (
    "CREATE SOURCE CONNECTOR numbers WITH ('connector.class'='${name}', 'limit'='1000',\n"
    "  'kafka.topic'='numbers');"
)

__all__ = [
    "PYPROJECT",
    "README",
    "SINK",
    "SINK_EXAMPLE",
    "SINK_TEST",
    "SOURCE",
    "SOURCE_EXAMPLE",
    "SOURCE_TEST",
]

"""A pull query's BOOLEAN properties (`ksql.query.pull.table.scan.enabled`, `...range.scan.
enabled`, `...limit.clause.enabled`), from the request or the engine, read as ksqlDB's
ConfigDef reads them: true or false in any case, as text or a boolean; anything else is
refused naming the property (a typo such as 'nope' acted as false, and 5 as true)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError

SCAN = "ksql.query.pull.table.scan.enabled"


@pytest.fixture
def engine(tmp_path: Path) -> Any:
    with Engine(tmp_path / "data", fsync="never") as e:
        e.execute(
            "CREATE TABLE t (id STRING PRIMARY KEY, x INT) WITH (kafka_topic='t', "
            "value_format='JSON', partitions=1);"
            "CREATE TABLE q AS SELECT * FROM t;"
        )
        e.insert("t", {"ID": "a", "X": 1})
        e.drain()
        yield e


@pytest.mark.parametrize("value", ["true", " TRUE ", True])
def test_true_in_any_case_enables_scans(engine: Engine, value: Any) -> None:
    rows = engine.execute("SELECT * FROM q WHERE x = 1;", properties={SCAN: value})[0].rows
    assert rows == [{"ID": "a", "X": 1}]


@pytest.mark.parametrize("value", ["false", "False", False])
def test_false_disables_scans(engine: Engine, value: Any) -> None:
    with pytest.raises(HispeedError, match=f"{SCAN}=true"):
        engine.execute("SELECT * FROM q WHERE x = 1;", properties={SCAN: value})


@pytest.mark.parametrize("value", ["nope", "yes", 5, "1"])
def test_anything_else_is_refused_naming_the_property(engine: Engine, value: Any) -> None:
    with pytest.raises(HispeedError) as err:
        engine.execute("SELECT * FROM q WHERE x = 1;", properties={SCAN: value})
    assert str(err.value) == (
        f"Invalid value {value} for configuration {SCAN}: Expected value to be either true or false"
    )

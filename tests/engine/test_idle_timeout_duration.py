"""table.exec.source.idle-timeout takes Flink's Duration values ('10 s', '1000ms', '1 min',
a plain number of ms); a bad value is refused at SET and at Engine(properties=), not by
every later CREATE of a window query."""

from __future__ import annotations

from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.ops.watermark import IDLE_TIMEOUT_PROPERTY, idle_timeout


@pytest.mark.parametrize(
    ("given", "ms"),
    [("10 s", 10_000), ("1000ms", 1000), ("1 min", 60_000), ("250", 250), ("0 ms", 0)],
)
def test_flink_durations(given: str, ms: int) -> None:
    assert idle_timeout({IDLE_TIMEOUT_PROPERTY: given}) == ms


def test_a_bad_value_is_refused_at_once(tmp_path: Path) -> None:
    with pytest.raises(HispeedError, match="idle-timeout"):
        Engine(tmp_path / "a", fsync="never", properties={IDLE_TIMEOUT_PROPERTY: "soon"})
    engine = Engine(tmp_path / "b", fsync="never")
    try:
        with pytest.raises(HispeedError, match="idle-timeout"):
            engine.execute(f"SET '{IDLE_TIMEOUT_PROPERTY}' = '2 fortnights';")
        engine.execute(f"SET '{IDLE_TIMEOUT_PROPERTY}' = '2 s';")
        assert engine.properties[IDLE_TIMEOUT_PROPERTY] == "2 s"
    finally:
        engine.close()

"""Which windowed sources join which, as ksqlDB's JoinNode decides it for its kinds: a
SESSION source only with SESSION ones, HOPPING and TUMBLING with each other; CUMULATE's
windows (keyed by end and start) only with CUMULATE's. A windowed source never joins a
plain one. The refusal names the two sources' kinds that do not match."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError

KINDS = {
    "T1": "window_type='TUMBLING', window_size='1 MINUTE'",
    "T2": "window_type='TUMBLING', window_size='1 MINUTE'",
    "H": "window_type='HOPPING', window_size='1 MINUTE'",
    "S1": "window_type='SESSION'",
    "S2": "window_type='SESSION'",
    "C1": "window_type='CUMULATING', window_size='4 SECONDS'",
    "C2": "window_type='CUMULATING', window_size='4 SECONDS'",
}
SESSIONS_ONLY = (
    "Session windowed sources can only be joined to other session windowed sources, and may "
    "still not result in expected behaviour as session bounds must be an exact match for the "
    "join to work\nHopping and tumbling windowed sources can only be joined to other hopping "
    "and tumbling windowed sources"
)


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    e = Engine(tmp_path / "data", fsync="never")
    for name, window in KINDS.items():
        e.execute(
            f"CREATE STREAM {name} (id STRING KEY, v INT) WITH (kafka_topic='{name}', "
            f"value_format='JSON', partitions=1, {window});"
        )
    yield e
    e.close()


def join(*names: str) -> str:
    first = names[0]
    joins = " ".join(f"JOIN {n} WITHIN 1 MINUTE ON {first}.id = {n}.id" for n in names[1:])
    return f"CREATE STREAM j AS SELECT {first}.id AS id, {first}.v AS v FROM {first} {joins};"


@pytest.mark.parametrize("names", [("T1", "T2"), ("S1", "S2"), ("C1", "C2")])
def test_windowed_sources_of_matching_kinds_join(engine: Engine, names: tuple[str, ...]) -> None:
    engine.execute(join(*names))


@pytest.mark.parametrize(
    ("names", "left", "right"),
    [
        (("T1", "S1"), "TUMBLING", "SESSION"),
        (("S1", "H"), "SESSION", "HOPPING"),
        (("C1", "T1"), "CUMULATING", "TUMBLING"),
        (("T1", "C1"), "TUMBLING", "CUMULATING"),
        (("S1", "C1"), "SESSION", "CUMULATING"),
        (("T1", "T2", "S1"), "TUMBLING", "SESSION"),  # the pair that does not match
    ],
)
def test_windowed_sources_of_other_kinds_are_refused_with_ksqldbs_message(
    engine: Engine, names: tuple[str, ...], left: str, right: str
) -> None:
    with pytest.raises(HispeedError) as info:
        engine.execute(join(*names))
    message = str(info.value)
    assert f"Incompatible windowed sources.\nLeft source: {left}\nRight source: {right}\n" in (
        message
    )
    assert SESSIONS_ONLY in message
    if "CUMULATING" in (left, right):
        assert "Cumulating windowed sources can only be joined to other cumulating" in message

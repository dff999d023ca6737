"""A duration's or a count's digits are ASCII: '²' or '١٠' passes `str.isdigit` but is no
number for `int` (adversarial findings, section 11), so it is refused as any other bad
value, never a Python ValueError."""

from __future__ import annotations

from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError


@pytest.mark.parametrize("size", ["² SECONDS", "١٠ SECONDS"])
def test_a_window_size_of_unicode_digits_is_refused(tmp_path: Path, size: str) -> None:
    with (
        Engine(tmp_path / "data") as engine,
        pytest.raises(HispeedError, match="Configuration WINDOW_SIZE is invalid"),
    ):
        engine.execute(
            "CREATE TABLE a (k STRING PRIMARY KEY, c BIGINT) WITH (WINDOW_TYPE='TUMBLING', "
            f"WINDOW_SIZE='{size}', kafka_topic='x', value_format='JSON', partitions=1);"
        )


def test_a_state_ttl_of_unicode_digits_is_refused(tmp_path: Path) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            "CREATE TABLE a (k BIGINT, v INT, `t` TIMESTAMP(3), WATERMARK FOR `t` AS `t`) WITH "
            "('connector' = 'kafka', 'topic' = 'a', 'format' = 'json', 'partitions' = '1');"
            "CREATE TABLE j (k BIGINT, v INT) WITH ('connector' = 'blackhole');"
            "SET 'table.exec.state.ttl' = '² h';"
        )
        with pytest.raises(SqlError, match=r"table\.exec\.state\.ttl"):
            engine.execute("INSERT INTO j SELECT x.k, y.v FROM a x JOIN a y ON x.k = y.k;")

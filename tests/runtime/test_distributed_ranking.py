"""On a shared log (Kafka mode), a query's work is split by input partition only when each
partition can be computed on its own: a Top-N, a deduplication, LAG/LEAD or an OVER
aggregation ranks the rows of a PARTITION BY partition, which input partitions split (a
bidder's bids sit in every partition of a stream keyed by auction), so they run in one
place. Checked on the decision itself, over plans the engine makes."""

from __future__ import annotations

from pathlib import Path

import pytest

from hispeed.engine import Engine
from hispeed.runtime.distributed import partition_local

QUERIES = [
    "CREATE TABLE q AS SELECT bidder, auction, price FROM (SELECT *, ROW_NUMBER() OVER "
    "(PARTITION BY bidder ORDER BY price DESC) AS rn FROM bid) WHERE rn = 1 EMIT CHANGES;",
    "CREATE TABLE q WITH (key_format='JSON') AS SELECT bidder, rn, price FROM (SELECT *, "
    "ROW_NUMBER() OVER (PARTITION BY bidder ORDER BY price DESC) AS rn FROM bid) "
    "WHERE rn <= 3 EMIT CHANGES;",
    "CREATE STREAM q AS SELECT auction, LAG(price) OVER (PARTITION BY bidder ORDER BY ROWTIME) "
    "AS p FROM bid EMIT CHANGES;",
    "CREATE STREAM q AS SELECT auction, AVG(price) OVER (PARTITION BY bidder ORDER BY ROWTIME "
    "ROWS 3 PRECEDING) AS a FROM bid EMIT CHANGES;",
]


@pytest.mark.parametrize("text", QUERIES)
def test_ranking_and_window_functions_run_in_one_place(tmp_path: Path, text: str) -> None:
    with Engine(tmp_path / "data") as engine:
        engine.execute(
            "CREATE STREAM bid (auction BIGINT KEY, bidder BIGINT, price BIGINT) WITH "
            "(kafka_topic='bid', partitions=4, value_format='JSON');"
        )
        engine.execute(
            "CREATE STREAM plain AS SELECT auction, price FROM bid WHERE price > 1 EMIT CHANGES;"
        )
        [result] = engine.execute(text)
        plan = engine.tasks[str(result.query_id)].plan
        filtering = next(t for q, t in engine.tasks.items() if q != str(result.query_id)).plan
    assert partition_local(filtering, lambda topic: 4)  # the contrast: split by partition
    assert not partition_local(plan, lambda topic: 4)

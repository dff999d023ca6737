"""A stream-stream join's state in its changelog is as large as the records it keeps, not as
the batches they were decoded in: a side read a poll at a time but taken a slice at a time
(the other side's times move slower) wrote, for every slice, the whole decoded poll."""

from __future__ import annotations

import json
from pathlib import Path

from hispeed.engine import Engine
from hispeed.state.changelog import changelog_topic


def test_a_kept_slice_writes_its_own_rows_only(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", properties={"query.max.poll.records": 1000}) as engine:
        engine.execute(
            "CREATE STREAM a (id BIGINT, pad STRING, t BIGINT) WITH (kafka_topic='a', "
            "partitions=1, value_format='JSON', timestamp='t');"
        )
        engine.execute(
            "CREATE STREAM b (id BIGINT, t BIGINT) WITH (kafka_topic='b', partitions=1, "
            "value_format='JSON', timestamp='t');"
        )
        # a's 1,000 records a poll span ten times the time b's do: each of a's polls is
        # joined (and kept) in about ten slices
        wide = [
            (None, json.dumps({"id": i % 500, "pad": "x" * 200, "t": 1000 + i}).encode())
            for i in range(0, 20_000, 10)
        ]
        dense = [(None, json.dumps({"id": i % 500, "t": 1000 + i}).encode()) for i in range(20_000)]
        engine.log.append("a", wide)
        engine.log.append("b", dense)
        result = engine.execute(
            "CREATE STREAM j AS SELECT a.id, a.pad, b.t AS bt FROM a JOIN b WITHIN 1 SECONDS "
            "ON a.id = b.id EMIT CHANGES;"
        )
        engine.drain()
        query = str(result[0].query_id)
        joined = engine.log.read_table("J", 0).num_rows
        state = engine.log.read_table(changelog_topic(query), 0)
        written = sum(len(v) for v in state.column("value").to_pylist() if v)
    read = sum(len(v) for _, v in wide + dense)
    assert joined > 0
    # every record is kept once (the pickled columns: about their JSON's size), not the
    # whole poll once per slice (14 times the input before)
    assert written < 4 * read

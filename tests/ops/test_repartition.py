"""A repartitioned aggregation's two stages without a broker: what the first stage routes,
the second stage decodes as the source's records, with the source's key, ROWPARTITION,
ROWOFFSET, timestamp and headers, and the grouping values the first stage computed."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from hispeed.engine import Engine
from hispeed.functions.registry import EvalContext
from hispeed.log.base import HEADERS_TYPE, RECORD_SCHEMA, PolledBatch, TopicPartition
from hispeed.log.murmur2 import partitions_for_keys
from hispeed.ops.repartition import (
    GroupByRouter,
    RepartitionedDecoder,
    aggregating_plan,
    repartitions,
)
from hispeed.plan.model import QueryPlan, field_name

PARTITIONS = 4


@pytest.fixture
def plan(tmp_path: Path) -> Iterator[QueryPlan]:
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM clicks (uid VARCHAR KEY, page VARCHAR, n BIGINT)"
            " WITH (kafka_topic='clicks', value_format='JSON', partitions=1);"
            "CREATE TABLE per_page AS SELECT UCASE(page) AS p, COUNT(*) AS c FROM clicks"
            " WHERE n >= 0 GROUP BY UCASE(page);"
        )
        (task,) = engine.tasks.values()
        yield task.plan


def source_batch() -> pa.RecordBatch:
    rows = [
        ("u1", {"PAGE": "/a", "N": 1}),
        (None, {"PAGE": "/b", "N": 2}),  # no key
        ("u3", {"PAGE": None, "N": 3}),  # a NULL grouping key: dropped
        ("u4", {"PAGE": "/a", "N": -4}),  # WHERE drops it
        ("u5", {"PAGE": "/c", "N": 5}),
    ]
    return pa.record_batch(
        {
            "offset": pa.array([100, 101, 103, 104, 107], pa.int64()),
            "timestamp": pa.array([10, 20, 30, 40, 0], pa.int64()),
            "key": pa.array([k.encode() if k else None for k, _ in rows], pa.binary()),
            "value": pa.array([json.dumps(v).encode() for _, v in rows], pa.binary()),
            "headers": pa.array(
                [None, [{"key": "h", "value": b"x"}], None, None, None], HEADERS_TYPE
            ),
        },
        schema=RECORD_SCHEMA,
    )


def test_the_second_stage_sees_the_source_records(plan: QueryPlan) -> None:
    assert repartitions(plan)
    router = GroupByRouter(plan, "Q", PARTITIONS)
    errors: list[dict[str, object]] = []
    routed = router.route(PolledBatch(TopicPartition("clicks", 2), source_batch()), errors)
    assert routed is not None
    assert [e["message"] for e in errors] == [
        "Group-by column with index 0 resolved to null. "
        "The source row will be excluded from the table."
    ]
    assert errors[0]["offset"] == 103
    assert routed.batch.column("timestamp").to_pylist() == [10, 20, 0]
    assert routed.batch.column("headers").to_pylist()[1] == [{"key": "h", "value": b"x"}]
    # records of one group go to one partition: the grouping values decide it
    assert routed.partitions[0] != -1
    written = routed.batch
    polled = pa.record_batch(
        {
            "offset": pa.array([5, 6, 7], pa.int64()),
            "timestamp": written.column("timestamp"),
            "key": written.column("key"),
            "value": written.column("value"),
            "headers": written.column("headers"),
        },
        schema=RECORD_SCHEMA,
    )
    decoder = RepartitionedDecoder(plan, "Q")
    out: list[dict[str, object]] = []
    frame, _ = decoder.decode(PolledBatch(TopicPartition("rep", 1), polled), out)
    assert not out
    label = plan.label
    assert frame.column(field_name(label, "UID")).to_pylist() == ["u1", None, "u5"]
    assert frame.column(field_name(label, "ROWPARTITION")).to_pylist() == [2, 2, 2]
    assert frame.column(field_name(label, "ROWOFFSET")).to_pylist() == [100, 101, 107]
    assert frame.column(field_name(label, "ROWTIME")).to_pylist() == [10, 20, 0]
    # the second stage groups by what the first computed
    second = aggregating_plan(plan)
    assert second.aggregation is not None
    (group,) = second.aggregation.group_exprs
    assert group(frame, EvalContext()).to_pylist() == ["/A", "/B", "/C"]


def test_a_group_goes_to_one_partition(plan: QueryPlan) -> None:
    """Wherever its records come from: murmur2 of the grouping values as JSON, which every
    worker of an application (of any version) must compute alike."""
    router = GroupByRouter(plan, "Q", PARTITIONS)
    batch = source_batch()
    first = router.route(PolledBatch(TopicPartition("clicks", 0), batch), [])
    again = router.route(PolledBatch(TopicPartition("clicks", 3), batch), [])
    assert first is not None
    assert again is not None
    assert first.partitions.tolist() == again.partitions.tolist()
    assert (
        first.partitions.tolist()
        == partitions_for_keys(
            pa.array([b'{"G0":"/A"}', b'{"G0":"/B"}', b'{"G0":"/C"}']), PARTITIONS
        ).tolist()
    )

"""InputQueues: a task's inputs handed out in timestamp order, batch-wise (runtime/ordering.py)."""

from __future__ import annotations

import pyarrow as pa

from hispeed.log.base import PolledBatch, TopicPartition
from hispeed.runtime.ordering import InputQueues

STREAM = TopicPartition("stream", 0)
TABLE = TopicPartition("table", 0)


def batch(tp: TopicPartition, first: int, times: list[int]) -> PolledBatch:
    n = len(times)
    return PolledBatch(
        tp,
        pa.RecordBatch.from_pydict(
            {"offset": list(range(first, first + n)), "timestamp": times, "value": [b""] * n}
        ),
    )


def pieces(taken: list[PolledBatch]) -> list[tuple[str, list[int]]]:
    return [(p.partition.topic, p.batch.column("offset").to_pylist()) for p in taken]


def queues() -> InputQueues:
    return InputQueues(lambda tp: (tp.topic != "table", tp.partition))


def test_batches_are_split_at_the_other_inputs_times_and_ties_go_to_the_table() -> None:
    q = queues()
    q.add([batch(STREAM, 0, [1, 3, 5]), batch(TABLE, 10, [0, 3, 4])])
    assert pieces(q.take([STREAM, TABLE], lambda tp: False)) == [
        ("table", [10]),
        ("stream", [0]),
        ("table", [11]),  # time 3 as the stream's second record: the table goes first
        ("stream", [1]),
        ("table", [12]),
        ("stream", [2]),
    ]
    assert len(q) == 0


def test_a_record_later_in_its_partition_never_goes_before_an_earlier_one() -> None:
    q = queues()
    q.add([batch(STREAM, 0, [5, 1]), batch(TABLE, 0, [2])])
    # the stream's head (5) is later than the table's (2): the table's goes first
    assert pieces(q.take([STREAM, TABLE], lambda tp: False)) == [
        ("table", [0]),
        ("stream", [0, 1]),
    ]


def test_records_wait_while_an_input_has_more_in_the_log() -> None:
    q = queues()
    q.add([batch(STREAM, 0, [1, 2, 6])])
    # the table has records not polled yet: their times are unknown, nothing can go
    assert q.take([STREAM, TABLE], lambda tp: tp == TABLE) == []
    q.add([batch(TABLE, 0, [0, 4])])
    # the table still has more: the stream goes only up to the table's last polled record
    assert pieces(q.take([STREAM, TABLE], lambda tp: tp == TABLE)) == [
        ("table", [0]),
        ("stream", [0, 1]),
        ("table", [1]),
    ]
    assert q.firsts() == {STREAM: 2}
    # the table caught up (nothing more in the log): the rest goes
    assert pieces(q.take([STREAM, TABLE], lambda tp: False)) == [("stream", [2])]
    assert q.firsts() == {}


def test_an_input_without_records_holds_nothing_up_once_caught_up() -> None:
    q = queues()
    q.add([batch(STREAM, 0, [1, 2])])
    assert pieces(q.take([STREAM, TABLE], lambda tp: False)) == [("stream", [0, 1])]

"""Each backend against a plain in-memory model: random appends, reads, group commits,
transactions and restarts (and, on the embedded log, compactions) must never make the two
disagree.

Kafka runs fewer examples (each one is a namespace on the broker, with a producer to start),
and a Kafka transaction's commit or abort marker takes an offset of its own, so there the
model takes the offsets the log reports and checks they only grow; on the embedded log they
must follow one another exactly. Compaction is the embedded log's `run_maintenance`: Kafka
compacts on its cleaner's schedule, so that rule runs on the embedded log only.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from hispeed.log import EmbeddedLog, Log, TopicPartition, partition_for_key
from tests.log.conftest import NewStorage, OpenLog, is_kafka

KEYS = st.sampled_from([b"a", b"b", b"c", b"dd", b"eee"])
VALUES = st.one_of(st.none(), st.binary(max_size=30))
RECORDS = st.lists(st.tuples(KEYS, VALUES), min_size=0, max_size=8)
PLAIN_RECORDS = st.lists(
    st.tuples(st.one_of(st.none(), KEYS), st.binary(max_size=30)), min_size=0, max_size=8
)

Row = tuple[int, bytes | None, bytes | None]  # offset, key, value


class LogModel(RuleBasedStateMachine):
    storage: NewStorage  # set by the test, before hypothesis makes machines

    def __init__(self) -> None:
        super().__init__()
        self.open: OpenLog = self.storage()
        self.log: Log = self.open()
        self.kafka = is_kafka(self.log)
        # Kafka's segments are at least 1 MiB: only the embedded log rolls small ones
        small = {} if self.kafka else {"segment.bytes": "1500"}
        self.log.create_topic("plain", 2, small)
        self.log.create_topic(
            "compact",
            1,
            {"cleanup.policy": "compact"} | ({} if self.kafka else {"segment.bytes": "1200"}),
        )
        self.model: dict[TopicPartition, list[Row]] = {
            TopicPartition("plain", 0): [],
            TopicPartition("plain", 1): [],
            TopicPartition("compact", 0): [],
        }
        self.ends = dict.fromkeys(self.model, 0)
        self.groups: dict[str, dict[TopicPartition, int]] = {}

    def _add(
        self,
        tp: TopicPartition,
        offsets: list[int],
        records: list[tuple[bytes | None, bytes | None]],
    ) -> None:
        for offset, (key, value) in zip(offsets, records, strict=True):
            if self.kafka:
                assert offset >= self.ends[tp]
            else:
                assert offset == self.ends[tp]
            self.model[tp].append((offset, key, value))
            self.ends[tp] = offset + 1

    @rule(records=PLAIN_RECORDS, partition=st.one_of(st.none(), st.integers(0, 1)))
    def append_plain(
        self, records: list[tuple[bytes | None, bytes]], partition: int | None
    ) -> None:
        result = self.log.append("plain", records, partition=partition)
        for (key, value), (p, offset) in zip(records, result.pairs(), strict=True):
            if partition is not None:
                assert p == partition
            elif key is not None:
                assert p == partition_for_key(key, 2)
            self._add(TopicPartition("plain", p), [offset], [(key, value)])

    @rule(records=RECORDS)
    def append_compact(self, records: list[tuple[bytes, bytes | None]]) -> None:
        result = self.log.append("compact", records)
        offsets = result.offsets.tolist()
        if records:
            # one append's records follow one another on every backend
            assert offsets == list(range(offsets[0], offsets[0] + len(records)))
        self._add(TopicPartition("compact", 0), offsets, list(records))

    @rule(data=st.data())
    def read(self, data: st.DataObject) -> None:
        tp = data.draw(st.sampled_from(sorted(self.model)))
        offset = data.draw(st.integers(0, self.ends[tp]))
        limit = data.draw(st.one_of(st.none(), st.integers(1, 10)))
        batches = self.log.read(tp.topic, tp.partition, offset, max_records=limit)
        got = [
            (o, k, v)
            for b in batches
            for o, k, v in zip(
                b.column("offset").to_pylist(),
                b.column("key").to_pylist(),
                b.column("value").to_pylist(),
                strict=True,
            )
        ]
        want = [row for row in self.model[tp] if row[0] >= offset]
        assert got == (want if limit is None else want[:limit])

    @rule(group=st.sampled_from(["g1", "g2"]), data=st.data())
    def commit(self, group: str, data: st.DataObject) -> None:
        tp = data.draw(st.sampled_from(sorted(self.model)))
        offset = data.draw(st.integers(0, self.ends[tp]))
        self.log.commit_offsets(group, {tp: offset})
        self.groups.setdefault(group, {})[tp] = offset

    @rule(records=RECORDS, offset=st.integers(0, 100), ok=st.booleans())
    def transaction(self, records: list[tuple[bytes, bytes | None]], offset: int, ok: bool) -> None:
        txn = self.log.transaction()
        txn.append("compact", records)
        plain = [(k, v or b"") for k, v in records]
        txn.append("plain", plain, partition=1)
        txn.commit_offsets("txn", {TopicPartition("plain", 0): offset})
        touched = {TopicPartition("compact", 0), TopicPartition("plain", 1)} if records else set()
        if not ok:
            txn.abort()
            return
        ranges = txn.commit()
        assert {tp for tp in ranges if tp in self.model} == touched  # (embedded: and its offsets)
        written: list[tuple[TopicPartition, list[tuple[bytes | None, bytes | None]]]] = [
            (TopicPartition("compact", 0), list(records)),
            (TopicPartition("plain", 1), list(plain)),
        ]
        for tp, rows in written:
            if rows:
                first, end = ranges[tp]
                assert end - first == len(rows)
                self._add(tp, list(range(first, end)), rows)
        self.groups.setdefault("txn", {})[TopicPartition("plain", 0)] = offset

    @rule()
    def restart(self) -> None:
        self.log.close()
        self.log = self.open()

    @precondition(lambda self: not self.kafka and self.ends[TopicPartition("compact", 0)] > 0)
    @rule()
    def compact(self) -> None:
        assert isinstance(self.log, EmbeddedLog)
        self.log.roll("compact")
        self.log.run_maintenance()
        tp = TopicPartition("compact", 0)
        latest: dict[bytes | None, int] = {}
        for offset, key, _ in self.model[tp]:
            latest[key] = offset
        keep = set(latest.values())
        self.model[tp] = [row for row in self.model[tp] if row[0] in keep]

    @invariant()
    def offsets_agree(self) -> None:
        for tp, end in self.ends.items():
            start, log_end = self.log.offsets(tp.topic, tp.partition)
            if self.kafka:  # transaction markers (and aborted records) hold offsets too
                assert start == 0
                assert log_end >= end
            else:
                assert (start, log_end) == (0, end)

    @invariant()
    def groups_agree(self) -> None:
        for group, offsets in self.groups.items():
            assert self.log.committed_offsets(group) == offsets

    def teardown(self) -> None:
        self.log.close()


def test_log_matches_model(storage: NewStorage, request: pytest.FixtureRequest) -> None:
    kafka = request.node.callspec.params["storage"] == "kafka"
    name = f"LogModelOn{'Kafka' if kafka else 'Embedded'}"
    machine: type[LogModel] = type(name, (LogModel,), {"storage": staticmethod(storage)})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=3 if kafka else 60,
            stateful_step_count=12 if kafka else 30,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
            # the backends' examples differ (compaction is the embedded log's): Kafka's few
            # are not kept, so that an embedded one is never replayed on Kafka
            database=None if kafka else settings().database,
        ),
    )

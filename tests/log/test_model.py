"""The embedded log against a plain in-memory model: random appends, reads, group commits,
transactions, restarts and compactions must never make the two disagree."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from hispeed.log import EmbeddedLog, TopicPartition, partition_for_key

KEYS = st.sampled_from([b"a", b"b", b"c", b"dd", b"eee"])
VALUES = st.one_of(st.none(), st.binary(max_size=30))
RECORDS = st.lists(st.tuples(KEYS, VALUES), min_size=0, max_size=8)
PLAIN_RECORDS = st.lists(
    st.tuples(st.one_of(st.none(), KEYS), st.binary(max_size=30)), min_size=0, max_size=8
)

Row = tuple[int, bytes | None, bytes | None]  # offset, key, value


class LogModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="hispeed-model-"))
        self.log = self._open()
        self.log.create_topic("plain", 2, {"segment.bytes": "1500"})
        self.log.create_topic("compact", 1, {"cleanup.policy": "compact", "segment.bytes": "1200"})
        self.model: dict[TopicPartition, list[Row]] = {
            TopicPartition("plain", 0): [],
            TopicPartition("plain", 1): [],
            TopicPartition("compact", 0): [],
        }
        self.ends = dict.fromkeys(self.model, 0)
        self.groups: dict[str, dict[TopicPartition, int]] = {}

    def _open(self) -> EmbeddedLog:
        return EmbeddedLog(self.dir, fsync="never", cleaner_interval_s=None)

    def _add(self, tp: TopicPartition, records: list[tuple[bytes | None, bytes | None]]) -> None:
        for key, value in records:
            self.model[tp].append((self.ends[tp], key, value))
            self.ends[tp] += 1

    @rule(records=PLAIN_RECORDS, partition=st.one_of(st.none(), st.integers(0, 1)))
    def append_plain(
        self, records: list[tuple[bytes | None, bytes]], partition: int | None
    ) -> None:
        result = self.log.append("plain", records, partition=partition)
        for (key, value), p in zip(records, result.partitions.tolist(), strict=True):
            if partition is not None:
                assert p == partition
            elif key is not None:
                assert p == partition_for_key(key, 2)
            self._add(TopicPartition("plain", p), [(key, value)])

    @rule(records=RECORDS)
    def append_compact(self, records: list[tuple[bytes, bytes | None]]) -> None:
        result = self.log.append("compact", records)
        assert result.offsets.tolist() == list(
            range(
                self.ends[TopicPartition("compact", 0)],
                self.ends[TopicPartition("compact", 0)] + len(records),
            )
        )
        self._add(TopicPartition("compact", 0), list(records))

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
        txn.append("plain", [(k, v or b"") for k, v in records], partition=1)
        txn.commit_offsets("txn", {TopicPartition("plain", 0): offset})
        if not ok:
            txn.abort()
            return
        txn.commit()
        self._add(TopicPartition("compact", 0), list(records))
        self._add(TopicPartition("plain", 1), [(k, v or b"") for k, v in records])
        self.groups.setdefault("txn", {})[TopicPartition("plain", 0)] = offset

    @rule()
    def restart(self) -> None:
        self.log.close()
        self.log = self._open()

    @precondition(lambda self: self.ends[TopicPartition("compact", 0)] > 0)
    @rule()
    def compact(self) -> None:
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
            assert self.log.offsets(tp.topic, tp.partition) == (0, end)

    @invariant()
    def groups_agree(self) -> None:
        for group, offsets in self.groups.items():
            assert self.log.committed_offsets(group) == offsets

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


LogModel.TestCase.settings = settings(
    max_examples=60,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
test_log_matches_model = LogModel.TestCase

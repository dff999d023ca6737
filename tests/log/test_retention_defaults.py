"""Retention by size as a server-wide default, and batches read back aligned (issue 16, 9)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc

from hispeed.config import Settings
from hispeed.log.embedded import EmbeddedLog


def _fill(log: EmbeddedLog, topic: str, batches: int, size: int = 200) -> None:
    for i in range(batches):
        log.append(topic, [(f"k{i % 7}".encode(), bytes(size)) for _ in range(10)])


def _bytes(log: EmbeddedLog, topic: str) -> int:
    return sum(p.size_bytes for p in log.describe_topic(topic).partitions)


def test_topics_without_a_size_limit_take_the_servers_and_keep_within_it(tmp_path: Path) -> None:
    defaults = {"retention.bytes": 20_000, "segment.bytes": 4_000}
    with EmbeddedLog(tmp_path, cleaner_interval_s=None, topic_defaults=defaults) as log:
        log.create_topic("plain", 1)
        log.create_topic("own", 1, {"retention.bytes": -1})
        assert log.describe_topic("plain").config.retention_bytes == 20_000
        assert log.describe_topic("own").config.retention_bytes == -1  # the topic's own wins
        _fill(log, "plain", 100)
        _fill(log, "own", 100)
        log.run_maintenance()
        # at most the limit plus the active segment (one frame may overshoot a segment)
        assert _bytes(log, "plain") <= 20_000 + 4_000 + 3_000
        assert _bytes(log, "own") > 100 * 10 * 200
        start, end = log.offsets("plain", 0)
        assert end == 1000
        assert start > 0


def test_a_topic_made_before_a_default_changes_follows_the_new_default(tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path, cleaner_interval_s=None) as log:
        log.create_topic("t", 1, {"segment.bytes": 4_000})
        assert log.describe_topic("t").config.retention_bytes == -1
    with EmbeddedLog(
        tmp_path, cleaner_interval_s=None, topic_defaults={"retention.bytes": 10_000}
    ) as log:
        cfg = log.describe_topic("t").config
        assert (cfg.retention_bytes, cfg.segment_bytes) == (10_000, 4_000)


def test_a_topic_json_written_before_overrides_were_kept_keeps_what_it_set(tmp_path: Path) -> None:
    with EmbeddedLog(tmp_path, cleaner_interval_s=None) as log:
        log.create_topic("t", 1, {"cleanup.policy": "compact"})
    meta_path = tmp_path / "log" / "topics" / "t" / "topic.json"
    meta = json.loads(meta_path.read_text())
    del meta["overrides"]  # as an older hispeed wrote it
    meta_path.write_text(json.dumps(meta))
    with EmbeddedLog(
        tmp_path, cleaner_interval_s=None, topic_defaults={"retention.bytes": 10_000}
    ) as log:
        cfg = log.describe_topic("t").config
        assert cfg.cleanup_policy == "compact"
        assert cfg.retention_bytes == 10_000


def test_the_server_settings_bound_every_topic_by_default(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert settings.log_retention_bytes > 0  # a safe default: no topic grows without bound
    with settings.open_log() as log:
        log.create_topic("t", 1)
        assert log.describe_topic("t").config.retention_bytes == settings.log_retention_bytes


def test_batches_read_back_are_aligned_and_compaction_does_not_warn(
    tmp_path: Path, capfd: object
) -> None:
    with EmbeddedLog(tmp_path, cleaner_interval_s=None) as log:
        log.create_topic("c", 1, {"cleanup.policy": "compact", "segment.bytes": 2_000})
        for i in range(30):
            log.append("c", [(f"k{j}".encode(), f"v{i}".encode()) for j in range(20)])
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert log.run_maintenance()["records_compacted"] > 0
        for batch in log.read("c", 0, 0):
            for column in batch.columns:
                for buf in column.buffers():
                    assert buf is None or buf.address % 8 == 0
            # a kernel over a read-back batch, as queries run them
            assert pc.sum(batch.column(0)).as_py() >= 0
        assert isinstance(pa.Table.from_batches(list(log.read("c", 0, 0))), pa.Table)
    err = capfd.readouterr().err  # type: ignore[attr-defined]
    assert "poorly aligned" not in err

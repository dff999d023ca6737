"""librdkafka's connection troubles reach Python's logging at most once per facility an
interval, the next line counting those left out (a broker down floods otherwise)."""

from __future__ import annotations

import logging

import pytest

from hispeed.log.kafka_client import LibrdkafkaLogger


def test_a_down_broker_is_said_once_an_interval(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    logger = LibrdkafkaLogger(interval=30, clock=lambda: now[0])
    line = "Connect to ipv4#127.0.0.1:9092 failed: Connection refused"
    with caplog.at_level(logging.INFO, logger="hispeed.kafka.librdkafka"):
        for _ in range(100):
            logger.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", line)
            now[0] += 0.1  # ten a second, as librdkafka retries
        logger.log(logging.INFO, "%s [%s] %s", "INIT", "rdkafka#producer-1", "other")
        now[0] = 30.5
        logger.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#producer-1", line)
    fails = [r for r in caplog.records if "FAIL" in r.getMessage()]
    assert [r.levelno for r in fails] == [logging.WARNING, logging.WARNING]
    assert "more FAIL lines" not in fails[0].getMessage()
    assert fails[1].getMessage().endswith("(99 more FAIL lines in the last 30 s)")
    assert any(r.getMessage().endswith("other") for r in caplog.records)
    # another client's trouble is its own
    logger.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-2", line)
    assert caplog.records[-1].getMessage().startswith("librdkafka FAIL [rdkafka#consumer-2]")

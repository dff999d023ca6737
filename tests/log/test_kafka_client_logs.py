"""librdkafka's own log lines (a broker it cannot reach, a setting it ignores) go through
Python's logging, at levels that say what they cost, never straight to the terminal."""

from __future__ import annotations

import logging
import re
import uuid

import pytest

from hispeed.log.kafka import KafkaLog
from hispeed.testing.services import Service, free_port
from hispeed.testing.wait import wait_for

pytestmark = [pytest.mark.services, pytest.mark.kafka]


def test_librdkafka_lines_go_through_python_logging(
    kafka_server: Service, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    # one bootstrap server of two down, as in a cluster with a broker restarting: librdkafka
    # reports its refused connections and goes on with the other
    dead = f"127.0.0.1:{free_port()}"
    caplog.set_level(logging.INFO, logger="hispeed.kafka.librdkafka")
    # librdkafka connects to a bootstrap server only when it needs one (sparse connections):
    # with the live one answering first, it might never try the dead one; without sparse
    # connections it connects to every broker it knows, so the refusal comes every run
    log = KafkaLog(
        f"{kafka_server.bootstrap},{dead}",
        prefix=f"t{uuid.uuid4().hex[:10]}-",
        config={"enable.sparse.connections": False},
    )
    try:
        log.create_topic("readings", 1)

        def refused_reported() -> list[logging.LogRecord]:
            # the client's lines reach Python when it is polled: appends flush (and poll)
            log.append("readings", [{"key": b"k", "value": b"v"}])
            return [
                r
                for r in caplog.records
                if r.name == "hispeed.kafka.librdkafka" and dead in r.getMessage()
            ]

        found = wait_for(refused_reported, timeout=30)
        assert len(log.read_table("readings", 0)) >= 1  # the other broker served everything
    finally:
        log.close()
    # librdkafka retries a refused connection by itself: a warning, not an error
    assert {r.levelno for r in found} == {logging.WARNING}
    assert "Connection refused" in found[0].getMessage()
    assert found[0].getMessage().startswith("librdkafka FAIL [hispeed#")
    # nothing of librdkafka's own format ("%3|1701234567.890|FAIL|rdkafka#producer-1| ...")
    # on the process's stderr or stdout
    out, err = capfd.readouterr()
    assert not re.search(r"^%\d\|", out + err, re.MULTILINE), out + err

"""The engine on one Kafka worker: processing guarantees, restarts, and the settings that
choose Kafka mode."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.errors import ConfigError
from hispeed.log.kafka import KafkaLog
from hispeed.testing.services import Service

pytestmark = [pytest.mark.services, pytest.mark.kafka]

QUERY = """
CREATE STREAM readings (device VARCHAR KEY, temp DOUBLE)
  WITH (kafka_topic='readings', partitions=3, value_format='JSON');
CREATE TABLE hot AS SELECT device, COUNT(*) AS n, MAX(temp) AS top
  FROM readings WHERE temp > 30 GROUP BY device;
"""


def open_log(kafka_server: Service, prefix: str, guarantee: str = "exactly_once") -> KafkaLog:
    return KafkaLog(
        kafka_server.bootstrap,
        prefix=prefix,
        app_id="test",
        guarantee=guarantee,
        transactional_id=f"{prefix}worker",
    )


def feed(engine: Engine, first: int, count: int) -> None:
    for i in range(first, first + count):
        engine.insert("READINGS", {"DEVICE": f"d{i % 4}", "TEMP": 20.0 + i % 20})


def expected(count: int, first: int = 0) -> dict[str, dict[str, float]]:
    """What the HOT table holds after readings `first` to `count - 1`."""
    out: dict[str, dict[str, float]] = {}
    for i in range(first, count):
        temp = 20.0 + i % 20
        if temp > 30:
            row = out.setdefault(f"d{i % 4}", {"N": 0, "TOP": temp})
            row["N"] += 1
            row["TOP"] = max(row["TOP"], temp)
    return out


def table(engine: Engine) -> dict[str, dict[str, float]]:
    return {r["DEVICE"]: {"N": r["N"], "TOP": r["TOP"]} for r in engine.query("SELECT * FROM hot;")}


@pytest.mark.parametrize("guarantee", ["exactly_once", "at_least_once"])
def test_a_query_resumes_where_it_stopped_under_each_guarantee(
    kafka_server: Service, guarantee: str
) -> None:
    prefix = f"g{uuid.uuid4().hex[:8]}."
    with Engine(log_=open_log(kafka_server, prefix, guarantee), worker_id="w1") as engine:
        engine.execute(QUERY)
        feed(engine, 0, 200)
        engine.drain()
        assert table(engine) == expected(200)
    # a clean restart: nothing read twice, nothing skipped
    with Engine(log_=open_log(kafka_server, prefix, guarantee), worker_id="w1") as engine:
        feed(engine, 200, 100)
        engine.drain()
        assert table(engine) == expected(300)
        # the processing log and the outputs are hispeed's topics in the app's namespace
        assert "HOT" in engine.log.list_topics()
        internal = engine.log.list_topics(internal=True)
        assert "_hispeed_command_topic" in internal


def test_the_app_id_keeps_applications_apart(kafka_server: Service) -> None:
    prefix = f"a{uuid.uuid4().hex[:8]}."
    first = KafkaLog(kafka_server.bootstrap, prefix=prefix, app_id="one")
    second = KafkaLog(kafka_server.bootstrap, prefix=prefix, app_id="two")
    try:
        with Engine(log_=first, worker_id="w1") as engine:
            engine.execute(QUERY)
        # the second application shares the cluster (and the user's topics) but not the
        # first one's catalog
        with Engine(log_=second, worker_id="w1") as engine:
            assert engine.catalog.sources.get("HOT") is None
            assert "readings" in engine.log.list_topics()
    finally:
        first.close()
        second.close()


def test_settings_choose_kafka_mode(kafka_server: Service, tmp_path: Path) -> None:
    settings = Settings.load(
        None,
        env={"HISPEED_KAFKA": kafka_server.bootstrap, "HISPEED_APP_ID": "s1"},
        data_dir=tmp_path,
        processing_guarantee="at_least_once",
        worker_id="w9",
    )
    log_ = settings.open_log()
    try:
        assert isinstance(log_, KafkaLog)
        assert (log_.app_id, log_.guarantee) == ("s1", "at_least_once")
    finally:
        log_.close()


def test_an_unknown_guarantee_is_a_clear_error(kafka_server: Service) -> None:
    with pytest.raises(ConfigError, match=r"processing\.guarantee cannot be 'twice'"):
        KafkaLog(kafka_server.bootstrap, guarantee="twice")


def test_an_unreachable_cluster_is_a_clear_error() -> None:
    from hispeed.errors import LogError
    from hispeed.processes import free_port

    with pytest.raises(LogError, match=r"cannot reach Kafka at 127\.0\.0\.1:"):
        KafkaLog(f"127.0.0.1:{free_port()}", timeout=2)


def test_outputs_are_plain_json_for_other_clients(kafka_server: Service) -> None:
    prefix = f"j{uuid.uuid4().hex[:8]}."
    with Engine(log_=open_log(kafka_server, prefix), worker_id="w1") as engine:
        engine.execute(QUERY)
        feed(engine, 0, 40)
        engine.drain()
        rows = {}
        for p in range(len(engine.log.describe_topic("HOT").partitions)):
            start, end = engine.log.offsets("HOT", p)
            for batch in engine.log.read("HOT", p, start) if end > start else []:
                for k, v in zip(
                    batch.column("key").to_pylist(), batch.column("value").to_pylist(), strict=True
                ):
                    rows[k.decode()] = json.loads(v)
        assert rows == expected(40)


def test_a_query_takes_its_guarantee_from_set(kafka_server: Service) -> None:
    prefix = f"s{uuid.uuid4().hex[:8]}."
    log_ = open_log(kafka_server, prefix)
    with Engine(log_=log_, worker_id="w1") as engine:
        engine.execute(QUERY.split(";")[0] + ";")
        engine.execute("SET 'processing.guarantee' = 'at_least_once';")
        (created,) = engine.execute(QUERY.split(";")[1] + ";")
        feed(engine, 0, 60)
        engine.drain()
        assert table(engine) == expected(60)
        # at least once: the query wrote without a transactional producer of its own
        assert created.query_id not in log_._txn


def test_latest_starts_where_the_inputs_were_when_the_query_was_made(
    kafka_server: Service,
) -> None:
    """Records that come after CREATE ... AS SELECT but before the query's consumer group
    has handed out its partitions are the query's, as ksqlDB's `latest` means."""
    prefix = f"l{uuid.uuid4().hex[:8]}."
    with Engine(log_=open_log(kafka_server, prefix), worker_id="w1") as engine:
        engine.execute(QUERY.split(";")[0] + ";")
        feed(engine, 10, 10)  # before the query (all hot): not the query's
        engine.execute("SET 'auto.offset.reset' = 'latest';")
        engine.execute(QUERY.split(";")[1] + ";")
        feed(engine, 20, 60)  # no poll yet: the group has not formed
        engine.drain()
        assert table(engine) == expected(80, first=20)

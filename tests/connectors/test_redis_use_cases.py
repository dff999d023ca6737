"""The seed's Redis use cases as SQL: a session store with a 30-minute TTL, unique visitors
per page (HyperLogLog), and a fraud alert published on a channel as it happens."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest
import redis as redis_py

from hispeed.engine import Engine
from hispeed.testing.services import Service
from tests.conftest import wait_for

pytestmark = pytest.mark.services


def _caught_up(engine: Engine, connector: str) -> bool:
    """Every query has read to the end of its inputs and `connector` has written all it read
    (their own progress counters)."""
    with engine.lock:
        for task in engine.tasks.values():
            for tp in task.consumer.assignment():
                if engine.log.offsets(tp.topic, tp.partition)[1] > task.consumer.position(tp):
                    return False
    return bool(engine.execute(f"DESCRIBE CONNECTOR {connector};")[0].info["lag"] == 0)


def test_a_session_store_that_expires_after_thirty_minutes(
    tmp_path: Path, redis_server: Service, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    p = redis_prefix
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM events (session_id STRING KEY, user_id STRING, page STRING) "
            "WITH (kafka_topic='events', value_format='JSON', partitions=1);"
            "CREATE TABLE sessions AS SELECT session_id, LATEST_BY_OFFSET(user_id) AS user_id, "
            "LATEST_BY_OFFSET(page) AS last_page, COUNT(*) AS events "
            "FROM events GROUP BY session_id;"
            f"CREATE SINK CONNECTOR sessions WITH ('connector.class'='redis', "
            f"'redis.url'='{redis_server.url}', 'source'='SESSIONS', 'redis.mode'='json', "
            f"'key.template'='{p}:session:{{KEY}}', 'ttl.seconds'='1800');"
        )
        engine.start()
        for page in ("/", "/cart", "/checkout"):
            engine.insert("events", {"SESSION_ID": "s1", "USER_ID": "ana", "PAGE": page})
        key = f"{p}:session:s1"

        def stored() -> dict[str, object] | None:
            raw = redis_client.get(key)
            return json.loads(raw) if raw else None

        wait_for(lambda: (stored() or {}).get("EVENTS") == 3)
        assert stored() == {
            "SESSION_ID": "s1",
            "USER_ID": "ana",
            "LAST_PAGE": "/checkout",
            "EVENTS": 3,
        }
        assert 1790 < redis_client.ttl(key) <= 1800  # each event starts the 30 minutes again


def test_unique_visitors_per_page_with_hyperloglogs(
    tmp_path: Path, redis_server: Service, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    p = redis_prefix
    visits = [(f"u{i % 37}", "/home" if i % 3 else "/cart") for i in range(500)]
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM clicks (user_id STRING KEY, page STRING) "
            "WITH (kafka_topic='clicks', value_format='JSON', partitions=1);"
            f"CREATE SINK CONNECTOR visitors WITH ('connector.class'='redis', "
            f"'redis.url'='{redis_server.url}', 'source'='CLICKS', 'redis.mode'='hll', "
            f"'key.template'='{p}:visitors:{{PAGE}}', 'element.column'='USER_ID');"
        )
        engine.start()
        for user, page in visits:
            engine.insert("clicks", {"USER_ID": user, "PAGE": page})
        wait_for(lambda: engine.execute("DESCRIBE CONNECTOR visitors;")[0].info["lag"] == 0)
        for page in ("/home", "/cart"):
            exact = len({u for u, pg in visits if pg == page})
            estimate = redis_client.pfcount(f"{p}:visitors:{page}")
            assert abs(estimate - exact) <= max(1, exact * 0.02)  # HLL's ~0.8% error


def test_a_fraud_alert_is_published_within_100_ms_of_its_event(
    tmp_path: Path, redis_server: Service, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    channel = f"{redis_prefix}:fraud"
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM authorization_attempts (card_number STRING KEY, amount DOUBLE) "
            "WITH (kafka_topic='auth', value_format='JSON', partitions=1);"
            "CREATE TABLE possible_fraud AS SELECT card_number, COUNT(*) AS attempts "
            "FROM authorization_attempts WINDOW TUMBLING (SIZE 5 SECONDS) "
            "GROUP BY card_number HAVING COUNT(*) > 3;"
            f"CREATE SINK CONNECTOR alerts WITH ('connector.class'='redis', "
            f"'redis.url'='{redis_server.url}', 'source'='POSSIBLE_FRAUD', "
            f"'redis.mode'='publish', 'channel'='{channel}');"
        )
        engine.start()
        pubsub = redis_client.pubsub()
        pubsub.subscribe(channel)
        assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
        received: list[tuple[float, dict[str, object]]] = []

        def listen() -> None:
            message = pubsub.get_message(ignore_subscribe_messages=True, timeout=10)
            if message is not None:
                received.append((time.perf_counter(), json.loads(message["data"])))

        delays = []
        for attempt in range(3):  # three cards, three alerts: the worst must be within 100 ms
            card = f"4111{attempt:012d}"
            # all four attempts inside one five-second window, whatever the clock says
            window = int(time.time() * 1000) // 5000 * 5000 + 1000
            for _ in range(3):
                engine.insert(
                    "authorization_attempts", {"CARD_NUMBER": card, "AMOUNT": 1.0}, window
                )
            # the first three are through the query and the sink; the fourth is the trigger
            wait_for(lambda: _caught_up(engine, "ALERTS"))
            listener = threading.Thread(target=listen)
            listener.start()
            sent = time.perf_counter()
            engine.insert("authorization_attempts", {"CARD_NUMBER": card, "AMOUNT": 1.0}, window)
            listener.join(10)
            assert received, "no alert was published"
            arrived, alert = received.pop()
            assert alert["CARD_NUMBER"] == card
            assert alert["ATTEMPTS"] == 4
            delays.append(arrived - sent)
        pubsub.close()
    print(f"fraud alert delays: {[round(d * 1000, 1) for d in delays]} ms")
    assert max(delays) < 0.1, delays

"""The seed's Redis use cases as SQL: a session store with a 30-minute TTL, unique visitors
per page (HyperLogLog), and a fraud alert published on a channel as it happens."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
import redis as redis_py

from hispeed.bench.redis import FRAUD_SQL, caught_up
from hispeed.engine import Engine
from hispeed.testing.services import Service
from tests.conftest import wait_for

pytestmark = pytest.mark.services


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


def test_a_fraud_alert_is_published_when_its_fourth_attempt_arrives(
    tmp_path: Path, redis_server: Service, redis_client: redis_py.Redis, redis_prefix: str
) -> None:
    """The fourth attempt of a card in a window, and only it, publishes the card's alert.
    How soon is a figure of `hispeed bench redis --mode fraud_alert`, not of this test: a
    busy machine decides it."""
    channel = f"{redis_prefix}:fraud"
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(FRAUD_SQL.format(url=redis_server.url, channel=channel))
        engine.start()
        pubsub = redis_client.pubsub()
        try:
            pubsub.subscribe(channel)
            assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]
            for attempt in range(3):  # three cards, three alerts
                card = f"4111{attempt:012d}"
                # all four attempts inside one five-second window, whatever the clock says
                window = int(time.time() * 1000) // 5000 * 5000 + 1000
                for _ in range(3):
                    engine.insert("authorization_attempts", {"CARD_NUMBER": card}, window)
                wait_for(lambda: caught_up(engine, "ALERTS"))
                # three attempts are no fraud: nothing of this card was published
                assert [m for m in _pending(pubsub) if m.get("CARD_NUMBER") == card] == []
                engine.insert("authorization_attempts", {"CARD_NUMBER": card}, window)
                alerts = _first_alerts(pubsub)
                assert [(a["CARD_NUMBER"], a["ATTEMPTS"]) for a in alerts] == [(card, 4)]
        finally:
            pubsub.close()


def _first_alerts(pubsub: Any) -> list[dict[str, Any]]:
    """The alerts published from now until at least one came (a deadline, not a latency)."""
    alerts: list[dict[str, Any]] = []
    wait_for(lambda: bool(alerts.extend(_pending(pubsub)) or alerts), timeout=60)
    return alerts


def _pending(pubsub: Any) -> list[dict[str, Any]]:
    """The alerts published so far and not read yet (tombstones, published as null, left out)."""
    out = []
    while (message := pubsub.get_message(ignore_subscribe_messages=True, timeout=0)) is not None:
        value = json.loads(message["data"])
        if value is not None:
            out.append(value)
    return out

"""The course's data generators, and the datagen source connector."""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from pathlib import Path

import pytest

import hispeed.connectors.datagen  # noqa: F401  (registers 'datagen')
from hispeed.demo.generators import GENERATORS, generator
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from tests.conftest import wait_for


@pytest.mark.parametrize("name", sorted(GENERATORS))
def test_every_generator_is_deterministic_and_resumable(name: str) -> None:
    a = [(n, r.topic, r.key, r.value_bytes()) for n, r in generator(name, seed=7).take(200)]
    b = [(n, r.topic, r.key, r.value_bytes()) for n, r in generator(name, seed=7).take(200)]
    assert a == b
    tail = [(n, r.topic, r.key, r.value_bytes()) for n, r in generator(name, 7).take(50, 150)]
    assert tail == [x for x in a if x[0] >= 150]  # record n depends on the seed and n only
    other = [r.value_bytes() for _, r in generator(name, seed=8).take(200)]
    if name != "rand":
        assert other != [x[3] for x in a]


def test_sensehat_readings_and_joystick_events_use_the_devices_own_fields() -> None:
    records = [r for _, r in generator("sensehat", keys=2).take(400)]
    readings = [r for r in records if r.key == "message"]
    assert {r.topic for r in readings} == {"device1", "device2"}
    reading = readings[0].value
    assert isinstance(reading, dict)
    assert set(reading) == {"orentation", "compass", "gyroscope", "accelerometer"}
    assert set(reading["orentation"]) == {"pitch", "roll", "yaw"}
    assert set(reading["compass"]) == {"x", "y", "z"}
    alerts = [r for r in records if r.key == "alert"]
    assert {r.topic for r in alerts} >= {"device1alerts", "device2alerts", "alerts"}
    for r in alerts:
        assert isinstance(r.value, dict)
        assert set(r.value) == {"button", "direction", "device"}
        assert r.topic in (r.value["device"], r.value["device"] + "alerts", "alerts")
        if r.topic == "alerts":
            assert r.value["button"] == "held"
    helds = [r for r in alerts if isinstance(r.value, dict) and r.value["button"] == "held"]
    assert len([r for r in alerts if r.topic == "alerts"]) == len(helds) // 3


def test_weather_and_drone_follow_their_distributions() -> None:
    weather = [r.value for _, r in generator("weather").take(4000)]
    assert all(isinstance(v, dict) for v in weather)
    values = [v for v in weather if isinstance(v, dict)]
    assert {v["WeatherStation"] for v in values} == set(range(1, 10))
    assert abs(statistics.mean(v["Temperature"] for v in values)) < 0.01
    assert abs(statistics.stdev(v["Temperature"] for v in values) - 0.1) < 0.01
    assert abs(statistics.median(v["Humidity"] for v in values) - 10) < 0.2
    assert all(-3 <= v["Sensor1"] <= 8 for v in values)
    assert abs(statistics.mean(v["Sensor1"] for v in values) - 5 / 3) < 0.15  # (a+b+c)/3
    assert abs(statistics.mean(v["Sensor2"] for v in values) - 1 / 3) < 0.01  # 10/(10+20)
    keys = [r.key for _, r in generator("weather").take(20)]
    assert keys == [str(n % 10) for n in range(20)]
    drone = [r for _, r in generator("drone").take(9)]
    assert [r.key for r in drone] == [str(n % 3) for n in range(9)]
    assert all(isinstance(r.value, dict) and 1 <= r.value["NumberVisitors"] <= 9 for r in drone)
    assert [r.value for _, r in generator("rand").take(4)] == ["0", "1", "2", "0"]


def test_authorization_attempts_have_a_burst_per_block_that_looks_like_fraud() -> None:
    gen = generator("authorization_attempts", seed=3)
    records = [r for _, r in gen.take(500)]
    counts = Counter(r.key for r in records)
    bursty = {card for card, n in counts.items() if n > 3}
    assert len(bursty) == 10  # one per block of 50
    for block in range(10):
        start, card = gen.burst_at(block)  # type: ignore[attr-defined]
        assert card in bursty
        assert [r.key for r in records[block * 50 + start : block * 50 + start + 6]] == [card] * 6


def test_nexmark_proportions_are_1_3_46() -> None:
    topics = Counter(r.topic for _, r in generator("nexmark").take(5000))
    assert topics == {"person": 100, "auction": 300, "bid": 4600}
    bids = [r.value for _, r in generator("nexmark").take(200) if r.topic == "bid"]
    assert all(isinstance(b, dict) and {"auction", "bidder", "price"} <= set(b) for b in bids)


def test_clickstream_users_join_on_user_ids() -> None:
    users = {r.key for _, r in generator("users", keys=20).take(20)}
    clicks = {r.key for _, r in generator("clickstream", keys=20).take(500)}
    assert clicks <= users
    user = next(r.value for _, r in generator("users").take(1))
    assert isinstance(user, dict)
    assert set(user) == {"user_id", "registered_at", "username", "name", "city", "level"}


def test_datagen_connector_writes_at_its_rate_and_resumes_without_repeats(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    statement = (
        "CREATE SOURCE CONNECTOR w WITH ('connector.class'='datagen', 'generator'='weather', "
        "'rate'='200', 'limit'='{limit}', 'seed'='5');"
    )
    with Engine(data, fsync="never") as engine:
        began = time.monotonic()
        engine.execute(statement.format(limit=100))
        wait_for(lambda: engine.log.offsets("weather", 0)[1] == 100)
        assert time.monotonic() - began >= 0.4  # paced: 100 records at 200 a second
        info = engine.execute("DESCRIBE CONNECTOR w;")[0].info
        assert info["details"]["generator"] == "weather"
    with Engine(data, fsync="never") as engine:
        engine.execute("DROP CONNECTOR w;")
        engine.execute(statement.format(limit=150))
        wait_for(lambda: engine.log.offsets("weather", 0)[1] == 150)
        engine.execute("DROP CONNECTOR w;")  # its thread has ended: nothing more can come
        values = engine.log.read_table("weather", 0).column("value").to_pylist()
    expected = [r.value_bytes() for _, r in generator("weather", seed=5).take(150)]
    assert [json.loads(v) for v in values] == [json.loads(e) for e in expected]


def test_datagen_refuses_bad_properties(tmp_path: Path) -> None:
    with Engine(tmp_path / "data", fsync="never") as engine:
        with pytest.raises(HispeedError, match="needs 'generator'"):
            engine.execute("CREATE SOURCE CONNECTOR g WITH ('connector.class'='datagen');")
        with pytest.raises(HispeedError, match="no generator 'nope'"):
            engine.execute(
                "CREATE SOURCE CONNECTOR g WITH ('connector.class'='datagen', 'generator'='nope');"
            )
        with pytest.raises(HispeedError, match="'rate' must be above 0"):
            engine.execute(
                "CREATE SOURCE CONNECTOR g WITH ('connector.class'='datagen', "
                "'generator'='drone', 'rate'='0');"
            )

"""What `make run` starts, shorter: each scenario's outputs against what the test computes
from the generated inputs itself."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_py

from hispeed.cli.demo_app import SCENARIOS, Demo, running_demo
from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.testing.services import free_port, require_binary
from tests.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.services]

GENERATORS = (
    "AUTHORIZATIONS_GEN",
    "CLICKSTREAM_GEN",
    "USERS_GEN",
    "WEATHER_GEN",
    "DRONE_GEN",
    "NEXMARK_GEN",
)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    require_binary("redis-server", "redis-server")
    data = tmp_path_factory.mktemp("demo") / "data"
    settings = Settings.load(
        None, env={}, data_dir=data, port=free_port(), grpc_port=0, fsync="never"
    )
    with running_demo(settings, devices=2, say=lambda _: None) as running:
        # what the generators make in 6 s at their own rates, however long that takes here
        wait_for(lambda: _generated(running.engine, GENERATORS, seconds=6), timeout=60)
        engine = running.engine
        for name in GENERATORS:  # inputs stop here; what they sent is the test's to check
            engine.execute(f"DROP CONNECTOR {name};")
        wait_for(lambda: _settled(engine), timeout=30)
        yield running


def _generated(engine: Engine, names: tuple[str, ...], seconds: float) -> bool:
    """Each of the generators `names` has made what its rate makes in `seconds` (its own
    count of the records it made, so a busy machine waits as long as it takes)."""
    for name in names:
        details = engine.connectors.describe(name)["details"]
        if details["next"] < float(details["rate"]) * seconds:
            return False
    return True


def _settled(engine: Engine) -> bool:
    from hispeed.server.metrics import Metrics

    stats = Metrics(engine).query_stats()
    sinks = [engine.connectors.describe(r["name"]) for r in engine.connectors.rows()]
    return all(
        q["lag"] == 0 for q in stats if "DEVICE" not in q["id"] and "INSERT" not in q["id"]
    ) and all(s.get("lag", 0) == 0 for s in sinks)


def _values(engine: Engine, topic: str) -> list[tuple[bytes | None, dict[str, Any], int]]:
    log_ = engine.log
    out = []
    for p in range(len(log_.describe_topic(topic).partitions)):
        table = log_.read_table(topic, p)
        for k, v, t in zip(
            table.column("key").to_pylist(),
            table.column("value").to_pylist(),
            table.column("timestamp").to_pylist(),
            strict=True,
        ):
            if v is not None:
                out.append((k, json.loads(v), t))
    return out


def test_every_scenario_installed(demo: Demo) -> None:
    assert demo.ran == list(SCENARIOS)
    assert demo.failed == {}


def test_fraud_cards_are_those_tried_more_than_three_times_in_five_seconds(demo: Demo) -> None:
    engine = demo.engine
    windows: Counter[tuple[str, int]] = Counter()
    for _, value, ts in _values(engine, "authorization_attempts"):
        windows[(value["card_number"], ts - ts % 5000)] += 1
    expected = {(card, start, n) for (card, start), n in windows.items() if n > 3}
    assert expected  # the generator's bursts
    rows = engine.query("SELECT * FROM possible_fraud")
    got = {(r["CARD_NUMBER"], r["WINDOWSTART"], r["KSQL_COL_0"]) for r in rows}
    assert got == expected
    assert demo.redis_url is not None
    redis = redis_py.Redis.from_url(demo.redis_url, decode_responses=True)
    cards = {key.removeprefix("fraud:") for key in redis.scan_iter("fraud:*")}
    assert cards == {card for card, _, _ in expected}


def test_the_leaderboard_in_redis_is_the_bidders_hourly_totals(demo: Demo) -> None:
    engine = demo.engine
    totals: dict[tuple[int, int], int] = defaultdict(int)
    for _, value, ts in _values(engine, "bid"):
        totals[(ts - ts % 3_600_000, value["bidder"])] += value["price"]
    assert demo.redis_url is not None
    redis = redis_py.Redis.from_url(demo.redis_url, decode_responses=True)
    for hour in {h for h, _ in totals}:
        expected = sorted(
            ((str(b), float(t)) for (h, b), t in totals.items() if h == hour),
            key=lambda m: (-m[1], m[0]),
        )[:100]
        got = redis.zrevrange(f"leaderboard:{hour}", 0, -1, withscores=True)
        assert sorted(got, key=lambda m: (-m[1], m[0])) == expected


def test_unique_visitors_per_page_and_vip_actions(demo: Demo) -> None:
    engine = demo.engine
    visitors: dict[str, set[str]] = defaultdict(set)
    views: Counter[str] = Counter()
    for _, value, _ in _values(engine, "my_clickstream_topic"):
        visitors[value["url"]].add(value["userid"])
        views[value["url"]] += 1
    rows = engine.query("SELECT * FROM page_visitors")
    assert {r["URL"]: (r["UNIQUE_VISITORS"], r["VIEWS"]) for r in rows} == {
        url: (len(users), views[url]) for url, users in visitors.items()
    }
    platinum_ever = {
        str(v["user_id"])
        for _, v, _ in _values(engine, "clickstream_users")
        if v["level"] == "Platinum"
    }
    vips = _values(engine, "VIP_ACTIONS")
    assert vips
    assert all(k is not None and k.decode() in platinum_ever for k, _, _ in vips)
    assert all(v["FULLNAME"] for _, v, _ in vips)


def test_station_averages_are_the_weathers(demo: Demo) -> None:
    engine = demo.engine
    readings: dict[int, list[float]] = defaultdict(list)
    for _, value, _ in _values(engine, "weather"):
        readings[value["WeatherStation"]].append(value["Temperature"])
    rows = engine.query("SELECT * FROM station_averages")
    got = {r["WEATHERSTATION"]: (r["READINGS"], r["AVG_TEMPERATURE"]) for r in rows}
    assert set(got) == set(readings)
    for station, temps in readings.items():
        assert got[station][0] == len(temps)
        assert got[station][1] == pytest.approx(sum(temps) / len(temps))


def test_a_device_gets_a_command_after_a_joystick_event(demo: Demo) -> None:
    event = {"button": "pressed", "direction": "up", "device": "device1"}
    r = httpx.post(f"{demo.url}/topics/device1alerts?key=alert", json=[event])
    assert r.status_code == 200, r.text
    engine = demo.engine
    wait_for(
        lambda: any(
            v == {"DEVICE": "device1", "DIRECTION": "up", "COLOR": "yellow"}
            for _, v, _ in _values(engine, "device2commands")
        ),
        timeout=15,
    )
    log = demo.demo_dir / "device2.log"
    # the device shows it: a yellow arrow up on its LED
    wait_for(lambda: '"COLOR": "yellow"' in log.read_text(errors="replace"), timeout=15)
    assert "\x1b[38;2;255;255;0m" in log.read_text(errors="replace")


def test_running_again_resumes_without_duplicating(tmp_path: Path) -> None:
    require_binary("redis-server", "redis-server")
    settings = Settings.load(
        None, env={}, data_dir=tmp_path / "data", port=free_port(), grpc_port=0, fsync="never"
    )
    with running_demo(settings, devices=0, say=lambda _: None) as first:
        queries = sorted(first.engine.catalog.queries)
        connectors = [r["name"] for r in first.engine.connectors.rows()]
        wait_for(lambda: _generated(first.engine, ("WEATHER_GEN", "DRONE_GEN"), 1), timeout=30)
        first.engine.execute("DROP CONNECTOR WEATHER_GEN;")
        made = first.engine.log.offsets("weather", 0)[1]
        drone_made = first.engine.log.offsets("drone", 0)[1]
    with running_demo(settings, devices=0, say=lambda _: None) as second:
        assert second.ran == []  # nothing installed twice
        assert sorted(second.engine.catalog.queries) == queries
        assert [r["name"] for r in second.engine.connectors.rows()] == [
            c for c in connectors if c != "WEATHER_GEN"
        ]
        assert second.engine.log.offsets("weather", 0)[1] == made  # the dropped one stays so
        # the drone generator goes on in this run: two records past where the first stopped
        wait_for(lambda: second.engine.log.offsets("drone", 0)[1] >= drone_made + 2, timeout=30)
        drone = second.engine.log.read_table("drone", 0).column("value").to_pylist()
    from hispeed.demo.generators import generator

    expected = [r.value_bytes() for _, r in generator("drone").take(len(drone))]
    assert drone == expected  # the generator went on from its position: no repeats, no gaps

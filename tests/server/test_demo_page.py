"""The demo page (`/demo`): its assets, `/api/led`, `/api/redis/top` against a real Redis, and
the page itself in a browser over the course's scenarios and two simulated devices."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from importlib import resources
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis as redis_py

from hispeed.connectors.embedded_redis import EmbeddedRedis, find_binary
from hispeed.demo.device import Led, SimulatedDevice, led_command
from hispeed.testing.services import Service, free_port, require_binary
from tests.server import test_dashboard
from tests.server.conftest import RunningServer, ServerFactory
from tests.server.test_dashboard import ksql

ROOT = Path(__file__).parents[2]
SCREENSHOT = ROOT / "docs" / "demo.png"
#: the scenarios the page shows, in the order `make run` runs them
SCENARIOS = ("sensehat", "clickstream", "fraud", "leaderboard")

browser = test_dashboard.browser


def scenario_sql(name: str) -> str:
    """A scenario's SQL: as the package ships it, or from examples/ in a checkout."""
    shipped = resources.files("hispeed.demo").joinpath("scenarios", f"{name}.sql")
    if shipped.is_file():
        return shipped.read_text(encoding="utf-8")
    return (ROOT / "examples" / name / "scenario.sql").read_text(encoding="utf-8")


def top(server: RunningServer, **params: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/redis/top", params=params, timeout=10)


def test_demo_page_and_its_assets_are_served(server: RunningServer) -> None:
    page = httpx.get(f"{server.url}/demo", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/static/js/demo.js" in page.text
    assert 'href="/"' in page.text
    assert 'href="/demo"' in httpx.get(f"{server.url}/", timeout=10).text
    for asset in ("demo.js", "devices.js", "feeds.js", "gauge.js", "led.js", "live.js"):
        r = httpx.get(f"{server.url}/static/js/{asset}", timeout=10)
        assert r.status_code == 200, asset
        assert "javascript" in r.headers["content-type"], asset
    assert httpx.get(f"{server.url}/static/demo.css", timeout=10).status_code == 200
    icon = httpx.get(f"{server.url}/static/favicon.svg", timeout=10)
    assert icon.headers["content-type"].startswith("image/svg+xml")


def test_led_pictures_are_the_devices_own(server: RunningServer) -> None:
    doc = httpx.get(f"{server.url}/api/led", timeout=10).json()
    assert doc["colors"]["yellow"] == [255, 255, 0]
    for direction, rows in doc["pictures"].items():
        led = Led()
        led.show(direction, "green")
        assert [p == (0, 255, 0) for p in led.pixels] == [c == "X" for c in "".join(rows)]
    assert doc["pictures"]["up"][0] == "...XX..."
    assert set(doc["pictures"]) == {"up", "down", "left", "right", "middle"}


def test_top_without_redis_is_a_clear_503(server: RunningServer) -> None:
    r = top(server, pattern="leaderboard:*")
    assert r.status_code == 503
    assert r.json()["@type"] == "generic_error"
    assert "no Redis" in r.json()["message"]
    assert "redis_url" in r.json()["message"]


def test_top_with_redis_gone_is_a_503_naming_it(server_factory: ServerFactory) -> None:
    port = free_port()  # nothing listens there
    server = server_factory(engine_properties={"redis.url": f"redis://127.0.0.1:{port}"})
    r = top(server, pattern="leaderboard:*")
    assert r.status_code == 503
    assert f"127.0.0.1:{port}" in r.json()["message"]


def test_top_refuses_bad_requests(server: RunningServer) -> None:
    r = top(server)
    assert r.status_code == 400
    assert "pattern=" in r.json()["message"]
    for n in ("ten", "0", "1001"):
        r = top(server, pattern="x:*", n=n)
        assert r.status_code == 400, n
        assert "n must be" in r.json()["message"]


@pytest.mark.services
def test_top_reads_the_newest_sorted_set(
    server_factory: ServerFactory, redis_server: Service, request: pytest.FixtureRequest
) -> None:
    server = server_factory(engine_properties={"redis.url": redis_server.url})
    redis_client = redis_py.Redis.from_url(redis_server.url, decode_responses=True)
    request.addfinalizer(redis_client.close)
    prefix = f"demo-{request.node.name}"  # a prefix of its own in the shared Redis
    for key in redis_client.scan_iter(f"{prefix}*"):
        redis_client.delete(key)
    assert top(server, pattern=f"{prefix}:*").json() == {"key": None, "members": []}

    # 1000 is newer than 999 although it sorts first as text; a hash is no sorted set
    redis_client.zadd(f"{prefix}:999", {"old": 1e9})
    newest = {f"bidder-{i}": i * 100.5 for i in range(15)}
    redis_client.zadd(f"{prefix}:1000", newest)
    redis_client.hset(f"{prefix}:2000", mapping={"not": "a sorted set"})
    # more keys than one SCAN step (COUNT 1000) looks at
    redis_client.mset({f"{prefix}-other:{i}": "x" for i in range(2500)})

    doc = top(server, pattern=f"{prefix}:*", n="10").json()
    assert doc["key"] == f"{prefix}:1000"
    assert doc["members"] == [
        {"member": f"bidder-{i}", "score": i * 100.5} for i in range(14, 4, -1)
    ]
    assert len(top(server, pattern=f"{prefix}:*", n="3").json()["members"]) == 3
    # the default is the top ten
    assert len(top(server, pattern=f"{prefix}:*").json()["members"]) == 10
    # suffixes that are not numbers compare as text, after the numbers
    redis_client.zadd(f"{prefix}:b", {"x": 1})
    redis_client.zadd(f"{prefix}:a", {"y": 1})
    assert top(server, pattern=f"{prefix}:*").json()["key"] == f"{prefix}:1000"
    redis_client.delete(f"{prefix}:999", f"{prefix}:1000")
    assert top(server, pattern=f"{prefix}:*").json() == {
        "key": f"{prefix}:b",
        "members": [{"member": "x", "score": 1.0}],
    }


@pytest.fixture
def embedded_redis(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """The Redis `hispeed server` starts for itself, in a directory of the test's own."""
    if find_binary() is None:
        require_binary("redis-server", "redis-server")  # skips, or fails in CI
    redis = EmbeddedRedis(tmp_path / "redis-data")
    redis.start()
    yield redis
    redis.stop()


def device_state(page: Any, device: str) -> dict[str, Any]:
    """What the page holds for one device: chart points, gauge, LED (one consistent look)."""
    state: dict[str, Any] = page.evaluate(
        """(id) => {
          const card = window.hispeedDemo.devices.devices.get(id);
          return {
            compass: card.compass.dataLength(),
            gyroscope: card.gyroscope.dataLength(),
            speed: card.gauge.value,
            shown: card.led.shown,
            event: card.led.lastEvent,
            pixels: card.led.pixels,
          };
        }""",
        device,
    )
    return state


@pytest.mark.slow
def test_the_page_picks_the_led_picture_the_device_picks(
    server: RunningServer, browser: Any
) -> None:
    """The page's `ledCommand` (led.js) and the device's `led_command` agree on every kind of
    event, field names in either case: the shared alerts come from a query, in capitals."""
    events = [
        {"device": "device1", "direction": "up", "button": "pressed"},
        {"device": "device1", "direction": "left", "button": "held"},
        {"device": "device2", "direction": "down", "button": "pressed"},
        {"direction": "middle", "button": "pressed"},
        {"direction": "right", "color": "yellow"},
        {"DEVICE": "device2", "DIRECTION": "up", "BUTTON": "pressed"},
        {"DEVICE": "device1", "DIRECTION": "right", "BUTTON": "pressed"},
        {"DIRECTION": "left", "COLOUR": "white"},
    ]
    page = browser.new_page()
    page.goto(f"{server.url}/demo")
    picked = page.evaluate(
        """async (events) => {
          const { ledCommand } = await import("/static/js/led.js");
          return events.map((e) => ledCommand("device1", e));
        }""",
        events,
    )
    page.close()
    assert [tuple(p) for p in picked] == [led_command("device1", e) for e in events]


@pytest.mark.slow
@pytest.mark.services
def test_demo_page_shows_the_scenarios_live(
    server_factory: ServerFactory,
    embedded_redis: EmbeddedRedis,
    browser: Any,
    tmp_path: Path,
) -> None:
    server = server_factory(engine_properties={"redis.url": embedded_redis.url})
    for name in SCENARIOS:
        ksql(server, scenario_sql(name))

    page = browser.new_page(viewport={"width": 1440, "height": 1000})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.url}/demo")
    page.wait_for_function("window.hispeedDemo !== undefined")
    # the fraud panel's push query runs before the first alert, so it misses none
    page.wait_for_function("window.hispeedDemo.fraud.columns !== undefined")

    devices = [
        SimulatedDevice(f"device{i}", server.url, seed=i, rate=10, joystick_every=5) for i in (1, 2)
    ]
    for d in devices:
        d.start()
    try:
        page.wait_for_selector("[data-device=device1]")
        page.wait_for_selector("[data-device=device2]")
        page.wait_for_function(
            "window.hispeedDemo.devices.devices.get('device1').compass.dataLength() >= 5"
        )
        state = device_state(page, "device1")
        assert state["gyroscope"] >= 5
        assert isinstance(state["speed"], float | int)
        assert page.locator("[data-device=device1] canvas").count() >= 2

        # a joystick event: a toast, and the LED draws what the device's own LED draws
        page.wait_for_selector(".toast")
        page.wait_for_function("window.hispeedDemo.devices.devices.get('device1').led.shown > 0")
        state = device_state(page, "device1")
        led = Led()
        led.show(*led_command("device1", state["event"]))
        assert [tuple(p) for p in state["pixels"]] == led.pixels
        assert any(p != (0, 0, 0) for p in led.pixels)

        page.wait_for_selector("#fraud .alert-row", timeout=30_000)
        card, attempts = page.locator("#fraud .alert-row").first.locator("td").all_inner_texts()[:2]
        assert re.fullmatch(r"4[0-9]{15}", card)
        assert int(attempts) > 3

        page.wait_for_selector("#vip .vip-row", timeout=30_000)
        page.wait_for_selector("#leaderboard .leader-row", timeout=30_000)
        rows = page.locator("#leaderboard .leader-row").count()
        assert 1 <= rows <= 10
        assert page.locator("#leaderboard-key").inner_text().startswith("ZREVRANGE leaderboard:")

        screenshot = os.environ.get("HISPEED_SCREENSHOT") == "1"
        if screenshot:  # full charts and a few more alerts for the picture
            page.wait_for_function(
                "window.hispeedDemo.devices.devices.get('device2').compass.dataLength() >= 15"
                " && window.hispeedDemo.fraud.alerts.size >= 3"
                " && window.hispeedDemo.vip.received >= 8",
                timeout=60_000,
            )
            page.wait_for_selector(".toast:not(.leaving)")
        path = SCREENSHOT if screenshot else tmp_path / "demo.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(path), full_page=True)
        assert path.stat().st_size > 10_000
    finally:
        for d in devices:
            d.stop()
    assert [d.error for d in devices] == [None, None]
    assert errors == []


#: what the fraud panel ever shows, recorded from the page's first moment (before its scripts)
RECORD_FRAUD_PANEL = """
window.fraudTexts = [];
new MutationObserver(() => {
  const panel = document.getElementById("fraud");
  if (panel) window.fraudTexts.push(panel.textContent);
}).observe(document, { subtree: true, childList: true, characterData: true });
"""


@pytest.mark.slow
def test_a_fresh_demo_never_shows_its_tables_missing(
    browser: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`make run`, and the demo page opened the moment the server answers (as a tab left
    open from the last run does, trying again every 3 s): the fraud panel never says that
    POSSIBLE_FRAUD does not exist."""
    import socket
    import threading
    from dataclasses import replace

    from hispeed.cli import demo_app
    from hispeed.config import Settings
    from hispeed.testing.wait import wait_for

    settings = replace(
        Settings.load(env={}),
        data_dir=tmp_path / "data",
        port=free_port(),
        grpc_port=0,
        embedded_redis=False,
        fsync="never",
    )

    def answers() -> bool:
        try:
            with socket.create_connection((settings.host, settings.port), 0.2):
                return True
        except OSError:
            return False

    # Creating the scenarios takes a few seconds on a busy machine; a page must not catch
    # them half made. Whatever the machine's speed, a page that can look while they are
    # being created does look: creating waits for the page's first answer.
    page_answered = threading.Event()
    install = demo_app.install_scenarios

    def install_once_the_page_looked(*args: Any, **kwargs: Any) -> Any:
        if answers():  # already serving: a page may ask now
            page_answered.wait(30)
        return install(*args, **kwargs)

    monkeypatch.setattr(demo_app, "install_scenarios", install_once_the_page_looked)
    stop = threading.Event()
    failed: list[BaseException] = []

    def run() -> None:
        try:
            with demo_app.running_demo(settings, devices=0, say=lambda _: None):
                stop.wait()
        except BaseException as e:
            failed.append(e)

    demo = threading.Thread(target=run)
    demo.start()
    try:
        wait_for(lambda: failed or answers(), timeout=60)
        assert not failed
        page = browser.new_page()
        page.add_init_script(RECORD_FRAUD_PANEL)
        page.goto(f"http://{settings.host}:{settings.port}/demo")
        # the panel's first answer: its push query's columns, or a refusal
        page.wait_for_function(
            "window.hispeedDemo?.fraud.columns !== undefined"
            " || window.fraudTexts.some((t) => !t.startsWith('waiting for POSSIBLE_FRAUD (') && t)"
        )
        page_answered.set()
        page.wait_for_function("window.hispeedDemo.fraud.columns !== undefined", timeout=30_000)
        texts = page.evaluate("window.fraudTexts")
        assert "no suspicious card yet" in texts
        assert not [t for t in texts if "does not exist" in t or "waiting:" in t], texts
    finally:
        page_answered.set()
        stop.set()
        demo.join(60)
    assert not failed

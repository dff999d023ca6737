"""The simulated Sense HAT device against a running server."""

from __future__ import annotations

import json

import httpx
import pytest

from hispeed.demo.device import Led, SimulatedDevice, led_command
from tests.server.conftest import RunningServer


def test_led_pictures_and_colours() -> None:
    led = Led()
    led.show("up", "green")
    assert led.pixels[3] == (0, 255, 0)  # the arrow's tip, top middle
    assert led.pixels[0] == (0, 0, 0)
    led.show("left", "red")
    assert led.pixels[3 * 8] == (255, 0, 0)  # the tip on the left edge
    led.show("middle", "red")
    assert led.pixels[0] == led.pixels[63] == (255, 0, 0)  # a cross, corner to corner
    assert "██" in led.render()
    assert led_command(
        "device1", {"button": "pressed", "direction": "up", "device": "device1"}
    ) == (
        "up",
        "green",
    )
    assert led_command("device1", {"button": "held", "direction": "up", "device": "device1"}) == (
        "up",
        "red",
    )
    assert led_command("device1", {"button": "held", "direction": "up", "device": "device2"}) == (
        "up",
        "blue",
    )
    assert led_command("device1", {"direction": "middle", "device": "device1"}) == ("middle", "red")
    assert led_command("device1", {"direction": "left", "color": "yellow"}) == ("left", "yellow")


def test_a_device_sends_readings_and_events_and_shows_what_comes_back(
    server: RunningServer,
) -> None:
    shown: list[tuple[dict[str, object], list[tuple[int, int, int]]]] = []
    device = SimulatedDevice(
        "device1",
        server.url,
        rate=40,
        joystick_every=5,
        on_led=lambda d, led, event: shown.append((event, list(led.pixels))),
    )
    device.start()
    try:
        server.wait_for(lambda: device.events_sent >= 2 or device.error)
        assert device.error is None
        log_ = server.engine.log
        readings = [
            json.loads(v)
            for v in log_.read_table("device1", 0).column("value").to_pylist()
            if b"compass" in v
        ]
        assert readings
        assert set(readings[0]) == {"orentation", "compass", "gyroscope", "accelerometer"}
        assert log_.offsets("device1alerts", 0)[1] >= 1
        keys = set(log_.read_table("device1", 0).column("key").to_pylist())
        assert keys == {b"message", b"alert"}  # readings and joystick events, as the course
        # another device's held event on `alerts`: shown in blue
        event = {"button": "held", "direction": "left", "device": "device2"}
        httpx.post(f"{server.url}/topics/alerts?key=alert", json=[event]).raise_for_status()
        pixels = server.wait_for(lambda: next((p for e, p in shown if e == event), None))
        assert pixels[3 * 8] == (0, 0, 255)
        # a command on device1commands names its colour
        command = {"direction": "up", "color": "yellow"}
        httpx.post(f"{server.url}/topics/device1commands", json=[command]).raise_for_status()
        pixels = server.wait_for(lambda: next((p for e, p in shown if e == command), None))
        assert pixels[3] == (255, 255, 0)
    finally:
        device.stop()
    assert device.sent >= 5


def test_a_device_without_a_server_says_so() -> None:
    from hispeed.errors import HispeedError
    from hispeed.testing.services import free_port

    device = SimulatedDevice("device1", f"http://127.0.0.1:{free_port()}")
    with pytest.raises(HispeedError, match="could not subscribe"):
        device.start()
    device.stop()

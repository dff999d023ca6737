"""The service fixtures start real brokers that answer on loopback."""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt
import pytest
import redis

from hispeed.testing.services import Service


@pytest.mark.services
def test_redis_server_answers(redis_server: Service) -> None:
    client = redis.Redis(host=redis_server.host, port=redis_server.port)
    assert client.ping() is True
    client.set("hispeed:probe", "1")
    assert client.get("hispeed:probe") == b"1"
    assert redis_server.url == f"redis://127.0.0.1:{redis_server.port}"


@pytest.mark.services
def test_mosquitto_round_trip(mosquitto_server: Service) -> None:
    received: list[bytes] = []
    subscribed = threading.Event()
    arrived = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_subscribe = lambda *args: subscribed.set()

    def on_message(_c: object, _u: object, message: mqtt.MQTTMessage) -> None:
        received.append(message.payload)
        arrived.set()

    client.on_message = on_message
    client.connect(mosquitto_server.host, mosquitto_server.port)
    client.loop_start()
    try:
        client.subscribe("devices/+/readings", qos=1)
        assert subscribed.wait(5)
        client.publish("devices/device1/readings", b'{"x": 1}', qos=1).wait_for_publish(5)
        assert arrived.wait(5)
    finally:
        client.loop_stop()
        client.disconnect()
    assert received == [b'{"x": 1}']

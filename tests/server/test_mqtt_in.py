"""The bridge's inbound subscriber (hispeed.server.mqtt_in) against a real mosquitto: packets
parsed in bulk, QoS 1 acknowledged only once the log has the messages."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.server.mqtt import MqttBridge
from hispeed.server.mqtt_in import Parsed, Subscriber, packet, parse
from hispeed.testing.services import Service
from tests.conftest import wait_for


def _publish(topic: str, payload: bytes, qos: int, packet_id: int = 0) -> bytes:
    body = len(topic).to_bytes(2, "big") + topic.encode()
    if qos:
        body += packet_id.to_bytes(2, "big")
    return packet(0x30 | (qos << 1), body + payload)


def test_parse_reads_every_whole_packet_and_keeps_a_partial_one() -> None:
    big = b"x" * 300  # a remaining length of two bytes
    data = (
        _publish("a/b", b'{"n":1}', 0)
        + _publish("a/c", big, 1, packet_id=7)
        + b"\xd0\x00"  # PINGRESP: ignored
        + _publish("a/d", b"{}", 1, packet_id=8)
    )
    buf = bytearray(data[:-3])
    out = Parsed()
    parse(buf, out)
    assert out.messages == [("a/b", b'{"n":1}'), ("a/c", big)]
    assert out.acks == [7]
    buf += data[-3:]
    parse(buf, out)
    assert out.messages[-1] == ("a/d", b"{}")
    assert out.acks == [7, 8]
    assert not buf


@pytest.fixture
def publisher(mosquitto_server: Service) -> Iterator[mqtt.Client]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.connect(mosquitto_server.host, mosquitto_server.port)
    client.loop_start()
    yield client
    client.disconnect()
    client.loop_stop()


@pytest.mark.services
def test_qos1_is_not_acknowledged_when_delivery_fails(
    mosquitto_server: Service, publisher: mqtt.Client
) -> None:
    """The first delivery fails: nothing is acknowledged, so the broker sends the message
    again to the session when it connects again; had the PUBACK gone out on receipt (as
    paho's callback does), the broker would have dropped it."""
    deliveries: list[list[tuple[str, bytes]]] = []
    subscribed = threading.Event()

    async def deliver(messages: list[tuple[str, bytes]]) -> None:
        deliveries.append(messages)
        if len(deliveries) == 1:
            raise OSError("the log is not there")

    sub = Subscriber(
        mosquitto_server.host,
        mosquitto_server.port,
        f"qos1-{uuid.uuid4().hex[:8]}",
        ["qos1test/#"],
        deliver,
        clean_session=False,  # the broker keeps what was not acknowledged for the session
        reconnect=(0.05, 0.2),
        on_subscribed=lambda refused: subscribed.set(),
    )
    sub.start()
    try:
        assert subscribed.wait(10)
        publisher.publish("qos1test/d1", b'{"x": 1}', qos=1).wait_for_publish(5)
        wait_for(lambda: len(deliveries) >= 2, timeout=15)
        assert deliveries[0] == [("qos1test/d1", b'{"x": 1}')]
        assert deliveries[1] == [("qos1test/d1", b'{"x": 1}')]  # sent again: never acked
    finally:
        sub.stop()


@pytest.mark.services
def test_bridged_qos1_messages_are_in_the_log_when_acknowledged(
    tmp_path: Path, mosquitto_server: Service
) -> None:
    """A device's QoS 1 publishes (fewer than mosquitto queues for a subscriber by default,
    1000, past which the broker drops): every one in the log once, each device's in the order
    it sent them."""
    engine = Engine(tmp_path / "data", fsync="never")
    engine.start()
    settings = Settings.load(
        None,
        env={},
        data_dir=tmp_path / "data",
        mqtt_broker=f"{mosquitto_server.host}:{mosquitto_server.port}",
        mqtt_in=("bulk/+/r=bulk",),
    )
    bridge = MqttBridge(engine, settings)
    bridge.start()
    device = mqtt.Client(CallbackAPIVersion.VERSION2)
    try:
        assert bridge.wait_connected(10)
        device.connect(mosquitto_server.host, mosquitto_server.port)
        device.loop_start()
        infos = [
            device.publish(f"bulk/d{i % 3}/r", f'{{"seq": {i}}}'.encode(), qos=1)
            for i in range(900)
        ]
        for info in infos:
            info.wait_for_publish(10)
        wait_for(lambda: bridge.stats()["messages_in"] == 900, timeout=30)
        table = engine.log.read_table("bulk", 0)
        keys = table.column("key").to_pylist()
        seqs = [int(v[8:-1]) for v in table.column("value").to_pylist()]
        assert sorted(seqs) == list(range(900))
        for d in range(3):  # each device's messages in the order it sent them
            mine = [s for k, s in zip(keys, seqs, strict=True) if k == f"d{d}".encode()]
            assert mine == sorted(mine)
            assert len(mine) == 300
    finally:
        device.disconnect()
        device.loop_stop()
        bridge.stop()
        engine.close()

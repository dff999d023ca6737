"""The MQTT bridge against a real mosquitto: in, through a query, and out again."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.errors import ConfigError, LogError
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.server.mqtt import GROUP, MqttBridge, MqttInRule, MqttOutRule, parse_broker
from hispeed.testing.services import Service, free_port, require_binary, stop, wait_for_port
from tests.conftest import wait_for

BridgeFactory = Callable[..., MqttBridge]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(tmp_path / "data", fsync="never")
    engine.start()
    yield engine
    engine.close()


@pytest.fixture
def bridge_factory(engine: Engine, tmp_path: Path) -> Iterator[BridgeFactory]:
    """Start bridges over `engine` to a broker with settings overrides; all stopped at the end."""
    started: list[MqttBridge] = []

    def start(broker: Service | str, connect: bool = True, **overrides: Any) -> MqttBridge:
        address = broker if isinstance(broker, str) else f"{broker.host}:{broker.port}"
        settings = Settings.load(
            None, env={}, data_dir=tmp_path / "data", mqtt_broker=address, **overrides
        )
        bridge = MqttBridge(engine, settings)
        bridge.start()
        started.append(bridge)
        if connect:
            assert bridge.wait_connected(10), "the bridge did not connect within 10 s"
        return bridge

    yield start
    for b in started:
        b.stop()


class Device:
    """An MQTT client of the test: publishes, and collects what its subscriptions receive."""

    def __init__(self, broker: Service) -> None:
        self.received: queue.Queue[tuple[str, Any]] = queue.Queue()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2)
        self.client.on_message = lambda c, u, m: self.received.put((m.topic, json.loads(m.payload)))
        self.granted = threading.Event()
        self.client.on_subscribe = lambda c, u, mid, codes, p: self.granted.set()
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def subscribe(self, mqtt_filter: str) -> None:
        self.granted.clear()
        result, _ = self.client.subscribe(mqtt_filter, qos=1)
        assert result == mqtt.MQTT_ERR_SUCCESS
        assert self.granted.wait(5), f"the broker did not grant {mqtt_filter!r}"

    def publish(self, mqtt_topic: str, payload: bytes | str | dict[str, Any]) -> None:
        data = json.dumps(payload) if isinstance(payload, dict) else payload
        self.client.publish(mqtt_topic, data, qos=1).wait_for_publish(5)

    def next(self, timeout: float = 10) -> tuple[str, Any]:
        return self.received.get(timeout=timeout)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def device_factory() -> Iterator[Callable[[Service], Device]]:
    devices: list[Device] = []

    def connect(broker: Service) -> Device:
        devices.append(Device(broker))
        return devices[-1]

    yield connect
    for d in devices:
        d.close()


def _records(engine: Engine, topic: str) -> list[tuple[bytes | None, Any]]:
    try:
        table = engine.log.read_table(topic, 0)
    except LogError:
        return []
    return [
        (k, json.loads(v))
        for k, v in zip(
            table.column("key").to_pylist(), table.column("value").to_pylist(), strict=True
        )
    ]


@pytest.mark.services
def test_round_trip_through_a_persistent_query(
    engine: Engine,
    mosquitto_server: Service,
    bridge_factory: BridgeFactory,
    device_factory: Callable[[Service], Device],
) -> None:
    engine.execute(
        "CREATE STREAM readings (device STRING KEY, temp DOUBLE) "
        "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
        "CREATE STREAM commands WITH (kafka_topic='commands', value_format='JSON') AS "
        "SELECT device, temp, 'cool' AS action FROM readings WHERE temp > 30 EMIT CHANGES;"
    )
    bridge = bridge_factory(
        mosquitto_server,
        mqtt_in=("rt/devices/+/readings=readings",),
        mqtt_out=("commands=rt/devices/{KEY}/commands",),
    )
    device = device_factory(mosquitto_server)
    device.subscribe("rt/devices/+/commands")
    device.publish("rt/devices/device1/readings", {"temp": 25.0})
    device.publish("rt/devices/device1/readings", {"temp": 35.5})
    device.publish("rt/devices/device2/readings", {"temp": 31.0})
    assert device.next() == ("rt/devices/device1/commands", {"TEMP": 35.5, "ACTION": "cool"})
    assert device.next() == ("rt/devices/device2/commands", {"TEMP": 31.0, "ACTION": "cool"})
    assert device.received.empty()
    wait_for(lambda: bridge.stats()["messages_out"] == 2)  # counted once acknowledged
    stats = bridge.stats()
    assert stats["connected"] == 1
    assert stats["messages_in"] == 3
    assert stats["errors"] == 0


@pytest.mark.services
def test_a_malformed_payload_goes_to_the_processing_log_and_the_rest_go_on(
    engine: Engine,
    mosquitto_server: Service,
    bridge_factory: BridgeFactory,
    device_factory: Callable[[Service], Device],
) -> None:
    bridge = bridge_factory(mosquitto_server, mqtt_in=("bad/+/readings=readings",))
    device = device_factory(mosquitto_server)
    device.publish("bad/d1/readings", {"x": 1})
    device.publish("bad/d1/readings", b'{"x": 2')
    device.publish("bad/d2/readings", b"")
    device.publish("bad/d1/readings", {"x": 3})
    wait_for(lambda: len(_records(engine, "readings")) == 2)
    assert _records(engine, "readings") == [(b"d1", {"x": 1}), (b"d1", {"x": 3})]
    # a group's bad messages reach the processing log just after its good ones reach their
    # topic: wait for them too (a read at once missed them on a loaded machine)
    errors = wait_for(
        lambda: (e := [v for _, v in _records(engine, PROCESSING_LOG)]) and len(e) == 2 and e
    )
    assert [e["mqtt_topic"] for e in errors] == ["bad/d1/readings", "bad/d2/readings"]
    assert all(e["topic"] == "readings" for e in errors)
    assert errors[0]["type"] == "RECORD_PROCESSING_ERROR"
    assert errors[0]["message"].startswith("MQTT message on 'bad/d1/readings' is not JSON (")
    assert errors[0]["message"].endswith("it was not appended to 'readings'")
    assert bridge.stats()["errors"] == 2
    assert bridge.stats()["messages_in"] == 2


@pytest.mark.services
def test_keys_come_from_the_wildcards(
    engine: Engine,
    mosquitto_server: Service,
    bridge_factory: BridgeFactory,
    device_factory: Callable[[Service], Device],
) -> None:
    bridge_factory(
        mosquitto_server,
        mqtt_in=("keys/+/readings/+=readings", "keys/alerts/#=alerts", "keys/plain=plain"),
    )
    device = device_factory(mosquitto_server)
    device.publish("keys/dev7/readings/temp", {"x": 1})
    device.publish("keys/alerts/site1/room2", {"x": 2})
    device.publish("keys/plain", {"x": 3})
    wait_for(lambda: all(_records(engine, t) for t in ("readings", "alerts", "plain")))
    assert _records(engine, "readings") == [(b"dev7", {"x": 1})]
    assert _records(engine, "alerts") == [(b"site1/room2", {"x": 2})]
    assert _records(engine, "plain") == [(None, {"x": 3})]


@pytest.mark.services
def test_templates_fill_value_fields_and_bad_records_go_to_the_processing_log(
    engine: Engine,
    mosquitto_server: Service,
    bridge_factory: BridgeFactory,
    device_factory: Callable[[Service], Device],
) -> None:
    engine.log.create_topic("alarms", 1)
    engine.log.append("alarms", [(b"early", b'{"site": "s0"}')])  # before the start: not sent
    bridge = bridge_factory(mosquitto_server, mqtt_out=("alarms=tpl/{SITE}/alarms/{KEY}",))
    device = device_factory(mosquitto_server)
    device.subscribe("tpl/#")
    engine.log.append(
        "alarms",
        [
            (b"a1", b'{"site": "s1", "level": 3}'),
            (b"a2", b'{"level": 4}'),  # no site
            (b"a3", None),  # a tombstone: not published
            (b"a4", b'{"SITE": 7}'),
        ],
    )
    assert device.next() == ("tpl/s1/alarms/a1", {"site": "s1", "level": 3})
    assert device.next() == ("tpl/7/alarms/a4", {"SITE": 7})
    errors = wait_for(lambda: [v for _, v in _records(engine, PROCESSING_LOG)])
    assert errors[0]["message"] == (
        "record not published to MQTT: 'tpl/{SITE}/alarms/{KEY}' needs field SITE: "
        "the value has none"
    )
    assert (errors[0]["topic"], errors[0]["offset"]) == ("alarms", 2)
    wait_for(lambda: bridge.stats()["messages_out"] == 2)
    assert bridge.stats()["errors"] == 1


@pytest.mark.services
def test_a_restart_resumes_where_the_bridge_stopped(
    engine: Engine,
    mosquitto_server: Service,
    bridge_factory: BridgeFactory,
    device_factory: Callable[[Service], Device],
) -> None:
    engine.log.create_topic("out", 1)
    settings = {"mqtt_out": ("out=resume/{KEY}",)}
    device = device_factory(mosquitto_server)
    device.subscribe("resume/#")
    first = bridge_factory(mosquitto_server, **settings)
    engine.log.append("out", [(b"a", b"1"), (b"b", b"2")])
    assert [device.next()[0], device.next()[0]] == ["resume/a", "resume/b"]
    wait_for(lambda: engine.log.committed_offsets(GROUP).get(("out", 0)) == 2)
    first.stop()
    engine.log.append("out", [(b"c", b"3")])  # while no bridge runs
    bridge_factory(mosquitto_server, **settings)
    engine.log.append("out", [(b"d", b"4")])
    assert [device.next()[0], device.next()[0]] == ["resume/c", "resume/d"]
    # a later record as the marker: once it is through, a resend of a or b would be too
    engine.log.append("out", [(b"e", b"5")])
    assert device.next()[0] == "resume/e"
    assert device.received.empty()  # a and b were not sent again


@pytest.fixture
def restartable_mosquitto() -> Iterator[Callable[[], Service]]:
    """A mosquitto of this test's own; calling it (re)starts the broker on the same port."""
    binary = require_binary("mosquitto", "mosquitto")
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="hispeed-mosquitto-"))
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    procs: list[subprocess.Popen[bytes]] = []

    def restart() -> Service:
        if procs:
            stop(procs[-1])
        proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        procs.append(proc)
        wait_for_port(port, proc, "mosquitto")
        return Service("mosquitto", "127.0.0.1", port, proc.pid)

    yield restart
    stop(procs[-1])
    shutil.rmtree(workdir, ignore_errors=True)


@pytest.mark.services
def test_the_bridge_reconnects_after_the_broker_restarts(
    engine: Engine,
    restartable_mosquitto: Callable[[], Service],
    bridge_factory: BridgeFactory,
    device_factory: Callable[[Service], Device],
) -> None:
    broker = restartable_mosquitto()
    bridge = bridge_factory(broker, mqtt_in=("re/+=readings",))
    restartable_mosquitto()
    wait_for(lambda: bridge.stats()["connects"] == 2, timeout=20)
    assert bridge.wait_connected(10)
    device_factory(broker).publish("re/d1", {"x": 1})
    wait_for(lambda: _records(engine, "readings") == [(b"d1", {"x": 1})])


def test_an_unreachable_broker_is_retried_and_stop_is_prompt(
    bridge_factory: BridgeFactory,
) -> None:
    bridge = bridge_factory(f"127.0.0.1:{free_port()}", connect=False, mqtt_in=("a/+=a",))
    assert not bridge.wait_connected(0.5)
    assert bridge.stats()["connected"] == 0
    started = time.monotonic()
    bridge.stop()
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    ("text", "expected"),
    [("localhost:1884", ("localhost", 1884)), ("broker", ("broker", 1883))],
)
def test_parse_broker(text: str, expected: tuple[str, int]) -> None:
    assert parse_broker(text) == expected


@pytest.mark.parametrize(
    ("settings", "error"),
    [
        ({"mqtt_broker": "host:port"}, r"mqtt_broker cannot be 'host:port': write HOST:PORT"),
        ({"mqtt_in": ("a/b",)}, r"mqtt_in entry 'a/b' is not LEFT=RIGHT"),
        ({"mqtt_in": ("a/#/b=t",)}, r"# can only be the last level"),
        ({"mqtt_in": ("a/b+=t",)}, r"a wildcard \(\+ or #\) must be a whole level"),
        ({"mqtt_in": ("a/+=no topic",)}, r"invalid topic name 'no topic'"),
        ({"mqtt_out": ("t=a/{KEY!r}",)}, r"\{KEY\} is not a field: write \{KEY\} or \{COLUMN\}"),
        ({"mqtt_out": ("t=a/+/{KEY}",)}, r"a published MQTT topic cannot hold \+ or #"),
        ({"mqtt_out": ("t=a/{KEY",)}, r"the MQTT topic template is malformed"),
        ({}, r"has nothing to do: set mqtt_in"),
    ],
)
def test_bad_settings_say_what_to_write(
    engine: Engine, tmp_path: Path, settings: dict[str, Any], error: str
) -> None:
    values = {"mqtt_broker": "localhost:1883", **settings}
    with pytest.raises((ConfigError, LogError), match=error):
        MqttBridge(engine, Settings.load(None, env={}, data_dir=tmp_path, **values))


def test_rules_key_and_fill_topics() -> None:
    rule = MqttInRule.parse("devices/+/x/+=readings")
    assert rule.matches("devices/d1/x/y")
    assert not rule.matches("devices/d1/z/y")
    assert rule.key("devices/d1/x/y") == b"d1"
    out = MqttOutRule.parse("commands = devices/{KEY}/{kind}")
    assert out.fields == ("KEY", "kind")
    assert out.mqtt_topic(b"d1", {"KIND": "reboot"}) == "devices/d1/reboot"
    with pytest.raises(ConfigError):
        MqttOutRule.parse("commands")

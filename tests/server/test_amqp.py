"""The AMQP bridge against a real RabbitMQ (Debian's rabbitmq-server): in, through a query, and
out again; bad messages; acknowledgement only after the log has a message; a broker killed
and restarted while messages flow. The test's side of RabbitMQ is aiormq, a client written
apart from the bridge's own connection (`hispeed.server.amqp_wire`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import aiormq
import httpx
import pytest
from pamqp.commands import Basic
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect
from websockets.typing import Subprotocol

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.errors import ConfigError, LogError
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.server import amqp as amqp_module
from hispeed.server.amqp import AmqpBridge, AmqpInRule, AmqpOutRule, Backoff
from hispeed.testing.rabbitmq import RabbitBroker, RabbitUnavailableError
from hispeed.testing.server import ServerFactory
from hispeed.testing.services import unavailable
from tests.conftest import wait_for

BridgeFactory = Callable[..., AmqpBridge]


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = Engine(tmp_path / "data", fsync="never")
    engine.start()
    yield engine
    engine.close()


@pytest.fixture
def bridge_factory(engine: Engine, tmp_path: Path) -> Iterator[BridgeFactory]:
    """Start bridges over `engine` with settings overrides; all stopped at the end."""
    started: list[AmqpBridge] = []

    def start(url: str, connect: bool = True, **overrides: Any) -> AmqpBridge:
        settings = Settings.load(
            None, env={}, data_dir=tmp_path / "data", amqp_url=url, **overrides
        )
        bridge = AmqpBridge(engine, settings)
        bridge.start()
        started.append(bridge)
        if connect:
            assert bridge.wait_connected(30), "the bridge did not connect within 30 s"
        return bridge

    yield start
    for b in started:
        b.stop()


def _run(coro: Any) -> Any:
    return asyncio.run(coro)


async def _publish(
    url: str,
    exchange: str,
    messages: list[tuple[str, bytes]],
    *,
    declare: bool = True,
    ids: list[str | None] | None = None,
) -> None:
    """Publish persistent messages with confirms (aiormq), each confirmed; `ids`: their
    message_id properties."""
    conn = await aiormq.connect(url)
    try:
        ch = await conn.channel(publisher_confirms=True)
        if declare and exchange:
            await ch.exchange_declare(exchange, exchange_type="topic", durable=True)
        for i, (rk, body) in enumerate(messages):  # one at a time: in order
            props = Basic.Properties(
                delivery_mode=2,
                message_id=ids[i] if ids else None,
                content_type="application/json",
                headers={"source": "test", "n": i},
                correlation_id="c",
            )
            confirm = await ch.basic_publish(
                body, exchange=exchange, routing_key=rk, properties=props
            )
            assert isinstance(confirm, Basic.Ack)
    finally:
        await conn.close()


async def _declare_queue(url: str, queue: str, exchange: str, binding: str) -> None:
    conn = await aiormq.connect(url)
    try:
        ch = await conn.channel()
        await ch.exchange_declare(exchange, exchange_type="topic", durable=True)
        await ch.queue_declare(queue, durable=True)
        await ch.queue_bind(queue, exchange, routing_key=binding)
    finally:
        await conn.close()


async def _queue_depth(url: str, queue: str) -> int:
    """Messages ready in the queue (not delivered to a consumer)."""
    conn = await aiormq.connect(url)
    try:
        ch = await conn.channel()
        ok = await ch.queue_declare(queue, passive=True)
        return int(ok.message_count or 0)
    finally:
        await conn.close()


async def _consume(url: str, queue: str, n: int, timeout: float = 30) -> list[Any]:
    """The next `n` messages of a queue (acknowledged), as aiormq's DeliveredMessage."""
    conn = await aiormq.connect(url)
    got: list[Any] = []
    done = asyncio.Event()
    try:
        ch = await conn.channel()

        async def on_message(message: Any) -> None:
            got.append(message)
            await ch.basic_ack(message.delivery_tag)
            if len(got) >= n:
                done.set()

        await ch.basic_consume(queue, on_message)
        await asyncio.wait_for(done.wait(), timeout)
        return got
    finally:
        await conn.close()


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


def test_the_waits_between_attempts_start_short_again_after_a_connection() -> None:
    # the bridge used to keep doubling across outages: after a broker restart it could wait
    # up to RECONNECT_MAX_S with the broker back
    backoff = Backoff()
    waits = [backoff.next() for _ in range(7)]
    assert waits == [1, 2, 4, 8, 16, 30, 30]
    backoff.reset()  # connected again
    assert [backoff.next() for _ in range(3)] == [1, 2, 4]


def test_rules() -> None:
    rule = AmqpInRule.parse("sensors/devices.*.readings = readings")
    assert (rule.exchange, rule.binding) == ("sensors", "devices.*.readings")
    assert rule.topic == "readings"
    assert rule.queue == "hispeed.in.readings.sensors.devices._star_.readings"
    assert rule.key("devices.d1.readings") == b"d1"
    assert AmqpInRule.parse("alerts/alerts.#=alerts").key("alerts.a.b") == b"a.b"
    assert AmqpInRule.parse("alerts/alerts.x=alerts").key("alerts.x") is None
    queue = AmqpInRule.parse("queue:orders=orders")
    assert (queue.queue, queue.exchange, queue.key("o.1")) == ("orders", "", b"o.1")
    out = AmqpOutRule.parse("commands = actions/cmd.{KEY}.{kind}")
    assert out.routing_key(b"d1", {"KIND": "reboot"}) == "cmd.d1.reboot"
    for bad, message in [
        ("readings", "is not LEFT=RIGHT"),
        ("sensors=readings", "EXCHANGE/BINDING or queue:NAME"),
        ("sensors/a.#.b=readings", "# only the last one"),
        ("sensors/a.x*=readings", "must be whole words"),
        ("bad name/a=readings", "the exchange 'bad name'"),
    ]:
        with pytest.raises(ConfigError, match=message):
            AmqpInRule.parse(bad)
    with pytest.raises(ConfigError, match="EXCHANGE/ROUTING_KEY"):
        AmqpOutRule.parse("commands=actions")
    with pytest.raises(ConfigError, match="not a field"):
        AmqpOutRule.parse("commands=actions/cmd.{0}")


def test_settings_are_checked(engine: Engine, tmp_path: Path) -> None:
    def settings(**kw: Any) -> Settings:
        return Settings.load(None, env={}, data_dir=tmp_path, **kw)

    url = "amqp://guest:guest@127.0.0.1:5999/"
    with pytest.raises(ConfigError, match="nothing to do"):
        AmqpBridge(engine, settings(amqp_url=url))
    with pytest.raises(ConfigError, match="amqp_url cannot be"):
        AmqpBridge(engine, settings(amqp_url="http://x", amqp_in=("queue:q=t",)))
    with pytest.raises(ConfigError, match="amqp_prefetch must be"):
        AmqpBridge(engine, settings(amqp_url=url, amqp_in=("queue:q=t",), amqp_prefetch=0))


@pytest.mark.services
def test_round_trip_through_a_persistent_query(
    engine: Engine, rabbitmq_server: RabbitBroker, bridge_factory: BridgeFactory
) -> None:
    url = rabbitmq_server.url
    engine.execute(
        "CREATE STREAM rt_readings (device STRING KEY, temp DOUBLE) "
        "WITH (kafka_topic='rt_readings', value_format='JSON', partitions=1);"
        "CREATE STREAM rt_commands WITH (kafka_topic='rt_commands', value_format='JSON') AS "
        "SELECT device, temp, 'cool' AS action FROM rt_readings WHERE temp > 30 EMIT CHANGES;"
    )
    _run(_declare_queue(url, "rt-out", "rt-actions", "cmd.#"))
    bridge = bridge_factory(
        url,
        amqp_in=("rt-sensors/devices.*.readings=rt_readings",),
        amqp_out=("rt_commands=rt-actions/cmd.{KEY}.{action}",),
    )
    _run(
        _publish(
            url,
            "rt-sensors",
            [
                ("devices.device1.readings", b'{"temp": 25.0}'),
                ("devices.device1.readings", b'{"temp": 35.5}'),
                ("devices.device2.readings", b'{"temp": 31.0}'),
            ],
        )
    )
    got = _run(_consume(url, "rt-out", 2))
    assert [(m.routing_key, json.loads(m.body)) for m in got] == [
        ("cmd.device1.cool", {"TEMP": 35.5, "ACTION": "cool"}),
        ("cmd.device2.cool", {"TEMP": 31.0, "ACTION": "cool"}),
    ]
    # the dedup id names the record's place in the log; persistent
    assert [m.header.properties.message_id for m in got] == ["rt_commands/0/0", "rt_commands/0/1"]
    assert {m.header.properties.delivery_mode for m in got} == {2}
    assert [(k, v["temp"]) for k, v in _records(engine, "rt_readings")] == [
        (b"device1", 25.0),
        (b"device1", 35.5),
        (b"device2", 31.0),
    ]
    wait_for(lambda: bridge.stats()["messages_out"] == 2)
    assert bridge.stats() | {"connects": 1} == {
        "connected": 1,
        "connects": 1,
        "messages_in": 3,
        "messages_out": 2,
        "errors": 0,
        "duplicates": 0,
    }
    # acknowledged once appended: nothing waits in the bridge's queue
    assert _run(_queue_depth(url, "hispeed.in.rt_readings.rt-sensors.devices._star_.readings")) == 0


@pytest.mark.services
def test_bad_messages_go_to_the_processing_log_and_the_rest_go_on(
    engine: Engine, rabbitmq_server: RabbitBroker, bridge_factory: BridgeFactory
) -> None:
    url = rabbitmq_server.url
    bridge = bridge_factory(url, amqp_in=("queue:bad-in=bad_readings",))
    _run(
        _publish(
            url,
            "",
            [("bad-in", b'{"temp": 1}'), ("bad-in", b"not json {"), ("bad-in", b'{"temp": 2}')],
        )
    )
    wait_for(lambda: len(_records(engine, "bad_readings")) == 2)
    assert [v for _, v in _records(engine, "bad_readings")] == [{"temp": 1}, {"temp": 2}]
    assert [k for k, _ in _records(engine, "bad_readings")] == [b"bad-in", b"bad-in"]
    errors = wait_for(lambda: [v for _, v in _records(engine, PROCESSING_LOG)])
    assert len(errors) == 1
    assert errors[0]["query"] == "amqp bridge"
    assert errors[0]["queue"] == "bad-in"
    assert errors[0]["topic"] == "bad_readings"
    assert "is not JSON" in errors[0]["message"]
    # the bad message is acknowledged too (it is in the processing log), and the bridge goes on
    assert _run(_queue_depth(url, "bad-in")) == 0
    _run(_publish(url, "", [("bad-in", b'{"temp": 3}')]))
    wait_for(lambda: len(_records(engine, "bad_readings")) == 3)
    assert bridge.stats()["errors"] == 1


@pytest.mark.services
def test_records_that_cannot_fill_the_routing_key_go_to_the_processing_log(
    engine: Engine, rabbitmq_server: RabbitBroker, bridge_factory: BridgeFactory
) -> None:
    url = rabbitmq_server.url
    _run(_declare_queue(url, "tpl-out", "tpl-actions", "#"))
    engine.log.create_topic("tpl_topic", 1)
    bridge = bridge_factory(url, amqp_out=("tpl_topic=tpl-actions/do.{KEY}.{kind}",))
    engine.log.append(
        "tpl_topic",
        [
            (b"d1", b"not json"),  # no fields to take
            (b"d2", b'{"other": 1}'),  # no field kind
            (None, b'{"kind": "x"}'),  # no key
            (b"d3", None),  # a tombstone: not published
            (b"d4", b'{"KIND": "reboot"}'),
        ],
    )
    got = _run(_consume(url, "tpl-out", 1))
    assert [(m.routing_key, m.header.properties.message_id) for m in got] == [
        ("do.d4.reboot", "tpl_topic/0/4")
    ]
    errors = wait_for(lambda: (e := _records(engine, PROCESSING_LOG)) and len(e) == 3 and e)
    assert [(v["offset"], v["query"]) for _, v in errors] == [
        (0, "amqp bridge"),
        (1, "amqp bridge"),
        (2, "amqp bridge"),
    ]
    assert "not JSON" in errors[0][1]["message"]
    assert "needs field kind" in errors[1][1]["message"]
    assert "needs {KEY}" in errors[2][1]["message"]
    wait_for(lambda: bridge.stats()["errors"] == 3)


@pytest.mark.services
def test_a_message_stays_in_rabbitmq_until_the_log_has_it(
    engine: Engine, rabbitmq_server: RabbitBroker, bridge_factory: BridgeFactory
) -> None:
    url = rabbitmq_server.url
    # no topic, and none created on a first append: the bridge cannot append
    bridge = bridge_factory(url, amqp_in=("queue:ack-in=ack_topic",), auto_create_topics=False)
    _run(_publish(url, "", [("ack-in", b'{"n": 1}'), ("ack-in", b'{"n": 2}')]))
    # not acknowledged: RabbitMQ still holds both (ready again after each failed attempt)
    wait_for(lambda: bridge.stats()["connects"] >= 2, timeout=30)
    assert _records(engine, "ack_topic") == []
    engine.log.create_topic("ack_topic", 1)
    wait_for(lambda: len(_records(engine, "ack_topic")) == 2, timeout=60)
    assert [v for _, v in _records(engine, "ack_topic")] == [{"n": 1}, {"n": 2}]
    wait_for(lambda: _run(_queue_depth(url, "ack-in")) == 0)


@pytest.mark.services
def test_a_silent_broker_is_left_after_two_heartbeats(
    engine: Engine,
    rabbitmq_server: RabbitBroker,
    bridge_factory: BridgeFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A broker that hangs (SIGSTOP: the connection stays open, nothing comes) is noticed by
    its missing heartbeats; the bridge connects again once it answers."""
    url = rabbitmq_server.url
    monkeypatch.setattr(amqp_module, "HEARTBEAT_S", 1)
    bridge = bridge_factory(url, amqp_in=("queue:hb-in=hb_topic",))
    os.kill(rabbitmq_server.pid, signal.SIGSTOP)
    try:
        wait_for(lambda: bridge.stats()["connected"] == 0, timeout=30)
    finally:
        os.kill(rabbitmq_server.pid, signal.SIGCONT)
    wait_for(lambda: bridge.stats()["connected"] == 1, timeout=90)
    assert bridge.stats()["connects"] >= 2
    _run(_publish(url, "", [("hb-in", b'{"n": 1}')]))
    wait_for(lambda: len(_records(engine, "hb_topic")) == 1, timeout=30)


@pytest.mark.services
def test_a_message_id_appended_already_is_dropped(
    engine: Engine, rabbitmq_server: RabbitBroker, bridge_factory: BridgeFactory
) -> None:
    url = rabbitmq_server.url
    bridge = bridge_factory(url, amqp_in=("queue:dup-in=dup_topic",))
    # the ids come after other properties (content type, a header table, correlation id):
    # each is found where AMQP's property order puts it
    bodies = [b'{"n": 1}', b'{"n": 1}', b'{"n": 2}', b'{"n": 3}', b'{"n": 3}']
    _run(_publish(url, "", [("dup-in", b) for b in bodies], ids=["a", "a", "b", None, None]))
    wait_for(lambda: bridge.stats()["messages_in"] + bridge.stats()["duplicates"] == 5)
    _run(_publish(url, "", [("dup-in", b'{"n": 1}')], ids=["a"]))  # a resend, later
    wait_for(lambda: bridge.stats()["duplicates"] == 2)
    # without an id, nothing is dropped
    assert [v["n"] for _, v in _records(engine, "dup_topic")] == [1, 2, 3, 3]


@pytest.mark.services
@pytest.mark.slow
def test_a_broker_restart_mid_stream_loses_nothing(
    engine: Engine, bridge_factory: BridgeFactory
) -> None:
    try:
        broker = RabbitBroker(web_stomp=False)
    except RabbitUnavailableError as e:  # as the session's fixture does
        unavailable(str(e))
    broker.start()
    try:
        _restart_mid_stream(engine, broker, bridge_factory)
    finally:
        broker.stop()


def _restart_mid_stream(engine: Engine, broker: RabbitBroker, factory: BridgeFactory) -> None:
    url = broker.url
    n = 3000
    engine.log.create_topic("rs_out", 1)
    _run(_declare_queue(url, "rs-collect", "rs-out", "#"))
    bridge = factory(url, amqp_in=("rs-in/m.*=rs_in",), amqp_out=("rs_out=rs-out/r.{KEY}",))
    sent = threading.Event()
    killed = threading.Event()
    returned: list[int] = []  # messages RabbitMQ had no queue for (mandatory): sent again

    async def produce() -> None:
        """Publish n messages with confirms; after the broker comes back, send again what
        was not confirmed (its own at-least-once)."""
        i = 0
        while i < n:
            try:
                conn = await aiormq.connect(url)
                ch = await conn.channel(publisher_confirms=True)
                await ch.exchange_declare("rs-in", exchange_type="topic", durable=True)
                while i < n:
                    batch = range(i, min(i + 100, n))
                    confirms = await asyncio.gather(
                        *(
                            ch.basic_publish(
                                json.dumps({"i": j}).encode(),
                                exchange="rs-in",
                                routing_key=f"m.{j}",
                                properties=Basic.Properties(delivery_mode=2, message_id=f"m{j}"),
                                mandatory=True,
                            )
                            for j in batch
                        ),
                        return_exceptions=True,
                    )
                    unroutable = [
                        c for c in confirms if isinstance(c, aiormq.exceptions.PublishError)
                    ]
                    if unroutable:  # not in the bridge's queue: the batch goes again
                        returned.append(len(unroutable))
                        raise ConnectionError(f"{len(unroutable)} messages returned")
                    for c in confirms:
                        if isinstance(c, BaseException):
                            raise c
                    assert all(isinstance(c, Basic.Ack) for c in confirms)
                    pairs = [(str(j).encode(), b'{"o": %d}' % j) for j in batch]
                    engine.log.append("rs_out", pairs)
                    i = batch[-1] + 1
                    if i >= n // 3 and not killed.is_set():
                        killed.set()
                        await asyncio.sleep(0)
                await conn.close()
            except (ConnectionError, aiormq.exceptions.AMQPError, OSError, RuntimeError):
                await asyncio.sleep(0.2)
        sent.set()

    producer = threading.Thread(target=lambda: _run(produce()), daemon=True)
    producer.start()
    assert killed.wait(60)
    broker.kill()  # a crash: what RabbitMQ confirmed is on disk
    broker.start()
    producer.join(180)
    assert sent.is_set(), "the producer did not get all its messages confirmed"

    def ids_in() -> set[int]:
        return {v["i"] for _, v in _records(engine, "rs_in")}

    try:
        wait_for(lambda: ids_in() == set(range(n)), timeout=120)
    except AssertionError:
        missing = sorted(set(range(n)) - ids_in())
        queue = AmqpInRule.parse("rs-in/m.*=rs_in").queue
        depth = _run(_queue_depth(url, queue))
        raise AssertionError(
            f"{len(missing)} of {n} ids not in rs_in (first {missing[:10]}, last "
            f"{missing[-3:]}); bridge {bridge.stats()}; {depth} ready in {queue}; batches "
            f"returned unroutable: {returned}; the broker's log said:\n{_broker_log(broker)}"
        ) from None
    # no duplicates in: what RabbitMQ delivered again (appended, not yet acknowledged at the
    # kill) or the producer sent again (not yet confirmed) is dropped by its message_id
    keys = [k for k, _ in _records(engine, "rs_in")]
    assert sorted(keys) == sorted(str(j).encode() for j in range(n))
    # out: every record published, possibly twice, each carrying its dedup id
    out = _run(_consume(url, "rs-collect", n, timeout=120))
    by_id: dict[str, set[bytes]] = {}
    for m in out:
        by_id.setdefault(m.header.properties.message_id, set()).add(m.body)
    while len(by_id) < n:  # duplicates took some of the n: read on
        more = _run(_consume(url, "rs-collect", 1, timeout=60))
        for m in more:
            by_id.setdefault(m.header.properties.message_id, set()).add(m.body)
    assert set(by_id) == {f"rs_out/0/{j}" for j in range(n)}
    assert all(by_id[f"rs_out/0/{j}"] == {b'{"o": %d}' % j} for j in range(n))
    assert bridge.stats()["connects"] >= 2


def _broker_log(broker: RabbitBroker) -> str:
    """The broker's warnings and errors (recovery after the kill, dropped messages)."""
    lines = [
        line
        for path in sorted((broker.workdir / "log").glob("*.log"))
        for line in path.read_text(errors="replace").splitlines()
        if "[warning]" in line or "[error]" in line or "dropped" in line
    ]
    return "\n".join(lines[-40:])


class StompOverWebSocket:
    """A browser's side of "WebSockets over AMQP": STOMP 1.2 frames over a WebSocket to
    RabbitMQ's Web-STOMP plugin (what stomp.js sends), through the websockets library."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.send(
            "CONNECT",
            {
                "accept-version": "1.2",
                "host": "/",
                "login": "guest",
                "passcode": "guest",
                "heart-beat": "0,0",
            },
        )
        command, _, _ = self.receive()
        assert command == "CONNECTED"

    def send(self, command: str, headers: dict[str, str], body: str = "") -> None:
        lines = [command, *(f"{k}:{v}" for k, v in headers.items())]
        self.ws.send("\n".join(lines) + "\n\n" + body + "\x00")

    def receive(self, timeout: float = 30) -> tuple[str, dict[str, str], str]:
        """The next frame (heart-beat newlines skipped): command, headers, body."""
        while True:
            data = self.ws.recv(timeout)
            text = data.decode() if isinstance(data, bytes) else data
            text = text.lstrip("\n")
            if text:
                break
        head, _, body = text.partition("\n\n")
        command, *lines = head.split("\n")
        headers = dict(line.split(":", 1) for line in lines)
        return command, headers, body.partition("\x00")[0]


@pytest.mark.services
def test_browsers_reach_hispeed_over_web_stomp(
    engine: Engine, rabbitmq_server: RabbitBroker, bridge_factory: BridgeFactory
) -> None:
    """A WebSocket client speaking STOMP to RabbitMQ's Web-STOMP plugin sends readings that
    the bridge appends to a topic, and sees the records a query derives, as the bridge
    publishes them, each with its dedup id."""
    engine.execute(
        "CREATE STREAM ws_readings (device STRING KEY, temp DOUBLE) "
        "WITH (kafka_topic='ws_readings', value_format='JSON', partitions=1);"
        "CREATE STREAM ws_alerts WITH (kafka_topic='ws_alerts', value_format='JSON') AS "
        "SELECT device, temp FROM ws_readings WHERE temp > 30 EMIT CHANGES;"
    )
    bridge = bridge_factory(
        rabbitmq_server.url,
        amqp_in=("ws-sensors/devices.*=ws_readings",),
        amqp_out=("ws_alerts=ws-alerts/alert.{KEY}",),
    )
    url = f"ws://127.0.0.1:{rabbitmq_server.stomp_port}/ws"
    with ws_connect(url, subprotocols=[Subprotocol("v12.stomp")]) as ws:
        browser = StompOverWebSocket(ws)
        browser.send(
            "SUBSCRIBE",
            {"id": "0", "destination": "/exchange/ws-alerts/alert.*", "receipt": "subscribed"},
        )
        command, headers, _ = browser.receive()
        assert (command, headers.get("receipt-id")) == ("RECEIPT", "subscribed")
        for device, temp in (("d1", 25.0), ("d2", 35.5)):
            browser.send(
                "SEND",
                {
                    "destination": f"/exchange/ws-sensors/devices.{device}",
                    "content-type": "application/json",
                },
                json.dumps({"temp": temp}),
            )
        command, headers, body = browser.receive()
        assert command == "MESSAGE"
        assert json.loads(body) == {"TEMP": 35.5}
        assert headers["destination"] == "/exchange/ws-alerts/alert.d2"
        # the AMQP message_id, as Web-STOMP hands it to STOMP clients
        assert headers["amqp-message-id"] == "ws_alerts/0/0"
    assert [(k, v) for k, v in _records(engine, "ws_readings")] == [
        (b"d1", {"temp": 25.0}),
        (b"d2", {"temp": 35.5}),
    ]
    wait_for(lambda: bridge.stats()["messages_out"] == 1)


@pytest.mark.services
def test_the_server_runs_the_bridge_and_shows_it_in_metrics(
    rabbitmq_server: RabbitBroker, server_factory: ServerFactory
) -> None:
    """`hispeed server` with amqp_url set (as --amqp-url / HISPEED_AMQP_URL set it) starts
    the bridge: a message comes in, and /metrics shows the bridge's counts."""
    url = rabbitmq_server.url
    running = server_factory(amqp_url=url, amqp_in=("queue:srv-in=srv_topic",))
    _run(_publish(url, "", [("srv-in", b'{"n": 1}')]))
    wait_for(lambda: len(_records(running.engine, "srv_topic")) == 1, timeout=30)

    def metrics() -> list[str]:
        return httpx.get(f"{running.url}/metrics").text.splitlines()

    lines = wait_for(lambda: (m := metrics()) and "hispeed_amqp_messages_in 1" in m and m)
    assert "hispeed_amqp_connected 1" in lines

"""The AMQP bridge's part of `hispeed bench connectors`: messages per second through a
RabbitMQ of its own (Debian's rabbitmq-server, started by `hispeed.testing.rabbitmq`).

Three phases, each timed on its own:

- `amqp_publish_confirmed`: the bench publishes `records` persistent messages to a topic
  exchange with publisher confirms, batched (`batch_size` a write, four batches awaiting
  their confirms), through the bridge's own connection (`hispeed.server.amqp_wire`): what any
  fast producer pays RabbitMQ before the bridge sees a message.
- `amqp_in`: the bridge (`amqp_in`, prefetch as the settings' default) drains that backlog
  into a topic, each group acknowledged after the log has it; timed from the bridge's start
  until the log holds every message.
- `amqp_in_confirmed`: the user's path whole, with the bridge running: the bench publishes
  `records` messages with confirms as above while the bridge takes them into the topic and
  acknowledges each group after the append; timed from the first publish until the log holds
  every message. `_per_cpu_s` here is hispeed's alone (the bench process less the publishing
  thread's own CPU time, given as `_publisher_cpu_s`).
- `amqp_out`: `records` records appended to a topic go out through the bridge (`amqp_out`) to
  an exchange with a queue bound, in confirmed batches; timed from the append until the
  bridge counts them all confirmed.

Each phase gives `_per_s` (wall clock) and `_per_cpu_s` (CPU time of the bench process: the
engine, the bridge and the bench's publisher), and `_broker_cpu_us` (RabbitMQ's CPU
microseconds a message, from its /proc stat), as the broker runs in a process of its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
import time

from pamqp import commands

from hispeed.bench.connectors import (
    BenchOptions,
    Figures,
    PartUnavailableError,
    bench_part,
    rates,
)
from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.server.amqp import AmqpBridge
from hispeed.server.amqp_wire import AmqpUrl, Connection
from hispeed.testing.rabbitmq import RabbitBroker, RabbitUnavailableError

#: published batches awaiting their confirms at once
IN_FLIGHT = 4
_VALUE = b'{"device":"d%d","temp":21.5,"humidity":40,"ts":1700000000000}'


def _broker_cpu_s(pid: int) -> float:
    """CPU seconds (user and system) of a process, from /proc/PID/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait(done: object, what: str, timeout_s: float = 900.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise HispeedError(f"bench connectors: {what} did not finish in {timeout_s:.0f}s")
        time.sleep(0.005)


async def _publish(url: str, exchange: str, records: int, batch: int) -> float:
    """`records` messages to `exchange`, confirmed, `IN_FLIGHT` batches awaiting confirms;
    returns the CPU time the publishing thread spent."""
    cpu = time.thread_time()
    conn = await Connection.open(AmqpUrl.parse(url), name="hispeed bench")
    try:
        await conn.call(
            commands.Exchange.Declare(exchange=exchange, exchange_type="topic", durable=True),
            commands.Exchange.DeclareOk,
        )
        await conn.select_confirms()
        pending: list[int] = []
        for start in range(0, records, batch):
            n = min(batch, records - start)
            messages = [
                (f"devices.d{i % 100}", _VALUE % (i % 100), f"bench/{i}")
                for i in range(start, start + n)
            ]
            pending.append(conn.publish(exchange, messages))
            if len(pending) >= IN_FLIGHT and not await conn.wait_confirms(pending.pop(0), 60):
                raise HispeedError("bench connectors: RabbitMQ did not confirm a batch")
        if pending and not await conn.wait_confirms(pending[-1], 60):
            raise HispeedError("bench connectors: RabbitMQ did not confirm a batch")
    finally:
        await conn.close()
    return time.thread_time() - cpu


async def _bind(url: str, queue: str, exchange: str) -> None:
    """A durable queue bound to `exchange` for every routing key (what the out phase fills)."""
    conn = await Connection.open(AmqpUrl.parse(url), name="hispeed bench")
    try:
        await conn.call(
            commands.Exchange.Declare(exchange=exchange, exchange_type="topic", durable=True),
            commands.Exchange.DeclareOk,
        )
        await conn.call(commands.Queue.Declare(queue=queue, durable=True), commands.Queue.DeclareOk)
        await conn.call(
            commands.Queue.Bind(queue=queue, exchange=exchange, routing_key="#"),
            commands.Queue.BindOk,
        )
    finally:
        await conn.close()


def _in_confirmed(broker: RabbitBroker, bridge: AmqpBridge, records: int, batch: int) -> Figures:
    """The `amqp_in_confirmed` phase: publish with confirms while the running bridge takes
    the messages in (see the module)."""
    before = bridge.stats()["messages_in"]
    b0 = _broker_cpu_s(broker.pid)
    wall, cpu = time.perf_counter(), time.process_time()
    publisher_cpu = asyncio.run(_publish(broker.url, "bench-in", records, batch))
    _wait(lambda: bridge.stats()["messages_in"] - before >= records, "amqp_in_confirmed")
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    figures = rates("amqp_in_confirmed", records, wall, cpu - publisher_cpu)
    figures["amqp_in_confirmed_publisher_cpu_s"] = round(publisher_cpu, 3)
    figures["amqp_in_confirmed_broker_cpu_us"] = round(
        (_broker_cpu_s(broker.pid) - b0) / records * 1e6, 1
    )
    return figures


@bench_part("amqp", "AMQP bridge: RabbitMQ in (confirmed publish, then drained) and out")
def amqp(options: BenchOptions) -> Figures:
    try:
        broker = RabbitBroker(web_stomp=False)
    except RabbitUnavailableError as e:
        raise PartUnavailableError(str(e)) from None
    records, batch = options.records, min(options.batch_size, 65535)
    figures: Figures = {}
    with broker, options.scratch("amqp") as path, Engine(path / "data") as engine:
        figures["amqp_broker_start_s"] = round(broker.start_seconds, 1)
        beam = broker.pid

        def timed(prefix: str, run: object, done: object) -> None:
            b0 = _broker_cpu_s(beam)
            wall, cpu = time.perf_counter(), time.process_time()
            run()  # type: ignore[operator]
            _wait(done, prefix)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            figures.update(rates(prefix, records, wall, cpu))
            figures[f"{prefix}_broker_cpu_us"] = round(
                (_broker_cpu_s(beam) - b0) / records * 1e6, 1
            )
            options.report(prefix, records)

        settings = Settings.load(
            None,
            env={},
            data_dir=path / "data",
            amqp_url=broker.url,
            amqp_in=("bench-in/devices.*=bench_in",),
            amqp_out=("bench_out=bench-out/readings.{KEY}",),
            amqp_publish_batch=batch,
        )
        engine.log.create_topic("bench_out", 1)
        # the backlog waits in the bridge's queue, which its first start declares and binds
        bridge = AmqpBridge(engine, dataclasses.replace(settings, amqp_out=()))
        bridge.start()
        connected = bridge.wait_connected(60)
        bridge.stop()
        if not connected:
            raise HispeedError("bench connectors: the AMQP bridge did not connect")
        asyncio.run(_bind(broker.url, "bench-out-all", "bench-out"))
        timed(
            "amqp_publish_confirmed",
            lambda: asyncio.run(_publish(broker.url, "bench-in", records, batch)),
            lambda: True,
        )
        bridge = AmqpBridge(engine, settings)
        timed(
            "amqp_in",
            bridge.start,
            lambda: bridge.stats()["messages_in"] >= records,
        )
        try:
            if not bridge.wait_connected(60):
                raise HispeedError("bench connectors: the AMQP bridge did not connect")
            figures.update(_in_confirmed(broker, bridge, records, batch))
            options.report("amqp_in_confirmed", records)
            pairs = [(b"d%d" % (i % 100), _VALUE % (i % 100)) for i in range(records)]

            def append() -> None:
                for start in range(0, records, batch):
                    engine.log.append("bench_out", pairs[start : start + batch], partition=0)

            timed("amqp_out", append, lambda: bridge.stats()["messages_out"] >= records)
        finally:
            bridge.stop()
    return figures


__all__ = ["amqp"]

"""The AMQP bridge: RabbitMQ queues and exchanges into hispeed topics, and hispeed topics out
to an exchange.

Inbound (`amqp_in`), each entry `SOURCE=TOPIC`:

- `EXCHANGE/BINDING=TOPIC` ("sensors/devices.*.readings=readings"): the bridge declares the
  topic exchange EXCHANGE (durable) and a durable queue of its own,
  `hispeed.in.TOPIC.EXCHANGE.BINDING` (`*` spelled `_star_`, `#` `_hash_`), bound with
  BINDING, so that messages published while hispeed is down wait in RabbitMQ. The record's
  key is the word the binding's first `*` matched ("devices.device1.readings" is keyed
  "device1"); without `*`, the words its final `#` matched; without wildcards, no key.
- `queue:NAME=TOPIC`: the bridge consumes the queue NAME (declared durable if missing), the
  record's key being each message's routing key.

Every message's body must be JSON, as the server's ingestion takes records (else it is not
appended: it goes to the processing log, `hispeed_processing_log`, with the queue, routing key
and reason, and is acknowledged; the rest go on). A message whose `message_id` the bridge
appended to the same topic among the last `amqp_dedup_ids` (a publisher's resend, or
RabbitMQ's redelivery after a lost acknowledgement) is acknowledged and dropped, so a broker
restart adds no duplicates while the bridge runs. The ids are kept in memory only (the log
holds no message ids): after a crash of hispeed itself, the group appended but not yet
acknowledged (at most `amqp_prefetch` messages) is delivered again and appended again, and so
is a message a publisher resends after the restart; an orderly `stop()` acknowledges what it
appended, so a plain restart appends nothing twice. Messages without an id are never dropped.
The bridge takes up to `amqp_prefetch` messages unacknowledged, appends what one read of the
socket brought through the log's group committer (`hispeed.server.state.Ingestor`, the path of
HTTP and MQTT ingestion) and only once the log has them acknowledges them all to RabbitMQ
(Basic.Ack, multiple): a message is removed from its queue only after the log holds it. If the
bridge or the connection dies in between, RabbitMQ delivers the unacknowledged messages again:
at least once (once for messages with ids while one hispeed process runs; see above for its
restart).

Outbound (`amqp_out`), each entry `TOPIC=EXCHANGE/ROUTING_KEY` ("commands=devices/cmd.{KEY}"):
a consumer in the group `_hispeed_amqp_bridge` reads each topic (a query's sink topic too) and
publishes every record's value as a persistent message to the topic exchange EXCHANGE
(declared durable) with the routing key the template names (`{KEY}`, `{COLUMN}` as the MQTT
bridge fills them). The channel is in confirm mode: up to `amqp_publish_batch` records go out
in one write, the bridge waits for RabbitMQ's confirms (`amqp_confirm_timeout_s`), and only
then commits the group's offsets. A refused or unconfirmed batch, or a lost connection, sends
the records again from the last commit: at least once. Each message's `message_id` is
`TOPIC/PARTITION/OFFSET`, the same on every resend, so that consumers can drop duplicates. The
first start reads from each topic's end (new records only); a topic created later is read
from its start. A record whose routing key cannot be filled goes to the processing log;
tombstones are not published. A message no queue is bound for is dropped by RabbitMQ.

Without the broker, each direction reconnects with backoff (1 s doubling to 30 s) and logs
once per outage; inbound, a broker silent for two heartbeats (hung) is left and
reconnected. The connection is `hispeed.server.amqp_wire`'s (see there why not aiormq).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgspec
from pamqp import commands

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.errors import ConfigError, HispeedError
from hispeed.log.base import Consumer, PolledBatch, TopicPartition, validate_topic_name
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.server.amqp_wire import AmqpError, AmqpUrl, Connection, Delivery
from hispeed.server.record_template import TemplateError, decode_value, fill, template_fields
from hispeed.server.state import Ingestor

log = logging.getLogger(__name__)

#: the consumer group whose offsets say what the bridge has published
GROUP = "_hispeed_amqp_bridge"
RECONNECT_MIN_S = 1.0
RECONNECT_MAX_S = 30.0
#: seconds between heartbeats asked of the broker (a dead peer is noticed after two)
HEARTBEAT_S = 30
_QUERY = "amqp bridge"
# the characters AMQP allows in exchange and queue names
_NAME = re.compile(r"^[A-Za-z0-9_.:\-]{1,255}$")


def _split(rule: str, setting: str, example: str) -> tuple[str, str]:
    left, sep, right = rule.partition("=")
    left, right = left.strip(), right.strip()
    if not sep or not left or not right:
        raise ConfigError(f"{setting} entry {rule!r} is not LEFT=RIGHT: write it like {example}")
    return left, right


def _check_name(name: str, what: str, where: str) -> None:
    if not _NAME.match(name):
        raise ConfigError(
            f"{where}: {what} {name!r} must be 1 to 255 letters, digits, '-', '_', '.' or ':'"
        )


@dataclass(frozen=True)
class AmqpInRule:
    """Messages of a queue (or of an exchange, through a queue of the bridge's own bound with
    `binding`) into the hispeed topic `topic`."""

    queue: str
    topic: str
    exchange: str = ""
    binding: str = ""

    @classmethod
    def parse(cls, rule: str) -> AmqpInRule:
        example = "sensors/devices.*.readings=readings (or queue:NAME=readings)"
        source, topic = _split(rule, "amqp_in", example)
        validate_topic_name(topic)
        where = f"amqp_in entry {rule!r}"
        if source.startswith("queue:"):
            queue = source[len("queue:") :].strip()
            _check_name(queue, "the queue", where)
            return cls(queue, topic)
        exchange, sep, binding = source.partition("/")
        if not sep or not binding:
            raise ConfigError(f"{where}: write the source as EXCHANGE/BINDING or queue:NAME")
        _check_name(exchange, "the exchange", where)
        words = binding.split(".")
        if "#" in words[:-1] or any(("*" in w or "#" in w) and len(w) > 1 for w in words):
            raise ConfigError(f"{where}: * and # must be whole words, and # only the last one")
        if len(binding.encode()) > 255:
            raise ConfigError(f"{where}: a binding key is at most 255 bytes")
        # AMQP allows no * or # in a queue's name
        spelled = binding.replace("*", "_star_").replace("#", "_hash_")
        queue = f"hispeed.in.{topic}.{exchange}.{spelled}"[:255]
        return cls(queue, topic, exchange, binding)

    def key(self, routing_key: str) -> bytes | None:
        """The word the first `*` matched; else the words `#` matched; else None. A queue
        rule keys by the whole routing key."""
        if not self.exchange:
            return routing_key.encode() if routing_key else None
        words = self.binding.split(".")
        parts = routing_key.split(".")
        if "*" in words:
            i = words.index("*")
            return parts[i].encode() if i < len(parts) else None
        if words[-1] == "#":
            rest = ".".join(parts[len(words) - 1 :])
            return rest.encode() if rest else None
        return None


@dataclass(frozen=True)
class AmqpOutRule:
    """Records of the hispeed topic `topic` out to `exchange`, routed as `template` says."""

    topic: str
    exchange: str
    template: str
    fields: tuple[str, ...]

    @classmethod
    def parse(cls, rule: str) -> AmqpOutRule:
        topic, target = _split(rule, "amqp_out", "commands=devices/cmd.{KEY}")
        validate_topic_name(topic)
        where = f"amqp_out entry {rule!r}"
        exchange, sep, template = target.partition("/")
        if not sep or not template:
            raise ConfigError(f"{where}: write the target as EXCHANGE/ROUTING_KEY")
        _check_name(exchange, "the exchange", where)
        fields = template_fields(template, where, "the routing key template", "", "")
        return cls(topic, exchange, template, fields)

    @property
    def needs_value(self) -> bool:
        return any(f != "KEY" for f in self.fields)

    def routing_key(self, key: bytes | None, value: Any) -> str:
        """The template filled from a record's key and decoded value."""
        filled = fill(self.template, self.fields, key, value, "", "a routing key word")
        if len(filled.encode()) > 255:
            raise TemplateError(f"{self.template!r} gives a routing key over 255 bytes")
        return filled


class AmqpBridge:
    """Bridges a RabbitMQ broker and the engine's log, as `amqp_in` and `amqp_out` say.

    `start()` returns at once: each direction connects (and reconnects) on a thread of its
    own with its own event loop. `stop()` publishes nothing new, appends and acknowledges
    what it received, and disconnects."""

    def __init__(self, engine: Engine, settings: Settings) -> None:
        if not settings.amqp_url:
            raise ConfigError("the AMQP bridge needs amqp_url (amqp://USER:PASSWORD@HOST:PORT/)")
        self.engine = engine
        self.settings = settings
        self.url = AmqpUrl.parse(settings.amqp_url)
        self.inbound = [AmqpInRule.parse(r) for r in settings.amqp_in]
        self.outbound = [AmqpOutRule.parse(r) for r in settings.amqp_out]
        if not self.inbound and not self.outbound:
            raise ConfigError(
                f"the AMQP bridge to {self.url} has nothing to do: set amqp_in (like "
                '"sensors/devices.*.readings=readings") or amqp_out (like '
                '"commands=devices/cmd.{KEY}")'
            )
        for name in ("amqp_prefetch", "amqp_publish_batch"):
            if not 0 < getattr(settings, name) <= 65535:
                raise ConfigError(f"{name} must be between 1 and 65535")
        if settings.amqp_dedup_ids < 0:
            raise ConfigError("amqp_dedup_ids cannot be negative (0: no dedup)")
        if settings.amqp_confirm_timeout_s <= 0:
            raise ConfigError("amqp_confirm_timeout_s must be above 0")
        self._counts = dict.fromkeys(
            ("connected", "connects", "messages_in", "messages_out", "errors", "duplicates"), 0
        )
        self._lock = threading.Lock()
        self._ingest = Ingestor(engine.log, settings)
        #: "TOPIC/MESSAGE_ID" of the last `amqp_dedup_ids` messages appended, oldest first
        self._seen: OrderedDict[str, None] = OrderedDict()
        #: the ids of the group being appended, per topic
        self._fresh: dict[str, dict[str, None]] = {}
        self._stopping = threading.Event()
        self._up = {"in": threading.Event(), "out": threading.Event()}
        self._outage_logged = {"in": False, "out": False}
        self._threads: list[threading.Thread] = []
        self._loops: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
        self._consumer: Consumer | None = None
        self._started = False

    # -- running ----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and start bridging."""
        if self._started:
            return
        self._started = True
        if self.outbound:
            names = sorted({r.topic for r in self.outbound})
            # as the MQTT bridge: a pattern consumer finds topics created later (a query's
            # sink) and reads them from their start; "latest" is fixed now for the others
            pattern = "^(?:" + "|".join(re.escape(n) for n in names) + ")$"
            self._consumer = self.engine.log.consumer(
                pattern, group=GROUP, auto_offset_reset="latest"
            )
            self._consumer.assignment()
        for direction, session in (("in", self._inbound), ("out", self._outbound)):
            if self.inbound if direction == "in" else self.outbound:
                ready = threading.Event()
                t = threading.Thread(
                    target=self._run,
                    args=(direction, session, ready),
                    name=f"hispeed-amqp-{direction}",
                    daemon=True,
                )
                t.start()
                ready.wait(10)
                self._threads.append(t)
        log.info("AMQP bridge to %s starting", self.url)

    def stop(self) -> None:
        """Stop publishing, acknowledge what was appended, disconnect."""
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        for loop, stop in self._loops:
            with contextlib.suppress(RuntimeError):  # its loop already ended
                loop.call_soon_threadsafe(stop.set)
        for t in self._threads:
            t.join(self.settings.amqp_confirm_timeout_s + 10)
        self._threads.clear()
        self._loops.clear()
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None
        self._set("connected", 0)
        log.info("AMQP bridge to %s stopped", self.url)

    def wait_connected(self, timeout: float) -> bool:
        """Wait until each direction is connected (and its queues are consumed)."""
        waits = [self._up["in"]] if self.inbound else []
        waits += [self._up["out"]] if self.outbound else []
        deadline = time.monotonic() + timeout
        return all(e.wait(max(0.0, deadline - time.monotonic())) for e in waits)

    def stats(self) -> dict[str, int]:
        """connected (1 or 0), connects, messages_in (appended), messages_out (published and
        confirmed), errors (messages and records not bridged), duplicates (messages dropped
        in, their message_id appended already)."""
        with self._lock:
            return dict(self._counts)

    def _add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._counts[name] += n

    def _set(self, name: str, value: int) -> None:
        with self._lock:
            self._counts[name] = value

    def _set_up(self, direction: str, up: bool) -> None:
        event = self._up[direction]
        event.set() if up else event.clear()
        connected = (not self.inbound or self._up["in"].is_set()) and (
            not self.outbound or self._up["out"].is_set()
        )
        self._set("connected", int(connected))

    def _run(self, direction: str, session: Any, ready: threading.Event) -> None:
        from hispeed.server.http import event_loop_factory

        async def main() -> None:
            stop = asyncio.Event()
            self._loops.append((asyncio.get_running_loop(), stop))
            ready.set()
            backoff = Backoff()
            while not stop.is_set():
                conn: Connection | None = None
                try:
                    conn = await Connection.open(
                        self.url, heartbeat=HEARTBEAT_S, name=f"hispeed amqp bridge {direction}"
                    )
                    await session(conn, stop)
                except (OSError, AmqpError, TimeoutError, asyncio.IncompleteReadError) as e:
                    self._lost(direction, str(e) or type(e).__name__, conn is not None)
                except Exception as e:  # a defect: said loudly, and tried again all the same
                    log.exception("AMQP bridge (%s) failed", direction)
                    self._lost(direction, str(e) or type(e).__name__, conn is not None)
                finally:
                    if self._up[direction].is_set():  # it was connected: a new outage
                        backoff.reset()
                    self._set_up(direction, False)
                    if conn is not None:
                        await conn.close()
                if stop.is_set():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), backoff.next())

        try:
            with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
                runner.run(main())
        except Exception:
            log.exception("AMQP bridge (%s) stopped", direction)

    def _connected(self, direction: str) -> None:
        self._outage_logged[direction] = False
        if direction == "in" or not self.inbound:
            self._add("connects")
        self._set_up(direction, True)
        log.info("AMQP bridge (%s) connected to %s", direction, self.url)

    def _lost(self, direction: str, reason: str, was_connected: bool) -> None:
        if self._stopping.is_set():
            return
        level = logging.DEBUG if self._outage_logged[direction] else logging.WARNING
        self._outage_logged[direction] = True
        log.log(
            level,
            "AMQP bridge (%s) %s %s (%s); retrying every %.0f to %.0f s",
            direction,
            "lost" if was_connected else "cannot reach",
            self.url,
            reason,
            RECONNECT_MIN_S,
            RECONNECT_MAX_S,
        )

    # -- inbound ----------------------------------------------------------------------------

    async def _inbound(self, conn: Connection, stop: asyncio.Event) -> None:
        """Declare, consume, and append and acknowledge what each read brings, until stopped
        or the connection ends."""
        await conn.call(
            commands.Basic.Qos(prefetch_count=self.settings.amqp_prefetch), commands.Basic.QosOk
        )
        for i, rule in enumerate(self.inbound):
            if rule.exchange:
                await conn.call(
                    commands.Exchange.Declare(
                        exchange=rule.exchange, exchange_type="topic", durable=True
                    ),
                    commands.Exchange.DeclareOk,
                )
            await conn.call(
                commands.Queue.Declare(queue=rule.queue, durable=True), commands.Queue.DeclareOk
            )
            if rule.exchange:
                await conn.call(
                    commands.Queue.Bind(
                        queue=rule.queue, exchange=rule.exchange, routing_key=rule.binding
                    ),
                    commands.Queue.BindOk,
                )
            await conn.call(
                commands.Basic.Consume(queue=rule.queue, consumer_tag=str(i)),
                commands.Basic.ConsumeOk,
            )
        self._connected("in")
        stopping = asyncio.ensure_future(stop.wait())
        loop = asyncio.get_running_loop()
        last_write = last_read = loop.time()
        try:
            while True:
                deliveries = conn.take()
                if deliveries:
                    # only once the log has them: RabbitMQ keeps them until this ack
                    await self._deliver(deliveries)
                    conn.ack(deliveries[-1].delivery_tag)
                    last_write = loop.time()
                if stopping.done():
                    return
                if loop.time() - last_write > HEARTBEAT_S / 2:
                    conn.send_heartbeat()
                    last_write = loop.time()
                read = asyncio.ensure_future(conn.read(HEARTBEAT_S / 2))
                await asyncio.wait((read, stopping), return_when=asyncio.FIRST_COMPLETED)
                if not read.done():
                    read.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await read
                    continue  # stopping: what was parsed is delivered above
                try:
                    if not read.result():
                        raise AmqpError("the broker closed the connection")
                    last_read = loop.time()
                except TimeoutError:
                    # idle: a heartbeat goes out above; the broker's prove it lives, and
                    # without them for two intervals it is gone (hung, or its host away)
                    silent = loop.time() - last_read
                    if conn.heartbeat and silent > 2 * conn.heartbeat:
                        raise AmqpError(
                            f"nothing from the broker for {silent:.0f} s (two heartbeats)"
                        ) from None
        finally:
            stopping.cancel()

    def route(
        self, deliveries: list[Delivery]
    ) -> tuple[dict[str, list[tuple[bytes | None, bytes | None]]], list[dict[str, Any]]]:
        """Messages as (key, value) records per hispeed topic, and the processing-log entries
        of those that are not JSON."""
        records: dict[str, list[tuple[bytes | None, bytes | None]]] = {}
        errors: list[dict[str, Any]] = []
        decode = msgspec.json.decode
        rules = self.inbound
        seen, dedup = self._seen, self.settings.amqp_dedup_ids > 0
        fresh = self._fresh
        for d in deliveries:
            rule = rules[int(d.consumer_tag)]
            if dedup and d.message_id is not None:
                ident = f"{rule.topic}/{d.message_id}"
                if ident in seen or ident in fresh.get(rule.topic, ()):
                    self._add("duplicates")
                    continue
                fresh.setdefault(rule.topic, {})[ident] = None
            try:
                decode(d.body)
            except (msgspec.DecodeError, RecursionError) as e:
                self._add("errors")
                errors.append(
                    _error(
                        f"AMQP message from queue {rule.queue!r} (routing key "
                        f"{d.routing_key!r}) is not JSON ({e}); it was not appended to "
                        f"{rule.topic!r}",
                        topic=rule.topic,
                        queue=rule.queue,
                        routing_key=d.routing_key,
                    )
                )
                continue
            records.setdefault(rule.topic, []).append((rule.key(d.routing_key), d.body))
        return records, errors

    async def _deliver(self, deliveries: list[Delivery]) -> None:
        """Append a group of messages to their topics (the bad ones to the processing log);
        returns once the log has them. A failed append raises: nothing is acknowledged, and
        the connection starts over (RabbitMQ delivers the messages again)."""
        self._fresh.clear()
        records, errors = self.route(deliveries)
        for topic, pairs in records.items():
            try:
                await self._ingest.append_pairs(topic, pairs, None)
            except HispeedError as e:
                log.warning(
                    "AMQP bridge could not append %d messages to %r: %s", len(pairs), topic, e
                )
                raise AmqpError(f"appending to {topic!r} failed: {e}") from e
            self._add("messages_in", len(pairs))
            # remembered only once appended: a message whose append failed comes again
            seen = self._seen
            seen.update(self._fresh.pop(topic, {}))
            while len(seen) > self.settings.amqp_dedup_ids:
                seen.popitem(last=False)
        self._fresh.clear()  # the ids of messages that were not JSON
        self._log_errors(errors)

    def _log_errors(self, errors: list[dict[str, Any]]) -> None:
        if not errors:
            return
        try:
            self.engine.log.append(PROCESSING_LOG, [(None, msgspec.json.encode(e)) for e in errors])
        except HispeedError as e:
            log.warning("AMQP bridge could not write %d processing-log entries: %s", len(errors), e)

    # -- outbound ---------------------------------------------------------------------------

    async def _outbound(self, conn: Connection, stop: asyncio.Event) -> None:
        consumer = self._consumer
        assert consumer is not None
        for exchange in sorted({r.exchange for r in self.outbound}):
            await conn.call(
                commands.Exchange.Declare(exchange=exchange, exchange_type="topic", durable=True),
                commands.Exchange.DeclareOk,
            )
        await conn.select_confirms()
        self._connected("out")
        loop = asyncio.get_running_loop()
        last_write = loop.time()
        batch = self.settings.amqp_publish_batch
        while not stop.is_set():
            # the poll waits at most 0.2 s on a worker thread, so a stop is seen soon
            items = await asyncio.to_thread(consumer.poll, 0.2, max_records=batch)
            if items:
                await self._publish_all(conn, consumer, items)
                last_write = loop.time()
            elif loop.time() - last_write > HEARTBEAT_S / 2:
                conn.send_heartbeat()
                await conn.writer.drain()
                last_write = loop.time()

    async def _publish_all(
        self, conn: Connection, consumer: Consumer, items: list[PolledBatch]
    ) -> None:
        """Publish polled batches, committing each once confirmed; on a failure, rewind the
        consumer to the first record not confirmed and raise (the connection starts over)."""
        for i, item in enumerate(items):
            try:
                confirmed = await self._publish(conn, item)
            except BaseException:
                _rewind(consumer, items[i:])
                raise
            if not confirmed:
                _rewind(consumer, items[i:])
                raise AmqpError(
                    "RabbitMQ did not confirm a batch (refused, or no answer within "
                    f"{self.settings.amqp_confirm_timeout_s:g} s); sending it again"
                )
            offsets = item.batch.column("offset")
            consumer.commit({item.partition: int(offsets[len(offsets) - 1].as_py()) + 1})

    async def _publish(self, conn: Connection, item: PolledBatch) -> bool:
        """Publish one polled batch and wait for the broker's confirms."""
        tp = item.partition
        rules = [r for r in self.outbound if r.topic == tp.topic]
        batch = item.batch
        keys = batch.column("key").to_pylist()
        values = batch.column("value").to_pylist()
        offsets = batch.column("offset").to_pylist()
        prefix = f"{tp.topic}/{tp.partition}/"
        # per exchange: (routing key, body, message id)
        out: dict[str, list[tuple[str, bytes, str]]] = {}
        errors: list[dict[str, Any]] = []
        needs_value = any(r.needs_value for r in rules)
        for key, value, offset in zip(keys, values, offsets, strict=True):
            if value is None:
                continue
            decoded = decode_value(value) if needs_value else None
            for rule in rules:
                try:
                    routing_key = rule.routing_key(key, decoded)
                except TemplateError as e:
                    self._add("errors")
                    errors.append(
                        _error(
                            f"record not published to AMQP: {e}",
                            topic=tp.topic,
                            partition=tp.partition,
                            offset=offset,
                        )
                    )
                    continue
                out.setdefault(rule.exchange, []).append((routing_key, value, f"{prefix}{offset}"))
        last = 0
        for exchange, messages in out.items():
            last = conn.publish(exchange, messages)
        if last and not await conn.wait_confirms(last, self.settings.amqp_confirm_timeout_s):
            return False
        self._add("messages_out", sum(len(m) for m in out.values()))
        self._log_errors(errors)
        return True


class Backoff:
    """The waits between attempts to reach the broker: RECONNECT_MIN_S, doubling up to
    RECONNECT_MAX_S, and from the shortest again after each time the bridge was connected
    (a broker back after a restart is found within a second or two, however long an earlier
    outage was)."""

    def __init__(self) -> None:
        self._next = RECONNECT_MIN_S

    def next(self) -> float:
        """The wait before the next attempt."""
        wait = self._next
        self._next = min(wait * 2, RECONNECT_MAX_S)
        return wait

    def reset(self) -> None:
        """The bridge was connected: the next outage starts from the shortest wait."""
        self._next = RECONNECT_MIN_S


def _rewind(consumer: Consumer, items: list[PolledBatch]) -> None:
    """Seek back to the first record of `items` in each partition: they go out again."""
    rewind: dict[TopicPartition, int] = {}
    for item in items:
        rewind.setdefault(item.partition, int(item.batch.column("offset")[0].as_py()))
    for tp, offset in rewind.items():
        consumer.seek(tp, offset)


def _error(message: str, **where: Any) -> dict[str, Any]:
    """A processing-log entry of the bridge, shaped as the queries' ones."""
    return {"type": "RECORD_PROCESSING_ERROR", "query": _QUERY, "message": message, **where}


__all__ = ["GROUP", "AmqpBridge", "AmqpInRule", "AmqpOutRule", "Backoff"]

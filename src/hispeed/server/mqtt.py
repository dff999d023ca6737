"""The MQTT bridge: MQTT topics into hispeed topics, and hispeed topics out to MQTT.

Inbound (`mqtt_in`, "devices/+/readings=readings"): the bridge subscribes to each filter
(QoS 1) and appends every message's payload, which must be JSON, to the hispeed topic, as
it came. The record's key is the topic level matched by the filter's first `+`
("devices/device1/readings" is keyed "device1"); a filter without `+` keys by the levels its
`#` matched ("alerts/#" keys "alerts/a/b" as "a/b"), and a filter without wildcards leaves
the key null. A message that matches several filters goes to each of their topics. A
payload that is not JSON is not appended: it goes to the processing log
(`hispeed_processing_log`) with the MQTT topic and the reason, and the rest go on.

Outbound (`mqtt_out`, "commands=devices/{KEY}/commands"): a consumer in the group
`_hispeed_mqtt_bridge` reads each topic and publishes every record's value (QoS 1) to the
MQTT topic its template names, `{KEY}` being the record's key and `{NAME}` the value's field
NAME (matched without regard to case, as ksqlDB upper-cases column names). The first start
reads from each topic's end (new records only); a topic created later is read from its start.
Offsets are committed after the broker acknowledged a batch, so delivery is at least once:
a crash or lost connection may publish the last unacknowledged batch again, and nothing is
lost. A record whose template cannot be filled goes to the processing log. Tombstones (null
values) are not published.

Inbound, the bridge reads what the socket holds in one go (`hispeed.server.mqtt_in`), not a
Python callback a message, and appends each group through the log's group committer (the same
path as HTTP ingestion, `hispeed.server.state.Ingestor`, so each topic creation and limit
applies). A QoS 1 message is acknowledged to the broker (PUBACK) only once the log has it:
the broker still holds every message the bridge has not stored.

Without the broker, the bridge retries with backoff (1 s doubling to 30 s) and logs; it
subscribes again on every connection.
"""

from __future__ import annotations

import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.errors import ConfigError, HispeedError
from hispeed.log.base import Consumer, PolledBatch, TopicPartition, validate_topic_name
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.server.mqtt_in import Subscriber
from hispeed.server.record_template import TemplateError, decode_value, fill, template_fields
from hispeed.server.state import Ingestor

try:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
except ImportError as e:  # pragma: no cover - depends on the installation
    raise ImportError("the MQTT bridge needs paho-mqtt: pip install 'hispeed[mqtt]'") from e

log = logging.getLogger(__name__)

#: the consumer group whose offsets say what the bridge has published
GROUP = "_hispeed_mqtt_bridge"
#: MQTT topics whose matching rules the bridge remembers (past it, it starts over)
ROUTE_CACHE_SIZE = 100_000
#: records published (and acknowledged) before their offsets are committed
PUBLISH_BATCH = 1000
#: how long the broker has to acknowledge a published batch before it is sent again
PUBLISH_TIMEOUT_S = 10.0
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
_QUERY = "mqtt bridge"


def parse_broker(text: str) -> tuple[str, int]:
    """`host:port` (port 1883 when left out) of the `mqtt_broker` setting."""
    host, sep, port = text.strip().rpartition(":")
    if not sep:
        host, port = text.strip(), "1883"
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"mqtt_broker cannot be {text!r}: write HOST:PORT, like localhost:1883")
    return host, int(port)


def _check_filter(mqtt_filter: str, where: str) -> None:
    levels = mqtt_filter.split("/")
    for i, level in enumerate(levels):
        if ("+" in level and level != "+") or ("#" in level and level != "#"):
            raise ConfigError(f"{where}: a wildcard (+ or #) must be a whole level")
        if level == "#" and i != len(levels) - 1:
            raise ConfigError(f"{where}: # can only be the last level")


def _split_rule(rule: str, setting: str, example: str) -> tuple[str, str]:
    left, sep, right = rule.partition("=")
    left, right = left.strip(), right.strip()
    if not sep or not left or not right:
        raise ConfigError(f"{setting} entry {rule!r} is not LEFT=RIGHT: write it like {example}")
    return left, right


@dataclass(frozen=True)
class MqttInRule:
    """MQTT messages matching `mqtt_filter` into the hispeed topic `topic`."""

    mqtt_filter: str
    topic: str

    @classmethod
    def parse(cls, rule: str) -> MqttInRule:
        mqtt_filter, topic = _split_rule(rule, "mqtt_in", "devices/+/readings=readings")
        _check_filter(mqtt_filter, f"mqtt_in entry {rule!r}")
        validate_topic_name(topic)
        return cls(mqtt_filter, topic)

    def matches(self, mqtt_topic: str) -> bool:
        return bool(mqtt.topic_matches_sub(self.mqtt_filter, mqtt_topic))

    def key(self, mqtt_topic: str) -> bytes | None:
        """The level the first `+` matched; else the levels `#` matched; else None."""
        levels = self.mqtt_filter.split("/")
        parts = mqtt_topic.split("/")
        if "+" in levels:
            return parts[levels.index("+")].encode()
        if levels[-1] == "#":
            return "/".join(parts[len(levels) - 1 :]).encode()
        return None


@dataclass(frozen=True)
class MqttOutRule:
    """Records of the hispeed topic `topic` out to the MQTT topics `template` names."""

    topic: str
    template: str
    #: the template's fields: KEY, or a field of the value
    fields: tuple[str, ...]

    @classmethod
    def parse(cls, rule: str) -> MqttOutRule:
        topic, template = _split_rule(rule, "mqtt_out", "commands=devices/{KEY}/commands")
        validate_topic_name(topic)
        where = f"mqtt_out entry {rule!r}"
        fields = template_fields(
            template,
            where,
            "the MQTT topic template",
            "+#",
            "a published MQTT topic cannot hold + or #",
        )
        return cls(topic, template, fields)

    @property
    def needs_value(self) -> bool:
        return any(f != "KEY" for f in self.fields)

    def mqtt_topic(self, key: bytes | None, value: Any) -> str:
        """The template filled from a record's key and its decoded value."""
        return fill(
            self.template,
            self.fields,
            key,
            value,
            "+#",
            "an MQTT topic level (empty, or holding + or #)",
        )


class MqttBridge:
    """Bridges an MQTT broker and the engine's log, as `mqtt_in` and `mqtt_out` say.

    `start()` returns at once: the bridge connects (and reconnects) in the background, one
    connection for each direction it has (inbound: `hispeed.server.mqtt_in.Subscriber`,
    which reads messages in bulk; outbound: paho, which publishes). `stop()` publishes
    nothing new, appends what it has received, and disconnects."""

    def __init__(self, engine: Engine, settings: Settings, *, client_id: str | None = None):
        if not settings.mqtt_broker:
            raise ConfigError("the MQTT bridge needs mqtt_broker (HOST:PORT)")
        self.engine = engine
        self.settings = settings
        self.host, self.port = parse_broker(settings.mqtt_broker)
        self.inbound = [MqttInRule.parse(r) for r in settings.mqtt_in]
        self.outbound = [MqttOutRule.parse(r) for r in settings.mqtt_out]
        if not self.inbound and not self.outbound:
            raise ConfigError(
                f"the MQTT bridge to {settings.mqtt_broker} has nothing to do: set mqtt_in "
                '(like "devices/+/readings=readings") or mqtt_out '
                '(like "commands=devices/{KEY}/commands")'
            )
        self.client_id = client_id or f"hispeed-{uuid.uuid4().hex[:12]}"
        self._counts = dict.fromkeys(
            ("connected", "connects", "messages_in", "messages_out", "errors"), 0
        )
        self._counts_lock = threading.Lock()
        self._ingest = Ingestor(engine.log, settings)
        #: MQTT topic -> [(hispeed topic, key)] of the rules it matches (bounded: see _routes)
        self._route_cache: dict[str, list[tuple[str, bytes | None]]] = {}
        self._stopping = threading.Event()  # no more publishing, no more waiting
        self._in_connected = threading.Event()
        self._connected = threading.Event()  # the outbound (publishing) connection
        self._outage_logged = False
        self._subscribed = threading.Event()
        self._started = False
        self._client: Any = None
        self._subscriber: Subscriber | None = None
        self._consumer: Consumer | None = None
        self._threads: list[threading.Thread] = []

    # -- running ----------------------------------------------------------------------------

    def start(self) -> None:
        """Connect in the background and start bridging."""
        if self._started:
            return
        self._started = True
        if self.inbound:
            self._subscriber = Subscriber(
                self.host,
                self.port,
                self.client_id if not self.outbound else f"{self.client_id}-in",
                [r.mqtt_filter for r in self.inbound],
                self._deliver,
                reconnect=(RECONNECT_MIN_S, RECONNECT_MAX_S),
                on_connect=self._on_in_connect,
                on_subscribed=self._on_in_subscribed,
                on_disconnect=self._on_in_disconnect,
                on_connect_fail=self._on_connect_fail,
            )
            self._subscriber.start()
        if self.outbound:
            client = mqtt.Client(
                CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv311
            )
            client.on_connect = self._on_connect
            client.on_disconnect = self._on_disconnect
            client.on_connect_fail = lambda client, userdata: self._on_connect_fail("")
            client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
            self._client = client
            names = sorted({r.topic for r in self.outbound})
            # a pattern consumer finds topics created after the start (by a persistent query,
            # say) and reads them from their start; for the others, "latest" is fixed now,
            # so that "new records" means those appended after start() returns
            pattern = "^(?:" + "|".join(re.escape(n) for n in names) + ")$"
            self._consumer = self.engine.log.consumer(
                pattern, group=GROUP, auto_offset_reset="latest"
            )
            self._consumer.assignment()
            self._threads.append(
                threading.Thread(target=self._run_outbound, name="hispeed-mqtt-out", daemon=True)
            )
            for t in self._threads:
                t.start()
            client.connect_async(self.host, self.port, keepalive=30)
            client.loop_start()
        log.info("MQTT bridge to %s:%d starting", self.host, self.port)

    def stop(self) -> None:
        """Stop publishing, disconnect, and append the messages already received."""
        if not self._started:
            return
        self._started = False
        self._stopping.set()
        for t in self._threads:
            t.join(PUBLISH_TIMEOUT_S + 5)
        self._threads.clear()
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()
        subscriber, self._subscriber = self._subscriber, None
        if subscriber is not None:
            subscriber.stop()
        self._set("connected", 0)
        log.info("MQTT bridge to %s:%d stopped", self.host, self.port)

    def wait_connected(self, timeout: float) -> bool:
        """Wait until the bridge is connected and its subscriptions are granted."""
        deadline = time.monotonic() + timeout
        waits = []
        if self.inbound:
            waits += [self._in_connected, self._subscribed]
        if self.outbound:
            waits.append(self._connected)
        return all(e.wait(max(0.0, deadline - time.monotonic())) for e in waits)

    def stats(self) -> dict[str, int]:
        """connected (1 or 0), connects, messages_in (appended), messages_out (published and
        acknowledged), errors (messages and records not bridged: payloads that are not JSON,
        failed appends, records that cannot fill their template). `connects` counts the
        inbound connection's, or the outbound one's when there is no inbound."""
        with self._counts_lock:
            return dict(self._counts)

    def _add(self, name: str, n: int = 1) -> None:
        with self._counts_lock:
            self._counts[name] += n

    def _set(self, name: str, value: int) -> None:
        with self._counts_lock:
            self._counts[name] = value

    def _update_connected(self) -> None:
        up = (not self.inbound or self._in_connected.is_set()) and (
            not self.outbound or self._connected.is_set()
        )
        self._set("connected", int(up))

    # -- the connections ------------------------------------------------------------------

    def _on_in_connect(self) -> None:
        self._outage_logged = False
        self._subscribed.clear()
        self._add("connects")
        self._in_connected.set()
        self._update_connected()
        log.info("MQTT bridge connected to %s:%d", self.host, self.port)

    def _on_in_subscribed(self, refused: list[str]) -> None:
        if refused:
            log.warning("MQTT broker refused the bridge's subscriptions to %s", refused)
        self._subscribed.set()

    def _on_in_disconnect(self, reason: str) -> None:
        self._in_connected.clear()
        self._subscribed.clear()
        self._update_connected()
        if not self._stopping.is_set():
            log.warning(
                "MQTT bridge lost %s:%d (%s); reconnecting with backoff",
                self.host,
                self.port,
                reason,
            )

    def _on_connect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        if reason_code.is_failure:
            log.warning(
                "MQTT broker %s:%d refused the bridge: %s; retrying",
                self.host,
                self.port,
                reason_code,
            )
            return
        if not self.inbound:
            self._outage_logged = False
            self._add("connects")
            log.info("MQTT bridge connected to %s:%d", self.host, self.port)
        self._connected.set()
        self._update_connected()

    def _on_disconnect(
        self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any
    ) -> None:
        self._connected.clear()
        self._update_connected()
        if not self._stopping.is_set():
            log.warning(
                "MQTT bridge lost %s:%d (%s); reconnecting with backoff",
                self.host,
                self.port,
                reason_code,
            )

    def _on_connect_fail(self, reason: str) -> None:
        # one warning an outage; each retry after it only at debug level
        level = logging.DEBUG if self._outage_logged else logging.WARNING
        self._outage_logged = True
        log.log(
            level,
            "MQTT bridge cannot reach %s:%d%s; retrying every %d to %d s",
            self.host,
            self.port,
            f" ({reason})" if reason else "",
            RECONNECT_MIN_S,
            RECONNECT_MAX_S,
        )

    # -- inbound ----------------------------------------------------------------------------

    def _routes(self, mqtt_topic: str) -> list[tuple[str, bytes | None]]:
        """(hispeed topic, key) for each rule the MQTT topic matches, remembered: devices
        publish to the same few topics again and again."""
        found = self._route_cache.get(mqtt_topic)
        if found is None:
            if len(self._route_cache) >= ROUTE_CACHE_SIZE:
                self._route_cache.clear()
            found = [(r.topic, r.key(mqtt_topic)) for r in self.inbound if r.matches(mqtt_topic)]
            self._route_cache[mqtt_topic] = found
        return found

    def route(
        self, items: Iterable[tuple[str, bytes]]
    ) -> tuple[dict[str, list[tuple[bytes | None, bytes | None]]], list[dict[str, Any]]]:
        """Messages as (key, value) records per hispeed topic, and the processing-log entries
        of those that are not JSON."""
        records: dict[str, list[tuple[bytes | None, bytes | None]]] = {}
        errors: list[dict[str, Any]] = []
        decode = msgspec.json.decode
        for mqtt_topic, payload in items:
            routes = self._routes(mqtt_topic)
            if not routes:
                continue  # a retained or late message of a filter no longer subscribed
            try:
                decode(payload)
            except (msgspec.DecodeError, RecursionError) as e:  # deep nesting: not for us
                self._add("errors")
                for topic, _ in routes:
                    errors.append(
                        _error(
                            f"MQTT message on {mqtt_topic!r} is not JSON ({e}); it was not "
                            f"appended to {topic!r}",
                            topic=topic,
                            mqtt_topic=mqtt_topic,
                        )
                    )
                continue
            for topic, key in routes:
                records.setdefault(topic, []).append((key, payload))
        return records, errors

    async def _deliver(self, items: list[tuple[str, bytes]]) -> None:
        """Append a group of messages to their topics (the bad ones to the processing log);
        returns once the log has them, so that QoS 1 is acknowledged only then."""
        records, errors = self.route(items)
        for topic, pairs in records.items():
            try:
                await self._ingest.append_pairs(topic, pairs, None)
            except HispeedError as e:
                n = len(pairs)
                log.warning("MQTT bridge could not append %d messages to %r: %s", n, topic, e)
                errors.append(_error(f"{n} MQTT messages not appended: {e}", topic=topic))
                self._add("errors", n)
                continue
            self._add("messages_in", len(pairs))
        self._log_errors(errors)

    def _log_errors(self, errors: list[dict[str, Any]]) -> None:
        if not errors:
            return
        try:
            self.engine.log.append(PROCESSING_LOG, [(None, msgspec.json.encode(e)) for e in errors])
        except HispeedError as e:
            log.warning("MQTT bridge could not write %d processing-log entries: %s", len(errors), e)

    # -- outbound ---------------------------------------------------------------------------

    def _run_outbound(self) -> None:
        consumer = self._consumer
        assert consumer is not None
        backoff = 0.1
        try:
            while not self._stopping.is_set():
                if not self._connected.wait(0.2):
                    continue
                items = consumer.poll(0.2, max_records=PUBLISH_BATCH)
                if self._publish_all(consumer, items):
                    backoff = 0.1
                else:
                    self._stopping.wait(backoff)
                    backoff = min(backoff * 2, RECONNECT_MAX_S)
        except Exception:
            log.exception("MQTT bridge stopped publishing")
        finally:
            consumer.close()
            self._consumer = None

    def _publish_all(self, consumer: Consumer, items: list[PolledBatch]) -> bool:
        """Publish polled batches, committing each once acknowledged; on a failure, rewind
        the consumer to the first record not acknowledged and return False."""
        for i, item in enumerate(items):
            if not self._publish(item):
                rewind: dict[TopicPartition, int] = {}
                for later in items[i:]:
                    rewind.setdefault(later.partition, int(later.batch.column("offset")[0].as_py()))
                for tp, offset in rewind.items():
                    consumer.seek(tp, offset)
                return False
            offsets = item.batch.column("offset")
            consumer.commit({item.partition: int(offsets[len(offsets) - 1].as_py()) + 1})
        return True

    def _publish(self, item: PolledBatch) -> bool:
        """Publish one polled batch and wait for the broker's acknowledgements."""
        client = self._client
        if client is None:
            return False
        tp = item.partition
        rules = [r for r in self.outbound if r.topic == tp.topic]
        batch = item.batch
        keys = batch.column("key").to_pylist()
        values = batch.column("value").to_pylist()
        offsets = batch.column("offset").to_pylist()
        pending = []
        errors: list[dict[str, Any]] = []
        for key, value, offset in zip(keys, values, offsets, strict=True):
            if value is None:
                continue
            decoded = decode_value(value) if any(r.needs_value for r in rules) else None
            for rule in rules:
                try:
                    mqtt_topic = rule.mqtt_topic(key, decoded)
                except TemplateError as e:
                    self._add("errors")
                    errors.append(
                        _error(
                            f"record not published to MQTT: {e}",
                            topic=tp.topic,
                            partition=tp.partition,
                            offset=offset,
                        )
                    )
                    continue
                info = client.publish(mqtt_topic, value, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return False
                pending.append(info)
        deadline = time.monotonic() + PUBLISH_TIMEOUT_S
        for info in pending:
            while not info.is_published():
                if self._stopping.is_set() and not self._connected.is_set():
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    log.warning(
                        "MQTT broker did not acknowledge %d messages within %.0f s; sending "
                        "them again",
                        len(pending),
                        PUBLISH_TIMEOUT_S,
                    )
                    return False
                try:
                    info.wait_for_publish(min(remaining, 0.5))
                except (RuntimeError, ValueError):
                    return False
        self._add("messages_out", len(pending))
        self._log_errors(errors)
        return True


def _error(message: str, **where: Any) -> dict[str, Any]:
    """A processing-log entry of the bridge, shaped as the queries' ones."""
    return {"type": "RECORD_PROCESSING_ERROR", "query": _QUERY, "message": message, **where}


__all__ = ["GROUP", "MqttBridge", "MqttInRule", "MqttOutRule", "TemplateError", "parse_broker"]

"""Redis as hispeed's speed layer: a sink with a mode per use case, a source, and lookups.

    CREATE SINK CONNECTOR leaders WITH (
      'connector.class'='redis', 'source'='SCORES_PER_HOUR', 'redis.mode'='zset',
      'zset.key'='leaderboard:{WINDOWSTART}', 'score.column'='TOTAL', 'zset.update'='gt');

`RedisSink` ('redis', 'redis-sink'): 'redis.mode' is one of hash, string, json, zset, hll,
counter, stream, list, publish (see `_redis_writers` and docs/redis.md for each mode's
properties and its delivery guarantee); 'key.template' makes the key ('{KEY}' by default),
'ttl.seconds' or 'ttl.column' expire what is written. A batch is one round trip: the
protocol text of all its commands is built at once, sent, and every reply is checked; an
error reply (WRONGTYPE...) fails the records of that command only, and a lost connection
raises RetriableError so that the runner tries the whole batch again.

`RedisSource` ('redis-source'): 'redis.source' = pubsub ('redis.channels'), stream
('redis.stream', 'redis.group': a consumer group, entries acknowledged once the runner has
committed them) or keyspace ('redis.keys': keyspace notifications).

Both talk to Redis through `hispeed.resp`, which also holds the lookups (`RedisLookup`).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

import msgspec

from hispeed.connectors._redis_plan import Plan, describe_record
from hispeed.connectors._redis_writers import WRITERS
from hispeed.connectors.base import (
    ConnectorError,
    RetriableError,
    SinkBatch,
    SinkConnector,
    SourceConnector,
    SourceRecord,
    register,
)
from hispeed.resp.client import (
    DEFAULT_TIMEOUT_MS,
    DEFAULT_URL,
    RedisConnection,
    RedisURL,
    ReplyError,
    fields,
    is_transient,
    text,
)
from hispeed.resp.templates import to_json

log = logging.getLogger(__name__)


def _timeout(config: Mapping[str, str], what: str) -> float:
    raw = config.get("redis.timeout.ms", str(DEFAULT_TIMEOUT_MS))
    try:
        ms = float(raw)
    except ValueError:
        raise ConnectorError(f"{what}: 'redis.timeout.ms' must be a number, not {raw!r}") from None
    if ms <= 0:
        raise ConnectorError(f"{what}: 'redis.timeout.ms' must be above 0")
    return ms / 1000


@register
class RedisSink(SinkConnector):
    """Write records into Redis, one mode per use case (hash, zset, stream...)."""

    names = ("redis", "redis-sink", "RedisSink", "RedisSinkConnector")

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        super().__init__(name, config)
        what = f"connector {name}"
        self.url = RedisURL.parse(self.option("redis.url", DEFAULT_URL), what)
        self.mode = self.option("redis.mode", "hash").strip().lower()
        writer = WRITERS.get(self.mode)
        if writer is None:
            raise ConnectorError(
                f"{what}: 'redis.mode' must be one of {', '.join(WRITERS)}, not {self.mode!r}"
            )
        self.writer = writer(name, self.config)
        self.conn = RedisConnection(self.url, _timeout(self.config, what), what)

    def start(self) -> None:
        self.conn.connect()
        try:
            self.conn.call("PING")
        except ReplyError as e:
            self.conn.close()
            raise RetriableError(
                f"connector {self.name}: Redis at {self.url.display()} answered PING with {e}"
            ) from None

    def write(self, batch: SinkBatch) -> None:
        if not len(batch):
            return
        plan = Plan(self.conn.send_text)
        try:
            self.writer.plan(batch, plan)
            if not plan.owners:
                return
            rest = plan.rest()
            if rest:
                self.conn.send_text(rest)
            errors = self.conn.collect(len(plan.owners), plan.simple)
        except BaseException:
            # commands may have gone out without their replies read: start afresh
            self.conn.close()
            raise
        if not errors:
            return
        for _, message in errors:
            if is_transient(message):
                raise RetriableError(
                    f"connector {self.name}: Redis at {self.url.display()} cannot write now: "
                    f"{message}"
                )
        errors = self.writer.settle(self.conn, batch, plan, errors)
        failed: set[int] = set()
        for c, message in errors:
            owner = plan.owners[c]
            for i in owner if isinstance(owner, list) else (owner,):
                if i in failed:
                    continue
                failed.add(i)
                batch.fail(
                    i,
                    f"connector {self.name}: {describe_record(batch, i)}: {self.mode} write "
                    f"to Redis key {plan.keys[c]!r} failed: {message}",
                )

    def stop(self) -> None:
        self.conn.close()

    def details(self) -> dict[str, Any]:
        return {
            "redis": self.url.display(),
            "mode": self.mode,
            "key.template": self.writer.key.text,
            "connected": self.conn.connected,
            "delivery": self.writer.guarantee,
        }


def _id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _split(value: str) -> list[str]:
    return [p.strip() for p in value.split(",") if p.strip()]


@register
class RedisSource(SourceConnector):
    """Bring Redis pub/sub messages, stream entries or keyspace events into a topic.

    Values are JSON objects: a pub/sub message that is a JSON object as it is, else
    `{"channel", "message"}`; a stream entry's fields (and `_id`); a keyspace event's
    `{"key", "event", "db"}`. Keys: the channel, 'key.field' of the entry (else its ID),
    the Redis key.
    """

    names = ("redis-source", "RedisSource", "RedisSourceConnector")

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        super().__init__(name, config)
        what = f"connector {name}"
        self.url = RedisURL.parse(self.option("redis.url", DEFAULT_URL), what)
        self.source_kind = self.option("redis.source", "pubsub").strip().lower()
        timeout = _timeout(self.config, what)
        try:
            self.batch_size = int(self.config.get("batch.size", "1000"))
        except ValueError:
            raise ConnectorError(f"{what}: 'batch.size' must be a whole number") from None
        self.channels: list[str] = []
        self.keyspace_note: str | None = None
        if self.source_kind == "pubsub":
            self.channels = _split(self.option("redis.channels"))
            if not self.channels:
                raise ConnectorError(f"{what} needs channel names in 'redis.channels'")
        elif self.source_kind == "keyspace":
            pattern = self.config.get("redis.keys", "*")
            self.channels = [f"__keyspace@{self.url.db}__:{pattern}"]
            self.configure = self.config.get("redis.keyspace.configure", "true").lower() == "true"
        elif self.source_kind == "stream":
            self.stream = self.option("redis.stream")
            self.group = self.config.get("redis.group", "hispeed")
            self.consumer = self.config.get("redis.consumer", name)
            self.stream_start = self.config.get("redis.stream.start", "0")
            self.key_field = self.config.get("key.field") or None
            # XREADGROUP blocks on the server: the socket waits longer than it does
            timeout = max(timeout, 5.0)
        else:
            raise ConnectorError(
                f"{what}: 'redis.source' must be pubsub, stream or keyspace, "
                f"not {self.source_kind!r}"
            )
        self.conn = RedisConnection(self.url, timeout, what)
        self.position: str | None = None
        self._listening = False
        #: stream entries handed out by the last poll: the runner has committed them when it
        #: polls again, so they are acknowledged then
        self._unacked: list[str] = []
        self._pending = True
        self.received = 0

    # -- lifecycle ----------------------------------------------------------------------------

    def start(self, position: Any) -> None:
        self.position = None if position is None else str(position)
        self._listening = False
        self._pending = True
        self._listen()

    def stop(self) -> None:
        self._listening = False
        self.conn.close()

    def details(self) -> dict[str, Any]:
        info: dict[str, Any] = {
            "redis": self.url.display(),
            "source": self.source_kind,
            "connected": self.conn.connected,
            "received": self.received,
        }
        if self.source_kind == "stream":
            info |= {"stream": self.stream, "group": self.group, "position": self.position}
        else:
            info["channels"] = self.channels
        if self.keyspace_note:
            info["keyspace"] = self.keyspace_note
        return info

    def _listen(self) -> None:
        """Connect and subscribe (pub/sub, keyspace) or join the consumer group (stream)."""
        if self._listening:
            return
        self.conn.close()
        self.conn.connect()
        if self.source_kind == "stream":
            self._join_group()
        else:
            if self.source_kind == "keyspace" and self.configure:
                self._enable_notifications()
            patterns = [c for c in self.channels if any(ch in c for ch in "*?[")]
            plain = [c for c in self.channels if c not in patterns]
            if plain:
                self.conn.send("SUBSCRIBE", *plain)
            if patterns:
                self.conn.send("PSUBSCRIBE", *patterns)
        self._listening = True

    def _enable_notifications(self) -> None:
        try:
            reply = self.conn.call("CONFIG", "GET", "notify-keyspace-events")
            flags = text(reply[1]) if isinstance(reply, list) and len(reply) > 1 else ""
            if "K" in flags and ("A" in flags or len(set(flags) - {"K", "E"}) >= 8):
                self.keyspace_note = f"notify-keyspace-events was {flags!r} already"
                return
            wanted = "".join(dict.fromkeys(flags + "KA"))
            self.conn.call("CONFIG", "SET", "notify-keyspace-events", wanted)
            self.keyspace_note = f"notify-keyspace-events set to {wanted!r}"
        except ReplyError as e:
            self.keyspace_note = (
                f"could not enable keyspace notifications ({e}): set notify-keyspace-events "
                "to KA in the Redis configuration"
            )
            log.warning("connector %s: %s", self.name, self.keyspace_note)

    def _join_group(self) -> None:
        start = self.position or self.stream_start
        try:
            self.conn.call("XGROUP", "CREATE", self.stream, self.group, start, "MKSTREAM")
        except ReplyError as e:
            if not e.message.startswith("BUSYGROUP"):
                raise ConnectorError(
                    f"connector {self.name}: cannot create consumer group {self.group} on "
                    f"stream {self.stream}: {e}"
                ) from None

    # -- reading ------------------------------------------------------------------------------

    def poll(self, timeout: float) -> list[SourceRecord]:
        try:
            self._listen()
            if self.source_kind == "stream":
                return self._poll_stream(timeout)
            return self._poll_messages(timeout)
        except RetriableError:
            self._listening = False
            self._pending = True  # entries delivered on the lost connection come again
            raise

    def _poll_messages(self, timeout: float) -> list[SourceRecord]:
        out: list[SourceRecord] = []
        wait = timeout
        while len(out) < self.batch_size:
            reply = self.conn.receive(wait)
            if reply is None:
                break
            wait = 0.0
            if not isinstance(reply, list) or len(reply) < 3:
                continue
            kind = reply[0]
            if kind == b"message":
                channel, data = text(reply[1]), reply[2]
            elif kind == b"pmessage" and len(reply) == 4:
                channel, data = text(reply[2]), reply[3]
            else:
                continue  # subscribe confirmations
            now = int(time.time() * 1000)
            if self.source_kind == "keyspace":
                key = channel.split(":", 1)[1] if ":" in channel else channel
                value = to_json({"key": key, "event": text(data), "db": self.url.db})
                out.append(SourceRecord(key.encode(), value.encode(), now))
                continue
            out.append(SourceRecord(channel.encode(), self._message_value(channel, data), now))
        self.received += len(out)
        return out

    @staticmethod
    def _message_value(channel: str, data: bytes) -> bytes:
        if data[:1] == b"{":
            with contextlib.suppress(msgspec.DecodeError):  # not JSON: wrapped below
                if isinstance(msgspec.json.decode(data), dict):
                    return bytes(data)
        return to_json({"channel": channel, "message": text(data)}).encode()

    def _poll_stream(self, timeout: float) -> list[SourceRecord]:
        commands: list[list[str]] = []
        if self._unacked:
            commands.append(["XACK", self.stream, self.group, *self._unacked])
        read = ["XREADGROUP", "GROUP", self.group, self.consumer, "COUNT", str(self.batch_size)]
        if self._pending:
            read += ["STREAMS", self.stream, "0"]  # delivered before, not acknowledged
        else:
            read += ["BLOCK", str(max(1, int(timeout * 1000))), "STREAMS", self.stream, ">"]
        commands.append(read)
        replies = self.conn.pipeline(commands)
        self._unacked = []
        reply = replies[-1]
        if isinstance(reply, ReplyError):
            if reply.message.startswith("NOGROUP"):  # the stream or group went away
                self._listening = False
                raise RetriableError(f"connector {self.name}: {reply.message}")
            raise ConnectorError(f"connector {self.name}: XREADGROUP failed: {reply.message}")
        entries: list[Any] = reply[0][1] if reply else []
        if self._pending and not entries:
            self._pending = False
            return []
        out: list[SourceRecord] = []
        done = _id(self.position) if self.position else (-1, -1)
        for entry_id_raw, flat in entries:
            entry_id = text(entry_id_raw)
            self._unacked.append(entry_id)
            if flat is None or _id(entry_id) <= done:
                continue  # deleted from the stream, or committed before a restart
            entry = fields(flat)
            key = entry.get(self.key_field) if self.key_field else entry_id
            value = to_json({**entry, "_id": entry_id}).encode()
            ms = _id(entry_id)[0]
            out.append(SourceRecord(None if key is None else key.encode(), value, ms, entry_id))
            self.position = entry_id
        self.received += len(out)
        return out


__all__ = ["RedisSink", "RedisSource"]

"""memcached as a plain cache of the latest value per key: the memcached sink.

    CREATE SINK CONNECTOR latest WITH (
      'connector.class'='memcached', 'source'='READINGS',
      'memcached.servers'='10.0.0.5:11211,10.0.0.6:11211',
      'key.template'='reading:{KEY}', 'ttl.seconds'='300');

'memcached.mode' is one of:

- `set` (the default): the value is written whatever the key held;
- `add`: only where the key is absent (memcached's `add`: the first record of a key wins);
- `replace`: only where the key is present (memcached's `replace`);
- `cas`: read-modify-write of a JSON object: the record's columns are merged into the object
  the key holds (or added as a new one), written with `gets`/`cas` so that a change another
  writer made in between is read again and kept, never overwritten ('cas.retries' times).

The value is the row as JSON, or one column's text ('value.column'); a tombstone (a deleted
table row) or a null 'value.column' deletes the key. 'key.template' makes the key as the
Redis sink does ('{KEY}' by default); 'ttl.seconds' or 'ttl.column' expire it. Keys are
spread over the servers as pymemcache's `HashClient` spreads them (rendezvous hashing), so a
`HashClient`, or MEMCACHED_GET, over the same servers finds each key.

A batch is one pipelined round trip per server (per round: records of one key in one batch
are applied in their order, one per round). A record memcached cannot hold (a key over 250
bytes or with spaces, a value past 'max.value.bytes', or an error reply) goes to the
processing log and the rest go on; a lost connection raises RetriableError so that the runner
retries the whole batch and commits offsets only after it was written.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from hispeed.connectors.base import (
    ConnectorError,
    SinkBatch,
    SinkConnector,
    register,
)
from hispeed.gc_pause import gc_paused
from hispeed.memcache.client import (
    DEFAULT_MAX_ITEM_BYTES,
    DEFAULT_SERVERS,
    ITEM_OVERHEAD_BYTES,
    MemcachedCluster,
    Op,
    bad_keys,
    encode,
    expiry,
    key_problem,
)
from hispeed.resp.templates import KeyTemplate, column_value, to_text

MODES = ("set", "add", "replace", "cas")
_JSON = msgspec.json.Encoder(enc_hook=str, decimal_format="number")
_OK = {b"STORED", b"DELETED", b"NOT_FOUND"}
GUARANTEES = {
    "set": "effectively once: a replay sets the same values again",
    "add": "at least once; a replayed add finds its key and leaves it as the first add made it",
    "replace": "effectively once: a replay replaces with the same values again",
    "cas": "effectively once: a replay merges the same columns again; concurrent writers' "
    "columns are kept (gets/cas)",
}


def _whole(config: Mapping[str, str], key: str, default: int, what: str, low: int = 0) -> int:
    raw = config.get(key, str(default)).strip()
    try:
        value = int(raw)
    except ValueError:
        raise ConnectorError(f"{what}: '{key}' must be a whole number, not {raw!r}") from None
    if value < low:
        raise ConnectorError(f"{what}: '{key}' must be at least {low}")
    return value


@register
class MemcachedSink(SinkConnector):
    """Write each record's value to memcached under a key made from it (see the module)."""

    names = ("memcached", "memcached-sink", "MemcachedSink", "MemcachedSinkConnector")

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        super().__init__(name, config)
        what = f"connector {name}"
        self.mode = self.option("memcached.mode", "set").strip().lower()
        if self.mode not in MODES:
            raise ConnectorError(
                f"{what}: 'memcached.mode' must be one of {', '.join(MODES)}, not {self.mode!r}"
            )
        self.key = KeyTemplate(self.option("key.template", "{KEY}"), "key.template")
        self.value_column = self.config.get("value.column") or None
        if self.mode == "cas" and self.value_column:
            raise ConnectorError(
                f"{what}: mode cas merges the row's columns into a JSON object; it takes no "
                "'value.column'"
            )
        ttl = _whole(self.config, "ttl.seconds", 0, what)
        self.ttl_seconds = ttl or None
        self.ttl_column = self.config.get("ttl.column") or None
        self.max_item_bytes = _whole(
            self.config, "max.value.bytes", DEFAULT_MAX_ITEM_BYTES, what, ITEM_OVERHEAD_BYTES + 1
        )
        self.cas_retries = _whole(self.config, "cas.retries", 10, what)
        timeout_ms = _whole(self.config, "memcached.timeout.ms", 5000, what, 1)
        self.cluster = MemcachedCluster(
            self.option("memcached.servers", DEFAULT_SERVERS), what, timeout_ms / 1000
        )
        #: records add/replace left alone (their key present/absent), since the start
        self.not_stored = 0

    def start(self) -> None:
        self.cluster.connect()

    def stop(self) -> None:
        self.cluster.close()

    def details(self) -> dict[str, Any]:
        return {
            "memcached": self.cluster.display(),
            "mode": self.mode,
            "key.template": self.key.text,
            "connected": self.cluster.connected,
            "not_stored": self.not_stored,
            "delivery": GUARANTEES[self.mode],
        }

    # -- one batch ----------------------------------------------------------------------------

    def write(self, batch: SinkBatch) -> None:
        if not len(batch):
            return
        # a command (and its text) per record, none in a cycle: no collections while they
        # are made and sent (each would walk every live object of the engine; a third of the
        # bench's CPU time before)
        with gc_paused:
            self._write(batch)

    def _write(self, batch: SinkBatch) -> None:
        ops = self._ops(batch)
        if not ops:
            return
        if self.mode == "cas":
            self._merge(batch, ops)
        elif self.mode == "set":
            # only the last record of a key counts: one round
            if len({op[1] for _, op in ops}) < len(ops):
                ops = list({op[1]: (i, op) for i, op in ops}.values())
            self._run(batch, ops)
        else:
            for round_ in _rounds(ops):
                self._run(batch, round_)

    def _fail(self, batch: SinkBatch, i: int, message: str) -> None:
        batch.fail(i, f"connector {self.name}: {message}")

    def _ttl(self, row: Mapping[str, Any]) -> int:
        if self.ttl_column is not None:
            found, value = column_value(row, self.ttl_column)
            if found and isinstance(value, int | float) and not isinstance(value, bool):
                return expiry(value)
        return expiry(self.ttl_seconds)

    def _ops(self, batch: SinkBatch) -> list[tuple[int, Op]]:
        """Each writable record's command, in order; the others failed on the batch."""
        texts, errors = self.key.fill_all(
            batch.keys, batch.rows, batch.key_columns, batch.topic, batch.partition
        )
        for i, message in errors:
            self._fail(batch, i, message)
        fixed = expiry(self.ttl_seconds)
        per_row_ttl = self.ttl_column is not None
        verb = "add" if self.mode == "cas" else self.mode
        column = self.value_column
        rows = batch.rows
        indices = [i for i, t in enumerate(texts) if t is not None]
        keys = [t.encode("utf-8", "surrogateescape") for t in texts if t is not None]
        check_keys = bad_keys(keys)  # one test for the batch; each key only if it fails
        limit = self.max_item_bytes - ITEM_OVERHEAD_BYTES
        encode_json = _JSON.encode
        out: list[tuple[int, Op]] = []
        for i, key in zip(indices, keys, strict=True):
            if check_keys:
                problem = key_problem(key)
                if problem is not None:
                    self._fail(batch, i, f"key {texts[i]!r:.300}: {problem}")
                    continue
            row = rows[i]
            value: bytes | None
            if row is None:
                value = None
            elif column is None:
                value = encode_json(row)
            else:
                found, v = column_value(row, column)
                if not found:
                    self._fail(batch, i, f"'value.column' {column} is not a column of the row")
                    continue
                value = None if v is None else to_text(v).encode("utf-8", "surrogateescape")
            if value is None:
                out.append((i, Op("delete", key)))
                continue
            if len(value) + len(key) > limit:
                self._fail(
                    batch,
                    i,
                    f"key {texts[i]!r}: the value is {len(value):,} bytes; with its key it "
                    f"passes the item size memcached takes ('max.value.bytes' = "
                    f"{self.max_item_bytes:,})",
                )
                continue
            ttl = self._ttl(row) if per_row_ttl and row is not None else fixed
            out.append((i, Op(verb, key, value, ttl)))
        return out

    def _run(self, batch: SinkBatch, ops: list[tuple[int, Op]]) -> None:
        """One pipelined round of distinct keys; error replies fail their records."""
        replies = self.cluster.store([op for _, op in ops], [encode(op) for _, op in ops])
        if replies.count(b"STORED") == len(replies):
            return
        for (i, op), reply in zip(ops, replies, strict=True):
            if reply in _OK:
                continue
            if reply == b"NOT_STORED" and op.verb in ("add", "replace"):
                self.not_stored += 1
                continue
            key = op.key.decode(errors="replace")
            self._fail(batch, i, f"{op.verb} of key {key!r}: {_text(reply)}")

    def _merge(self, batch: SinkBatch, ops: list[tuple[int, Op]]) -> None:
        """Mode cas: each round reads its keys (gets), merges and writes with cas; a key
        another writer changed in between is read and merged again."""
        rows = batch.rows
        for round_ in _rounds(ops):
            first = dict(round_)
            pending = round_
            for _ in range(self.cas_retries + 1):
                if not pending:
                    break
                found = self.cluster.gets([op.key for _, op in pending if op.verb != "delete"])
                attempt: list[tuple[int, Op]] = []
                for i, op in pending:
                    if op.verb == "delete":
                        attempt.append((i, op))
                        continue
                    row = rows[i]
                    assert row is not None
                    held = found.get(op.key)
                    if held is None:
                        attempt.append((i, op))  # absent: add the row as the object
                        continue
                    try:
                        current = msgspec.json.decode(held[0])
                    except msgspec.DecodeError:
                        current = None
                    if not isinstance(current, dict):
                        self._fail(
                            batch,
                            i,
                            f"key {op.key.decode(errors='replace')!r} holds no JSON object to "
                            "merge the row into",
                        )
                        continue
                    merged = _JSON.encode({**current, **row})
                    attempt.append((i, Op("cas", op.key, merged, op.expire, held[1])))
                pending = []
                if not attempt:
                    break
                replies = self.cluster.store([op for _, op in attempt])
                for (i, op), reply in zip(attempt, replies, strict=True):
                    if reply in _OK:
                        continue
                    if reply in (b"EXISTS", b"NOT_STORED", b"NOT_FOUND"):
                        # changed, added or deleted by another writer since the gets: again
                        pending.append((i, first[i]))
                        continue
                    self._fail(
                        batch,
                        i,
                        f"{op.verb} of key {op.key.decode(errors='replace')!r}: {_text(reply)}",
                    )
            for i, op in pending:
                self._fail(
                    batch,
                    i,
                    f"key {op.key.decode(errors='replace')!r} changed under every one of "
                    f"{self.cas_retries + 1} gets/cas attempts ('cas.retries')",
                )


def _rounds(ops: list[tuple[int, Op]]) -> list[list[tuple[int, Op]]]:
    """`ops` in rounds of distinct keys: a key's n-th command goes in round n, so the
    commands of one key run in their order and a round's order does not matter."""
    rounds: list[list[tuple[int, Op]]] = []
    seen: dict[bytes, int] = {}
    for item in ops:
        n = seen.get(item[1].key, 0)
        seen[item[1].key] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(item)
    return rounds


def _text(reply: bytes) -> str:
    return reply.decode("utf-8", "replace") or "no reply"


__all__ = ["MemcachedSink"]

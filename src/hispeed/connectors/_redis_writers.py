"""The Redis sink's modes: each turns a SinkBatch into the RESP text of its commands.

One writer per `'redis.mode'`. A writer appends to a `Plan`: the protocol text of each
command, the record (or records) it writes and the Redis key, so that an error reply fails
exactly the records of that command. Records that go to one key in one batch share one
command where Redis has a multi-member form (one ZADD per set key, one PFADD per HyperLogLog,
one RPUSH per list, one INCRBY per counter), and the upsert modes (hash, string, json) keep
only each key's final state of the batch. What the modes share (the plan, the `Writer` base,
the text helpers) is in `_redis_plan`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from operator import itemgetter
from typing import Any, cast

from hispeed.connectors._redis_plan import (
    FLUSH_EVERY,
    Plan,
    Row,
    SkippedError,
    Writer,
    as_number,
    byte_length,
    commands_text,
    int_option,
    owner_of,
    texts_of,
    value_text,
)
from hispeed.connectors.base import ConnectorError, SinkBatch
from hispeed.resp.client import (
    RedisConnection,
    bulk,
    command,
)
from hispeed.resp.templates import (
    MISSING,
    KeyTemplate,
    column_value,
    key_text,
    to_text,
)


class HashWriter(Writer):
    """One hash per key, its fields the value columns; a tombstone deletes the key.

    Null columns delete their fields (HDEL), so a key's hash is always its latest row.
    """

    mode = "hash"
    guarantee = "effectively once: an upsert, so a replay gives the same final state"

    def __init__(self, sink: str, config: Mapping[str, str]) -> None:
        super().__init__(sink, config)
        #: column name -> its bulk string
        self._names: dict[str, str] = {}

    def plan(self, batch: SinkBatch, plan: Plan) -> None:
        rows = batch.rows
        texts = self.keys_of(self.key, batch)
        key_columns = set(batch.key_columns)
        if len(set(texts)) == len(texts):  # one record per key: nothing to merge
            for start in range(0, len(rows), FLUSH_EVERY):
                stop = min(len(rows), start + FLUSH_EVERY)
                if not self._emit_columns(plan, texts, rows, start, stop, key_columns):
                    for i in range(start, stop):
                        k = texts[i]
                        if k is not None:
                            row = rows[i]
                            self._emit(plan, k, row is None, row, i, key_columns)
                plan.flush()
            return
        groups: dict[str, list[Any]] = {}
        for i in range(len(rows)):
            k = texts[i]
            if k is None:
                continue
            row = rows[i]
            g = groups.get(k)
            if g is None:
                groups[k] = [row is None, [] if row is None else [row], [i]]
            elif row is None:
                g[0] = True
                g[1] = []
                g[2].append(i)
            else:
                g[1].append(row)
                g[2].append(i)
        for k, (deleted, found_rows, indices) in groups.items():
            merged: Row | None = None
            if len(found_rows) == 1:
                merged = found_rows[0]
            elif found_rows:
                merged = {}
                for r in found_rows:
                    merged.update(r)
            self._emit(plan, k, deleted, merged, owner_of(indices), key_columns)

    def _emit_columns(
        self,
        plan: Plan,
        texts: list[str | None],
        rows: list[dict[str, Any] | None],
        start: int,
        stop: int,
        key_columns: set[str],
    ) -> bool:
        """HSET records start..stop a column at a time, when they have one key each, the
        same columns and no nulls (False: they do not; nothing was planned)."""
        keys = texts[start:stop]
        if None in keys or self.ttl_column is not None:
            return False
        some = rows[start:stop]
        if not some or None in some:
            return False
        chunk = cast("list[dict[str, Any]]", some)
        first = chunk[0]
        columns = [c for c in first if c not in key_columns]
        if not columns or set(map(len, chunk)) != {len(first)}:
            return False
        try:
            by_column = [list(map(itemgetter(c), chunk)) for c in columns]
        except KeyError:
            return False
        key_texts: list[str] = keys  # type: ignore[assignment]
        args = [("", key_texts)]
        for name, column in zip(columns, by_column, strict=True):
            column_texts = texts_of(column)
            if column_texts is None:
                return False
            args.append((bulk(name), column_texts))
        plan.parts.append(commands_text(f"*{2 * len(columns) + 2}\r\n$4\r\nHSET\r\n", args))
        plan.owners.extend(range(start, stop))
        plan.keys.extend(key_texts)
        if self.ttl_seconds is not None:
            seconds = [str(self.ttl_seconds)] * len(key_texts)
            expire = commands_text("*3\r\n$6\r\nEXPIRE\r\n", [("", key_texts), ("", seconds)])
            plan.parts.append(expire)
            plan.owners.extend(range(start, stop))
            plan.keys.extend(key_texts)
        return True

    def _emit(
        self,
        plan: Plan,
        k: str,
        deleted: bool,
        row: Row | None,
        owner: int | list[int],
        key_columns: set[str],
    ) -> None:
        kb = f"${len(k) if k.isascii() else byte_length(k)}\r\n{k}\r\n"
        parts = plan.parts
        owners = plan.owners
        keys = plan.keys
        if deleted:
            parts.append("*2\r\n$3\r\nDEL\r\n" + kb)
            owners.append(owner)
            keys.append(k)
        if row is None:
            return
        names = self._names
        fields = []
        nulls = []
        for c, v in row.items():
            if c in key_columns:
                continue
            if v is None:
                nulls.append(bulk(c))
                continue
            h = names.get(c)
            if h is None:
                if len(names) > 10_000:
                    names.clear()
                h = names[c] = bulk(c)
            s = v if type(v) is str else value_text(v)
            fields.append(f"{h}${len(s) if s.isascii() else byte_length(s)}\r\n{s}\r\n")
        if fields:
            parts.append(f"*{2 * len(fields) + 2}\r\n$4\r\nHSET\r\n{kb}{''.join(fields)}")
            owners.append(owner)
            keys.append(k)
            if self.ttl_seconds is not None or self.ttl_column is not None:
                ttl = self.ttl_command(k, row)
                if ttl is not None:
                    plan.add(ttl, owner, k)
        if nulls and not deleted:
            parts.append(f"*{len(nulls) + 2}\r\n$4\r\nHDEL\r\n{kb}{''.join(nulls)}")
            owners.append(owner)
            keys.append(k)


class StringWriter(Writer):
    """The value as a string ('value.column', else the whole row as JSON); a tombstone or a
    null value deletes the key. 'ttl.*' becomes SET ... EX / PX."""

    mode = "string"
    guarantee = "effectively once: an upsert, so a replay gives the same final state"

    def __init__(self, sink: str, config: Mapping[str, str]) -> None:
        super().__init__(sink, config)
        self.value_column = config.get("value.column") or None

    def plan(self, batch: SinkBatch, plan: Plan) -> None:
        rows = batch.rows
        texts = self.keys_of(self.key, batch)
        last: dict[str, tuple[str | None, Row | None, list[int]]] = {}
        for i in range(len(rows)):
            k = texts[i]
            if k is None:
                continue
            row = rows[i]
            value = None
            if row is not None:
                try:
                    value = self.payload(row, self.value_column, batch, i)
                except SkippedError:
                    continue
            g = last.get(k)
            if g is None:
                last[k] = (value, row, [i])
            else:
                g[2].append(i)
                last[k] = (value, row, g[2])
        fixed_ttl = "" if self.ttl_seconds is None else f"$2\r\nEX\r\n{bulk(str(self.ttl_seconds))}"
        for k, (value, last_row, indices) in last.items():
            owner = owner_of(indices)
            if value is None:
                plan.add("*2\r\n$3\r\nDEL\r\n" + bulk(k), owner, k)
                continue
            ttl = fixed_ttl
            if self.ttl_column is not None and last_row is not None:
                seconds = as_number(column_value(last_row, self.ttl_column)[1])
                if seconds is not None and seconds > 0:
                    ttl = (
                        f"$2\r\nEX\r\n{bulk(str(seconds))}"
                        if type(seconds) is int
                        else f"$2\r\nPX\r\n{bulk(str(max(1, round(seconds * 1000))))}"
                    )
            plan.add(f"*{5 if ttl else 3}\r\n$3\r\nSET\r\n{bulk(k)}{bulk(value)}{ttl}", owner, k)
            if len(plan.parts) - plan.sent >= FLUSH_EVERY:
                plan.flush()


class JsonWriter(StringWriter):
    """The whole row as a JSON string (no RedisJSON needed)."""

    mode = "json"

    def __init__(self, sink: str, config: Mapping[str, str]) -> None:
        super().__init__(sink, config)
        self.value_column = None


class ZSetWriter(Writer):
    """Sorted-set leaderboards: one set per 'zset.key', member from the key or
    'member.column', score from 'score.column'; 'zset.update' gt|lt|always; a tombstone
    removes its member; 'zset.max.members' keeps only the best members."""

    mode = "zset"
    guarantee = "effectively once: ZADD sets a member's score, so a replay gives the same state"

    def __init__(self, sink: str, config: Mapping[str, str]) -> None:
        super().__init__(sink, config)
        self.set_key = self.template("zset.key", "leaderboard:{WINDOWSTART}")
        self.member_column = config.get("member.column") or None
        score = config.get("score.column")
        if not score:
            raise ConnectorError(f"connector {sink}: mode zset needs 'score.column'")
        self.score_column = score
        update = config.get("zset.update", "always").lower()
        if update not in ("gt", "lt", "always"):
            raise ConnectorError(
                f"connector {sink}: 'zset.update' must be gt, lt or always, not {update!r}"
            )
        self.flag = {"gt": "$2\r\nGT\r\n", "lt": "$2\r\nLT\r\n", "always": ""}[update]
        self.max_members = int_option(config, "zset.max.members", sink)
        keep = config.get("zset.keep", "lowest" if update == "lt" else "highest").lower()
        if keep not in ("highest", "lowest"):
            raise ConnectorError(
                f"connector {sink}: 'zset.keep' must be highest or lowest, not {keep!r}"
            )
        self.keep_highest = keep == "highest"

    def plan(self, batch: SinkBatch, plan: Plan) -> None:
        rows = batch.rows
        last_row: dict[str, Row] = {}
        added: dict[str, list[int]] = {}
        set_keys = self.keys_of(self.set_key, batch)
        for start in range(0, len(rows), FLUSH_EVERY):
            stop = min(len(rows), start + FLUSH_EVERY)
            self._plan_chunk(batch, plan, set_keys, start, stop, last_row, added)
            plan.flush()
        for set_key, indices in added.items():
            owner = owner_of(indices)
            if self.max_members is not None:
                if self.keep_highest:
                    first, last = "0", str(-self.max_members - 1)
                else:
                    first, last = str(self.max_members), "-1"
                plan.add(command("ZREMRANGEBYRANK", set_key, first, last), owner, set_key)
            ttl = self.ttl_command(set_key, last_row.get(set_key))
            if ttl is not None:
                plan.add(ttl, owner, set_key)

    def _plan_chunk(
        self,
        batch: SinkBatch,
        plan: Plan,
        set_keys: list[str | None],
        start: int,
        stop: int,
        last_row: dict[str, Row],
        added: dict[str, list[int]],
    ) -> None:
        """ZADD and ZREM for records start..stop, one command per run of each set key."""
        rows = batch.rows
        keys = batch.keys
        # per set key, runs of adds and removes in record order: [kind, bulk args, indices]
        sets: dict[str, list[list[Any]]] = {}
        member_column = self.member_column
        score_column = self.score_column
        for i in range(start, stop):
            set_key = set_keys[i]
            if set_key is None:
                continue
            row = rows[i]
            if member_column is not None and row is not None:
                found, member = self.column(batch, i, member_column, "member.column")
                if not found:
                    continue
                if member is None:
                    self.fail(batch, i, f"'member.column' {member_column} is null")
                    continue
                member_text = to_text(member)
            else:
                key = keys[i]
                if type(key) is str:
                    member_text = key
                elif key is None:
                    self.fail(batch, i, "a sorted-set member needs a key or 'member.column'")
                    continue
                else:
                    member_text = key_text(key)
            mb = f"${len(member_text) if member_text.isascii() else byte_length(member_text)}\r\n"
            if row is None:
                kind = "ZREM"
                args = [f"{mb}{member_text}\r\n"]
            else:
                score = row.get(score_column, MISSING)
                if type(score) is float and score == score:  # not NaN
                    number_text = repr(score)
                elif type(score) is int:
                    number_text = str(score)
                else:
                    if score is MISSING:
                        found, score = self.column(batch, i, score_column, "score.column")
                        if not found:
                            continue
                    number = as_number(score)
                    if number is None or (type(number) is float and math.isnan(number)):
                        message = f"'score.column' {score_column} is {score!r}, not a number"
                        self.fail(batch, i, message)
                        continue
                    number_text = repr(number) if type(number) is float else str(number)
                kind = "ZADD"
                args = [f"${len(number_text)}\r\n{number_text}\r\n{mb}{member_text}\r\n"]
                last_row[set_key] = row
            runs = sets.get(set_key)
            if runs is None:
                sets[set_key] = [[kind, args, [i]]]
            elif runs[-1][0] == kind:
                runs[-1][1].append(args[0])
                runs[-1][2].append(i)
            else:
                runs.append([kind, args, [i]])
        for set_key, runs in sets.items():
            kb = bulk(set_key)
            for kind, args, indices in runs:
                owner = owner_of(indices)
                if kind == "ZADD":
                    flag = self.flag
                    n = 2 * len(args) + 2 + (1 if flag else 0)
                    plan.add(f"*{n}\r\n$4\r\nZADD\r\n{kb}{flag}{''.join(args)}", owner, set_key)
                    added.setdefault(set_key, []).extend(indices)
                else:
                    zrem = f"*{len(args) + 2}\r\n$4\r\nZREM\r\n{kb}{''.join(args)}"
                    plan.add(zrem, owner, set_key)


class _GroupWriter(Writer):
    """A mode that sends one multi-member command per key: [bulk args, indices, last row]."""

    def group(self, batch: SinkBatch, element: Any) -> dict[str, list[Any]]:
        """Records by key, each reduced to one bulk argument by `element(i, row)` (None:
        nothing to write for that record). Tombstones are left out."""
        groups: dict[str, list[Any]] = {}
        rows = batch.rows
        texts = self.keys_of(self.key, batch)
        for i in range(len(rows)):
            row = rows[i]
            if row is None:
                continue
            k = texts[i]
            if k is None:
                continue
            arg = element(i, row)
            if arg is None:
                continue
            g = groups.get(k)
            if g is None:
                groups[k] = [[arg], [i], row]
            else:
                g[0].append(arg)
                g[1].append(i)
                g[2] = row
        return groups


class HyperLogLogWriter(_GroupWriter):
    """PFADD of 'element.column' (else the record key) to the HyperLogLog at the key;
    tombstones and null elements add nothing (a HyperLogLog cannot forget)."""

    mode = "hll"
    guarantee = "effectively once: adding an element twice does not change the count"

    def __init__(self, sink: str, config: Mapping[str, str]) -> None:
        super().__init__(sink, config)
        self.element_column = config.get("element.column") or None

    def plan(self, batch: SinkBatch, plan: Plan) -> None:
        keys = batch.keys
        column = self.element_column

        def element(i: int, row: Row) -> str | None:
            if column is None:
                value = keys[i]
                return None if value is None else bulk(key_text(value))
            found, value = self.column(batch, i, column, "element.column")
            return bulk(to_text(value)) if found and value is not None else None

        for k, (args, indices, row) in self.group(batch, element).items():
            owner = owner_of(indices)
            plan.add(f"*{len(args) + 2}\r\n$5\r\nPFADD\r\n{bulk(k)}{''.join(args)}", owner, k)
            ttl = self.ttl_command(k, row)
            if ttl is not None:
                plan.add(ttl, owner, k)


class ListWriter(_GroupWriter):
    """RPUSH (or LPUSH, 'list.push'='left') of the value to a list used as a queue;
    'list.max' trims it to the newest entries."""

    mode = "list"
    guarantee = "at-least-once: a replayed batch is pushed again"

    def __init__(self, sink: str, config: Mapping[str, str]) -> None:
        super().__init__(sink, config)
        self.value_column = config.get("value.column") or None
        push = config.get("list.push", "right").lower()
        if push not in ("right", "left"):
            raise ConnectorError(f"connector {sink}: 'list.push' must be right or left")
        self.verb = "$5\r\nRPUSH\r\n" if push == "right" else "$5\r\nLPUSH\r\n"
        self.right = push == "right"
        self.max = int_option(config, "list.max", sink)

    def plan(self, batch: SinkBatch, plan: Plan) -> None:
        def element(i: int, row: Row) -> str | None:
            try:
                value = self.payload(row, self.value_column, batch, i)
            except SkippedError:
                return None
            return None if value is None else bulk(value)

        for k, (args, indices, row) in self.group(batch, element).items():
            owner = owner_of(indices)
            plan.add(f"*{len(args) + 2}\r\n{self.verb}{bulk(k)}{''.join(args)}", owner, k)
            if self.max is not None:
                span = ("-" + str(self.max), "-1") if self.right else ("0", str(self.max - 1))
                plan.add(command("LTRIM", k, *span), owner, k)
            ttl = self.ttl_command(k, row)
            if ttl is not None:
                plan.add(ttl, owner, k)


class CounterWriter(Writer):
    """INCRBY (HINCRBY into 'counter.field' of a hash) by 'increment.column' or 1; a batch's
    increments to one counter are summed into one command; fractions use INCRBYFLOAT."""

    mode = "counter"
    guarantee = "at-least-once: a replayed batch counts again (counters are not idempotent)"

    def __init__(self, sink: str, config: Mapping[str, str]) -> None:
        super().__init__(sink, config)
        self.increment_column = config.get("increment.column") or None
        field = config.get("counter.field")
        self.field = KeyTemplate(field, "counter.field") if field else None

    def plan(self, batch: SinkBatch, plan: Plan) -> None:
        rows = batch.rows
        counters: dict[tuple[str, str], list[Any]] = {}
        column = self.increment_column
        texts = self.keys_of(self.key, batch)
        fields = self.keys_of(self.field, batch) if self.field is not None else None
        for i in range(len(rows)):
            row = rows[i]
            if row is None:
                continue
            k = texts[i]
            if k is None:
                continue
            field = ""
            if fields is not None:
                f = fields[i]
                if f is None:
                    continue
                field = f
            step: Any = 1
            if column is not None:
                found, value = self.column(batch, i, column, "increment.column")
                if not found:
                    continue
                if value is None:
                    continue
                step = as_number(value)
                if step is None or (type(step) is float and not math.isfinite(step)):
                    self.fail(batch, i, f"'increment.column' {column} is {value!r}, not a number")
                    continue
            g = counters.get((k, field))
            if g is None:
                counters[(k, field)] = [step, [i], row]
            else:
                g[0] += step
                g[1].append(i)
                g[2] = row
        for (k, field), (total, indices, row) in counters.items():
            owner = owner_of(indices)
            amount = repr(total) if type(total) is float else str(total)
            if type(total) is float:
                plan.simple = False  # INCRBYFLOAT answers with a bulk string
                verb = "HINCRBYFLOAT" if self.field is not None else "INCRBYFLOAT"
            else:
                verb = "HINCRBY" if self.field is not None else "INCRBY"
            args = (k, field, amount) if self.field is not None else (k, amount)
            plan.add(command(verb, *args), owner, k)
            ttl = self.ttl_command(k, row)
            if ttl is not None:
                plan.add(ttl, owner, k)


_XADD_OLD_ID = "ERR The ID specified in XADD is equal or smaller"


class StreamWriter(Writer):
    """XADD of each row's columns to a Redis stream, with an ID made from the record's
    offset and partition (`<offset + 1>-<partition>`): ids rise with the offsets, a replayed
    record has the ID it had, and Redis refuses it as not newer, which means 'written'.
    'stream.maxlen' caps the stream (MAXLEN ~); 'stream.id'='auto' lets Redis choose ids
    (at-least-once). A tombstone is an entry of the key columns and `_deleted` = true."""

    mode = "stream"
    guarantee = "effectively once: ids from offsets, so a replay adds no entry twice"

    def __init__(self, sink: str, config: Mapping[str, str]) -> None:
        super().__init__(sink, config)
        maxlen = int_option(config, "stream.maxlen", sink)
        self.trim = "" if maxlen is None else f"$6\r\nMAXLEN\r\n$1\r\n~\r\n{bulk(str(maxlen))}"
        ids = config.get("stream.id", "offset").lower()
        if ids not in ("offset", "auto"):
            raise ConnectorError(f"connector {sink}: 'stream.id' must be offset or auto")
        self.auto_ids = ids == "auto"
        if self.auto_ids:
            self.guarantee = "at-least-once: 'stream.id'='auto', so a replay appends again"

    def plan(self, batch: SinkBatch, plan: Plan) -> None:
        plan.simple = False  # XADD answers with the ID, a bulk string
        rows = batch.rows
        keys = batch.keys
        offsets = batch.offsets
        partition = batch.partition
        trim = self.trim
        head = 3 + (3 if trim else 0)
        texts = self.keys_of(self.key, batch)
        for i in range(len(rows)):
            k = texts[i]
            if k is None:
                continue
            row = rows[i]
            fields = []
            if row is None:
                key = keys[i]
                if isinstance(key, Mapping):
                    pairs = list(key.items())
                elif batch.key_columns:
                    pairs = [(batch.key_columns[0], key)]
                else:
                    pairs = [("KEY", key)]
                pairs.append(("_deleted", True))
            else:
                pairs = list(row.items()) or [("value", "{}")]
            for c, v in pairs:
                s = "" if v is None else v if type(v) is str else value_text(v)
                fields.append(
                    f"${len(c) if c.isascii() else byte_length(c)}\r\n{c}\r\n"
                    f"${len(s) if s.isascii() else byte_length(s)}\r\n{s}\r\n"
                )
            xid = "$1\r\n*\r\n" if self.auto_ids else bulk(f"{offsets[i] + 1}-{partition}")
            plan.add(
                f"*{head + 2 * len(fields)}\r\n$4\r\nXADD\r\n{bulk(k)}{trim}{xid}{''.join(fields)}",
                i,
                k,
            )
            ttl = self.ttl_command(k, row)
            if ttl is not None:
                plan.add(ttl, i, k)
            if len(plan.parts) - plan.sent >= FLUSH_EVERY:
                plan.flush()

    def settle(
        self, conn: RedisConnection, batch: SinkBatch, plan: Plan, errors: list[tuple[int, str]]
    ) -> list[tuple[int, str]]:
        refused = sorted({plan.keys[c] for c, m in errors if m.startswith(_XADD_OLD_ID)})
        if not refused:
            return errors
        replies = conn.pipeline([["XINFO", "STREAM", k] for k in refused])
        last_partition: dict[str, int | None] = {}
        for k, reply in zip(refused, replies, strict=True):
            last_partition[k] = None
            if isinstance(reply, list):
                info = dict(zip(reply[::2], reply[1::2], strict=True))
                last = info.get(b"last-generated-id")
                if isinstance(last, bytes) and b"-" in last:
                    last_partition[k] = int(last.split(b"-", 1)[1])
        kept = []
        for c, message in errors:
            if not message.startswith(_XADD_OLD_ID):
                kept.append((c, message))
                continue
            k = plan.keys[c]
            seen = last_partition.get(k)
            if seen == batch.partition:
                continue  # written before: this is a replay
            kept.append(
                (
                    c,
                    f"{message} (the stream's last id comes from partition {seen}, this record "
                    f"from partition {batch.partition}: ids made from offsets rise per "
                    "partition only, so give each partition a stream of its own with "
                    "{PARTITION} in 'key.template', or set 'stream.id'='auto')",
                )
            )
        return kept


class PublishWriter(Writer):
    """PUBLISH of the value ('value.column', else the row as JSON) to the channel made from
    'channel' (a template; else 'key.template'); tombstones publish nothing."""

    mode = "publish"
    guarantee = (
        "at-least-once from the sink (a replay publishes again); at-most-once for "
        "subscribers, who miss what is published while they are not connected"
    )
    expires = False

    def __init__(self, sink: str, config: Mapping[str, str]) -> None:
        super().__init__(sink, config)
        self.channel = self.template("channel", "alerts:{DEVICE}")
        self.value_column = config.get("value.column") or None

    def plan(self, batch: SinkBatch, plan: Plan) -> None:
        rows = batch.rows
        channels = self.keys_of(self.channel, batch)
        for i in range(len(rows)):
            row = rows[i]
            if row is None:
                continue
            channel = channels[i]
            if channel is None:
                continue
            try:
                message = self.payload(row, self.value_column, batch, i)
            except SkippedError:
                continue
            if message is None:
                continue
            plan.add(f"*3\r\n$7\r\nPUBLISH\r\n{bulk(channel)}{bulk(message)}", i, channel)
            if len(plan.parts) - plan.sent >= FLUSH_EVERY:
                plan.flush()


WRITERS: dict[str, type[Writer]] = {
    w.mode: w
    for w in (
        HashWriter,
        StringWriter,
        JsonWriter,
        ZSetWriter,
        HyperLogLogWriter,
        CounterWriter,
        StreamWriter,
        ListWriter,
        PublishWriter,
    )
}


__all__ = ["WRITERS"]

"""Running connectors: a thread each, positions committed with what they did.

`Connectors` is what the engine holds: CREATE/DROP/SHOW/DESCRIBE CONNECTOR land here. A
connector's statement is in the engine's command topic, so a restart creates it again and it
resumes from its committed position: a sink from its consumer group's offsets (committed
after each batch is written), a source from the last position it committed in the same
transaction as its records (the compacted topic `_hispeed_connector_offsets`).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping
from typing import Any

import msgspec
import pyarrow as pa

from hispeed.catalog import Source
from hispeed.connectors.base import (
    Connector,
    ConnectorError,
    ConnectorStatus,
    RetriableError,
    SinkBatch,
    SinkConnector,
    SourceBatch,
    SourceConnector,
    connector_class,
)
from hispeed.errors import HispeedError
from hispeed.gc_pause import gc_paused
from hispeed.log.base import PolledBatch, TopicPartition
from hispeed.ops.decode import SourceDecoder
from hispeed.runtime.context import QueryContext
from hispeed.runtime.task import PROCESSING_LOG

log = logging.getLogger(__name__)

OFFSETS_TOPIC = "_hispeed_connector_offsets"
BACKOFF_START_S = 0.1
BACKOFF_MAX_S = 5.0
#: seconds between the warnings of a connector that stays RETRYING
RETRY_WARN_EVERY_S = 60.0


class _Runner:
    """One connector on its own thread, with its counts and state."""

    def __init__(self, context: QueryContext, connector: Connector, statement: str) -> None:
        self.context = context
        self.connector = connector
        self.statement = statement
        self.name = connector.name
        self.status = ConnectorStatus("STARTING")
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._main, name=f"connector-{self.name}", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    @property
    def started(self) -> bool:
        return self._thread.ident is not None

    def stop(self) -> None:
        self._stop.set()
        if self.started:
            self._thread.join(30)
        try:
            self.connector.stop()
        except Exception as e:  # stopping must not fail the engine's close
            log.warning("connector %s did not stop cleanly: %s", self.name, e)
        self.status.state = "STOPPED"

    def _main(self) -> None:
        try:
            self._run()
        except Exception as e:
            log.exception("connector %s failed", self.name)
            self.status.state = "FAILED"
            self.status.last_error = f"{type(e).__name__}: {e}"

    def _run(self) -> None:
        raise ConnectorError(f"connector {self.name} has no way to run")

    def _retrying(self, what: str, action: Any) -> Any:
        """Call `action()` until it succeeds, backing off while it raises RetriableError."""
        delay = BACKOFF_START_S
        warned = 0.0
        while not self._stop.is_set():
            try:
                result = action()
                if self.status.state in ("RETRYING", "STARTING"):
                    if self.status.state == "RETRYING":
                        log.warning("connector %s is RUNNING again", self.name)
                    self.status.state = "RUNNING"
                return result
            except RetriableError as e:
                self.status.state = "RETRYING"
                self.status.last_error = f"{what}: {e}"
                # said on the terminal, then once a minute while it lasts: a connector that
                # cannot reach its system must not freeze what it feeds silently
                if time.monotonic() - warned >= RETRY_WARN_EVERY_S:
                    warned = time.monotonic()
                    log.warning("connector %s is RETRYING: %s", self.name, self.status.last_error)
                self._stop.wait(delay)
                delay = min(BACKOFF_MAX_S, delay * 2)
        return None

    def _log_errors(self, errors: list[dict[str, Any]]) -> None:
        if not errors:
            return
        self.status.errors += len(errors)
        self.status.last_error = str(errors[-1]["message"])
        self.context.log.append(PROCESSING_LOG, [(None, msgspec.json.encode(e)) for e in errors])


class SinkRunner(_Runner):
    def __init__(
        self,
        context: QueryContext,
        connector: SinkConnector,
        statement: str,
        topics: list[str],
        sources: Mapping[str, Source],
    ) -> None:
        super().__init__(context, connector, statement)
        self.sink = connector
        self.topics = topics
        self.sources = dict(sources)
        self.group = f"_hispeed_connector_{self.name}"
        self._decoders: dict[str, Any] = {}
        self._types: dict[str, dict[str, str]] = {}

    def _run(self) -> None:
        self._retrying("connecting", self.sink.start)
        self._resume()
        consumer = self.context.log.consumer(
            self.topics, group=self.group, auto_offset_reset="earliest"
        )
        try:
            while not self._stop.is_set():
                self._retrying("flushing", self.sink.flush)
                for item in consumer.poll(0.2):
                    errors: list[dict[str, Any]] = []
                    batch = self._decoded(item, errors)
                    if len(batch):
                        written = self._retrying("writing", lambda b=batch: self.sink.write(b))
                        if self._stop.is_set() and written is None:
                            return  # stopped while retrying: nothing committed, nothing lost
                        for i, message in batch.failures:
                            errors.append(self._error(batch, i, message))
                        self.status.records += len(batch) - len(batch.failures)
                    self._log_errors(errors)
                    offsets = item.batch.column("offset")
                    tp = item.partition
                    consumer.commit({tp: int(offsets[len(offsets) - 1].as_py()) + 1})
        finally:
            consumer.close()

    def _resume(self) -> None:
        """Start the group where the sink says it is, when it keeps that itself."""
        log_ = self.context.log
        partitions = [
            TopicPartition(t, p)
            for t in self.topics
            for p in range(len(log_.describe_topic(t).partitions))
        ]
        offsets = self.sink.resume_offsets(partitions)
        if offsets:
            # never before what the log still holds (a sink's 0 for "from the start")
            starts = {tp: log_.offsets(tp.topic, tp.partition)[0] for tp in offsets}
            log_.commit_offsets(self.group, {tp: max(o, starts[tp]) for tp, o in offsets.items()})

    def _error(self, batch: SinkBatch, i: int, message: str) -> dict[str, Any]:
        return {
            "type": "RECORD_PROCESSING_ERROR",
            "query": f"connector {self.name}",
            "message": message,
            "topic": batch.topic,
            "partition": batch.partition,
            "offset": batch.offsets[i],
        }

    def _decoded(self, item: PolledBatch, errors: list[dict[str, Any]]) -> SinkBatch:
        """`_batch` with the cyclic collector paused: a batch's rows are thousands of small
        dicts made at once, none in a cycle, and the collections their numbers set off (each
        walking every live object of the engine) cost the memcached sink's bench a third of
        its CPU time."""
        with gc_paused:
            return self._batch(item, errors)

    def _batch(self, item: PolledBatch, errors: list[dict[str, Any]]) -> SinkBatch:
        tp = item.partition
        source = self.sources.get(tp.topic)
        if source is None:
            return _json_batch(item, errors, self.name)
        decoder = self._decoders.get(tp.topic)
        if decoder is None:
            decoder = SourceDecoder(
                source,
                "S",
                f"connector {self.name}",
                keep_tombstones=True,
                registry=self.context.schema_registry,
            )
            self._decoders[tp.topic] = decoder
        frame, tombstones = decoder.decode(item, errors)
        names = [n.split(".", 1)[1] for n in frame.schema.names]
        key_names = [c.name for c in source.key_columns]
        value_names = [c.name for c in source.value_columns]
        window = ["WINDOWSTART", "WINDOWEND"] if source.window is not None else []
        row_names = key_names + value_names + window
        table = pa.Table.from_arrays(
            [frame.column(names.index(c)) for c in row_names], names=row_names
        )
        if not self.sink.rows_needed:  # columns only: no Python object per record
            return SinkBatch(
                topic=tp.topic,
                partition=tp.partition,
                offsets=frame.column(names.index("ROWOFFSET")).to_pylist(),
                timestamps=frame.column(names.index("ROWTIME")).to_pylist(),
                keys=[],
                rows=[],
                key_columns=key_names,
                column_types=self._column_types(source),
                columns=table,
                deleted=tombstones.astype(bool).tolist(),
            )
        columns = {n: frame.column(i).to_pylist() for i, n in enumerate(names)}
        n = frame.num_rows
        keys: list[Any] = []
        rows: list[dict[str, Any] | None] = []
        for i in range(n):
            if len(key_names) == 1:
                keys.append(columns[key_names[0]][i])
            elif key_names:
                keys.append({k: columns[k][i] for k in key_names})
            else:
                keys.append(None)
            if bool(tombstones[i]):
                rows.append(None)
            else:
                rows.append({c: columns[c][i] for c in row_names})
        return SinkBatch(
            topic=tp.topic,
            partition=tp.partition,
            offsets=[int(o) for o in columns["ROWOFFSET"]],
            timestamps=[int(t) for t in columns["ROWTIME"]],
            keys=keys,
            rows=rows,
            key_columns=key_names,
            columns=table,
            deleted=tombstones.astype(bool).tolist(),
            column_types=self._column_types(source),
        )

    def _column_types(self, source: Source) -> dict[str, str]:
        types = self._types.get(source.topic)
        if types is None:
            types = {c.name: str(c.type) for c in (*source.key_columns, *source.value_columns)}
            if source.window is not None:
                types |= {"WINDOWSTART": "BIGINT", "WINDOWEND": "BIGINT"}
            self._types[source.topic] = types
        return types


def _json_batch(item: PolledBatch, errors: list[dict[str, Any]], name: str) -> SinkBatch:
    """A topic without a stream or table over it: keys as text, values as JSON objects."""
    tp = item.partition
    records = item.batch.to_pylist()
    batch = SinkBatch(tp.topic, tp.partition, [], [], [], [])
    for r in records:
        value: dict[str, Any] | None = None
        if r["value"] is not None:
            try:
                decoded = msgspec.json.decode(r["value"])
            except msgspec.DecodeError as e:
                errors.append(_raw_error(name, tp, r["offset"], f"value is not JSON: {e}"))
                continue
            value = decoded if isinstance(decoded, dict) else {"VALUE": decoded}
            value = {str(k).upper(): v for k, v in value.items()}
        key = r["key"].decode(errors="replace") if r["key"] is not None else None
        batch.offsets.append(int(r["offset"]))
        batch.timestamps.append(int(r["timestamp"]))
        batch.keys.append(key)
        batch.rows.append(value)
    return batch


def _raw_error(name: str, tp: TopicPartition, offset: int, message: str) -> dict[str, Any]:
    return {
        "type": "RECORD_PROCESSING_ERROR",
        "query": f"connector {name}",
        "message": message,
        "topic": tp.topic,
        "partition": tp.partition,
        "offset": offset,
    }


class SourceRunner(_Runner):
    def __init__(
        self,
        context: QueryContext,
        connector: SourceConnector,
        statement: str,
        topic: str,
        partitions: int = 1,
    ) -> None:
        super().__init__(context, connector, statement)
        self.source = connector
        self.topic = topic
        self.partitions = partitions
        self._known: set[str] = {topic}

    def _position(self) -> Any:
        """The last position this connector committed, or None."""
        log_ = self.context.log
        found: Any = None
        start, end = log_.offsets(OFFSETS_TOPIC, 0)
        if end <= start:
            return None
        key = self.name.encode()
        for batch in log_.read(OFFSETS_TOPIC, 0, start):
            keys = batch.column("key").to_pylist()
            values = batch.column("value").to_pylist()
            for k, v in zip(keys, values, strict=True):
                if k == key:
                    found = None if v is None else msgspec.json.decode(v)["position"]
        return found

    def _run(self) -> None:
        position = self._position()
        self._retrying("connecting", lambda: self.source.start(position))
        log_ = self.context.log
        key = self.name.encode()
        while not self._stop.is_set():
            items = self._retrying("reading", lambda: self.source.poll(0.2))
            if not items:
                continue
            # per topic, in the order polled: single records gathered into lists, batches
            # appended as they are (Arrow columns: no Python object per record)
            by_topic: dict[str, list[Any]] = {}
            errors: list[dict[str, Any]] = []
            count = 0
            now = int(time.time() * 1000)
            for r in items:
                pieces = by_topic.setdefault(r.topic or self.topic, [])
                if isinstance(r, SourceBatch):
                    errors.extend(self._source_error(e) for e in r.errors)
                    if len(r):
                        pieces.append(r.records)
                        count += len(r)
                    continue
                record = {"key": r.key, "value": r.value, "timestamp": r.timestamp or now}
                if not pieces or not isinstance(pieces[-1], list):
                    pieces.append([])
                pieces[-1].append(record)
                count += 1
            for topic in by_topic:
                if topic not in self._known:
                    log_.create_topic(topic, self.partitions, exist_ok=True)
                    self._known.add(topic)
            txn = log_.transaction()
            try:
                for topic, topic_pieces in by_topic.items():
                    for piece in topic_pieces:
                        txn.append(topic, piece)
                if errors:
                    txn.append(PROCESSING_LOG, [(None, msgspec.json.encode(e)) for e in errors])
                last = items[-1].position
                txn.append(
                    OFFSETS_TOPIC, [(key, msgspec.json.encode({"position": last}))], partition=0
                )
            except BaseException:
                txn.abort()
                raise
            txn.commit()
            self.status.records += count
            if errors:
                self.status.errors += len(errors)
                self.status.last_error = str(errors[-1].get("message"))

    def _source_error(self, error: dict[str, Any]) -> dict[str, Any]:
        """A source's processing-log entry, with the fields every entry has."""
        return {"type": "RECORD_PROCESSING_ERROR", "query": f"connector {self.name}", **error}


#: the most partitions 'partitions' may ask for (ksqlDB's PARTITIONS is an INT; the log may
#: allow fewer, and says so)
MAX_PARTITIONS = (1 << 31) - 1


def _partitions(name: str, value: str | None) -> int | None:
    """A source connector's 'partitions' (None: not given), a whole number from 1."""
    if value is None:
        return None
    text = value.strip()
    # ASCII digits only ('²' is a digit to str.isdigit, not to int), and few enough of them
    if not (text.isascii() and text.isdigit() and len(text) <= 10) or not (
        1 <= int(text) <= MAX_PARTITIONS
    ):
        raise ConnectorError(
            f"source connector {name}: 'partitions' must be a whole number from 1 to "
            f"{MAX_PARTITIONS}, not {value!r}"
        )
    return int(text)


class Connectors:
    """The engine's connectors, by name (given the engine's context, never the engine)."""

    def __init__(self, context: QueryContext) -> None:
        self.context = context
        self.runners: dict[str, _Runner] = {}
        #: True while the engine replays its statements: connectors wait for the end of it
        self.holding = True
        context.log.create_topic(
            OFFSETS_TOPIC, 1, config={"cleanup.policy": "compact"}, exist_ok=True
        )

    def create(self, kind: str, name: str, properties: Mapping[str, Any], statement: str) -> str:
        if name in self.runners:
            raise ConnectorError(f"Connector {name} already exists")
        config = {k.lower(): str(v) for k, v in properties.items()}
        default_redis = self.context.properties.get("redis.url")
        if default_redis and "redis.url" not in config:
            config["redis.url"] = str(default_redis)  # the server's own Redis
        default_memcached = self.context.properties.get("memcached.servers")
        if default_memcached and "memcached.servers" not in config:
            config["memcached.servers"] = str(default_memcached)
        cls_name = config.get("connector.class")
        if not cls_name:
            raise ConnectorError(
                f"connector {name} needs 'connector.class' in its WITH clause, like "
                "'connector.class'='redis'"
            )
        cls = connector_class(cls_name, kind)
        connector = cls(name, config)
        runner: _Runner
        if isinstance(connector, SinkConnector):
            topics, sources = self._sink_topics(name, config)
            runner = SinkRunner(self.context, connector, statement, topics, sources)
        elif isinstance(connector, SourceConnector):
            topic = config.get("kafka.topic") or config.get("topic") or connector.default_topic()
            if not topic:
                raise ConnectorError(
                    f"source connector {name} needs 'kafka.topic' (the topic it writes to)"
                )
            wanted = _partitions(name, config.get("partitions"))
            info = self.context.log.create_topic(topic, wanted or 1, exist_ok=True)
            partitions = len(info.partitions)
            if wanted is not None and wanted != partitions:
                raise ConnectorError(
                    f"source connector {name}: topic {topic!r} exists with {partitions} "
                    f"partition(s), not the {wanted} of 'partitions'"
                )
            runner = SourceRunner(self.context, connector, statement, topic, partitions)
        else:
            raise ConnectorError(f"{cls_name} is neither a sink nor a source")
        self.runners[name] = runner
        if not self.holding:
            runner.start()
        return f"Created connector {name}"

    def start_held(self) -> None:
        """Start the connectors created while held (the engine's replay of its statements:
        one dropped later in the replay never runs)."""
        self.holding = False
        for runner in self.runners.values():
            if not runner.started:
                runner.start()

    def _sink_topics(
        self, name: str, config: Mapping[str, str]
    ) -> tuple[list[str], dict[str, Source]]:
        catalog = self.context.catalog
        by_topic = {s.topic: s for s in catalog.sources.values()}
        topics: list[str] = []
        sources: dict[str, Source] = {}
        if "source" in config:
            for source_name in config["source"].split(","):
                source = catalog.sources.get(source_name.strip().upper())
                if source is None:
                    raise ConnectorError(
                        f"sink connector {name}: no stream or table {source_name.strip()!r}"
                    )
                topics.append(source.topic)
                sources[source.topic] = source
        for topic in (t.strip() for t in config.get("topics", "").split(",")):
            if not topic:
                continue
            if topic not in self.context.log.list_topics(internal=True):
                raise ConnectorError(f"sink connector {name}: topic {topic!r} does not exist")
            topics.append(topic)
            if topic in by_topic:
                sources[topic] = by_topic[topic]
        if not topics:
            raise ConnectorError(
                f"sink connector {name} needs 'topics' (topic names) or 'source' "
                "(a stream or table) in its WITH clause"
            )
        return topics, sources

    def drop(self, name: str, if_exists: bool) -> str:
        runner = self.runners.pop(name, None)
        if runner is None:
            if if_exists:
                return f"Connector {name} does not exist."
            raise ConnectorError(f"Connector {name} does not exist.")
        runner.stop()
        return f'Dropped connector "{name}"'

    def rows(self) -> list[dict[str, Any]]:
        return [self._row(r) for r in sorted(self.runners.values(), key=lambda r: r.name)]

    def _row(self, runner: _Runner) -> dict[str, Any]:
        status = runner.status
        return {
            "name": runner.name,
            "type": runner.connector.kind.lower(),
            "className": runner.connector.config.get("connector.class", ""),
            "state": status.state,
            "records": status.records,
            "errors": status.errors,
        }

    def describe(self, name: str) -> dict[str, Any]:
        runner = self.runners.get(name)
        if runner is None:
            raise ConnectorError(f"Could not find connector {name}")
        info = self._row(runner)
        info["lastError"] = runner.status.last_error
        info["statement"] = runner.statement
        info["config"] = dict(runner.connector.config)
        if isinstance(runner, SinkRunner):
            info["topics"] = runner.topics
            info["lag"] = self._lag(runner)
        elif isinstance(runner, SourceRunner):
            info["topics"] = [runner.topic]
        try:
            info["details"] = runner.connector.details()
        except HispeedError as e:
            info["details"] = {"error": str(e)}
        return info

    def _lag(self, runner: SinkRunner) -> int:
        log_ = self.context.log
        committed = log_.committed_offsets(runner.group)
        lag = 0
        for topic in runner.topics:
            for p in range(len(log_.describe_topic(topic).partitions)):
                end = log_.offsets(topic, p)[1]
                lag += max(0, end - committed.get(TopicPartition(topic, p), 0))
        return lag

    def close(self) -> None:
        for runner in list(self.runners.values()):
            runner.stop()
        self.runners.clear()


__all__ = ["OFFSETS_TOPIC", "Connectors", "SinkRunner", "SourceRunner"]

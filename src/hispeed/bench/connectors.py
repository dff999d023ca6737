"""`hispeed bench connectors`: records per second through the connectors, one part each.

A **part** measures one connector (or the framework under every connector) and returns
its figures by name. Parts are found, not listed: every module `hispeed.bench.connectors_*`
is imported and each function in it decorated with `@bench_part("name")` is a part, run in
the order of the modules' names. So a connector's bench is one new module and its decorator:

    from hispeed.bench.connectors import BenchOptions, Figures, bench_part, rates

    @bench_part("memcached", "memcached sink: pipelined multi-set into a memcached of its own")
    def memcached(options: BenchOptions) -> Figures:
        ...  # start the server, prepare the batches, then time the writes
        return rates("memcached_sink_writes", records, wall_s, cpu_s)

A part that cannot run here (its server is not installed) raises `PartUnavailableError`, and the
others go on. Figures are per second of wall clock (`_per_s`) and per CPU-second of the bench
process (`_per_cpu_s`, from `time.process_time()`, every thread of the process counted): on
a busy, shared machine the CPU figure is the one to compare. Servers a part starts run in
processes of their own, so their CPU time is not in `_per_cpu_s`.

The parts of this module measure the framework itself, through a real `Engine`:
`runner` is the sink runner (consumer group, decoding, offsets committed per batch) feeding a
sink that keeps nothing, and the source runner (each poll's records and position committed in
one log transaction) draining a source that hands out ready-made records.
"""

from __future__ import annotations

import importlib
import pkgutil
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hispeed.connectors import SinkBatch, SinkConnector, SourceConnector, SourceRecord, register
from hispeed.engine import Engine
from hispeed.errors import HispeedError

Progress = Callable[[str, int], None]
#: a part's figures by name (None: could not be measured)
Figures = dict[str, int | float | None]


@dataclass(frozen=True)
class BenchOptions:
    """What `hispeed bench connectors` was asked for, given to every part."""

    #: records each part moves (a part may round it to whole batches)
    records: int = 200_000
    #: records per batch, where the connector takes batches
    batch_size: int = 10_000
    #: where parts put their scratch files (None: the system's temporary directory)
    directory: Path | None = None
    progress: Progress | None = None

    def report(self, phase: str, done: int) -> None:
        """Tell the progress line where the part is (nothing when there is none)."""
        if self.progress is not None:
            self.progress(phase, done)

    @contextmanager
    def scratch(self, name: str) -> Iterator[Path]:
        """A fresh directory for a part's files, removed afterwards."""
        path = Path(tempfile.mkdtemp(prefix=f"hispeed-bench-{name}-", dir=self.directory))
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)


PartFunction = Callable[[BenchOptions], Figures]


@dataclass(frozen=True)
class BenchPart:
    """One registered part: its name (for `--part`), what it measures, its function."""

    name: str
    description: str
    run: PartFunction


class PartUnavailableError(HispeedError):
    """A part cannot run on this machine (its server is missing): it is skipped, with why."""


_PARTS: dict[str, BenchPart] = {}


def bench_part(name: str, description: str) -> Callable[[PartFunction], PartFunction]:
    """Decorator: make `function(options) -> figures` the bench part called `name`."""

    def decorate(function: PartFunction) -> PartFunction:
        existing = _PARTS.get(name)
        if existing is not None and existing.run is not function:
            raise HispeedError(f"bench connectors: two parts are called {name!r}")
        _PARTS[name] = BenchPart(name, description, function)
        return function

    return decorate


def parts() -> dict[str, BenchPart]:
    """Every part, by name, in the order they run (this module's, then `connectors_*`'s)."""
    import hispeed.bench as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
        if info.name.startswith("connectors_"):
            importlib.import_module(f"hispeed.bench.{info.name}")
    return dict(_PARTS)


def rates(prefix: str, count: int, wall_s: float, cpu_s: float) -> Figures:
    """`{prefix}_per_s` (wall clock) and `{prefix}_per_cpu_s` (CPU time of the process)."""
    return {
        f"{prefix}_per_s": round(count / wall_s) if wall_s > 0 else None,
        f"{prefix}_per_cpu_s": round(count / cpu_s) if cpu_s > 0 else None,
    }


@dataclass
class Outcome:
    """What `run` measured: the figures, and the parts skipped with the reason."""

    figures: Figures
    skipped: dict[str, str]


def run(options: BenchOptions, only: list[str] | None = None) -> Outcome:
    """Run the parts named in `only` (all by default) and gather their figures."""
    known = parts()
    for name in only or []:
        if name not in known:
            raise HispeedError(
                f"bench connectors: no part {name!r} (parts: {', '.join(known) or 'none'})"
            )
    outcome = Outcome({}, {})
    for name, part in known.items():
        if only and name not in only:
            continue
        try:
            outcome.figures |= part.run(options)
        except PartUnavailableError as e:
            outcome.skipped[name] = str(e)
    return outcome


# -- the framework's own parts ----------------------------------------------------------------


@register
class _NullSink(SinkConnector):
    """Counts what it is given and keeps nothing: the runner's cost alone."""

    names = ("hispeed-bench-null",)
    counts: dict[str, int] = {}  # noqa: RUF012  (shared with the bench, by connector name)

    def start(self) -> None:
        self.counts.setdefault(self.name, 0)

    def write(self, batch: SinkBatch) -> None:
        self.counts[self.name] += len(batch)

    def stop(self) -> None:
        """Nothing to release: the sink only counts."""


@register
class _ReadySource(SourceConnector):
    """Hands out ready-made records, `batch.size` a poll, up to `records`."""

    names = ("hispeed-bench-ready",)

    def start(self, position: Any) -> None:
        self.next = 0 if position is None else int(position) + 1
        self.limit = int(self.option("records"))
        size = int(self.option("batch.size"))
        value = b'{"DEVICE":"d1","READING":21.5,"AMOUNT":7}'
        self.batch = [SourceRecord(b"d1", value) for _ in range(size)]

    def poll(self, timeout: float) -> list[SourceRecord]:
        if self.next >= self.limit:
            time.sleep(timeout)
            return []
        n = min(len(self.batch), self.limit - self.next)
        first = self.next
        out = [SourceRecord(r.key, r.value, None, first + i) for i, r in enumerate(self.batch[:n])]
        self.next += n
        return out

    def stop(self) -> None:
        self.limit = 0


def _wait(done: Callable[[], bool], what: str, timeout_s: float = 600.0) -> None:
    """Wait for `done()` (the runner works on its own thread), or fail saying what hung."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            raise HispeedError(f"bench connectors: {what} did not finish in {timeout_s:.0f}s")
        time.sleep(0.01)


def _status(engine: Engine, name: str) -> Mapping[str, Any]:
    return engine.execute(f"DESCRIBE CONNECTOR {name};")[0].info


@bench_part("runner", "the connector runner alone: a sink that keeps nothing, a ready source")
def _runner(options: BenchOptions) -> Figures:
    records = options.records
    figures: Figures = {}
    value = b'{"DEVICE":"d1","READING":21.5,"AMOUNT":7}'
    with options.scratch("runner") as path, Engine(path / "data", fsync="never") as engine:
        engine.log.create_topic("bench_in", 1)
        for start in range(0, records, options.batch_size):
            n = min(options.batch_size, records - start)
            engine.log.append("bench_in", [(b"d1", value)] * n, partition=0)
        _NullSink.counts.pop("BENCH_SINK", None)
        wall, cpu = time.perf_counter(), time.process_time()
        engine.execute(
            "CREATE SINK CONNECTOR bench_sink WITH ("
            "'connector.class'='hispeed-bench-null', 'topics'='bench_in');"
        )
        _wait(lambda: _NullSink.counts.get("BENCH_SINK", 0) >= records, "the sink runner")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        figures |= rates("runner_sink_records", records, wall, cpu)
        options.report("runner sink", records // options.batch_size)

        wall, cpu = time.perf_counter(), time.process_time()
        engine.execute(
            "CREATE SOURCE CONNECTOR bench_source WITH ("
            f"'connector.class'='hispeed-bench-ready', 'records'='{records}', "
            f"'batch.size'='{options.batch_size}', 'kafka.topic'='bench_out');"
        )
        _wait(lambda: _status(engine, "bench_source")["records"] >= records, "the source runner")
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        figures |= rates("runner_source_records", records, wall, cpu)
        options.report("runner source", records // options.batch_size)
    return figures


__all__ = [
    "BenchOptions",
    "BenchPart",
    "Figures",
    "Outcome",
    "PartUnavailableError",
    "bench_part",
    "parts",
    "rates",
    "run",
]

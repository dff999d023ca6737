"""`hispeed bench nexmark`: Nexmark's queries end to end, from the log to committed outputs.

As `hispeed bench e2e` measures: Nexmark's events (`hispeed.demo.nexmark`, the specification's
generator) are appended to the topics `person`, `auction` and `bid` as JSON first (not
timed); then the query (`examples/nexmark/qN.sql`, over `sources.sql`) is created and
`Engine.drain()` runs it from the earliest offset until it has caught up, its outputs and
input offsets committed to the log. Each query runs in a subprocess of its own (its own peak
RSS). `events_per_s` counts all the Nexmark events generated (persons, auctions and bids, as
Nexmark's figures do) per wall second, `events_per_cpu_s` per CPU-second of the process
(`time.process_time()`: the steadier figure on a busy machine); `records_read` is what the
query read (only the topics it needs).

`hispeed bench nexmark --json` prints `per_core(run(...))`, `{"q0": N, ...}` with N the
events per CPU-second (per core) of each query; `--json-detail` prints every figure above.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa

from hispeed.bench.e2e import _peak_rss_mb, _rss_reset
from hispeed.demo.nexmark import fill_log, fill_side_input
from hispeed.engine import Engine

Progress = Callable[[str, int], Any] | None


def examples_dir() -> Path:
    """`examples/nexmark` of the source tree, or of the working directory."""
    for base in (Path(__file__).resolve().parents[3], Path.cwd()):
        here = base / "examples" / "nexmark"
        if (here / "sources.sql").is_file():
            return here
    raise FileNotFoundError("examples/nexmark not found (run from the hispeed source tree)")


def query_names() -> list[str]:
    """Every query `examples/nexmark` holds (`qN.sql`), in Nexmark's order: the bench's
    default set, so a query added there is measured without another list to keep."""
    names = [p.stem for p in examples_dir().glob("q*.sql") if p.stem[1:].isdigit()]
    return sorted(names, key=lambda n: int(n[1:]))


def query_sql(name: str) -> str:
    """The text of `examples/nexmark/<name>.sql`."""
    return (examples_dir() / f"{name}.sql").read_text()


def run_query(engine: Engine, name: str, text: str | None = None) -> tuple[int, Any]:
    """Create the sources and the query `name` (or the statements `text`) on `engine`,
    drain it until caught up.

    Returns (records read, the query's task). q13's side input must be in the log
    beforehand (`fill_side_input`)."""
    engine.execute((examples_dir() / "sources.sql").read_text())
    # q13 declares its side input first
    return _drained(engine, engine.execute(text if text is not None else query_sql(name)))


def run_flink_query(engine: Engine, name: str) -> tuple[int, Any]:
    """Run `examples/nexmark/flink/<name>.sql` as a Flink user would: Nexmark's source
    table and views (`flink/ddl.sql`), then the query's sink table and INSERT INTO; drain it
    until caught up. Its output is the sink's topic, `NEXMARK_<NAME>`."""
    engine.execute((examples_dir() / "flink" / "ddl.sql").read_text())
    return _drained(engine, engine.execute((examples_dir() / "flink" / f"{name}.sql").read_text()))


def _drained(engine: Engine, results: list[Any]) -> tuple[int, Any]:
    # q5, q7 and q8 chain queries (each reads the one before it): all must catch up, the
    # last one after the others
    tasks = [engine.tasks[str(r.query_id)] for r in results if r.query_id]
    processed = 0
    while True:
        processed += engine.drain()
        for task in tasks:
            if task.id in engine.runtime.failed:
                raise RuntimeError(engine.runtime.failed[task.id].message)
        if all(task.consumer.caught_up() for task in tasks):
            return processed, tasks[-1]


def outputs(engine: Engine, name: str) -> pa.Table:
    """The records the query `name` wrote to its sink topic (upper case, as ksqlDB names it)."""
    return engine.log.read_table(name.upper(), 0)


def run_one(name: str, events: int, directory: str | None) -> dict[str, Any]:
    """Run one query in this process: fill the log, then the query until caught up."""
    root = tempfile.mkdtemp(prefix=f"hispeed-bench-nexmark-{name}-", dir=directory)
    try:
        with Engine(Path(root) / "data") as engine:
            fill_log(engine.log, events)
            if name == "q13":
                fill_side_input(engine.log)
            reset = _rss_reset()
            wall0, cpu0 = time.perf_counter(), time.process_time()
            processed, _ = run_query(engine, name)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            peak = _peak_rss_mb() if reset else None
            written = outputs(engine, name).num_rows
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return {
        "events": events,
        "records_read": processed,
        "outputs": written,
        "events_per_s": round(events / wall),
        "events_per_cpu_s": round(events / cpu) if cpu > 0 else None,
        "wall_s": round(wall, 3),
        "cpu_s": round(cpu, 3),
        "peak_rss_mb": peak,
    }


def run(
    events: int = 1_000_000,
    queries: list[str] | None = None,
    directory: str | None = None,
    progress: Progress = None,
) -> dict[str, Any]:
    """Each query's figures (see the module docstring), each in a subprocess."""
    known = query_names()
    names = known if queries is None else queries
    if not names:
        # an empty --queries ('' or ',') names nothing: refused, not read as every query
        raise ValueError(f"--queries names no query; the queries are: {', '.join(known)}")
    unknown = [q for q in names if q not in known]
    if unknown:
        raise ValueError(f"unknown query {unknown[0]!r}; the queries are: {', '.join(known)}")
    results: dict[str, Any] = {}
    for i, name in enumerate(names):
        if progress:
            progress(name, i)
        argv = [sys.executable, "-m", "hispeed.bench.nexmark", name, str(events)]
        if directory:
            argv.append(directory)
        done = subprocess.run(argv, capture_output=True, text=True, env=os.environ.copy())
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-1:] or ["(no message)"]
            results[name] = {"error": tail[0]}
            continue
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    return results


def per_core(results: dict[str, Any]) -> dict[str, int]:
    """`{query: events per CPU-second}` of `run`'s results: the issue's `--json` shape.

    A query that failed has no figure and is left out (the caller reports it). A run too
    short for `time.process_time()` to tick gets the events over one tick, not a zero."""
    shaped: dict[str, int] = {}
    for name, figures in results.items():
        if "error" in figures:
            continue
        # cpu_s is rounded to the millisecond; below that the rate is the events over 1 ms
        rate = figures["events_per_cpu_s"] or round(figures["events"] / 0.001)
        shaped[name] = int(rate)
    return shaped


def text_lines(results: dict[str, Any]) -> list[str]:
    """One line per query for a terminal: rates, CPU seconds, peak RSS, or why it failed."""
    lines = []
    for name, figures in results.items():
        if "error" in figures:
            lines.append(f"{name:5s} failed: {figures['error']}")
            continue
        lines.append(
            f"{name:5s} {figures['events_per_s']:>11,} events/s "
            f"{figures['events_per_cpu_s'] or 0:>11,} events/CPU-s "
            f"{figures['cpu_s']:>8.2f} CPU s  peak RSS {figures['peak_rss_mb']} MB"
        )
    return lines


def main(argv: list[str]) -> None:
    """The subprocess of one query: `python -m hispeed.bench.nexmark QUERY EVENTS [DIR]`."""
    name, events = argv[0], int(argv[1])
    directory = argv[2] if len(argv) > 2 else None
    print(json.dumps(run_one(name, events, directory)))


if __name__ == "__main__":
    main(sys.argv[1:])

"""A Flink user's own Nexmark files, run as they are: `python -m hispeed.bench.nexmark_files DIR`.

DIR holds Nexmark's Flink scripts as its project ships them (`nexmark-flink/src/main/resources/
queries/` of github.com/nexmark/nexmark: `ddl_gen.sql` with the source table, `ddl_views.sql`
with the views `person`, `auction` and `bid`, and `q0.sql` ... `q22.sql`). hispeed keeps no copy
of them: point this at a checkout. Each query runs in an engine of its own over the same
generated events, its `${...}` placeholders filled as Nexmark's launcher fills them, and the
report says for each file whether it ran (with the records its sink got), was refused (with the
line and column of the refusal), or failed while running."""

from __future__ import annotations

import re
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from hispeed.demo.nexmark import NexmarkGenerator, fill_log
from hispeed.engine import Engine
from hispeed.errors import HispeedError, SqlError

#: the values Nexmark's launcher puts in its scripts' placeholders (the datagen Nexmark table)
PLACEHOLDERS = {
    "NEXMARK_TABLE": "datagen",
    "TPS": "10000",
    "EVENTS_NUM": "0",
    "PERSON_PROPORTION": "1",
    "AUCTION_PROPORTION": "3",
    "BID_PROPORTION": "46",
    "SUBMIT_TIME": "1",
}
#: events per second of event time: the windows of q5, q7, q8 ... close within the run
RATE = 200
SIDE_INPUT_KEYS = 10_000
_PLACEHOLDER = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(frozen=True)
class FileRun:
    """What became of one query file."""

    name: str
    outcome: str  # "runs", "refused" or "failed"
    records: int = 0
    detail: str = ""

    def line(self) -> str:
        if self.outcome == "runs":
            return f"{self.name}: runs, {self.records:,} records to its sink"
        return f"{self.name}: {self.outcome}: {self.detail}"


def fill(text: str, home: Path) -> str:
    """`text` with its placeholders filled; FLINK_HOME and NEXMARK_DIR are `home`."""
    values = {**PLACEHOLDERS, "FLINK_HOME": str(home), "NEXMARK_DIR": str(home)}

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in values:
            raise ValueError(f"unknown placeholder ${{{name}}}")
        return values[name]

    return _PLACEHOLDER.sub(value, text)


def write_side_input(home: Path) -> None:
    """q13's side input where Nexmark's scripts read it: lines `i,i` for i below 10,000."""
    (home / "data").mkdir(parents=True, exist_ok=True)
    lines = "".join(f"{i},{i}\n" for i in range(SIDE_INPUT_KEYS))
    (home / "data" / "side_input.txt").write_text(lines)


def _sink_records(engine: Engine, query_ids: list[str]) -> int:
    total = 0
    for query_id in query_ids:
        topic = engine.tasks[query_id].sink.topic
        for partition in engine.log.describe_topic(topic).partitions:
            total += partition.end_offset - partition.start_offset
    return total


def run_file(directory: Path, name: str, events: int, work: Path) -> FileRun:
    """Run `name`.sql of `directory` after its DDL over `events` generated events."""
    home = work / name
    write_side_input(home)
    try:
        with Engine(home / "data") as engine:
            fill_log(engine.log, events, gen=NexmarkGenerator(42, rate=RATE))
            for ddl in ("ddl_gen", "ddl_views"):
                engine.execute(fill((directory / f"{ddl}.sql").read_text(), home))
            try:
                results = engine.execute(fill((directory / f"{name}.sql").read_text(), home))
            except SqlError as e:
                return FileRun(name, "refused", detail=str(e))  # "line L:C: ..."
            ids = [str(r.query_id) for r in results if r.query_id]
            if not ids:
                return FileRun(name, "failed", detail="the file starts no query")
            while True:
                engine.drain()
                failures = engine.runtime.failed
                failed = [failures[i].message for i in ids if i in failures]
                if failed:
                    return FileRun(name, "failed", detail=failed[0])
                if all(engine.tasks[i].consumer.caught_up() for i in ids):
                    return FileRun(name, "runs", records=_sink_records(engine, ids))
    except (HispeedError, ValueError, OSError) as e:
        return FileRun(name, "failed", detail=str(e))


def query_names(directory: Path) -> list[str]:
    """The query files of `directory`, q0 first."""
    names = [p.stem for p in directory.glob("q*.sql") if p.stem[1:].isdigit()]
    return sorted(names, key=lambda n: int(n[1:]))


def run_dir(
    directory: Path, events: int, progress: Callable[[FileRun], None] | None = None
) -> list[FileRun]:
    """Every query file of `directory`, each in an engine of its own."""
    for ddl in ("ddl_gen.sql", "ddl_views.sql"):
        if not (directory / ddl).is_file():
            raise ValueError(f"{directory} has no {ddl}: point at Nexmark's queries directory")
    runs = []
    with tempfile.TemporaryDirectory(prefix="hispeed-nexmark-files-") as work:
        for name in query_names(directory):
            run = run_file(directory, name, events, Path(work))
            if progress is not None:
                progress(run)
            runs.append(run)
    return runs


def main(argv: list[str]) -> int:
    if len(argv) not in (1, 2) or argv[0].startswith("-"):
        print("usage: python -m hispeed.bench.nexmark_files DIR [EVENTS]", file=sys.stderr)
        return 2
    events = int(argv[1]) if len(argv) == 2 else 10_000
    try:
        runs = run_dir(Path(argv[0]), events, lambda run: print(run.line(), flush=True))
    except ValueError as e:
        print(f"nexmark_files: {e}", file=sys.stderr)
        return 2
    ran = sum(run.outcome == "runs" for run in runs)
    print(f"{ran} of {len(runs)} run unchanged")
    return 0 if ran == len(runs) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

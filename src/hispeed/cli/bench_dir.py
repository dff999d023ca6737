"""Where `hispeed bench` commands put their runs' data directories."""

from __future__ import annotations

from pathlib import Path

import click


def bench_dir(directory: str | None) -> str | None:
    """Where a benchmark puts its data directories: `--dir`, else the `--data-dir` given to
    `hispeed` (made if missing), else None (the system temp directory)."""
    if directory is not None:
        return directory
    given = click.get_current_context().find_root().params.get("data_dir")
    if given is None:
        return None
    Path(given).mkdir(parents=True, exist_ok=True)
    return str(given)

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from hispeed.log.embedded import EmbeddedLog
from hispeed.testing.wait import wait_for

# CI explores the same examples every run, so that a landing never depends on luck; run the
# suite locally (or raise HISPEED_HYPOTHESIS_EXAMPLES) to explore new ones.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

pytest_plugins = ["hispeed.testing.services", "hispeed.testing.server"]

LogFactory = Callable[..., EmbeddedLog]


@pytest.fixture
def log_factory(tmp_path: Path) -> Iterator[LogFactory]:
    """Open embedded logs (by default on one data directory per test); all closed at the end."""
    opened: list[EmbeddedLog] = []

    def open_log(data_dir: Path | None = None, **kwargs: Any) -> EmbeddedLog:
        kwargs.setdefault("fsync", "never")
        kwargs.setdefault("cleaner_interval_s", None)
        log = EmbeddedLog(data_dir or tmp_path / "data", **kwargs)
        opened.append(log)
        return log

    yield open_log
    for log in opened:
        log.close()


@pytest.fixture
def log(log_factory: LogFactory) -> EmbeddedLog:
    return log_factory()


__all__ = ["LogFactory", "wait_for"]

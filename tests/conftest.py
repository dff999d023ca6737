from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis as redis_py
from hypothesis import settings

from hispeed.log.embedded import EmbeddedLog
from hispeed.testing.wait import wait_for

if TYPE_CHECKING:  # imported by pytest_plugins below, which must import it first
    from hispeed.testing.services import Service

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


@pytest.fixture
def redis_client(redis_server: Service) -> Iterator[redis_py.Redis]:
    c = redis_py.Redis(host=redis_server.host, port=redis_server.port, decode_responses=True)
    yield c
    c.close()


@pytest.fixture
def redis_prefix(request: pytest.FixtureRequest, redis_client: redis_py.Redis) -> str:
    """A key prefix of the test's own (its keys are deleted first)."""
    name = request.node.name.replace("[", ":").replace("]", "")
    for key in redis_client.scan_iter(f"{name}:*"):
        redis_client.delete(key)
    return name


__all__ = ["LogFactory", "wait_for"]

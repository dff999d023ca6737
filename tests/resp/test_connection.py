"""A Redis connection that cannot be made leaves no socket open behind it (the suite's
"ResourceWarning: unclosed <socket.socket ...>" lines)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hispeed.errors import RetriableError
from hispeed.resp.client import RedisConnection, RedisURL


@pytest.fixture
def unclosed() -> Iterator[list[str]]:
    """What sockets' finalizers say about sockets nobody closed, while the test runs."""
    said: list[str] = []
    before = sys.unraisablehook
    sys.unraisablehook = lambda u: said.append(f"{u.exc_type.__name__}: {u.exc_value}")
    try:
        yield said
    finally:
        sys.unraisablehook = before


def test_a_unix_socket_that_is_not_there_leaves_no_socket_open(
    tmp_path: Path, unclosed: list[str]
) -> None:
    url = RedisURL.parse(f"unix://{tmp_path / 'no-redis.sock'}", "test")
    for _ in range(3):
        conn = RedisConnection(url, 1.0, "test")
        with pytest.raises(RetriableError, match="cannot connect to Redis"):
            conn.connect()
        assert not conn.connected
    del conn
    gc.collect()
    assert unclosed == []

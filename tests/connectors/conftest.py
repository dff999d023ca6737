"""Fixtures of the connector tests: Redis sinks on the test Redis."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hispeed.connectors.redis import RedisSink
from hispeed.testing.services import Service, free_port, require_binary, stop, wait_for_port

SinkFactory = Callable[..., RedisSink]


@pytest.fixture
def redis_sink_factory(redis_server: Service) -> Iterator[SinkFactory]:
    """Started RedisSinks on the test Redis; stopped at the end."""
    made: list[RedisSink] = []

    def make(**config: str) -> RedisSink:
        props = {"redis.url": redis_server.url}
        props |= {k.replace("_", "."): v for k, v in config.items()}
        sink = RedisSink("test_sink", props)
        sink.start()
        made.append(sink)
        return sink

    yield make
    for s in made:
        s.stop()


class RedisProcess:
    """A redis-server of a test's own on a fixed port, to stop (by its PID) and start again."""

    def __init__(self, binary: str, workdir: Path, *, durable: bool = False) -> None:
        """`durable`: an append-only file synced on every write, so a kill -9 loses nothing."""
        self.binary = binary
        self.workdir = workdir
        self.durable = durable
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        if self.durable:
            args += ["--appendonly", "yes", "--appendfsync", "always"]
        self.proc = subprocess.Popen(
            [*args, "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port, self.proc, "redis-server")

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(30)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


@pytest.fixture
def redis_process(tmp_path: Path) -> Iterator[RedisProcess]:
    """A started redis-server that the test may stop and start again; stopped at the end."""
    process = RedisProcess(require_binary("redis-server", "redis-server"), tmp_path)
    process.start()
    yield process
    process.stop()

"""Pytest fixtures for a running hispeed server on a free loopback port, over an engine in a
temporary directory: `server` (default settings) and `server_factory(**settings)`."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.functions.redis import set_default_url
from hispeed.processes import free_port
from hispeed.server.app import Server
from hispeed.testing.wait import wait_for


@dataclass
class RunningServer:
    url: str
    engine: Engine
    server: Server
    settings: Settings

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
        """Poll `predicate` until it returns something truthy; fail after `timeout` s."""
        return wait_for(predicate, timeout)


ServerFactory = Callable[..., RunningServer]


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[ServerFactory]:
    """Start servers with settings overrides (`auth_file=...`) and, with `engine_properties`,
    the engine's properties (`{"redis.url": ...}`, as `hispeed server` sets for its Redis);
    all stopped at the end."""
    started: list[RunningServer] = []

    def start(
        *, engine_properties: dict[str, Any] | None = None, **overrides: Any
    ) -> RunningServer:
        overrides.setdefault("grpc_port", 0)
        data_dir = tmp_path / f"data{len(started)}"
        settings = Settings.load(
            None, env={}, data_dir=data_dir, port=free_port(), fsync="never", **overrides
        )
        engine = Engine(data_dir, fsync="never", properties=engine_properties)
        engine.start()
        try:
            server = Server(engine, settings)
            server.start()
        except BaseException:
            engine.close()
            raise
        running = RunningServer(f"http://127.0.0.1:{settings.port}", engine, server, settings)
        started.append(running)
        return running

    yield start
    for s in started:
        s.server.stop()
        s.engine.close()
    if any(s.engine.properties.get("redis.url") for s in started):
        # an engine with a Redis makes it the REDIS_* functions' default, for the process
        set_default_url(None)


@pytest.fixture
def server(server_factory: ServerFactory) -> RunningServer:
    """One server with default settings (no auth, no gRPC, no MQTT)."""
    return server_factory()


def server_process(data_dir: Path, port: int, *args: str) -> subprocess.Popen[str]:
    """`hispeed server` as users run it, in a process of its own (no gRPC port, unless `args`
    name one), its output piped as text."""
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hispeed",
            "--data-dir",
            str(data_dir),
            "server",
            "--port",
            str(port),
            "--grpc-port",
            "0",
            *args,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


__all__ = [
    "RunningServer",
    "ServerFactory",
    "server",
    "server_factory",
    "server_process",
    "wait_for",
]

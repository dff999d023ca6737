"""Pytest fixtures that start real services on free loopback ports: redis-server, mosquitto.

A test that needs a service asks for its fixture. When the binary is missing, the test is
skipped with the install command, unless HISPEED_REQUIRE_SERVICES=1 (as CI sets it), in
which case it fails: in CI a missing service is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from hispeed.testing.processes import find_binary, free_port, mosquitto, stop, wait_for_port


@dataclass(frozen=True)
class Service:
    name: str
    host: str
    port: int
    pid: int

    @property
    def url(self) -> str:
        scheme = {"redis": "redis", "mosquitto": "mqtt"}.get(self.name, "tcp")
        return f"{scheme}://{self.host}:{self.port}"


def require_binary(name: str, package: str) -> str:
    found = find_binary(name)
    if found:
        return found
    message = f"{name} is not installed (apt-get install {package})"
    if os.environ.get("HISPEED_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; HISPEED_REQUIRE_SERVICES=1 makes this a failure")
    pytest.skip(message)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[Service]:
    """A redis-server of its own on a free loopback port, without persistence."""
    binary = require_binary("redis-server", "redis-server")
    port = free_port()
    workdir = tempfile.mkdtemp(prefix="hispeed-redis-")
    proc = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            workdir,
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, "redis-server")
        yield Service("redis", "127.0.0.1", port, proc.pid)
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def mosquitto_server() -> Iterator[Service]:
    """A mosquitto broker of its own on a free loopback port, anonymous access allowed."""
    binary = require_binary("mosquitto", "mosquitto")
    with mosquitto(binary) as (port, pid):
        yield Service("mosquitto", "127.0.0.1", port, pid)


__all__ = [
    "Service",
    "free_port",
    "mosquitto_server",
    "redis_server",
    "require_binary",
    "stop",
    "wait_for_port",
]

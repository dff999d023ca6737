"""Pytest fixtures that start real services on free loopback ports: redis-server, mosquitto.

A test that needs a service asks for its fixture. When the binary is missing, the test is
skipped with the install command, unless HISPEED_REQUIRE_SERVICES=1 (as CI sets it), in
which case it fails: in CI a missing service is a failure, never a skip.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with code {proc.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout}s")


def require_binary(name: str, package: str) -> str:
    found = shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    message = f"{name} is not installed (apt-get install {package})"
    if os.environ.get("HISPEED_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; HISPEED_REQUIRE_SERVICES=1 makes this a failure")
    pytest.skip(message)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="hispeed-mosquitto-"))
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        [binary, "-c", str(conf)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port, proc, "mosquitto")
        yield Service("mosquitto", "127.0.0.1", port, proc.pid)
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)

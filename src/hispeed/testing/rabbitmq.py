"""A RabbitMQ broker of its own for tests and benchmarks: Debian's rabbitmq-server on free
loopback ports, with its data, logs, Erlang cookie and epmd of its own.

Nothing is shared with a system RabbitMQ: the node's name carries its AMQP port, the
distribution port is picked free, and an epmd started here listens on a free port
(`ERL_EPMD_PORT`), so neither the system's epmd (4369) nor its node (25672) is touched. The
Web-STOMP plugin (`rabbitmq_web_stomp`) listens on a port of its own for browsers.
`kill()` and `start()` again keep the data directory: a broker restart with its durable
queues and persistent messages, as the bridge's restart tests need. Start-up takes about 3 s
on an idle core and up to 10 s on a busy machine (Erlang boots the broker and its plugins).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

from hispeed.processes import free_port, pid_alive, stop, stop_pid, wait_for_port

#: where Debian's package puts the broker's own script (the one in /usr/sbin runs it as the
#: rabbitmq user through su)
SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"
#: the longest start-up waited for (Erlang on a machine whose cores are all busy)
START_TIMEOUT_S = 90.0


class RabbitUnavailableError(RuntimeError):
    """rabbitmq-server (or epmd) is not installed."""


def find_server() -> str | None:
    """The broker's script, or None when Debian's rabbitmq-server is not installed."""
    if os.access(SERVER, os.X_OK) and shutil.which("epmd"):
        return SERVER
    return None


class RabbitBroker:
    """A rabbitmq-server of its own (`start()`, `kill()`, `stop()`), guest/guest allowed
    from loopback."""

    def __init__(self, *, web_stomp: bool = True) -> None:
        server = find_server()
        if server is None:
            raise RabbitUnavailableError(
                "rabbitmq-server is not installed (apt-get install rabbitmq-server)"
            )
        self.server = server
        self.host = "127.0.0.1"
        self.port = free_port()
        self.stomp_port = free_port() if web_stomp else 0
        self.workdir = Path(tempfile.mkdtemp(prefix="hispeed-rabbitmq-"))
        conf = [f"listeners.tcp.1 = 127.0.0.1:{self.port}", "loopback_users = none"]
        plugins = []
        if web_stomp:
            conf += [f"web_stomp.tcp.port = {self.stomp_port}", "web_stomp.tcp.ip = 127.0.0.1"]
            # Web-STOMP needs the STOMP plugin, whose own listener would take 61613
            conf.append(f"stomp.listeners.tcp.1 = 127.0.0.1:{free_port()}")
            plugins.append("rabbitmq_web_stomp")
        (self.workdir / "rabbitmq.conf").write_text("\n".join(conf) + "\n")
        (self.workdir / "enabled_plugins").write_text(f"[{','.join(plugins)}].\n")
        (self.workdir / "rabbitmq-env.conf").write_text("")
        self.epmd_port = free_port()
        w = self.workdir
        self.env = {
            **os.environ,
            "HOME": str(w),  # the Erlang cookie
            "RABBITMQ_NODENAME": f"hispeed{self.port}@localhost",
            "RABBITMQ_DIST_PORT": str(free_port()),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_CONF_ENV_FILE": str(w / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(w / "rabbitmq.conf"),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(w / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(w / "enabled_plugins"),
            "RABBITMQ_PLUGINS_EXPAND_DIR": str(w / "plugins"),
            "RABBITMQ_MNESIA_BASE": str(w / "mnesia"),
            "RABBITMQ_LOG_BASE": str(w / "log"),
            "RABBITMQ_PID_FILE": str(w / "broker.pid"),
        }
        self._epmd: subprocess.Popen[bytes] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        #: seconds the last start took until both listeners answered
        self.start_seconds = 0.0

    @property
    def url(self) -> str:
        """amqp://guest:guest@127.0.0.1:PORT/"""
        return f"amqp://guest:guest@{self.host}:{self.port}/"

    @property
    def pid(self) -> int:
        """The broker's own (Erlang VM) process id."""
        return int((self.workdir / "broker.pid").read_text().strip())

    def start(self) -> RabbitBroker:
        """Start the broker (again, after `kill()`, on the same ports and data) and wait until
        it listens."""
        if self._epmd is None:
            self._epmd = subprocess.Popen(
                ["epmd", "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        began = time.monotonic()
        (self.workdir / "broker.pid").unlink(missing_ok=True)
        with open(self.workdir / "stdout.log", "ab") as out:
            self._proc = subprocess.Popen(
                [self.server], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )
        try:
            for port in (self.port, self.stomp_port):
                if port:
                    wait_for_port(port, self._proc, "rabbitmq-server", START_TIMEOUT_S)
        except RuntimeError as e:
            log_tail = (self.workdir / "stdout.log").read_text(errors="replace")[-2000:]
            self.stop()
            raise RuntimeError(f"{e}; its output ended with:\n{log_tail}") from None
        self.start_seconds = time.monotonic() - began
        return self

    def kill(self) -> None:
        """Kill the broker at once (SIGKILL, as a crash): what it confirmed is on disk."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while pid_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        stop(proc)  # the script that ran it ends with it

    def stop(self) -> None:
        """Stop the broker (SIGTERM: an orderly shutdown) and its epmd, and remove its data."""
        proc, self._proc = self._proc, None
        if proc is not None:
            pid = None
            with contextlib.suppress(OSError, ValueError):  # it never started
                pid = self.pid
            stop(proc, timeout=30)  # the script stops the broker and waits for it
            if pid is not None and pid_alive(pid):
                stop_pid(pid)
        epmd, self._epmd = self._epmd, None
        if epmd is not None:
            stop(epmd)
        shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> RabbitBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


__all__ = ["RabbitBroker", "RabbitUnavailableError", "find_server"]

"""Loopback processes, without pytest: free ports, waiting for a listener, stopping by PID,
and a mosquitto of one's own (a Kafka broker of one's own is in `testing/kafka.py`). Production
code needs them (the embedded Redis takes a free port), and so do the test fixtures
(`testing/services.py`) and the benches."""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

#: Linux's prctl(2), looked up once in the parent: a child between fork and exec must not load
#: a library (another thread may have held the loader's lock at the fork)
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
_PR_SET_PDEATHSIG = 1


def dies_with_parent() -> Callable[[], None] | None:
    """A `preexec_fn` for a helper process that must not outlive the one that starts it (the
    embedded Redis of a server killed with -9): on Linux the child gets SIGTERM when the thread
    that started it ends, so start it from a thread that lives as long as it should. None
    elsewhere (nothing to run)."""
    if _PRCTL is None:
        return None
    prctl, parent = _PRCTL, os.getpid()

    def in_child() -> None:
        prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent ended before the prctl took effect
            os._exit(1)

    return in_child


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float = 10) -> None:
    """Wait until `proc` (called `what` in errors) listens on 127.0.0.1:`port`."""
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


def stop(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not ended within `timeout` seconds."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def pid_alive(pid: int) -> bool:
    """Whether a process runs with this PID (a zombie, ended but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rpartition(")")[2].split()[0] != "Z"


def stop_pid(pid: int, timeout: float = 10) -> None:
    """Stops a process that need not be our child: SIGTERM, then SIGKILL if it has not ended
    within `timeout` seconds; an error if it has not ended `timeout` seconds after that."""
    if pid <= 0:
        raise ValueError(f"not a process id: {pid}")
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
        deadline = time.monotonic() + timeout
        while pid_alive(pid):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        else:
            return
    raise RuntimeError(f"process {pid} did not end after SIGKILL")


def find_binary(name: str) -> str | None:
    """A program on the PATH, or in /usr/sbin or /usr/bin (Debian puts mosquitto in sbin)."""
    return shutil.which(name) or next(
        (p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.access(p, os.X_OK)), None
    )


@contextmanager
def mosquitto(binary: str) -> Iterator[tuple[int, int]]:
    """A mosquitto broker of its own on a free loopback port, anonymous access allowed:
    yields (port, pid); stopped on the way out."""
    port = free_port()
    workdir = Path(tempfile.mkdtemp(prefix="hispeed-mosquitto-"))
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen(
        [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for_port(port, proc, "mosquitto")
        yield port, proc.pid
    finally:
        stop(proc)
        shutil.rmtree(workdir, ignore_errors=True)


__all__ = [
    "dies_with_parent",
    "find_binary",
    "free_port",
    "mosquitto",
    "pid_alive",
    "stop",
    "stop_pid",
    "wait_for_port",
]

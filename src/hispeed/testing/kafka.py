"""A real Apache Kafka broker of one's own, without pytest: `scripts/kafka/kafka` (a single-node
KRaft broker from Maven Central's jars) started in a directory on a free loopback port,
stopped by its PID. The `kafka_server` fixture (`services.py`) and the benches use it.

    with kafka_broker() as broker:           # a temporary directory, removed afterwards
        bootstrap, pid = broker              # "127.0.0.1:PORT", the broker's JVM
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from hispeed.processes import find_binary, free_port, pid_alive, stop_pid

# JVM options for a quick start (about a second sooner on two cores): the C1 compiler alone
# and the serial collector. The broker's peak throughput is lower; benches pass `()`.
QUICK_START_JVM: tuple[str, ...] = ("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC")

# Broker settings for tests, on top of the script's (few internal-topic partitions, session
# timeouts down to 1 s, timed-out transactions aborted within 1 s): every topic is created
# explicitly, and the log cleaner does not set 128 MB aside at start.
TEST_SETTINGS: Mapping[str, str] = {
    "auto.create.topics.enable": "false",
    "log.cleaner.dedupe.buffer.size": str(4 * 1024 * 1024),
}
#: and records kept whatever their timestamps: tests, conformance cases and benches stamp
#: records in the past (2023, 1970), which a 7-day retention deletes once the broker checks
#: (every 5 minutes), in the middle of whatever runs then
KEEPING_SETTINGS: Mapping[str, str] = {**TEST_SETTINGS, "log.retention.ms": "-1"}


class KafkaUnavailableError(RuntimeError):
    """No broker can be started here: no java, no script, or its jars could not be fetched."""


class Broker(NamedTuple):
    bootstrap: str  # "127.0.0.1:PORT", for bootstrap.servers
    pid: int  # the broker's JVM

    @property
    def host(self) -> str:
        return self.bootstrap.rpartition(":")[0]

    @property
    def port(self) -> int:
        return int(self.bootstrap.rpartition(":")[2])


def kafka_script() -> Path:
    """scripts/kafka/kafka of the source tree hispeed is installed from (editable), or
    HISPEED_KAFKA_SCRIPT."""
    override = os.environ.get("HISPEED_KAFKA_SCRIPT")
    if override:
        script = Path(override)
        if not script.is_file():
            raise KafkaUnavailableError(f"HISPEED_KAFKA_SCRIPT={override} is not a file")
        return script
    # src/hispeed/testing/kafka.py -> the repository's root
    script = Path(__file__).resolve().parents[3] / "scripts" / "kafka" / "kafka"
    if not script.is_file():
        raise KafkaUnavailableError(
            f"no {script} (hispeed is not installed from its source tree): "
            "set HISPEED_KAFKA_SCRIPT to scripts/kafka/kafka of a hispeed checkout"
        )
    return script


def free_port_pair(attempts: int = 50) -> int:
    """A free loopback port whose successor is free too (the controller listens there)."""
    for _ in range(attempts):
        port = free_port()
        if port >= 65535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 1))
            except OSError:
                continue
        return port
    raise RuntimeError(f"no free pair of loopback ports in {attempts} attempts")


def fetch(script: Path | None = None, timeout: float = 900) -> None:
    """The broker's jars (once; Maven Central through mvn), or KafkaUnavailableError."""
    script = script or kafka_script()
    if not find_binary("java"):
        raise KafkaUnavailableError(
            "java is not installed (apt-get install openjdk-17-jre-headless)"
        )
    done = subprocess.run(
        [str(script), "fetch"], capture_output=True, text=True, timeout=timeout, check=False
    )
    if done.returncode != 0:
        hint = "" if find_binary("mvn") else " (mvn is not installed: apt-get install maven)"
        output = (done.stdout + done.stderr).strip()[-2000:]
        raise KafkaUnavailableError(f"`{script} fetch` failed{hint}: {output}")


def run_start(
    command: Sequence[str],
    env: Mapping[str, str],
    timeout: float,
    pid_file: Path,
    log: Path,
    what: str,
    started: list[int],
) -> None:
    """Run a `scripts/kafka/kafka` command that starts a JVM in the background and waits for
    it; the JVM's PID (from `pid_file`, 0 if none) goes into `started` even when the start
    fails, for the caller to stop it. RuntimeError with the script's output and the tail of
    `log` when it did not start, or did not within `timeout` seconds."""
    try:
        done = subprocess.run(
            list(command),
            capture_output=True,
            text=True,
            env=dict(env),
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"{what} did not start within {timeout}s") from e
    finally:
        started.append(int(pid_file.read_text()) if pid_file.exists() else 0)
    if done.returncode != 0:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        raise RuntimeError(f"{what} did not start: {(done.stdout + done.stderr).strip()}\n{tail}")


@contextmanager
def kafka_broker(
    workdir: str | Path | None = None,
    port: int | None = None,
    *,
    settings: Mapping[str, str] = TEST_SETTINGS,
    jvm_options: Sequence[str] = QUICK_START_JVM,
    timeout: float = 120,
) -> Iterator[Broker]:
    """A single-node Kafka broker (KRaft) on 127.0.0.1: yields Broker(bootstrap, pid) once it
    accepts clients; stopped by its PID on the way out. Its data and logs (broker.log) are in
    `workdir` (by default a temporary directory, removed afterwards), on `port` (by default a
    free one; the controller takes port + 1). Raises KafkaUnavailableError when no broker can run
    here (no java, no script, no jars)."""
    script = kafka_script()
    fetch(script)
    own_dir = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="hispeed-kafka-") if workdir is None else workdir)
    port = free_port_pair() if port is None else port
    pid_file = directory / "broker.pid"
    env = {**os.environ, "KAFKA_OPTS": " ".join(jvm_options)}
    command = [str(script), "start", str(directory), str(port)]
    command += [f"{key}={value}" for key, value in settings.items()]
    started: list[int] = []
    try:
        run_start(
            command, env, timeout, pid_file, directory / "broker.log", "the Kafka broker", started
        )
        yield Broker(f"127.0.0.1:{port}", started[0])
    finally:
        pid = started[0] if started else 0
        if pid > 0 and pid_alive(pid):
            stop_pid(pid, timeout=15)
        pid_file.unlink(missing_ok=True)
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)


__all__ = [
    "QUICK_START_JVM",
    "TEST_SETTINGS",
    "Broker",
    "KafkaUnavailableError",
    "fetch",
    "free_port_pair",
    "kafka_broker",
    "kafka_script",
    "run_start",
]

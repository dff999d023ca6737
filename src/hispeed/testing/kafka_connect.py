"""A real Apache Kafka Connect worker of one's own, without pytest: `scripts/kafka/kafka connect`
(Kafka's own Connect runtime in distributed mode, with the FileStream connectors on its
plugin.path, from Maven Central's jars) against a broker, its REST API on a free loopback
port, stopped by its PID. The `kafka_connect` fixture (`services.py`) uses it.

    with connect_worker("127.0.0.1:9092") as worker:   # a temporary directory, removed after
        worker.url                                     # "http://127.0.0.1:PORT"
        worker.restart()                               # stop it, start it again (same group)
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from hispeed.processes import free_port, pid_alive, stop_pid
from hispeed.testing.kafka import QUICK_START_JVM, fetch, kafka_script, run_start


class ConnectWorker:
    """One Kafka Connect worker in `directory` (its configuration, connect.log, connect.pid),
    answering on 127.0.0.1:`port`. Its connectors' configurations, offsets and states live in
    topics of the broker, named after the directory: a restart in the same directory is the
    same Connect cluster, and resumes every connector where it stopped."""

    def __init__(
        self,
        bootstrap: str,
        directory: Path,
        port: int,
        jvm_options: Sequence[str] = QUICK_START_JVM,
    ) -> None:
        self.bootstrap = bootstrap
        self.directory = directory
        self.port = port
        self.jvm_options = tuple(jvm_options)
        self.pid = 0
        #: seconds the last start took, until its REST API listed the connectors
        self.start_seconds = 0.0

    @property
    def url(self) -> str:
        """The worker's REST API, as `ksql.connect.url` takes it."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> None:
        """Start the worker and wait until its REST API answers (RuntimeError if it does not)."""
        env = {**os.environ, "KAFKA_OPTS": " ".join(self.jvm_options)}
        command = [
            str(kafka_script()),
            "connect",
            str(self.directory),
            self.bootstrap,
            str(self.port),
        ]
        began = time.monotonic()
        started: list[int] = []
        try:
            run_start(
                command,
                env,
                timeout,
                self.directory / "connect.pid",
                self.directory / "connect.log",
                "the Kafka Connect worker",
                started,
            )
        finally:
            self.pid = started[0] if started else 0
        self.start_seconds = time.monotonic() - began

    def stop(self) -> None:
        """Stop the worker by its PID (SIGTERM: it leaves its group and commits its offsets)."""
        if self.pid > 0 and pid_alive(self.pid):
            stop_pid(self.pid, timeout=30)
        (self.directory / "connect.pid").unlink(missing_ok=True)
        self.pid = 0

    def restart(self) -> None:
        """Stop the worker and start it again in the same directory, on the same port."""
        self.stop()
        self.start()


@contextmanager
def connect_worker(
    bootstrap: str,
    workdir: str | Path | None = None,
    port: int | None = None,
    *,
    jvm_options: Sequence[str] = QUICK_START_JVM,
) -> Iterator[ConnectWorker]:
    """A Kafka Connect worker against the broker at `bootstrap`, in `workdir` (by default a
    temporary directory, removed afterwards) on `port` (by default a free one); stopped by its
    PID on the way out. Raises `KafkaUnavailableError` when none can run here (no java, no
    jars), RuntimeError when it does not start."""
    fetch()
    own_dir = workdir is None
    directory = Path(tempfile.mkdtemp(prefix="hispeed-connect-") if workdir is None else workdir)
    worker = ConnectWorker(bootstrap, directory, free_port() if port is None else port, jvm_options)
    try:
        worker.start()
        yield worker
    finally:
        worker.stop()
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)


__all__ = ["ConnectWorker", "connect_worker"]

"""Pytest fixtures that start real services on free loopback ports: redis-server, mosquitto,
an Apache Kafka broker (scripts/kafka/kafka), a Kafka Connect worker against it, memcached,
PostgreSQL and rabbitmq-server.

A test that needs a service asks for its fixture. When the service cannot run here (its
binary missing; for Kafka, java or the jars), the test is skipped with the install command,
unless HISPEED_REQUIRE_SERVICES=1 (as CI sets it), in which case it fails: in CI a missing
service is a failure, never a skip.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

from hispeed.processes import find_binary, free_port, mosquitto, stop, wait_for_port
from hispeed.testing.kafka import KEEPING_SETTINGS, KafkaUnavailableError, kafka_broker
from hispeed.testing.kafka_connect import ConnectWorker, connect_worker
from hispeed.testing.rabbitmq import RabbitBroker, RabbitUnavailableError


@dataclass(frozen=True)
class Service:
    name: str
    host: str
    port: int
    pid: int

    @property
    def bootstrap(self) -> str:
        """HOST:PORT, as Kafka's bootstrap.servers takes it."""
        return f"{self.host}:{self.port}"

    @property
    def url(self) -> str:
        """redis://HOST:PORT, mqtt://HOST:PORT; for Kafka, which has no scheme, HOST:PORT."""
        if self.name == "kafka":
            return self.bootstrap
        scheme = {"redis": "redis", "mosquitto": "mqtt"}.get(self.name, "tcp")
        return f"{scheme}://{self.host}:{self.port}"


def unavailable(message: str) -> NoReturn:
    """Skips the test, or fails it under HISPEED_REQUIRE_SERVICES=1."""
    if os.environ.get("HISPEED_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{message}; HISPEED_REQUIRE_SERVICES=1 makes this a failure")
    pytest.skip(message)


def require_binary(name: str, package: str) -> str:
    found = find_binary(name)
    if found:
        return found
    unavailable(f"{name} is not installed (apt-get install {package})")


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


@pytest.fixture(scope="session")
def kafka_server() -> Iterator[Service]:
    """A single-node Apache Kafka broker (KRaft) of its own on a free loopback port (the
    controller on the next one), from scripts/kafka/kafka with the test settings of
    `hispeed.testing.kafka` (topics created explicitly, session timeouts down to 1 s, a
    timed-out transaction aborted within 1 s). Its `bootstrap` (also `url`) is "127.0.0.1:PORT".
    Skipped without java or the broker's jars (fetched with mvn on first use), unless
    HISPEED_REQUIRE_SERVICES=1."""
    with ExitStack() as stack:
        try:  # in a temporary directory of its own, removed with the broker
            broker = stack.enter_context(kafka_broker(settings=KEEPING_SETTINGS))
        except KafkaUnavailableError as e:
            unavailable(f"no Kafka broker: {e}")
        yield Service("kafka", broker.host, broker.port, broker.pid)


@pytest.fixture(scope="session")
def kafka_connect(kafka_server: Service) -> Iterator[ConnectWorker]:
    """A Kafka Connect worker (Apache Kafka's own runtime, distributed mode, the FileStream
    connectors on its plugin.path) against the session's broker, its REST API on a free
    loopback port (`url`); stopped by its PID. A test may `restart()` it: it comes back on
    the same port as the same Connect cluster. Skipped without java or the jars, unless
    HISPEED_REQUIRE_SERVICES=1."""
    with ExitStack() as stack:
        try:
            worker = stack.enter_context(connect_worker(kafka_server.bootstrap))
        except KafkaUnavailableError as e:
            unavailable(f"no Kafka Connect worker: {e}")
        yield worker


# -- memcached (the memcached sink and MEMCACHED_GET) -------------------------------------------


class MemcachedProcess:
    """A memcached of a test's own on a free loopback port, to kill and start again (on the
    same port, empty: memcached keeps nothing over a restart)."""

    def __init__(self, binary: str, memory_mb: int = 64) -> None:
        self.binary = binary
        self.memory_mb = memory_mb
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """HOST:PORT, as 'memcached.servers' takes it."""
        return f"127.0.0.1:{self.port}"

    def start(self) -> None:
        args = [self.binary, "-l", "127.0.0.1", "-p", str(self.port), "-U", "0"]
        args += ["-m", str(self.memory_mb), "-c", "256"]
        if os.geteuid() == 0:  # memcached refuses to run as root without naming a user
            args += ["-u", "root"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.proc, "memcached")

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(30)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            stop(self.proc)
            self.proc = None


def _memcached() -> Iterator[MemcachedProcess]:
    process = MemcachedProcess(require_binary("memcached", "memcached"))
    process.start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def memcached_server() -> Iterator[Service]:
    """A memcached of its own on a free loopback port (64 MB, TCP only); its `bootstrap`
    is the HOST:PORT that 'memcached.servers' takes."""
    for process in _memcached():
        assert process.proc is not None
        yield Service("memcached", "127.0.0.1", process.port, process.proc.pid)


@pytest.fixture
def memcached_process() -> Iterator[MemcachedProcess]:
    """A started memcached of the test's own (it starts in milliseconds), which the test may
    kill and start again; stopped at the end."""
    yield from _memcached()


@pytest.fixture(scope="session")
def rabbitmq_server() -> Iterator[RabbitBroker]:
    """A rabbitmq-server of its own (Debian's package) on free loopback ports, AMQP on
    `port` (`url`: amqp://guest:guest@127.0.0.1:PORT/) and Web-STOMP on `stomp_port`, with
    its data, epmd and node name its own (`hispeed.testing.rabbitmq`). Session-scoped: Erlang
    takes seconds to start it. Tests that kill it start one of their own."""
    try:
        broker = RabbitBroker()
    except RabbitUnavailableError as e:
        unavailable(str(e))
    with broker:
        yield broker


# -- PostgreSQL (the postgres sink) ---------------------------------------------------------------

#: where Debian's postgresql packages put the server's programs (newest version first)
POSTGRES_BIN_GLOB = "/usr/lib/postgresql/*/bin"


def postgres_bin() -> Path | None:
    """The directory of initdb, pg_ctl and postgres (Debian's, else on the PATH), or None."""
    found = sorted(
        Path(p)
        for p in glob.glob(POSTGRES_BIN_GLOB)
        if Path(p, "initdb").exists() and Path(p, "pg_ctl").exists()
    )
    if found:
        return found[-1]
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


class PostgresProcess:
    """A PostgreSQL cluster of its own in a temporary directory, on a free loopback port,
    its superuser `hispeed` trusted on loopback. PostgreSQL refuses to run as root, so
    under root (as in CI) the cluster belongs to the `postgres` user and its programs run
    through `runuser`."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.workdir = Path(tempfile.mkdtemp(prefix="hispeed-postgres-"))
        self.data = self.workdir / "data"
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    "running as root needs a 'postgres' user to own the cluster"
                ) from None
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        self.running = False

    @property
    def url(self) -> str:
        """The connection URL of its `postgres` database."""
        return f"postgresql://hispeed@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 120) -> None:
        done = subprocess.run(
            [*self.as_user, *args], capture_output=True, text=True, timeout=timeout
        )
        if done.returncode != 0:
            raise RuntimeError(f"{args[0]} failed: {done.stdout}{done.stderr}")

    def init(self) -> None:
        self._run(
            str(self.bindir / "initdb"),
            "-D", str(self.data), "-A", "trust", "-U", "hispeed", "-E", "UTF8",
            "--no-sync", "--no-instructions",
        )  # fmt: skip

    def start(self) -> None:
        # no fsync (a test server), listening on loopback only, its socket in the workdir
        options = f"-h 127.0.0.1 -p {self.port} -k {self.workdir} -F"
        self._run(
            str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
            str(self.workdir / "server.log"), "-w", "-t", "60", "-o", options, "start",
        )  # fmt: skip
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop it: `fast` (a clean stop) or `immediate` (as a crash: recovery at the start)."""
        if self.running:
            self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")
            self.running = False

    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresProcess]:
    """A PostgreSQL server of its own (initdb takes seconds: one for the session); tests
    use tables of their own. A test that stops it starts it again."""
    bindir = postgres_bin()
    if bindir is None:
        unavailable("PostgreSQL is not installed (apt-get install postgresql)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        unavailable("running as root needs runuser (util-linux) to start PostgreSQL")
    process = PostgresProcess(bindir)
    try:
        process.init()
        process.start()
        yield process
    finally:
        process.remove()


__all__ = [
    "MemcachedProcess",
    "PostgresProcess",
    "RabbitBroker",
    "Service",
    "free_port",
    "kafka_connect",
    "kafka_server",
    "memcached_process",
    "memcached_server",
    "mosquitto_server",
    "postgres_bin",
    "postgres_server",
    "rabbitmq_server",
    "redis_server",
    "require_binary",
    "stop",
    "unavailable",
    "wait_for_port",
]

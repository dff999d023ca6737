"""`hispeed demo run` (what `make run` starts): the server, a Redis, the course's scenarios,
their generators and two simulated devices, until Ctrl-C.

- The server and its Redis are the embedded ones (`hispeed server`'s): the data directory
  holds the log, the queries' state and Redis's append-only file.
- Each scenario's SQL (`hispeed/demo/scenarios/*.sql`, also `examples/*/scenario.sql`) runs
  once per data directory: a marker in `<data dir>/demo/` remembers it, so running the demo
  again resumes the queries and generators where they stopped instead of starting them twice.
- The devices are separate programs (`hispeed demo device --id deviceN`) talking to the
  server over WebSockets; what they print (their LED) goes to `<data dir>/demo/deviceN.log`.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from hispeed.config import Settings
from hispeed.connectors.embedded_redis import EmbeddedRedis, find_binary
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.log.embedded import EmbeddedLog
from hispeed.runtime.pull import PULL_MAX_ROWS
from hispeed.server.app import Server, check_ports
from hispeed.version import __version__

#: the scenarios, in the order they run (each names what it needs itself)
SCENARIOS = ("sensehat", "weather_drone", "clickstream", "fraud", "leaderboard")

#: the demo's topics keep a few MB a partition (minutes of its generators), in segments
#: small enough that retention and compaction take effect within minutes, so a demo left
#: running holds a bounded data directory; settings that differ from the server's
#: defaults (`log_retention_bytes`, `log_segment_bytes`) win
DEMO_RETENTION_BYTES = 2 * 1024 * 1024
DEMO_SEGMENT_BYTES = 512 * 1024
#: seconds between the demo's retention and compaction passes: its queries and connectors
#: commit offsets and changelogs many times a second, which compaction takes back
DEMO_CLEANER_INTERVAL_S = 5.0


def demo_topic_defaults(settings: Settings) -> dict[str, int]:
    """The demo's topic defaults: its own small ones unless the settings name others."""
    builtin = Settings()
    return {
        "retention.bytes": settings.log_retention_bytes
        if settings.log_retention_bytes != builtin.log_retention_bytes
        else DEMO_RETENTION_BYTES,
        "segment.bytes": settings.log_segment_bytes
        if settings.log_segment_bytes != builtin.log_segment_bytes
        else DEMO_SEGMENT_BYTES,
    }


def scenario_sql(name: str) -> str:
    """A scenario's SQL as the package ships it."""
    path = resources.files("hispeed.demo").joinpath("scenarios", f"{name}.sql")
    return path.read_text(encoding="utf-8")


@dataclass
class Demo:
    """What a running demo is made of (for the caller to look at, and for tests)."""

    url: str
    engine: Engine
    redis_url: str | None
    devices: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: where the demo keeps its markers and the devices' output
    demo_dir: Path = Path()
    ran: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)


def install_scenarios(engine: Engine, marker_dir: Path, say: Callable[[str], None]) -> Demo:
    """Run each scenario's SQL once per data directory; a failing one is reported, the
    others go on."""
    marker_dir.mkdir(parents=True, exist_ok=True)
    demo = Demo("", engine, None)
    for name in SCENARIOS:
        marker = marker_dir / f"{name}.installed"
        if marker.exists():
            continue
        try:
            engine.execute(scenario_sql(name))
        except HispeedError as e:
            demo.failed[name] = str(e)
            say(f"scenario {name} failed: {e}")
            continue
        marker.write_text(__version__ + "\n")
        demo.ran.append(name)
    return demo


def start_device(url: str, device_id: str, log_dir: Path, seed: int) -> subprocess.Popen[bytes]:
    """A simulated device as a program of its own, its output in `log_dir/<id>.log`."""
    out = open(log_dir / f"{device_id}.log", "ab")  # noqa: SIM115 (the child keeps it)
    try:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "hispeed",
                "demo",
                "device",
                "--id",
                device_id,
                "--url",
                url,
                "--seed",
                str(seed),
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    finally:
        out.close()


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextmanager
def running_demo(
    settings: Settings, *, devices: int = 2, say: Callable[[str], None] = print
) -> Iterator[Demo]:
    """Start everything; stop everything (devices, server, queries, Redis) on the way out."""
    check_ports(settings)  # before anything starts: a second `make run` says so, plainly
    log_ = EmbeddedLog(
        settings.data_dir,
        fsync=settings.fsync,
        default_partitions=settings.default_partitions,
        cleaner_interval_s=settings.cleaner_interval_s
        if settings.cleaner_interval_s != Settings().cleaner_interval_s
        else DEMO_CLEANER_INTERVAL_S,
        topic_defaults=demo_topic_defaults(settings),
    )
    redis: EmbeddedRedis | None = None
    procs: list[subprocess.Popen[bytes]] = []
    engine: Engine | None = None
    server: Server | None = None
    try:
        redis_url = settings.redis_url or None
        if redis_url is None and settings.embedded_redis:
            if find_binary() is None:
                say("no Redis: the Redis scenarios wait for one (apt-get install redis-server)")
            else:
                redis = EmbeddedRedis(settings.data_dir)
                redis.start()
                redis_url = redis.url
                say(f"Redis: {redis.describe()}")
        props: dict[str, object] = {"redis.url": redis_url} if redis_url else {}
        props[PULL_MAX_ROWS] = settings.max_pull_rows
        engine = Engine(log_=log_, udf_modules=settings.udf_modules, properties=props)
        engine.start()
        # the scenarios' streams, tables and queries exist before the server answers: a page
        # (or a tab left open from the last run) must never see them missing ("POSSIBLE_FRAUD
        # does not exist") while the demo is still creating them
        demo = install_scenarios(engine, settings.data_dir / "demo", say)
        server = Server(engine, settings)
        server.start()
        url = f"http://{settings.host}:{settings.port}"
        demo.url = url
        demo.redis_url = redis_url
        demo.demo_dir = settings.data_dir / "demo"
        for i in range(1, devices + 1):
            procs.append(start_device(url, f"device{i}", settings.data_dir / "demo", seed=i))
        demo.devices = procs
        yield demo
    finally:
        for proc in procs:
            stop_process(proc)
        if server is not None:
            server.stop()
        if engine is not None:
            engine.close()
        else:
            log_.close()
        if redis is not None:
            redis.stop()


def run(settings: Settings, devices: int = 2) -> None:
    """Run the demo until SIGINT or SIGTERM."""
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        with running_demo(settings, devices=devices) as demo:
            ran = ", ".join(demo.ran) if demo.ran else "none new (resumed from the data directory)"
            print(
                f"hispeed {__version__} demo running (data directory "
                f"{settings.data_dir.resolve()}; scenarios installed: {ran})\n"
                f"  dashboard:   {demo.url}/demo  (and {demo.url}/ for every stream and query)\n"
                f"  SQL shell:   hispeed sql --url {demo.url}\n"
                f"  devices:     {devices} simulated Sense HATs; their LEDs in "
                f"{settings.data_dir / 'demo'}/device*.log\n"
                "Ctrl-C stops everything.",
                flush=True,
            )
            while not stop.wait(0.5):
                for proc in demo.devices:
                    if proc.poll() is not None:
                        raise HispeedError(
                            f"a simulated device stopped (exit code {proc.returncode}); "
                            f"see {settings.data_dir / 'demo'}/device*.log"
                        )
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    print("hispeed demo stopped", flush=True)


__all__ = ["SCENARIOS", "Demo", "install_scenarios", "run", "running_demo", "scenario_sql"]

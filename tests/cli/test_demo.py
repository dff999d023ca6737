"""`hispeed demo` against a running server, as separate processes."""

from __future__ import annotations

import json
import subprocess
import sys

from hispeed.testing.server import RunningServer


def _hispeed(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hispeed", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_generate_sends_a_generators_records(server: RunningServer) -> None:
    done = _hispeed(
        "demo", "generate", "weather", "--url", server.url, "--rate", "500", "--count", "100"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"generator": "weather", "positions": 100, "records": 100}
    values = server.engine.log.read_table("weather", 0).column("value").to_pylist()
    assert len(values) == 100
    assert set(json.loads(values[0])) == {
        "WeatherStation",
        "Temperature",
        "Humidity",
        "Sensor1",
        "Sensor2",
    }


def test_a_device_program_sends_and_shows_its_led(server: RunningServer) -> None:
    server.engine.log.create_topic("device1commands", 1)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hispeed",
            "demo",
            "device",
            "--id",
            "device1",
            "--url",
            server.url,
            "--rate",
            "20",
            "--seconds",
            "3",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    server.wait_for(lambda: "device1" in server.engine.log.list_topics())
    import httpx

    httpx.post(
        f"{server.url}/topics/device1commands", json=[{"direction": "up", "color": "green"}]
    ).raise_for_status()
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert 'device1 got {"direction": "up", "color": "green"}' in out
    assert "██" in out  # the LED, drawn in the terminal
    assert "device1: sent" in out


def test_demo_errors_are_one_line() -> None:
    done = _hispeed("demo", "generate", "nope")
    assert done.returncode == 1
    assert done.stderr.strip().startswith("error: no generator 'nope'")
    assert "Traceback" not in done.stderr

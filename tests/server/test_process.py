"""`hispeed server` as a process: a graceful stop keeps every query where it was."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from hispeed.testing.server import server_process
from hispeed.testing.services import free_port


def _start(data_dir: Path, port: int) -> subprocess.Popen[str]:
    proc = server_process(data_dir, port)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{port}/info", timeout=1)
            return proc
        except httpx.TransportError:
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.05)
    raise AssertionError("the server did not start")


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    return out


def _records(url: str, topic: str) -> int:
    r = httpx.get(f"{url}/topics/{topic}")
    return sum(p["end_offset"] for p in r.json()["partitions"]) if r.status_code == 200 else 0


def _caught_up(url: str) -> bool:
    """Every persistent query has read to the end of its inputs (its own progress)."""
    queries = httpx.get(f"{url}/api/overview").json()["queries"]
    persistent = [q for q in queries if q["kind"] == "persistent"]
    return bool(persistent) and all(q["lag"] == 0 for q in persistent)


def _wait(predicate: object, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


@pytest.mark.slow
def test_a_stopped_server_resumes_its_queries_without_loss_or_repeats(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = _start(data_dir, port)
    try:
        r = httpx.post(
            f"{url}/ksql",
            json={
                "ksql": "CREATE STREAM clicks (user STRING KEY, page STRING) WITH "
                "(kafka_topic='clicks', value_format='JSON', partitions=2);"
                "CREATE STREAM home AS SELECT * FROM clicks WHERE page = '/';"
                "CREATE TABLE views AS SELECT page, COUNT(*) AS n FROM clicks GROUP BY page;"
            },
        )
        assert r.status_code == 200, r.text
        rows = [{"user": f"u{i}", "page": "/" if i % 2 else "/a"} for i in range(100)]
        httpx.post(f"{url}/topics/clicks?key_field=user", json=rows).raise_for_status()
        _wait(lambda: _records(url, "HOME") == 50)
    finally:
        out = _stop(proc)
    assert "hispeed server stopped" in out

    proc = _start(data_dir, port)
    try:
        more = [{"user": f"v{i}", "page": "/"} for i in range(20)]
        httpx.post(f"{url}/topics/clicks?key_field=user", json=more).raise_for_status()
        _wait(lambda: _records(url, "HOME") >= 70)
        _wait(lambda: _caught_up(url))  # anything repeated has been written by now
        assert _records(url, "HOME") == 70
        pulled = httpx.post(f"{url}/query-stream", json={"sql": "SELECT * FROM views;"})
        lines = pulled.text.splitlines()[1:]
        assert sorted(lines) == ['["/",70]', '["/a",50]']
    finally:
        _stop(proc)


def test_statements_cannot_reach_outside_the_data_directory(tmp_path: Path) -> None:
    """Topic names become directories: a name that climbs out of the data directory is
    refused before anything is created."""
    from hispeed.engine import Engine
    from hispeed.server.statements import run_ksql

    with Engine(tmp_path / "data", fsync="never") as engine:
        for topic in ("..", "../outside", "/etc/passwd", "a/b"):
            status, body = run_ksql(
                engine,
                f"CREATE STREAM s (x INT) WITH (kafka_topic='{topic}', value_format='JSON', "
                "partitions=1);",
            )
            assert status == 400, topic
            assert "invalid topic name" in body["message"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]

"""ksqlDB's own Python clients, unchanged, against hispeed's REST API.

- ksql-python-ng (the maintained fork of the client the seed's weather streamer used)
- jetblack-ksql-dbapi (DB-API 2.0 over HTTP/2)
- ksql 0.10.2, the seed's own: it shares the `ksql` import name with ksql-python-ng, so
  `make` installs it into .venv/ksql-0.10.2 and it runs here in a subprocess with that
  directory first on its path.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import RunningServer

OLD_KSQL = Path(sys.prefix) / "ksql-0.10.2"


def _produce_later(server: RunningServer, topic: str, rows: list[dict[str, object]]) -> None:
    def later() -> None:
        # the client's push query is registered once its start ("latest") is fixed: then
        server.wait_for(lambda: len(server.server.state.queries) > 0, timeout=60)
        httpx.post(f"{server.url}/topics/{topic}?key_field=id", json=rows, timeout=10)

    threading.Thread(target=later, daemon=True).start()


NG_KSQL = Path(sys.prefix) / "ksql-python-ng"


def test_ksql_python_ng(server: RunningServer) -> None:
    """The maintained fork of the client the seed's weather streamer used: `ksql()`,
    `create_stream()`, `create_stream_as()`, `query()` over HTTP/1.1 and HTTP/2,
    `inserts_stream()` and `close_query()`."""
    path = _client_python(NG_KSQL, "ksql-python-ng")
    server.engine.log.create_topic("weather", 1)  # as ksqlDB, CREATE STREAM needs the topic
    _produce_later(
        server,
        "weather",
        [{"id": "s1", "city": "Lisbon", "temperature": 33.5}, {"id": "s2", "city": "Oslo"}],
    )
    script = f"""
import json, warnings
warnings.simplefilter("ignore", DeprecationWarning)  # it imports telnetlib
from ksql import KSQLAPI
from ksql.errors import KSQLError
client = KSQLAPI({server.url!r}, timeout=10)  # checks /info's version on the way in
client.create_stream(table_name="weather",
                     columns_type=["id VARCHAR KEY", "city VARCHAR", "temperature DOUBLE"],
                     topic="weather", value_format="JSON")
client.create_stream_as(table_name="hot", select_columns=["id", "city", "temperature"],
                        src_table="weather", kafka_topic="hot", value_format="JSON",
                        conditions="temperature > 30")
print(json.dumps(sorted(s["name"] for s in client.ksql("SHOW STREAMS;")[0]["streams"])))
try:
    client.ksql("CREATE STREAM broken (x NOPE) WITH (kafka_topic='b');")
    print(json.dumps(["no error"]))
except KSQLError as e:
    print(json.dumps([e.error_code, e.msg if hasattr(e, "msg") else str(e)]))
rows = list(client.query("SELECT * FROM hot EMIT CHANGES LIMIT 1;", use_http2=True,
                         parse=True, stream_properties={{"auto.offset.reset": "earliest"}}))
print(json.dumps(rows))
text = "".join(client.query("SELECT * FROM weather EMIT CHANGES LIMIT 2;",
                            stream_properties={{"ksql.streams.auto.offset.reset": "earliest"}}))
print(json.dumps([e["row"]["columns"][0] for e in json.loads(text)[1:3]]))
print(json.dumps(client.inserts_stream("WEATHER", [{{"ID": "s3", "CITY": "Rome"}}])))
print(json.dumps([client.close_query("no-such-query")]))
"""
    streams, error, rows, scanned, acks, closed = _run_client(
        Path(sys.executable), script, {"PYTHONPATH": str(path)}
    )
    assert streams == ["HOT", "WEATHER"]
    assert error[0] == 40001
    assert "NOPE" in error[1]
    assert rows == [{"ID": "s1", "CITY": "Lisbon", "TEMPERATURE": 33.5}]
    assert scanned == ["s1", "s2"]
    assert acks == [{"status": "ok", "seq": 0}]
    assert closed == [False]


def _client_python(path: Path, what: str) -> Path:
    """The interpreter (or path directory) `make` prepared for a client; fail in CI without."""
    if path.exists():
        return path
    message = f"{what} is missing at {path}: `make test` installs it"
    if (
        what.startswith("jetblack")
        and not subprocess.run(
            ["scripts/python312"], capture_output=True, text=True, check=False
        ).stdout.strip()
    ):
        pytest.skip("jetblack-ksql-dbapi needs Python 3.12 or later; this machine has none")
    if os.environ.get("HISPEED_REQUIRE_SERVICES") == "1":
        pytest.fail(message)
    pytest.skip(message)


def _run_client(python: Path, script: str, env: dict[str, str] | None = None) -> list[object]:
    done = subprocess.run(
        [str(python), "-c", script],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("[")]


def test_jetblack_ksql_dbapi(server: RunningServer) -> None:
    """jetblack-ksql-dbapi's public client, over HTTP/2 prior knowledge (it needs Python 3.12+).

    Its DB-API `connect()` cannot run anywhere: version 0.1.0's wheel and sdist leave out the
    grammar file its statement inspector opens (`_grammars/ksql.lark`), so the test drives the
    `AsyncKsqlDbClient` the package exports, which every cursor call goes through."""
    python = _client_python(Path(sys.prefix) / "jetblack" / "bin" / "python", "jetblack venv")
    server.engine.log.create_topic("clicks", 1)
    script = f"""
import asyncio, json
from jetblack_ksql_dbapi import AsyncKsqlDbClient

async def main():
    client = AsyncKsqlDbClient({server.url!r})
    print(json.dumps([(await client.info())["KsqlServerInfo"]["serverStatus"]]))
    print(json.dumps([(await client.healthcheck())["isHealthy"]]))
    created = await client.ksql(
        "CREATE STREAM clicks (id VARCHAR KEY, page VARCHAR, ms INT) "
        "WITH (kafka_topic='clicks', value_format='JSON');"
        "CREATE TABLE pages AS SELECT page, COUNT(*) AS views FROM clicks GROUP BY page;")
    print(json.dumps([e["@type"] for e in created]))
    acks = [a async for a in client.inserts_stream(
        "CLICKS", [{{"ID": f"u{{i}}", "PAGE": p, "MS": i}} for i, p in enumerate("/a/")])]
    print(json.dumps(acks))
    for _ in range(200):
        rows = [r async for r in client.query_stream("SELECT * FROM pages;")]
        if sorted(r["VIEWS"] for r in rows) == [1, 2]:
            break
        await asyncio.sleep(0.05)
    print(json.dumps(sorted([r["PAGE"], r["VIEWS"]] for r in rows)))
    pushed = []
    async for row in client.query_stream(
        "SELECT id, page FROM clicks EMIT CHANGES LIMIT 2;",
        properties={{"auto.offset.reset": "earliest"}},
    ):
        pushed.append(row)
    print(json.dumps(pushed))
    try:
        await client.ksql("DROP STREAM nowhere;")
        print(json.dumps(["no error"]))
    except Exception as e:
        print(json.dumps([type(e).__name__, str(e)]))
    await client.close()

asyncio.run(main())
"""
    status, healthy, types, acks, rows, pushed, error = _run_client(python, script)
    assert status == ["RUNNING"]
    assert healthy == [True]
    assert types == ["currentStatus", "currentStatus"]
    assert acks == [{"status": "ok", "seq": i} for i in range(3)]
    assert rows == [["/", 2], ["a", 1]]
    assert pushed == [{"ID": "u0", "PAGE": "/"}, {"ID": "u1", "PAGE": "a"}]
    assert "NOWHERE" in error[1].upper()


def test_ksql_0_10_2_the_seeds_client(server: RunningServer) -> None:
    path = _client_python(OLD_KSQL, "ksql 0.10.2")
    server.engine.log.create_topic("drone", 1)
    script = f"""
import collections, collections.abc, json
for name in ("Iterable", "Mapping", "MutableMapping", "MutableSet", "Callable"):
    setattr(collections, name, getattr(collections.abc, name))  # hyper predates Python 3.10
from ksql import KSQLAPI
client = KSQLAPI({server.url!r}, timeout=10)
client.create_stream(table_name="drone", columns_type=["id varchar key", "lat double"],
                     topic="drone", value_format="JSON")
print(json.dumps([s["name"] for s in client.ksql("show streams")[0]["streams"]]))
rows = client.query("SELECT * FROM drone EMIT CHANGES LIMIT 2;", return_objects=True,
                    stream_properties={{"ksql.streams.auto.offset.reset": "earliest"}})
print(json.dumps(list(rows)))
"""
    _produce_later(server, "drone", [{"id": "d1", "lat": 38.7}, {"id": "d2", "lat": 41.1}])
    names, rows = _run_client(Path(sys.executable), script, {"PYTHONPATH": str(path)})
    assert names == ["DRONE"]
    assert rows == [{"ID": "d1", "LAT": 38.7}, {"ID": "d2", "LAT": 41.1}]

"""The dashboard: `/api/overview`, the page and its assets, and the page itself in a browser."""

from __future__ import annotations

import json
import math
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from hispeed.server.dashboard import Overview, ThroughputTracker
from hispeed.testing.services import require_binary
from tests.server.conftest import RunningServer, ServerFactory

READINGS = (
    "CREATE STREAM readings (device STRING KEY, temperature DOUBLE, humidity DOUBLE) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=2);"
)
AVERAGES = (
    "CREATE TABLE averages AS SELECT device, AVG(temperature) AS avg_temp, COUNT(*) AS n "
    "FROM readings GROUP BY device;"
)
PUSH = "SELECT device, temperature, humidity FROM readings EMIT CHANGES;"
SCREENSHOT = Path(__file__).parents[2] / "docs" / "dashboard.png"


#: what the tests behind authentication send (see `secured`)
NO_AUTH: dict[str, str] = {}


def ksql(server: RunningServer, text: str, headers: dict[str, str] = NO_AUTH) -> None:
    r = httpx.post(f"{server.url}/ksql", json={"ksql": text}, headers=headers, timeout=10)
    assert r.status_code == 200, r.text


def produce(
    server: RunningServer, rows: list[dict[str, Any]], headers: dict[str, str] = NO_AUTH
) -> None:
    r = httpx.post(
        f"{server.url}/topics/readings?key_field=device", json=rows, headers=headers, timeout=10
    )
    assert r.status_code == 200, r.text


def overview(server: RunningServer, headers: dict[str, str] = NO_AUTH) -> dict[str, Any]:
    r = httpx.get(f"{server.url}/api/overview", headers=headers, timeout=10)
    assert r.status_code == 200, r.text
    doc: dict[str, Any] = r.json()
    return doc


def readings(t: float, devices: int = 5) -> list[dict[str, Any]]:
    """One reading a device at time `t` (s): waves, so that a chart shows something."""
    return [
        {
            "device": f"sensor-{i}",
            "temperature": round(20 + i + 4 * math.sin(t / 2 + i), 3),
            "humidity": round(50 + 8 * math.cos(t / 3 + i), 3),
        }
        for i in range(devices)
    ]


def test_overview_lists_sources_topics_queries_and_processing_log(server: RunningServer) -> None:
    ksql(server, READINGS + AVERAGES)
    produce(server, [*readings(0), {"device": "bad", "temperature": "hot"}])

    def counted() -> dict[str, Any] | None:
        doc = overview(server)
        query = doc["queries"][0]
        return doc if query["records_in"] == 6 and doc["processing_log"] else None

    doc = server.wait_for(counted)
    assert [s["name"] for s in doc["streams"]] == ["READINGS"]
    stream = doc["streams"][0]
    assert stream["topic"] == "readings"
    assert (stream["key_format"], stream["value_format"]) == ("KAFKA", "JSON")
    assert stream["key_columns"] == [{"name": "DEVICE", "type": "STRING"}]
    assert stream["value_columns"] == [
        {"name": "TEMPERATURE", "type": "DOUBLE"},
        {"name": "HUMIDITY", "type": "DOUBLE"},
    ]
    assert stream["records"] == 6
    assert [t["name"] for t in doc["tables"]] == ["AVERAGES"]
    assert [c["name"] for c in doc["tables"][0]["value_columns"]] == ["AVG_TEMP", "N"]
    topics = {t["name"]: t for t in doc["topics"]}
    assert topics["readings"]["partitions"] == 2
    assert topics["readings"]["records"] == 6
    assert not topics["readings"]["internal"]
    assert topics["_hispeed_CTAS_AVERAGES_0_changelog"]["internal"]
    [query] = doc["queries"]
    assert query["id"] == "CTAS_AVERAGES_0"
    assert (query["kind"], query["state"], query["sink"]) == ("persistent", "RUNNING", "AVERAGES")
    assert query["sql"] == AVERAGES
    assert (query["records_in"], query["records_out"], query["errors"]) == (6, 5, 1)
    assert query["lag"] == 0
    [error] = doc["processing_log"]
    assert error["value"]["query"] == "CTAS_AVERAGES_0"
    assert "TEMPERATURE" in error["value"]["message"]
    assert error["value"]["topic"] == "readings"

    # every look after the first has an earlier sample to take a rate from
    time.sleep(0.2)
    again = overview(server)["queries"][0]
    assert isinstance(again["throughput_in"], float)
    assert isinstance(again["throughput_out"], float)
    assert again["throughput_in"] >= again["throughput_out"] >= 0


def test_overview_lists_push_queries_with_the_rows_they_sent(server: RunningServer) -> None:
    ksql(server, READINGS)
    url = server.url.replace("http", "ws") + "/ws/query"
    with connect(url) as ws:
        ws.send(json.dumps({"ksql": PUSH}))
        header = json.loads(ws.recv(timeout=10))
        produce(server, readings(0))
        for _ in range(5):
            ws.recv(timeout=10)

        def pushed() -> dict[str, Any] | None:
            queries = overview(server)["queries"]
            return next((q for q in queries if q["records_out"] == 5), None)

        query = server.wait_for(pushed)
        assert query["id"] == header["queryId"]
        assert (query["kind"], query["state"], query["sql"]) == ("push", "RUNNING", PUSH)
    server.wait_for(lambda: overview(server)["queries"] == [])


def test_processing_log_keeps_the_newest_records(server: RunningServer) -> None:
    ksql(server, READINGS + AVERAGES)
    produce(server, [{"device": f"bad-{i}", "temperature": "hot"} for i in range(5)])
    server.wait_for(lambda: len(Overview(server.engine).processing_log()) == 5)
    newest = Overview(server.engine, processing_log_records=3).processing_log()
    assert [r["offset"] for r in newest] == [2, 3, 4]
    assert Overview(server.engine, processing_log_records=0).processing_log() == []


def test_throughput_is_the_rate_over_the_sliding_window() -> None:
    tracker = ThroughputTracker(window_s=10)
    assert tracker.rates({"q": (0, 0)}, now=100.0) == {"q": (None, None)}
    assert tracker.rates({"q": (100, 50)}, now=102.0) == {"q": (50.0, 25.0)}
    assert tracker.rates({"q": (200, 100)}, now=104.0) == {"q": (50.0, 25.0)}
    # samples older than the window drop off: the baseline moves to t=104
    assert tracker.rates({"q": (200, 100)}, now=114.0) == {"q": (0.0, 0.0)}
    # a query that went away is forgotten; one that restarted starts again
    assert tracker.rates({"r": (10, 10)}, now=115.0) == {"r": (None, None)}
    assert tracker.rates({"r": (0, 0)}, now=116.0) == {"r": (None, None)}


def test_page_and_assets_are_served(server: RunningServer) -> None:
    page = httpx.get(f"{server.url}/", timeout=10)
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "/static/js/main.js" in page.text
    for asset, kind in [
        ("js/main.js", "javascript"),
        ("dashboard.css", "text/css"),
        ("vendor/uPlot.iife.min.js", "javascript"),
        ("vendor/uPlot.min.css", "text/css"),
    ]:
        r = httpx.get(f"{server.url}/static/{asset}", timeout=10)
        assert r.status_code == 200, asset
        assert kind in r.headers["content-type"], asset
    assert httpx.get(f"{server.url}/static/nothing.js", timeout=10).status_code == 404


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright (never a browser Playwright downloads)."""
    chromium = require_binary("chromium", "chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        message = "playwright is not installed (pip install -e '.[dev]')"
        if os.environ.get("HISPEED_REQUIRE_SERVICES") == "1":
            pytest.fail(f"{message}; HISPEED_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(message)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def run_push_query(page: Any, server: RunningServer, headers: dict[str, str] = NO_AUTH) -> None:
    """Run PUSH in the page's SQL editor; returns once the server serves it."""
    page.fill("#sql", PUSH)
    page.click("#run")
    page.wait_for_function("window.hispeedDashboard.chart.plot !== null")
    # a push query starts from now: what is produced before it opens is not its to see
    server.wait_for(lambda: any(q["kind"] == "push" for q in overview(server, headers)["queries"]))


@pytest.mark.slow
def test_dashboard_charts_a_push_query(server: RunningServer, browser: Any, tmp_path: Path) -> None:
    ksql(server, READINGS + AVERAGES)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    page.wait_for_selector("#streams >> text=READINGS")
    page.wait_for_selector("#tables >> text=AVERAGES")
    page.select_option("#chart-window", "30")

    run_push_query(page, server)
    page.fill("#tail-topic", "readings")
    page.click("#tail-start")

    stop = threading.Event()
    screenshot = os.environ.get("HISPEED_SCREENSHOT") == "1"
    seconds = 12.0 if screenshot else 3.0

    def feed() -> None:
        # 20 readings a device a request, each 10 ms apart: about a thousand rows a second
        began = time.monotonic()
        while not stop.is_set() and time.monotonic() - began < seconds:
            t = time.monotonic() - began
            produce(server, [r for step in range(20) for r in readings(t + step / 100)])
            time.sleep(0.05)

    producer = threading.Thread(target=feed)
    producer.start()
    try:
        page.wait_for_function("window.hispeedDashboard.chart.pointsReceived >= 50")
        first = page.evaluate("window.hispeedDashboard.chart.dataLength()")
        page.wait_for_function(
            f"window.hispeedDashboard.chart.dataLength() > {first}", timeout=10_000
        )
    except BaseException:
        stop.set()
        raise
    finally:
        producer.join()
    produced = overview(server)["topics"]
    total = next(t["records"] for t in produced if t["name"] == "readings")
    page.wait_for_function(f"window.hispeedDashboard.chart.pointsReceived === {total}")
    assert page.evaluate("window.hispeedDashboard.chart.keys.length") == 5

    # the overview panels list the stream and both queries, with their counts
    page.wait_for_selector("#queries >> text=CTAS_AVERAGES_0")
    page.wait_for_selector("#queries >> text=push")
    page.wait_for_selector("#tail-count:not(:empty)")
    produce(server, [{"device": "bad", "temperature": "hot"}])
    page.wait_for_selector("#plog >> text=RECORD_PROCESSING_ERROR")
    assert errors == []

    path = SCREENSHOT if screenshot else tmp_path / "dashboard.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    assert path.stat().st_size > 10_000


@pytest.mark.slow
def test_dashboard_works_behind_authentication(
    server_factory: ServerFactory, browser: Any, tmp_path: Path
) -> None:
    creds = tmp_path / "credentials"
    creds.write_text("basic alice s3cret\nbearer tok-123\n")
    server = server_factory(auth_file=str(creds))
    auth = {"authorization": "Bearer tok-123"}
    ksql(server, READINGS, auth)
    assert httpx.get(f"{server.url}/api/overview", timeout=10).status_code == 401
    # the browser's basic credentials serve the page and its requests; the token its sockets
    context = browser.new_context(http_credentials={"username": "alice", "password": "s3cret"})
    page = context.new_page()
    page.goto(server.url)
    page.wait_for_selector("#streams >> text=READINGS")
    page.fill("#token", "tok-123")
    run_push_query(page, server, auth)
    produce(server, readings(0), auth)
    page.wait_for_function("window.hispeedDashboard.chart.pointsReceived === 5")
    context.close()


@pytest.mark.slow
def test_the_chart_of_a_windowed_table_plots_its_measure(
    server: RunningServer, browser: Any
) -> None:
    """A windowed table's rows carry WINDOWSTART and WINDOWEND, numbers that are times: the
    chart plots the count, never the window's start."""
    ksql(
        server,
        READINGS + "CREATE TABLE per_minute AS SELECT device, COUNT(*) AS n FROM readings "
        "WINDOW TUMBLING (SIZE 1 MINUTE) GROUP BY device;",
    )
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(server.url)
    page.wait_for_selector("#tables >> text=PER_MINUTE")
    page.fill("#sql", "SELECT * FROM per_minute EMIT CHANGES;")
    page.click("#run")
    page.wait_for_function("window.hispeedDashboard.chart.plot !== null")
    server.wait_for(lambda: any(q["kind"] == "push" for q in overview(server)["queries"]))
    produce(server, readings(0))
    page.wait_for_function("window.hispeedDashboard.chart.pointsReceived === 5")
    charted, choices, values = page.evaluate(
        """(() => {
            const chart = window.hispeedDashboard.chart;
            return [
                chart.columns[chart.valueIndex],
                [...chart.valueSelect.options].map((o) => o.text),
                chart.plot.data.slice(1).flat().filter((v) => v !== null),
            ];
        })()"""
    )
    assert charted == "N"
    assert choices == ["N"]  # the window's bounds are no measure to choose
    assert values == [1, 1, 1, 1, 1]  # each device's count, one reading each
    assert errors == []

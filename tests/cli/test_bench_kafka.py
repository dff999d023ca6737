"""`hispeed bench kafka` as users run it, on the session's broker: every figure is there."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hispeed.testing.services import Service

pytestmark = [pytest.mark.services, pytest.mark.kafka, pytest.mark.slow]

FIGURES = (
    "produce_records_per_s",
    "consume_records_per_s",
    "consume_records_per_s_per_core",
    "tumbling_events_per_s_1_worker",
    "tumbling_events_per_s_per_core_1_worker",
    "tumbling_events_per_s_2_workers",
    "tumbling_events_per_s_per_core_2_workers",
)


def test_bench_kafka_json_has_every_figure(kafka_server: Service) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hispeed",
            "bench",
            "kafka",
            "--json",
            "--records",
            "20000",
            "--bootstrap",
            kafka_server.bootstrap,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    for name in FIGURES:
        assert figures.get(name, 0) > 0, (name, figures)
    # every bid went through the query, on one worker and then shared by two
    assert figures["tumbling_1_worker_w1_events"] == 20_000
    both = figures["tumbling_2_workers_w1_events"] + figures["tumbling_2_workers_w2_events"]
    assert both >= 20_000

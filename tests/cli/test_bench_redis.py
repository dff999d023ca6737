"""`hispeed bench redis` as users run it: a figure per sink mode."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hispeed.bench.redis import MODES

pytestmark = pytest.mark.services


def test_bench_redis_json_has_a_figure_per_mode() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "hispeed", "bench", "redis", "--json", "--records", "10000"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    alert = ["fraud_alert_median_ms", "fraud_alert_max_ms", "fraud_alert_cpu_ms_per_alert"]
    assert sorted(figures) == sorted([f"{mode}_writes_per_s" for mode in MODES] + alert)
    assert all(v > 0 for v in figures.values())
    assert figures["fraud_alert_median_ms"] <= figures["fraud_alert_max_ms"]

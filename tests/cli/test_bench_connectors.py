"""`hispeed bench connectors` as users run it: parts found by name, figures per part."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hispeed.bench import connectors as bench
from hispeed.errors import HispeedError


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hispeed", "bench", "connectors", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.parametrize("part", ["runner", "http"])
def test_bench_connectors_json_has_a_sink_and_a_source_figure_per_part(part: str) -> None:
    proc = _bench("--json", "--records", "4000", "--batch-size", "1000", "--part", part)
    assert proc.returncode == 0, proc.stderr
    figures = json.loads(proc.stdout)
    assert sorted(figures) == sorted(
        f"{part}_{kind}_records_{per}"
        for kind in ("sink", "source")
        for per in ("per_s", "per_cpu_s")
    )
    assert all(isinstance(v, int) and v > 0 for v in figures.values())


def test_an_unknown_part_is_an_error_naming_the_parts() -> None:
    proc = _bench("--json", "--part", "nope")
    assert proc.returncode == 1
    assert "no part 'nope'" in proc.stderr
    assert "runner" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_parts_in_connectors_modules_are_found_and_names_are_unique() -> None:
    found = bench.parts()
    assert "runner" in found
    # every module hispeed.bench.connectors_* registered at least one part
    assert all(p.description for p in found.values())
    with pytest.raises(HispeedError, match="two parts are called 'runner'"):
        bench.bench_part("runner", "a second runner")(lambda options: {})


def test_an_unavailable_part_is_skipped_with_its_reason() -> None:
    def missing(options: bench.BenchOptions) -> bench.Figures:
        raise bench.PartUnavailableError("no such server on this machine")

    bench.bench_part("test-missing", "a part whose server is missing")(missing)
    try:
        outcome = bench.run(bench.BenchOptions(records=1000), ["test-missing"])
    finally:
        bench._PARTS.pop("test-missing")
    assert outcome.figures == {}
    assert outcome.skipped == {"test-missing": "no such server on this machine"}

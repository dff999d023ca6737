"""The file connectors' parts of `hispeed bench connectors`: every figure measured."""

from __future__ import annotations

from pathlib import Path

from hispeed.bench import connectors as bench


def test_the_file_parts_are_found_and_give_every_figure(tmp_path: Path) -> None:
    found = bench.parts()
    assert {"files_out", "files_in"} <= set(found)
    options = bench.BenchOptions(records=1000, batch_size=500, directory=tmp_path)
    outcome = bench.run(options, ["files_out", "files_in"])
    assert outcome.skipped == {}
    names = [
        "file_sink_jsonl_records",
        "file_sink_csv_records",
        "parquet_sink_records",
        "directory_source_jsonl_records",
        "directory_source_csv_records",
    ]
    assert sorted(outcome.figures) == sorted(
        f"{n}_{per}" for n in names for per in ("per_s", "per_cpu_s")
    )
    assert all(isinstance(v, int) and v > 0 for v in outcome.figures.values())
    assert list(tmp_path.iterdir()) == []  # the scratch directories are removed

"""`hispeed connector new`: the package it makes installs, its test passes as made, and the
connector works in an Engine through the package's entry point."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from hispeed.cli.connector import scaffold
from hispeed.connectors import known_connectors
from hispeed.errors import HispeedError


def _run(args: list[str | Path], cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=300, check=False
    )


def _throwaway_venv(root: Path) -> Path:
    """A venv of its own that sees this one's packages (hispeed, pytest, setuptools) but
    installs into itself: what is installed there never reaches the suite. Its python."""
    made = _run([sys.executable, "-m", "venv", "--without-pip", root])
    assert made.returncode == 0, made.stderr
    python = root / "bin" / "python"
    out = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
    # this venv's site directories, with their .pth files (an editable hispeed's among them)
    lines = "".join(f"import site; site.addsitedir({d!r})\n" for d in site.getsitepackages())
    (Path(out.stdout.strip()) / "_parent_venv.pth").write_text(lines)
    return python


@pytest.mark.slow
def test_new_packages_install_pass_their_tests_and_run_by_their_class(
    tmp_path: Path,
) -> None:
    made = _run(
        [sys.executable, "-m", "hispeed", "connector", "new", "demo_sink", "--dir", tmp_path]
    )
    assert made.returncode == 0, made.stderr
    package = tmp_path / "hispeed-connector-demo-sink"
    assert (package / "pyproject.toml").is_file()

    # a source package too, in the same venv (one install, one pytest run: CI time)
    source = scaffold("numbers", "source", tmp_path)

    python = _throwaway_venv(tmp_path / "venv")
    installed = _run(
        [
            *(sys.executable, "-m", "pip", "--python", python, "install"),
            *("--no-build-isolation", "--no-deps", "--no-index", "-e", package, "-e", source),
        ]
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr

    tests = [package / "tests", source / "tests"]
    tested = _run([python, "-m", "pytest", "-v", "-p", "no:cacheprovider", *tests], cwd=tmp_path)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    # node ids are relative to the rootdir pytest picked: compare file names and tests
    passed = sorted(
        line.split(" ")[0].rsplit("/", 1)[-1]
        for line in tested.stdout.splitlines()
        if " PASSED" in line
    )
    assert passed == [
        "test_demo_sink.py::test_each_record_is_a_json_line",
        "test_demo_sink.py::test_it_runs_in_an_engine_by_its_connector_class",
        "test_numbers.py::test_it_resumes_after_its_position",
        "test_numbers.py::test_it_runs_in_an_engine_by_its_connector_class",
    ]
    assert "4 passed" in tested.stdout

    out = tmp_path / "out.jsonl"
    script = textwrap.dedent(f"""
        import json
        from pathlib import Path
        from hispeed import Engine
        from hispeed.testing.wait import wait_for
        out = Path({str(out)!r})
        with Engine({str(tmp_path / "data")!r}, fsync="never") as engine:
            engine.execute(
                "CREATE STREAM s (id STRING KEY, n INT) WITH (kafka_topic='s', "
                "value_format='JSON', partitions=1);"
                "CREATE SINK CONNECTOR demo WITH ('connector.class'='demo_sink', "
                f"'source'='s', 'path'='{{out}}');")
            for i in range(3):
                engine.insert("s", {{"ID": f"k{{i}}", "N": i}})
            wait_for(lambda: out.exists() and len(out.read_text().splitlines()) == 3)
            print(json.dumps(engine.execute("DESCRIBE CONNECTOR demo;")[0].info["className"]))
    """)
    ran = _run([python, "-c", script])
    assert ran.returncode == 0, ran.stderr
    assert json.loads(ran.stdout) == "demo_sink"
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert rows == [{"key": f"k{i}", "row": {"ID": f"k{i}", "N": i}} for i in range(3)]
    # installed in the throwaway venv only: this process does not see it
    assert "demo_sink" not in known_connectors()


def test_bad_names_and_an_existing_directory_are_refused(tmp_path: Path) -> None:
    for bad in ("Demo", "1x", "demo-sink", "a/b", ""):
        with pytest.raises(HispeedError, match="use lower-case letters"):
            scaffold(bad, "sink", tmp_path)
    scaffold("demo", "sink", tmp_path)
    with pytest.raises(HispeedError, match="already exists"):
        scaffold("demo", "sink", tmp_path)
    proc = _run([sys.executable, "-m", "hispeed", "connector", "new", "Bad", "--dir", tmp_path])
    assert proc.returncode == 1
    assert proc.stderr.startswith("error: connector name 'Bad'")
    assert os.listdir(tmp_path) == ["hispeed-connector-demo"]

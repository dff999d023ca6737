"""Which allocator Arrow uses in a hispeed process (hispeed/__init__.py says why it matters:
the demo left running held tens of MB in mimalloc's per-thread heaps for a few MB of live
Arrow memory, and grew with each burst; scripts/soak measures it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"


def pool_in_new_process(imports: str, **env: str) -> str:
    """The backend of Arrow's default pool in a fresh interpreter after `imports`."""
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    environ["PYTHONPATH"] = os.pathsep.join([str(SRC), environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            f"{imports}\nimport pyarrow as pa\nprint(pa.default_memory_pool().backend_name)",
        ],
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.parametrize(
    "imports",
    [
        "import hispeed.engine",  # an application embedding the engine
        "import hispeed.cli.main",  # `hispeed server`, `hispeed demo run` (what `make run` runs)
    ],
)
def test_a_hispeed_process_gives_arrow_the_c_librarys_allocator(imports: str) -> None:
    assert pool_in_new_process(imports) == "system"


def test_the_pool_a_user_names_wins() -> None:
    assert pool_in_new_process("import hispeed.engine", ARROW_DEFAULT_MEMORY_POOL="jemalloc") == (
        "jemalloc"
    )

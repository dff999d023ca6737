"""The server hands memory its allocator holds free back to the OS (server/memory.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from hispeed.config import Settings
from hispeed.testing.wait import wait_for
from tests.server.conftest import ServerFactory

SRC = Path(__file__).resolve().parents[2] / "src"

#: a thread fills its malloc arena with Arrow buffers and frees all but every 64th: the
#: arena keeps the holes (its top is in use), as after a burst of load in the server
FRAGMENT = """
import threading
from hispeed.server.memory import release_free_memory
import numpy as np
import pyarrow as pa

def rss():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS")) // 1024

kept = []
def burst():
    arrays = [pa.array(np.full(8192, float(i))) for i in range(3000)]  # 64 KiB each, written
    kept.extend(arrays[::64])
t = threading.Thread(target=burst)
t.start()
t.join()
before = rss()
release_free_memory()
print(before, rss())
"""


def test_free_memory_goes_back_to_the_os() -> None:
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    environ["PYTHONPATH"] = str(SRC)
    done = subprocess.run(
        [sys.executable, "-c", FRAGMENT],
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    before, after = (int(x) for x in done.stdout.split())
    # 3000 x 64 KiB allocated, 47 kept: about 185 MB free in the arena before the call
    assert before - after > 100, (before, after)


def test_the_server_releases_memory_on_its_interval(server_factory: ServerFactory) -> None:
    assert Settings().memory_release_interval_s == 30.0
    running = server_factory(memory_release_interval_s=0.05)
    wait_for(lambda: "hispeed_memory_releases" in httpx.get(running.url + "/metrics").text)
    never = server_factory(memory_release_interval_s=0)
    assert "hispeed_memory_releases" not in httpx.get(never.url + "/metrics").text

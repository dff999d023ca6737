"""examples/notebooks/course.ipynb runs end to end in a real Jupyter kernel (nbclient), and
each cell shows what the course says it shows.

The expected figures are computed here with pandas from the same seeded clicks the notebook
produces (its generator's three lines, repeated), not read back from hispeed.
"""

from __future__ import annotations

import random
import re
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

nbformat = pytest.importorskip("nbformat", reason="the dev extra's nbformat runs the notebook")
nbclient = pytest.importorskip("nbclient", reason="the dev extra's nbclient runs the notebook")

NOTEBOOK = Path(__file__).parents[2] / "examples" / "notebooks" / "course.ipynb"


def _clicks() -> pd.DataFrame:
    rng = random.Random(42)
    pages = ["home", "search", "cart", "pay"]
    rows = [
        {
            "USER_ID": f"user{rng.randrange(8)}",
            "PAGE": rng.choice(pages),
            "MS": rng.randrange(20, 900),
        }
        for _ in range(2000)
    ]
    return pd.DataFrame(rows)


def _cells(path: Path, cwd: Path) -> list[Any]:
    nb = nbformat.read(path, as_version=4)
    nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    ).execute()
    return [c for c in nb.cells if c.cell_type == "code"]


def _html(cell: Any) -> str:
    found = [o["data"]["text/html"] for o in cell.outputs if "text/html" in o.get("data", {})]
    assert len(found) == 1, cell.outputs
    return str(found[0])


def _table(html: str) -> list[list[str]]:
    """The body rows of the first HTML table, as cell texts."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return [
        [
            re.sub(r"<[^>]+>", "", c).strip()
            for c in re.findall(r"<t[dh][^>]*>.*?</t[dh]>", row, re.S)
        ]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", body, re.S)
    ]


@pytest.mark.slow
def test_the_course_notebook_runs_and_shows_each_step(tmp_path: Path) -> None:
    cells = _cells(NOTEBOOK, tmp_path)
    for cell in cells:  # no cell failed or wrote to stderr
        assert all(o.output_type != "error" for o in cell.outputs), cell.outputs
        assert all(o.get("name") != "stderr" for o in cell.outputs), cell.outputs
    setup, produce, sql, api, live, analysis, chart, _ = cells
    clicks = _clicks()

    assert (
        "`USER_ID` STRING KEY, `PAGE` STRING, `MS` INTEGER"
        in setup.outputs[0]["data"]["text/plain"]
    )
    assert produce.outputs[0]["data"]["text/plain"] == "2000"

    stats = clicks.groupby("PAGE").agg(views=("MS", "size"), slowest=("MS", "max"))
    assert _table(_html(sql)) == [
        [page, str(row.views), str(row.slowest)] for page, row in stats.iterrows()
    ]

    slow = clicks[clicks.MS > 600].groupby("PAGE").size()
    assert _table(_html(api)) == [[page, str(n)] for page, n in slow.items()]

    shown = _html(live)  # the display handle's last update
    assert "10 rows of 10 received; done" in shown  # updated in place since "waiting"
    assert _table(shown) == [["live", "checkout", str(950 + i)] for i in range(10)]

    summary = clicks.groupby("PAGE").agg(views=("MS", "size"), avg_ms=("MS", "mean"))
    summary["slowest"] = stats.slowest
    summary["popularity"] = summary.views.rank(method="min", ascending=False).astype(int)
    summary = summary.reset_index().sort_values(["popularity", "PAGE"])
    got = [row[1:] for row in _table(_html(analysis))]  # pandas' index column first
    assert got == [
        [r.PAGE, str(r.views), f"{round(r.avg_ms, 1)}", str(r.slowest), str(r.popularity)]
        for r in summary.itertuples()
    ]

    assert any("image/png" in o.get("data", {}) for o in chart.outputs)

"""Results in Jupyter: rows shown as an HTML table, a push query's rows shown as they arrive.

`Rows` is the list of dicts `Engine.query` and `Engine.analyze(format="rows")` return: a
plain list everywhere, a table in a notebook. `show_live` keeps one output of a cell (an
IPython display handle) up to date with a push query's latest rows; `PushQuery` calls it
when a notebook displays the query.
"""

from __future__ import annotations

import html
import importlib
import time
from collections.abc import Callable, Sequence
from typing import Any

#: rows a notebook's table shows at most (the rest are counted below it)
SHOWN_ROWS = 50


def html_table(columns: Sequence[str], rows: Sequence[dict[str, Any]], *, note: str = "") -> str:
    """Rows as an HTML table (the first `SHOWN_ROWS`), with how many there are below it."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape('' if r.get(c) is None else str(r.get(c)))}</td>" for c in columns
        )
        + "</tr>"
        for r in rows[:SHOWN_ROWS]
    )
    more = f", the first {SHOWN_ROWS} shown" if len(rows) > SHOWN_ROWS else ""
    caption = f"{len(rows):,} row{'s' if len(rows) != 1 else ''}{more}{note}"
    return (
        f'<table class="hispeed-rows"><thead><tr>{head}</tr></thead><tbody>{body}</tbody>'
        f"</table><p><small>{html.escape(caption)}</small></p>"
    )


def _cell(value: Any) -> str:
    return "" if value is None else html.escape(str(value))


class Rows(list[dict[str, Any]]):
    """A list of rows (dicts, column name to value) that Jupyter shows as a table."""

    def columns(self) -> list[str]:
        """The column names, in the order the rows first have them."""
        seen: dict[str, None] = {}
        for row in self:
            seen.update(dict.fromkeys(row))
        return list(seen)

    def _repr_html_(self) -> str:
        return html_table(self.columns(), self)


Poll = Callable[[float], list[dict[str, Any]]]


def show_live(
    poll: Poll,
    columns: Sequence[str],
    *,
    rows: int = 20,
    seconds: float = 10.0,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Show a push query's rows in the cell's output as they arrive, replacing the shown table
    (its latest `rows` rows) in place; returns every row received.

    `poll(timeout)` gives the rows that arrived within `timeout` s (`PushQuery.poll`). Stops
    after `limit` rows or `seconds` s, whichever comes first."""
    # IPython is there wherever a notebook runs; untyped, and not a dependency of hispeed
    ipython = importlib.import_module("IPython.display")
    to_html, display = ipython.HTML, ipython.display

    received: list[dict[str, Any]] = []

    def view(state: str) -> Any:
        latest = received[-rows:]
        return to_html(html_table(columns, latest, note=f" of {len(received):,} received; {state}"))

    handle = display(view("waiting for rows…"), display_id=True)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and (limit is None or len(received) < limit):
        arrived = poll(min(0.5, max(deadline - time.monotonic(), 0.0)))
        if arrived:
            received.extend(arrived)
            if handle is not None:
                handle.update(view("live"))
    if limit is not None:
        del received[limit:]
    if handle is not None:
        handle.update(view("done"))
    return received


__all__ = ["SHOWN_ROWS", "Rows", "html_table", "show_live"]

"""`Result`: what a statement gave (the engine returns it; the client builds the same)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Result:
    """What a statement gave: a status message, and rows for SHOW/DESCRIBE/queries."""

    kind: str  # "status", "sources", "queries", "describe", "properties", "topics", "rows"
    message: str = ""
    rows: list[dict[str, Any]] = field(default_factory=list)
    statement: str = ""
    query_id: str | None = None
    info: dict[str, Any] = field(default_factory=dict)  # DESCRIBE's details, structured
    #: what the user should know though the statement ran (ksqlDB's entities' "warnings")
    warnings: list[str] = field(default_factory=list)

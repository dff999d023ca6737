"""The statements the engine dispatches to: one handler per statement kind.

`hispeed.engine.Engine` parses statements and looks each kind up in its table of handlers;
the handlers live here, each given the engine's parts it acts on (`base.EngineParts`) and the
statement's own run (`base.Call`), never the engine: CREATE/DROP of streams, tables and types
(`sources.py`), persistent queries (`queries.py`), INSERT VALUES (`inserts.py`), SHOW,
DESCRIBE, EXPLAIN, PRINT and pull queries (`info.py`), SET/UNSET and connectors
(`settings.py`), and the command topic that keeps and replays them (`commands.py`).
"""

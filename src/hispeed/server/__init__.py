"""The hispeed server: HTTP (ksqlDB-compatible and native) over the log and engine."""

from hispeed.server.app import create_app, serve

__all__ = ["create_app", "serve"]

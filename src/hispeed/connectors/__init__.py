"""Connectors: sinks and sources as plugins (see `hispeed.connectors.base`)."""

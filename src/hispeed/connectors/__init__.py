"""Connectors: sinks and sources as plugins.

This package's names are hispeed's public connector API (see docs/connectors-api.md): subclass
`SinkConnector` or `SourceConnector`, give the class its `connector.class` names in `names`,
and decorate it with `@register`, or let an installed package name it in the
`hispeed.connectors` entry point group. Importing this package imports the built-in
connectors, so a new built-in one is one module plus its line below.
"""

from hispeed.connectors import (  # noqa: F401  (they register)
    datagen,
    file_sinks,
    files,
    http,
    memcached,
    postgres,
    redis,
)
from hispeed.connectors.base import (
    ENTRY_POINT_GROUP,
    Connector,
    ConnectorError,
    ConnectorStatus,
    RetriableError,
    SinkBatch,
    SinkConnector,
    SourceBatch,
    SourceConnector,
    SourceRecord,
    connector_class,
    known_connectors,
    register,
)

__all__ = [
    "ENTRY_POINT_GROUP",
    "Connector",
    "ConnectorError",
    "ConnectorStatus",
    "RetriableError",
    "SinkBatch",
    "SinkConnector",
    "SourceBatch",
    "SourceConnector",
    "SourceRecord",
    "connector_class",
    "known_connectors",
    "register",
]

"""The durable partitioned log: the `Log` interface and its embedded backend."""

from hispeed.log.base import (
    RECORD_SCHEMA,
    AppendResult,
    Consumer,
    Log,
    PartitionInfo,
    PolledBatch,
    Record,
    TopicConfig,
    TopicInfo,
    TopicPartition,
    Transaction,
)
from hispeed.log.embedded import EmbeddedLog, FsyncPolicy
from hispeed.log.murmur2 import murmur2, partition_for_key

__all__ = [
    "RECORD_SCHEMA",
    "AppendResult",
    "Consumer",
    "EmbeddedLog",
    "FsyncPolicy",
    "Log",
    "PartitionInfo",
    "PolledBatch",
    "Record",
    "TopicConfig",
    "TopicInfo",
    "TopicPartition",
    "Transaction",
    "murmur2",
    "partition_for_key",
]

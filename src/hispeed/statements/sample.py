"""A new stream or table read against the records its topic holds already: when they cannot
be read as declared, the statement's answer says so, since otherwise the only sign is a
source that stays empty and errors in the processing log, where a new user does not look
(the course's `users` table declared with an INTEGER key over text keys)."""

from __future__ import annotations

from typing import Any

from hispeed.catalog import Source
from hispeed.errors import HispeedError
from hispeed.log.base import Log, PolledBatch, TopicPartition
from hispeed.ops.decode import SourceDecoder
from hispeed.registry import SchemaRegistry

#: the newest records of each partition read back to check a new source's declaration
SAMPLE_RECORDS = 20


def _text(raw: Any) -> str | None:
    """A key's bytes as text, when they are text (keys written by a JSON producer)."""
    if not isinstance(raw, bytes):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return text if text.isprintable() else None


def unreadable_records(
    log: Log,
    source: Source,
    sample: int = SAMPLE_RECORDS,
    registry: SchemaRegistry | None = None,
) -> str | None:
    """A warning when some of the newest `sample` records of each partition of the source's
    topic cannot be read as the source declares them (None when all can, or there are none):
    how many, the first reason, and what to declare instead when the keys are plain text."""
    decoder = SourceDecoder(source, "sample", "CREATE", registry=registry)
    errors: list[dict[str, Any]] = []
    seen = 0
    text_key: str | None = None
    try:
        partitions = len(log.describe_topic(source.topic).partitions)
        for p in range(partitions):
            start, end = log.offsets(source.topic, p)
            offset = max(start, end - sample)
            if offset >= end:
                continue
            for batch in log.read(source.topic, p, offset, max_records=sample):
                seen += batch.num_rows
                before = len(errors)
                decoder.decode(PolledBatch(TopicPartition(source.topic, p), batch), errors)
                if text_key is None and len(errors) > before:
                    text_key = _text(batch.column("key")[0].as_py())
    except HispeedError:  # the topic cannot be read now: the statement stands, unchecked
        return None
    if not errors:
        return None
    bad = len({(e["partition"], e["offset"]) for e in errors})
    first = errors[0]
    warning = (
        f"{bad} of the newest {seen} records of topic '{source.topic}' cannot be read as "
        f"{source.kind.lower()} {source.name} declares them (partition {first['partition']} "
        f"offset {first['offset']}: {first['message']}); such records go to the processing "
        f"log (topic hispeed_processing_log) instead of {source.name}, which stays empty of "
        "them."
    )
    key_error = first["message"].startswith("Error deserializing key")
    if key_error and text_key is not None and source.key_columns:
        key = source.key_columns[0]
        primary = "PRIMARY KEY" if source.kind == "TABLE" else "KEY"
        warning += (
            f" The keys are text (such as '{text_key[:40]}'): declare the key column as "
            f"text, `{key.name} VARCHAR {primary}`."
        )
    return warning


__all__ = ["SAMPLE_RECORDS", "unreadable_records"]

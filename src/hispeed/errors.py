"""Errors a user can see. Every one derives from HispeedError and reads as one clear line."""

from __future__ import annotations


class HispeedError(Exception):
    """The root of every error hispeed shows to a user.

    The message says what went wrong and where; when the user must act, it says what to do.
    """

    code = 40000

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(HispeedError):
    """A setting or a topic config has a value hispeed cannot use."""


#: what ksqlDB's EngineContext.prepare puts before an error its parser or AstSanitizer raised
#: that is not already a statement error
PREPARING = "Exception while preparing statement: "


class SqlError(HispeedError):
    """A statement that cannot be parsed or analysed; carries the line and column (1-based).

    The place is written as ksqlDB writes it: `line 2:13: ` for what its parser refuses, and
    `Line: 2, Col: 13: ` (`located`) for what its analyzer refuses at a node it names (an
    unknown source or column, an ambiguous column); what its AST builder refuses (`building`:
    a literal out of range) reads `Failed to prepare statement: line 2:13: `; what its
    AstSanitizer refuses (`preparing`: an ambiguous column) is prefixed `Exception while
    preparing statement: `, as its EngineContext wraps what is not already a statement error."""

    def __init__(
        self,
        message: str,
        line: int,
        column: int,
        *,
        located: bool = False,
        building: bool = False,
        preparing: bool = False,
    ) -> None:
        where = f"Line: {line}, Col: {column}: " if located else f"line {line}:{column}: "
        if preparing:
            where = PREPARING + where
        if building:
            # refused while the parsed text is built into a statement: ksqlDB's
            # ParsingException from a node's location counts its column from 1 twice, so
            # it prints one more than the column (which `column` keeps)
            where = f"Failed to prepare statement: line {line}:{column + 1}: "
        super().__init__(where + message)
        self.line = line
        self.column = column
        self.reason = message
        self.located = located


class LogError(HispeedError):
    """Base of the log's errors."""


class TopicExistsError(LogError):
    code = 40900


class UnknownTopicError(LogError):
    code = 40400


class InvalidRecordError(LogError):
    """A record the log refuses (for example a null key on a compacted topic)."""


class OffsetOutOfRangeError(LogError):
    """A read asked for an offset the partition no longer (or does not yet) hold."""

    code = 41600

    def __init__(self, message: str, start: int, end: int) -> None:
        super().__init__(message)
        self.start = start
        self.end = end


class CorruptLogError(LogError):
    """Bytes on disk that fail their checksum or framing.

    Names the file, the byte where the damage starts, the offsets the damaged bytes held
    (`offset` to `last_offset`; `last_offset` is None when they cannot be bounded) and, once
    the partition adds them, the topic and partition, so that a caller can report it
    precisely and a user can run `hispeed topic repair`.
    """

    code = 50000

    def __init__(
        self,
        path: str,
        position: int,
        reason: str,
        offset: int | None = None,
        *,
        last_offset: int | None = None,
        topic: str | None = None,
        partition: int | None = None,
    ) -> None:
        where = f"{path} at byte {position}"
        held = []
        if topic is not None:
            held.append(f"topic {topic!r} partition {partition}")
        if offset is not None and last_offset is not None:
            held.append(f"offsets {offset} to {last_offset}")
        elif offset is not None:
            held.append(f"offsets from {offset}")
        if held:
            where += f" ({', '.join(held)})"
        repair = f"hispeed topic repair {topic}" if topic is not None else "hispeed topic repair"
        super().__init__(
            f"corrupt log segment {where}: {reason}. Those records cannot be read; stop the "
            f"server and run `{repair}` to set the damaged bytes aside (it reports the offsets "
            "lost), or restore the file from a copy"
        )
        self.path = path
        self.position = position
        self.reason = reason
        self.offset = offset
        self.last_offset = last_offset
        self.topic = topic
        self.partition = partition

    def located(self, topic: str, partition: int) -> CorruptLogError:
        """The same error, naming the topic and partition of the segment."""
        return CorruptLogError(
            self.path,
            self.position,
            self.reason,
            self.offset,
            last_offset=self.last_offset,
            topic=topic,
            partition=partition,
        )


class DataDirLockedError(LogError):
    """Another process holds the data directory."""


class TransactionError(LogError):
    """A transaction used after it ended, or one that could not commit."""


class ConnectorError(HispeedError):
    """A connector (or a client of an outside system, such as the Redis client in
    `hispeed.resp`) that cannot be created or run as configured."""


class RetriableError(HispeedError):
    """A failure that may pass (an unreachable server): the same batch is tried again."""


class LogUnavailableError(LogError, RetriableError):
    """The log's server (a Kafka broker) cannot be reached now: what asked may ask again."""

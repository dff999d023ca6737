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


class SqlError(HispeedError):
    """A statement that cannot be parsed or analysed; carries the line and column (1-based)."""

    def __init__(self, message: str, line: int, column: int) -> None:
        super().__init__(f"line {line}:{column}: {message}")
        self.line = line
        self.column = column
        self.reason = message


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
    """Bytes on disk that fail their checksum or framing: names the file and the position."""

    code = 50000

    def __init__(self, path: str, position: int, reason: str, offset: int | None = None) -> None:
        where = f"{path} at byte {position}"
        if offset is not None:
            where += f" (offsets from {offset})"
        super().__init__(
            f"corrupt log segment {where}: {reason}. The data there cannot be trusted; restore "
            "the file from a copy or delete the segment and the offsets it held"
        )
        self.path = path
        self.position = position
        self.offset = offset


class DataDirLockedError(LogError):
    """Another process holds the data directory."""


class TransactionError(LogError):
    """A transaction used after it ended, or one that could not commit."""


class ConnectorError(HispeedError):
    """A connector (or a client of an outside system, such as the Redis client in
    `hispeed.resp`) that cannot be created or run as configured."""


class RetriableError(HispeedError):
    """A failure that may pass (an unreachable server): the same batch is tried again."""

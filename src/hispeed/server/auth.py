"""Credentials from a file, checked against `Authorization` values (HTTP, WebSocket, gRPC).

The file has one credential a line; a line whose first character (after blanks) is `#` is
a comment, and blank lines are skipped. A `#` inside a line belongs to the secret:

    # HTTP basic: a user and a password (the password may hold spaces and #)
    basic alice s3cret
    # a bearer token
    bearer 0123456789abcdef

A request carries `Basic base64(user:password)` or `Bearer TOKEN`; the scheme's case does
not matter (RFC 7235). Secrets are compared in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from hispeed.errors import ConfigError

_SCHEMES = ("basic", "bearer")


class Credentials:
    """The users (with passwords) and tokens a server accepts."""

    def __init__(self, basic: Mapping[str, str], bearer: Iterable[str]) -> None:
        self._basic = {user.encode(): password.encode() for user, password in basic.items()}
        self._bearer = [token.encode() for token in bearer]

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Credentials:
        """Read a credentials file; a ConfigError names the file and line of what is wrong."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(
                f"the credentials file {path} does not exist: create it (lines "
                '"basic USER PASSWORD" or "bearer TOKEN") or unset auth_file'
            ) from None
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"cannot read the credentials file {path}: {e}") from None
        return cls.parse(text, str(path))

    @classmethod
    def parse(cls, text: str, source: str = "<credentials>") -> Credentials:
        """Credentials from the text of a file (`source` names it in errors)."""
        basic: dict[str, str] = {}
        bearer: list[str] = []
        for number, raw in enumerate(text.splitlines(), start=1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            where = f"{source} line {number}"
            parts = line.split(None, 1)
            scheme = parts[0].lower()
            rest = parts[1].strip() if len(parts) > 1 else ""
            if scheme == "basic":
                fields = rest.split(None, 1)
                if len(fields) != 2:
                    raise ConfigError(f'{where}: write "basic USER PASSWORD"')
                user, password = fields[0], fields[1].strip()
                if ":" in user:
                    raise ConfigError(f"{where}: a basic user name cannot contain ':'")
                if user in basic:
                    raise ConfigError(f"{where}: user {user!r} appears twice")
                basic[user] = password
            elif scheme == "bearer":
                if not rest or " " in rest or "\t" in rest:
                    raise ConfigError(f'{where}: write "bearer TOKEN" (one token, no spaces)')
                bearer.append(rest)
            else:
                raise ConfigError(
                    f'{where}: a line starts with "basic" or "bearer", not {parts[0]!r}'
                )
        if not basic and not bearer:
            raise ConfigError(
                f"{source} holds no credentials, so every request would be refused: add a "
                'line "basic USER PASSWORD" or "bearer TOKEN"'
            )
        return cls(basic, bearer)

    def __len__(self) -> int:
        return len(self._basic) + len(self._bearer)

    def check(self, header_value: str | None) -> bool:
        """Whether an `Authorization` value (None: absent) carries an accepted credential."""
        if not header_value:
            return False
        scheme, _, value = header_value.strip().partition(" ")
        scheme = scheme.lower()
        value = value.strip()
        if scheme not in _SCHEMES or not value:
            return False
        if scheme == "bearer":
            token = value.encode()
            # every token is compared, so the time taken does not tell which one was close
            found = False
            for known in self._bearer:
                found |= hmac.compare_digest(token, known)
            return found
        try:
            decoded = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            return False
        user, sep, password = decoded.partition(b":")
        if not sep:
            return False
        expected = self._basic.get(user)
        # compare even for an unknown user, so that timing does not tell which users exist
        matched = hmac.compare_digest(password, expected if expected is not None else b"\0")
        return matched and expected is not None


def basic_header(user: str, password: str) -> str:
    """The `Authorization` value for HTTP basic credentials (for clients and tests)."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


__all__ = ["Credentials", "basic_header"]

"""Credentials files and the Authorization values they accept."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest

from hispeed.errors import ConfigError
from hispeed.server.auth import Credentials, basic_header

FILE = """\
# the operators
basic	alice s3cret
  basic bob pass word with spaces#and-a-hash
bearer tok-123
# a token for the dashboard
BEARER tok#456
"""


@pytest.fixture
def credentials(tmp_path: Path) -> Credentials:
    path = tmp_path / "credentials"
    path.write_text(FILE)
    return Credentials.load(path)


def test_load_counts_every_credential(credentials: Credentials) -> None:
    assert len(credentials) == 4


@pytest.mark.parametrize(
    "header",
    [
        basic_header("alice", "s3cret"),
        basic_header("bob", "pass word with spaces#and-a-hash"),
        "Bearer tok-123",
        "bearer tok#456",
        "BEARER   tok-123  ",
        "basic " + base64.b64encode(b"alice:s3cret").decode(),
    ],
)
def test_accepts_listed_credentials(credentials: Credentials, header: str) -> None:
    assert credentials.check(header)


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "Basic",
        "Bearer",
        "Bearer tok-12",
        "Bearer tok-1234",
        "Bearer s3cret",
        basic_header("alice", "wrong"),
        basic_header("alice", ""),
        basic_header("carol", "s3cret"),
        basic_header("", "s3cret"),
        "Basic " + base64.b64encode(b"alice").decode(),  # no colon
        "Basic not*base64",
        "Basic " + base64.b64encode(b"alice:s3cret").decode()[:-2],  # truncated
        "Digest alice",
        "tok-123",
    ],
)
def test_refuses_anything_else(credentials: Credentials, header: str | None) -> None:
    assert not credentials.check(header)


def test_a_password_with_a_colon_after_the_user() -> None:
    creds = Credentials.parse("basic dave a:b:c\n")
    assert creds.check(basic_header("dave", "a:b:c"))
    assert not creds.check(basic_header("dave", "a"))


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("basic alice\n", r"line 1: write \"basic USER PASSWORD\""),
        ("# only a comment\n\nbasic\n", r"line 3: write \"basic USER PASSWORD\""),
        ("bearer\n", r"line 1: write \"bearer TOKEN\""),
        ("bearer two tokens\n", r"line 1: write \"bearer TOKEN\" \(one token, no spaces\)"),
        ("token abc\n", r"line 1: a line starts with \"basic\" or \"bearer\", not 'token'"),
        ("basic a:b pw\n", r"line 1: a basic user name cannot contain ':'"),
        ("basic a x\nbasic a y\n", r"line 2: user 'a' appears twice"),
        ("# nothing\n\n", r"holds no credentials, so every request would be refused"),
    ],
)
def test_bad_files_name_the_line(text: str, error: str) -> None:
    with pytest.raises(ConfigError, match=error):
        Credentials.parse(text, "creds.txt")


def test_a_missing_file_says_what_to_do(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    with pytest.raises(ConfigError, match=r"does not exist: create it .* or unset auth_file"):
        Credentials.load(missing)


def test_errors_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "creds"
    path.write_text("basic alice s3cret\nwhat\n")
    with pytest.raises(ConfigError, match=rf"{path} line 2"):
        Credentials.load(path)

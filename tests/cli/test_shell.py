"""`hispeed sql` as users run it: a real process against a running server."""

from __future__ import annotations

import contextlib
import os
import re
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from hispeed.testing.services import free_port
from tests.server.conftest import RunningServer, ServerFactory

READINGS = (
    "CREATE STREAM readings (device STRING KEY, x DOUBLE) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
)


def shell(
    server: RunningServer,
    *args: str,
    input: str | None = None,
    url: str | None = None,
    columns: int = 80,
) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [sys.executable, "-m", "hispeed", "sql", "--url", url or server.url, *args],
        input=input,
        capture_output=True,
        text=True,
        timeout=60,
        # the terminal's width, which tables fit in, as a terminal of that size would say
        env={**os.environ, "HISPEED_DEBUG": "", "COLUMNS": str(columns)},
    )
    assert "Traceback" not in proc.stderr + proc.stdout
    return proc


def test_execute_prints_tables_and_statuses(server: RunningServer) -> None:
    proc = shell(server, "-e", READINGS + " SHOW STREAMS; DESCRIBE readings;")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "Stream created"
    assert lines[1:6] == [
        "+-------------+-------------+------------+--------------+----------+",
        "| Stream Name | Kafka Topic | Key Format | Value Format | Windowed |",
        "+-------------+-------------+------------+--------------+----------+",
        "| READINGS    | readings    | KAFKA      | JSON         | false    |",
        "+-------------+-------------+------------+--------------+----------+",
    ]
    assert "Name                : READINGS" in lines
    assert "| DEVICE | STRING (key) |" in lines
    assert "| X      | DOUBLE       |" in lines


def test_file_stops_at_the_first_error_with_one_line(server: RunningServer, tmp_path: Path) -> None:
    script = tmp_path / "setup.sql"
    script.write_text(
        "-- the readings; a ';' in a comment does not end a statement\n"
        + READINGS
        + "\nCREATE TABLE peaks AS SELECT device, MAX(nope) AS peak\n"
        "  FROM readings GROUP BY device;\n"
        "CREATE STREAM never (x INT) WITH (kafka_topic='never', value_format='JSON');\n"
    )
    proc = shell(server, "-f", str(script))
    assert proc.returncode == 1
    assert proc.stdout == "Stream created\n"
    [error] = proc.stderr.splitlines()
    assert error.startswith("error: Line: 1, Col: 42: ")  # ksqlDB places an unknown column so
    assert "NOPE" in error
    assert set(server.engine.catalog.sources) == {"READINGS"}


def test_statements_from_stdin(server: RunningServer) -> None:
    proc = shell(
        server,
        input=(
            "CREATE STREAM readings (device STRING KEY,\n"
            "  x DOUBLE) WITH (kafka_topic='readings',\n"
            "  value_format='JSON', partitions=1);\n"
            "SELECT nope FROM readings;\n"
            "INSERT INTO readings (device, x) VALUES ('a', 1.5); "
            "INSERT INTO readings (device, x) VALUES ('b;', 2.5);\n"
            "SELECT * FROM readings;\n"
            "SET 'auto.offset.reset' = 'earliest';\n"
            "SELECT device FROM readings EMIT CHANGES LIMIT 2;\n"
            "exit\n"
            "SHOW STREAMS;\n"
        ),
    )
    assert proc.returncode == 0, proc.stderr
    [error] = proc.stderr.splitlines()
    assert error.startswith("error: Line: 1, Col: 8: ")
    assert "'NOPE' cannot be resolved" in error
    assert proc.stdout.splitlines() == [
        "Stream created",
        "Inserted",
        "Inserted",
        "+--------+-----+",
        "| DEVICE | X   |",
        "+--------+-----+",
        "| a      | 1.5 |",
        "| b;     | 2.5 |",
        "+--------+-----+",
        "Successfully changed local property 'auto.offset.reset' to 'earliest'.",
        # a push query's columns share the terminal's width (80 here), fixed before its rows
        "+" + "-" * 78 + "+",
        "| " + "DEVICE".ljust(76) + " |",
        "+" + "-" * 78 + "+",
        "| " + "a".ljust(76) + " |",
        "| " + "b;".ljust(76) + " |",
        "+" + "-" * 78 + "+",
        "Query terminated",
    ]


def table_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line[:1] in ("+", "|")]


def assert_aligned(lines: list[str], width: int) -> None:
    """Every line of a table as wide as its border, each border of it where the first is."""
    assert lines, "no table"
    bars = [i for i, c in enumerate(lines[0]) if c == "+"]
    for line in lines:
        assert len(line) == len(lines[0]) <= width, "\n".join(lines)
        assert [i for i, c in enumerate(line) if c in "+|"] == bars, "\n".join(lines)


def test_push_query_rows_wider_than_their_column_stay_inside_it(server: RunningServer) -> None:
    long_url = "/products/" + "x" * 90 + "?page=2"
    proc = shell(
        server,
        "-e",
        "CREATE STREAM clicks (userid STRING KEY, url STRING, agent STRING) "
        "WITH (kafka_topic='clicks', value_format='JSON', partitions=1);"
        f"INSERT INTO clicks (userid, url, agent) VALUES ('u1', '{long_url}', "
        "'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)');"
        "SET 'auto.offset.reset' = 'earliest';"
        "SELECT userid, url, agent FROM clicks EMIT CHANGES LIMIT 1;",
        columns=70,
    )
    assert proc.returncode == 0, proc.stderr
    lines = table_lines(proc.stdout)
    assert_aligned(lines, 70)
    url_cells = "".join(line.split("|")[2].strip() for line in lines[3:-1])
    assert url_cells == long_url  # all of it, wrapped, in its own column


def test_show_queries_keeps_its_table_with_statements_over_lines(server: RunningServer) -> None:
    proc = shell(
        server,
        "-e",
        READINGS + "CREATE STREAM doubled AS\n  SELECT device,\n\t x * 2 AS x2\n"
        "  FROM readings\n  WHERE x > 0;\nSHOW QUERIES;",
        columns=100,
    )
    assert proc.returncode == 0, proc.stderr
    lines = table_lines(proc.stdout)
    assert len(lines) >= 5
    # every line of the output is the table's: no line of a statement falls out of it
    assert proc.stdout.splitlines()[-len(lines) :] == lines
    assert_aligned(lines, 100)
    assert "| Query ID " in lines[1]
    assert "CREATE STREAM doubled AS SELECT device, x * 2 AS x2 FROM readings WHERE x > 0;" in (
        " ".join(line.split("|")[4].strip() for line in lines[3:-1])
    )


USERS_AS_CORRECTED = (
    # the course's `users` as its errors say to correct it: the key in the column list
    "CREATE TABLE {name} ( user_id {key_type} PRIMARY KEY, registered_at LONG, username "
    "VARCHAR, name VARCHAR, city VARCHAR, level VARCHAR) "
    "WITH ( kafka_topic='clickstream_users', value_format='JSON');"
)


def test_a_table_that_cannot_read_its_topic_says_so_where_the_user_looks(
    server: RunningServer,
) -> None:
    """The course's users arrive with their ids as text keys (as the demo's generator sends
    them); a table declaring an INTEGER key would stay empty, its records in the processing
    log. The statement's answer says so, and what to declare, in the shell and over REST."""
    users = [
        {
            "user_id": str(i),
            "registered_at": 1_700_000_000_000 + i,
            "username": f"u{i}",
            "name": f"User {i}",
            "city": "Seattle",
            "level": "Platinum",
        }
        for i in range(1, 4)
    ]
    r = httpx.post(
        f"{server.url}/topics/clickstream_users?key_field=user_id", json=users, timeout=10
    )
    assert r.status_code == 200, r.text
    proc = shell(server, "-e", USERS_AS_CORRECTED.format(name="users", key_type="INTEGER"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Table created\n"
    [warning] = proc.stderr.splitlines()
    assert warning.startswith(
        "warning: 3 of the newest 3 records of topic 'clickstream_users' cannot be read as "
        "table USERS declares them (partition 0 offset 0: Error deserializing key: "
    )
    assert "go to the processing log" in warning
    assert warning.endswith(
        "The keys are text (such as '1'): declare the key column as text, "
        "`USER_ID VARCHAR PRIMARY KEY`."
    )
    # the same warning in ksqlDB's entity, for every client of the REST API
    r = httpx.post(
        f"{server.url}/ksql",
        json={"ksql": USERS_AS_CORRECTED.format(name="users_rest", key_type="INTEGER")},
        timeout=10,
    )
    assert r.status_code == 200, r.text
    [entity] = r.json()
    [rest_warning] = entity["warnings"]
    assert "cannot be read as table USERS_REST declares them" in rest_warning["message"]
    # declared as the warning says: no warning, and the table has its rows
    proc = shell(server, "-e", USERS_AS_CORRECTED.format(name="users_text", key_type="VARCHAR"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""


def test_a_server_that_is_not_there(server: RunningServer) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    proc = shell(server, "-e", "SHOW STREAMS;", url=url)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"error: cannot reach hispeed at {url}: ")
    assert len(proc.stderr.splitlines()) == 1


def test_execute_and_file_together_is_a_usage_error(server: RunningServer, tmp_path: Path) -> None:
    script = tmp_path / "x.sql"
    script.write_text("SHOW STREAMS;")
    proc = shell(server, "-e", "SHOW STREAMS;", "-f", str(script))
    assert proc.returncode == 2
    assert "give -e or -f, not both" in proc.stderr


class Terminal:
    """`hispeed sql` on a pseudo-terminal that is its controlling terminal, so that Ctrl-C
    typed there interrupts it as it would a user's."""

    def __init__(self, url: str, history: Path) -> None:
        import fcntl
        import pty
        import struct
        import termios

        self.master, slave = pty.openpty()
        # a terminal 80 columns wide, the width tables fit in
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
        become_terminal = (
            "import fcntl, os, sys, termios; fcntl.ioctl(0, termios.TIOCSCTTY, 0); "
            "os.execv(sys.executable, [sys.executable, '-m', 'hispeed', 'sql', *sys.argv[1:]])"
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-c", become_terminal, "--url", url],
            stdin=slave,
            stdout=slave,
            stderr=slave,
            start_new_session=True,
            env={**os.environ, "HISPEED_HISTORY": str(history), "TERM": "dumb"},
        )
        os.close(slave)
        self.seen = ""

    def expect(self, text: str, timeout: float = 20) -> str:
        """Read until `text` shows; returns what came before it and consumes both."""
        deadline = time.monotonic() + timeout
        while text not in self.seen:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"{text!r} never showed; the terminal shows:\n{self.seen}")
            ready, _, _ = select.select([self.master], [], [], left)
            if ready:
                try:
                    self.seen += os.read(self.master, 4096).decode(errors="replace")
                except OSError:  # the shell exited and its side of the terminal closed
                    time.sleep(0.05)
        before, _, self.seen = self.seen.partition(text)
        return before

    def type(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def interrupt_at_prompt(self, timeout: float = 20) -> None:
        """Type Ctrl-C once the shell waits for a key at its prompt. CPython's readline prints
        the prompt, then blocks in select(); a SIGINT that lands between the two is only seen
        with the next key, so a Ctrl-C typed as soon as the prompt shows (no person types that
        fast, a test does) could be lost. The shell's process shows where it waits in /proc."""
        wchan = Path(f"/proc/{self.proc.pid}/wchan")
        deadline = time.monotonic() + timeout
        while wchan.exists() and time.monotonic() < deadline:
            waiting = wchan.read_text(errors="replace")
            if "poll" in waiting or "select" in waiting:
                break
            time.sleep(0.01)
        self.type("\x03")

    def close(self) -> int:
        try:
            code = self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            with contextlib.suppress(OSError):
                self.seen += os.read(self.master, 65536).decode(errors="replace")
            raise AssertionError(
                f"the shell did not exit; the terminal shows:\n{self.seen}"
            ) from None
        finally:
            os.close(self.master)
        return code


@pytest.fixture
def terminal(server: RunningServer, tmp_path: Path) -> Iterator[Terminal]:
    term = Terminal(server.url, tmp_path / "history")
    yield term
    if term.proc.poll() is None:
        term.proc.kill()
        term.close()


def test_interactive_push_query_until_ctrl_c(
    server: RunningServer, terminal: Terminal, tmp_path: Path
) -> None:
    terminal.expect("hispeed sql: connected to ")
    terminal.expect("hispeed> ")
    terminal.type("CREATE STREAM readings (device STRING KEY, x DOUBLE)\r")
    terminal.expect("       > ")  # the statement goes on until its ';'
    terminal.type("WITH (kafka_topic='readings', value_format='JSON', partitions=1);\r")
    terminal.expect("Stream created")
    terminal.expect("hispeed> ")
    terminal.type("SELECT device, x FROM readings EMIT CHANGES;\r")
    # two columns share the 80 columns: 36 each
    terminal.expect(f"| {'DEVICE':<36} | {'X':<36} |")
    server.wait_for(lambda: len(server.server.state.queries) == 1)
    r = httpx.post(
        f"{server.url}/topics/readings?key_field=device", json=[{"device": "d1", "x": 4.5}]
    )
    assert r.status_code == 200, r.text
    terminal.expect(f"| {'d1':<36} | {'4.5':<36} |")
    terminal.type("\x03")  # Ctrl-C ends the query, on the server too
    terminal.expect("Query terminated")
    terminal.expect("hispeed> ")
    server.wait_for(lambda: len(server.server.state.queries) == 0)
    terminal.type("SELECT * FROM readings;\r")
    terminal.expect("| d1     | 4.5 |")
    terminal.expect("hispeed> ")
    terminal.interrupt_at_prompt()  # Ctrl-C again, at an empty prompt, leaves
    assert terminal.close() == 0
    history = (tmp_path / "history").read_text()
    assert "SELECT device, x FROM readings EMIT CHANGES;" in history


def test_interactive_ctrl_d_leaves_and_errors_stay_one_line(terminal: Terminal) -> None:
    terminal.expect("hispeed> ")
    terminal.type("DESCRIBE nope;\r")
    error = terminal.expect("hispeed> ")
    assert "error: " in error
    assert "NOPE does not exist" in error
    terminal.type("SHOW STREAMS;  -- a comment after the statement\r")
    terminal.expect("| Stream Name |")
    terminal.expect("hispeed> ")
    terminal.type("\x04")
    assert terminal.close() == 0


def test_credentials_for_a_server_that_asks(server_factory: ServerFactory, tmp_path: Path) -> None:
    pytest.importorskip("hispeed.server.auth")
    auth_file = tmp_path / "credentials"
    auth_file.write_text("basic alice s3cret\nbearer tok3n\n")
    guarded = server_factory(auth_file=str(auth_file))
    for credentials in (["--user", "alice", "--password", "s3cret"], ["--token", "tok3n"]):
        proc = shell(guarded, *credentials, "-e", "SHOW STREAMS;")
        assert proc.returncode == 0, proc.stderr
        assert "| Stream Name |" in proc.stdout
    proc = shell(guarded, "--user", "alice", "--password", "wrong", "-e", "SHOW STREAMS;")
    assert proc.returncode == 1
    assert proc.stderr == "error: Unauthorized: send HTTP basic or bearer credentials\n"
    proc = shell(guarded, "--user", "alice", "-e", "SHOW STREAMS;", input="s3cret\n")
    assert proc.returncode == 0, proc.stderr


def test_a_push_query_that_shows_nothing_says_why(
    server: RunningServer, terminal: Terminal
) -> None:
    """The course's users table declared with an INTEGER key over text keys: its push query
    shows no row; when it ends, the shell says its records went to the processing log."""
    users = [{"user_id": str(i), "name": f"User {i}"} for i in range(1, 4)]
    r = httpx.post(
        f"{server.url}/topics/clickstream_users?key_field=user_id", json=users, timeout=10
    )
    assert r.status_code == 200, r.text
    r = httpx.post(
        f"{server.url}/ksql",
        json={
            "ksql": "CREATE TABLE users (user_id INTEGER PRIMARY KEY, name VARCHAR) "
            "WITH (kafka_topic='clickstream_users', value_format='JSON');"
        },
        timeout=10,
    )
    assert r.status_code == 200, r.text
    terminal.expect("hispeed> ")
    terminal.type("SET 'auto.offset.reset' = 'earliest';\r")
    terminal.expect("hispeed> ")
    terminal.type("SELECT * FROM users EMIT CHANGES;\r")
    terminal.expect("| USER_ID ")

    def refused() -> int:
        doc = httpx.get(f"{server.url}/api/overview", timeout=10).json()
        return sum(
            1 for e in doc["processing_log"] if str(e["value"].get("query")).startswith("transient")
        )

    server.wait_for(lambda: refused() == 3)
    terminal.type("\x03")
    terminal.expect("Query terminated")
    said = terminal.expect("hispeed> ")
    assert "warning: at least 3 records read by this query went to the processing log" in said
    assert "topic clickstream_users partition 0 offset 2: Error deserializing key" in said
    terminal.type("\x04")
    assert terminal.close() == 0


def test_analyze_prints_its_rows_in_column_order(server: RunningServer) -> None:
    server.engine.execute(READINGS)
    server.engine.insert_many("readings", [{"DEVICE": f"d{i % 2}", "X": i} for i in range(10)])
    sql = (
        "ANALYZE SELECT device, sum(x) AS total, count(*) AS n FROM readings GROUP BY 1 ORDER BY 1;"
    )
    proc = shell(server, "-e", sql + "\nANALYZE SELECT * FROM nowhere;")
    assert proc.returncode == 1
    assert proc.stdout.splitlines() == [
        "+--------+-------+---+",
        "| DEVICE | total | n |",
        "+--------+-------+---+",
        "| d0     | 20.0  | 5 |",
        "| d1     | 25.0  | 5 |",
        "+--------+-------+---+",
    ]
    assert proc.stderr.startswith("error: Line: 1, Col: 23: nowhere does not exist")


def test_print_in_the_shell_shows_every_intervalth_record_until_its_limit(
    server: RunningServer,
) -> None:
    server.engine.log.create_topic("nums", 1)
    rows = [{"device": "d", "n": i} for i in range(100)]
    r = httpx.post(f"{server.url}/topics/nums?key_field=device", json=rows, timeout=30)
    assert r.status_code == 200, r.text
    proc = shell(server, "-e", "PRINT 'nums' FROM BEGINNING INTERVAL 25 LIMIT 3;", columns=200)
    assert proc.returncode == 0, proc.stderr
    shown = re.findall(r'"n":(\d+)', proc.stdout)
    assert shown == ["0", "25", "50"], proc.stdout

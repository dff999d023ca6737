"""`hispeed sql`: a SQL shell against a running server, as ksqlDB's CLI.

A statement runs when the `;` that ends it is typed (a `;` in quotes or comments does not
count), so statements span lines and one line may hold several. SHOW, DESCRIBE and pull
queries print tables; what changes the catalog prints its status; a push query prints its
rows as they arrive until its LIMIT or Ctrl-C, which ends it on the server and returns to
the prompt. Ctrl-C at an empty prompt, or Ctrl-D, exits; so do `exit` and `quit`.

`-e "SQL"` and `-f FILE` run their statements and exit: 0 when all ran, 1 at the first that
failed. Errors print as one line, `error: <the server's message>`.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from hispeed.errors import HispeedError

if TYPE_CHECKING:
    from hispeed.client import Client, Statement
    from hispeed.statements.result import Result

PROMPT = "hispeed> "
CONTINUATION = "       > "
HISTORY_LENGTH = 1000

_QUOTED = r"'((?:[^']|'')*)'"
_SET = re.compile(rf"\bSET\s+{_QUOTED}\s*=\s*{_QUOTED}\s*;?\s*$", re.IGNORECASE)
_UNSET = re.compile(rf"\bUNSET\s+{_QUOTED}\s*;?\s*$", re.IGNORECASE)

Row = dict[str, Any]
Column = tuple[str, Callable[[Row], Any]]


def _field(name: str) -> Callable[[Row], Any]:
    return lambda row: row.get(name)


#: the columns SHOW prints, by the kind of its result: (heading, what a row shows there)
SHOW_COLUMNS: dict[str, list[Column]] = {
    **{
        kind: [
            (f"{kind[:-1].capitalize()} Name", _field("name")),
            ("Kafka Topic", _field("topic")),
            ("Key Format", _field("keyFormat")),
            ("Value Format", _field("valueFormat")),
            ("Windowed", _field("isWindowed")),
        ]
        for kind in ("streams", "tables")
    },
    "topics": [
        ("Kafka Topic", _field("name")),
        ("Partitions", lambda row: len(row.get("replicaInfo") or [])),
    ],
    "queries": [
        ("Query ID", _field("id")),
        # a query in ERROR says why where the user looks
        (
            "Status",
            lambda row: (
                f"{row.get('state')}: {row['error']}" if row.get("error") else row.get("state")
            ),
        ),
        ("Sink Name", lambda row: ", ".join(row.get("sinks") or [])),
        # on one line: a statement's own line breaks and indentation would break the table
        ("Query String", lambda row: one_line(row.get("queryString") or "")),
    ],
    "properties": [("Property", _field("name")), ("Value", _field("value"))],
    "types": [("Type Name", _field("name")), ("Schema", _field("type"))],
    "functions": [("Function Name", _field("name")), ("Category", _field("category"))],
    "describe_function": [
        ("Arguments", _field("arguments")),
        ("Returns", _field("returnType")),
        ("Description", _field("description")),
    ],
}


def cell(value: Any) -> str:
    """A value as the shell shows it: text as is, null, true and false, the rest as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, default=str)


def border(widths: Sequence[int]) -> str:
    return "+" + "+".join("-" * (w + 2) for w in widths) + "+"


def table_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    return "|" + "|".join(f" {c.ljust(w)} " for c, w in zip(cells, widths, strict=True)) + "|"


def terminal_width() -> int:
    """The columns a table may take: the terminal's, else $COLUMNS, else 80."""
    return shutil.get_terminal_size().columns


def wrap(text: str, width: int) -> list[str]:
    """A cell's text as the lines it takes in a column `width` wide: its own lines, each
    wrapped (at blanks where it can), so that no line overflows the column's border."""
    lines: list[str] = []
    for line in text.expandtabs(4).splitlines() or [""]:
        lines += textwrap.wrap(line, width, break_on_hyphens=False) or [""]
    return lines


def row_lines(cells: Sequence[str], widths: Sequence[int]) -> list[str]:
    """One row of a table: as many lines as its tallest cell takes, every border aligned."""
    wrapped = [wrap(c, w) for c, w in zip(cells, widths, strict=True)]
    height = max(len(w) for w in wrapped)
    return [
        table_line([w[i] if i < len(w) else "" for w in wrapped], widths) for i in range(height)
    ]


def fit(widths: Sequence[int], minimums: Sequence[int], limit: int) -> list[int]:
    """Column widths narrowed, the widest first, until the table fits in `limit` characters
    (no column narrower than its minimum: a table that cannot fit stays aligned, but wide)."""
    fitted = list(widths)
    excess = sum(fitted) + 3 * len(fitted) + 1 - limit
    while excess > 0:
        shrinkable = [i for i, w in enumerate(fitted) if w > minimums[i]]
        if not shrinkable:
            break
        widest = max(shrinkable, key=lambda i: fitted[i])
        fitted[widest] -= 1
        excess -= 1
    return fitted


def format_table(
    headings: Sequence[str], rows: Sequence[Sequence[Any]], width: int | None = None
) -> list[str]:
    """Rows as an aligned table with a bordered heading, one string a line; cells too wide
    for `width` (the terminal's when not given) wrap inside their column."""
    cells = [[cell(v) for v in row] for row in rows]
    natural = [
        max([len(h), *(len(line) for r in cells for line in r[i].splitlines())])
        for i, h in enumerate(headings)
    ]
    widths = fit(
        natural,
        [min(n, max(len(h), 10)) for n, h in zip(natural, headings, strict=True)],
        width or terminal_width(),
    )
    line = border(widths)
    return [
        line,
        *row_lines(headings, widths),
        line,
        *(text for r in cells for text in row_lines(r, widths)),
        *([line] if cells else []),
    ]


def stream_widths(headings: Sequence[str], width: int | None = None) -> list[int]:
    """The widths of a push query's columns, fixed before its first row arrives: the
    terminal's width shared out evenly (as ksqlDB's CLI does), no column narrower than its
    heading or 10 characters; a longer value wraps inside its column."""
    if not headings:
        return []
    share = ((width or terminal_width()) - 3 * len(headings) - 1) // len(headings)
    return [max(len(h), 10, share) for h in headings]


def render(result: Result) -> list[str]:
    """What the shell prints for a statement's result."""
    kind = result.kind
    if kind in ("rows", "analysis"):
        columns = result.info.get("columns") or (list(result.rows[0]) if result.rows else [])
        return format_table(columns, [[r.get(c) for c in columns] for r in result.rows])
    if kind == "describe":
        return _render_describe(result)
    if kind in SHOW_COLUMNS:
        lines = []
        if kind == "describe_function":
            info = result.info
            lines = [f"{k.capitalize():<12}: {info[k]}" for k in info if info[k]]
        columns = SHOW_COLUMNS[kind]
        rows = [[get(r) for _, get in columns] for r in result.rows]
        return lines + format_table([h for h, _ in columns], rows)
    if result.rows:
        columns = list(result.rows[0])
        return format_table(columns, [[r.get(c) for c in columns] for r in result.rows])
    if result.message:
        return result.message.splitlines()
    if result.info:
        return [f"{k:<20}: {cell(v)}" for k, v in result.info.items() if k != "@type"]
    return []


def _render_describe(result: Result) -> list[str]:
    info = result.info
    lines = [
        f"{'Name':<20}: {info.get('name', '')}",
        f"{'Type':<20}: {info.get('type', '')}",
        f"{'Kafka topic':<20}: {info.get('topic', '')} "
        f"(key format {info.get('keyFormat', '')}, value format {info.get('valueFormat', '')})",
    ]
    if info.get("windowType"):
        lines.append(f"{'Window':<20}: {info['windowType']}")
    rows = [[r["name"], str(r["type"]) + (" (key)" if r.get("key") else "")] for r in result.rows]
    lines += format_table(["Field", "Type"], rows)
    for heading, key in (("Written by", "writeQueries"), ("Read by", "readQueries")):
        if info.get(key):
            lines.append(f"{heading:<20}: {', '.join(info[key])}")
    return lines


def one_line(message: str) -> str:
    """A message on one line: its lines joined, its runs of blanks made one space."""
    return re.sub(r"\s*\n\s*", " ", message.strip())


class Shell:
    """Statements from a user to a server, and their results back as text."""

    def __init__(self, client: Client, *, interactive: bool) -> None:
        self.client = client
        self.interactive = interactive
        #: SET and UNSET change these, sent with every statement (kept here, as ksqlDB's CLI)
        self.properties: dict[str, str] = {}

    def run(self, statement: Statement) -> bool:
        """Run one statement and print what it gave; False (with the error printed) when it
        failed. Ctrl-C while it runs abandons it."""
        try:
            if self.set_property(statement):
                return True
            if statement.is_push:
                self.stream(statement.text)
            else:
                for result in self.client.execute(statement.text, self.properties):
                    for line in render(result):
                        click.echo(line)
                    for warning in result.warnings:  # it ran, but not as the user expects
                        click.echo(f"warning: {one_line(warning)}", err=True)
            return True
        except HispeedError as e:
            click.echo(f"error: {one_line(str(e))}", err=True)
            return False
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            return False

    def set_property(self, statement: Statement) -> bool:
        """Run SET 'name' = 'value' or UNSET 'name' here; False for any other statement."""
        first = statement.words[:1]
        text = statement.text
        found = _SET.search(text) if first == ["SET"] else None
        if found is not None:
            name, value = found.group(1).replace("''", "'"), found.group(2).replace("''", "'")
            self.properties[name] = value
            click.echo(f"Successfully changed local property '{name}' to '{value}'.")
            return True
        found = _UNSET.search(text) if first == ["UNSET"] else None
        if found is not None:
            name = found.group(1).replace("''", "'")
            self.properties.pop(name, None)
            click.echo(f"Successfully unset local property '{name}'.")
            return True
        return False

    def stream(self, sql: str) -> None:
        """Print a push query's rows as they arrive, until its LIMIT or Ctrl-C (which closes
        it on the server)."""
        query = self.client.stream(sql, properties=self.properties)
        widths = stream_widths(query.columns)
        click.echo(border(widths))
        for line in row_lines(query.columns, widths):
            click.echo(line)
        click.echo(border(widths))
        shown = 0
        try:
            for row in query:
                shown += 1
                for line in row_lines([cell(row.get(c)) for c in query.columns], widths):
                    click.echo(line)
            click.echo(border(widths))
        except KeyboardInterrupt:
            click.echo("")
        finally:
            query.close()
        click.echo("Query terminated")
        if not shown:
            self.explain_nothing(query.id)

    def explain_nothing(self, query_id: str) -> None:
        """A query that showed no row while its records went to the processing log (they
        could not be read as its source declares them): say so here, where the user looks."""
        errors = self.client.processing_errors(query_id)
        if errors:
            first = errors[-1]
            click.echo(
                f"warning: at least {len(errors)} records read by this query went to the "
                f"processing log instead of its rows (topic {first.get('topic')} partition "
                f"{first.get('partition')} offset {first.get('offset')}: "
                f"{one_line(str(first.get('message')))})",
                err=True,
            )

    def run_text(self, text: str) -> int:
        """Run every statement of a text in turn; the exit code: 0, or 1 at the first that
        failed (the rest do not run)."""
        from hispeed.client import statements_of

        for statement in statements_of(text):
            if not self.run(statement):
                return 1
        return 0

    def loop(self) -> int:
        """Read statements until Ctrl-D, `exit`, or Ctrl-C at an empty prompt."""
        from hispeed.client import is_blank, split_statements

        buffer = ""
        while True:
            prompt = PROMPT if is_blank(buffer) else CONTINUATION
            try:
                line = input(prompt if self.interactive else "")
            except EOFError:
                if self.interactive:
                    click.echo("")
                return 0
            except KeyboardInterrupt:
                click.echo("")
                if is_blank(buffer):
                    return 0
                buffer = ""  # Ctrl-C drops the statement being typed
                continue
            if is_blank(buffer) and line.strip().rstrip(";").lower() in ("exit", "quit"):
                return 0
            statements, buffer = split_statements(buffer + line + "\n")
            for statement in statements:
                self.run(statement)
            if is_blank(buffer):
                buffer = ""


def _history_file() -> Path:
    return Path(os.environ.get("HISPEED_HISTORY") or Path.home() / ".hispeed_history")


def _with_history(run: Callable[[], int]) -> int:
    """Run the interactive loop with line editing and the history kept across sessions."""
    try:
        import readline
    except ImportError:  # no readline on this platform: lines without editing
        return run()
    path = _history_file()
    with contextlib.suppress(OSError):  # the first session: no history yet
        readline.read_history_file(path)
    readline.set_history_length(HISTORY_LENGTH)
    try:
        return run()
    finally:
        try:
            readline.write_history_file(path)
        except OSError as e:
            click.echo(f"warning: could not save the history to {path}: {e}", err=True)


@click.command("sql")
@click.option(
    "--url",
    default="http://127.0.0.1:8088",
    show_default=True,
    envvar="HISPEED_URL",
    help="The server [HISPEED_URL].",
)
@click.option("--user", default=None, help="User name for HTTP basic authentication.")
@click.option("--password", default=None, help="Password (asked for when --user comes alone).")
@click.option("--token", default=None, help="Bearer token for authentication.")
@click.option("-e", "--execute", "sql_text", default=None, help="Run these statements and exit.")
@click.option(
    "-f",
    "--file",
    "sql_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="Run the statements of this file and exit.",
)
@click.option("--timeout", type=float, default=30.0, show_default=True, help="Seconds a request.")
def sql(
    url: str,
    user: str | None,
    password: str | None,
    token: str | None,
    sql_text: str | None,
    sql_file: Path | None,
    timeout: float,
) -> None:
    """A SQL shell on a hispeed (or ksqlDB) server; end each statement with `;`."""
    if sql_text is not None and sql_file is not None:
        raise click.UsageError("give -e or -f, not both")
    if token is not None and (user is not None or password is not None):
        raise click.UsageError("authenticate with --token or with --user/--password, not both")
    if password is not None and user is None:
        raise click.UsageError("--password goes with --user")
    auth: tuple[str, str] | str | None = token
    if user is not None:
        if password is None:
            password = click.prompt("Password", hide_input=True, err=True)
        auth = (user, password or "")
    if sql_file is not None:
        try:
            sql_text = sql_file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as e:
            raise HispeedError(f"cannot read {sql_file}: {e}") from None

    from hispeed.client import Client

    # sys.exit, not ctx.exit: `hispeed` runs click with standalone_mode=False, which returns
    # ctx.exit's code instead of exiting with it
    with Client(url, auth=auth, timeout=timeout) as client:
        info = client.info()  # fails at once, and plainly, when no server answers
        if sql_text is not None:
            sys.exit(Shell(client, interactive=False).run_text(sql_text))
        interactive = sys.stdin.isatty()
        shell = Shell(client, interactive=interactive)
        if not interactive:
            sys.exit(shell.loop())
        version = info.get("KsqlServerInfo", {}).get("version", "?")
        click.echo(f"hispeed sql: connected to {url} (server {version})")
        click.echo("End statements with ';'. Ctrl-C ends a query; Ctrl-D or 'exit' leaves.")
        sys.exit(_with_history(shell.loop))


__all__ = ["Shell", "format_table", "render", "sql"]

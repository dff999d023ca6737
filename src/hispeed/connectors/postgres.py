"""PostgreSQL as a table of the latest row per key: the postgres sink (psycopg 3).

    CREATE SINK CONNECTOR totals_pg WITH (
      'connector.class'='postgres', 'source'='TOTALS',
      'connection.url'='postgresql://app@db.example:5432/shop', 'table'='totals');

Each batch is one transaction: its rows are upserted by key (`INSERT ... ON CONFLICT (key)
DO UPDATE`, sent with psycopg's pipelined `executemany`) and its tombstones delete their
rows; only the last record of a key in a batch is written, as it is what the table would
hold after all of them. The offsets are committed after the transaction, so a crash or a
lost connection repeats at most that batch, which upserts the same rows again: effectively
once. A source without key columns (and no 'pk.columns') is appended with plain INSERTs:
at least once.

The table (default: the topic's name, lower-cased) is created when absent ('auto.create',
true by default) from the stream's columns, names lower-cased so that SQL can name them
unquoted, the key columns its primary key. Types: BOOLEAN boolean, INT integer, BIGINT bigint,
DOUBLE double precision, DECIMAL(p, s) numeric(p, s), STRING text, BYTES bytea, DATE date,
TIME time, TIMESTAMP timestamp (UTC, as ksqlDB keeps it), ARRAY, MAP and STRUCT jsonb. A
topic with no stream over it (JSON objects) gets types from its first batch's values.

A record PostgreSQL refuses (a value out of its column's range, text with a NUL character,
a null key) goes to the processing log and the rest of the batch is written; PostgreSQL away
(refused, restarting, a lost connection) raises RetriableError, and the runner tries the whole
batch again once it answers.
"""

from __future__ import annotations

import datetime
import decimal
import re
from collections.abc import Mapping
from typing import Any

import msgspec

from hispeed.connectors.base import (
    ConnectorError,
    RetriableError,
    SinkBatch,
    SinkConnector,
    register,
)

_JSON = msgspec.json.Encoder(enc_hook=str, decimal_format="number")
_DECIMAL = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
SCALARS = {
    "BOOLEAN": "boolean",
    "INT": "integer",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "DOUBLE": "double precision",
    "STRING": "text",
    "VARCHAR": "text",
    "BYTES": "bytea",
    "DATE": "date",
    "TIME": "time",
    "TIMESTAMP": "timestamp",
}


def pg_type(ksql_type: str) -> str:
    """The PostgreSQL column type of a ksqlDB type (see the module's docstring)."""
    upper = ksql_type.strip().upper()
    if upper in SCALARS:
        return SCALARS[upper]
    m = _DECIMAL.fullmatch(upper)
    if m:
        return f"numeric({m.group(1)}, {m.group(2)})"
    return "jsonb"  # ARRAY<...>, MAP<...>, STRUCT<...>


def guessed_type(value: Any) -> str:
    """The PostgreSQL type of a JSON topic's value (its first non-null one)."""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "bigint"
    if isinstance(value, float):
        return "double precision"
    if isinstance(value, decimal.Decimal):
        return "numeric"
    if isinstance(value, dict | list):
        return "jsonb"
    return "text"


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:  # an optional dependency: say how to get it
        raise ConnectorError(
            "the postgres sink needs psycopg 3: pip install 'hispeed[postgres]'"
        ) from None
    return psycopg


def _on(config: Mapping[str, str], key: str, default: bool, what: str) -> bool:
    raw = config.get(key, "true" if default else "false").strip().lower()
    if raw not in ("true", "false"):
        raise ConnectorError(f"{what}: '{key}' must be true or false, not {raw!r}")
    return raw == "true"


@register
class PostgresSink(SinkConnector):
    """Upsert each record into a PostgreSQL table by its key (see the module)."""

    names = ("postgres", "postgresql", "postgres-sink", "PostgresSink", "PostgresSinkConnector")

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        super().__init__(name, config)
        what = f"connector {name}"
        self.psycopg = _psycopg()
        from psycopg.types.json import Jsonb

        self.jsonb = Jsonb
        self.url = self.config.get("connection.url") or self.option("postgres.url")
        self.table_name = (self.config.get("table") or "").strip() or None
        self.auto_create = _on(self.config, "auto.create", True, what)
        self.delete_enabled = _on(self.config, "delete.enabled", True, what)
        pk = self.config.get("pk.columns", "")
        self.pk_columns = [c.strip() for c in pk.split(",") if c.strip()]
        self.conn: Any = None
        #: tables known to exist, with their columns' names
        self._tables: dict[str, list[str]] = {}
        self.upserted = 0
        self.deleted = 0

    # -- connection ---------------------------------------------------------------------------

    def start(self) -> None:
        if self.conn is not None and not self.conn.closed:
            return
        try:
            self.conn = self.psycopg.connect(self.url, connect_timeout=10)
        except self.psycopg.OperationalError as e:
            raise RetriableError(
                f"connector {self.name}: PostgreSQL cannot be reached: {e}"
            ) from None
        self._tables.clear()

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def details(self) -> dict[str, Any]:
        return {
            "postgres": self._display(),
            "table": self.table_name or "(the topic's name)",
            "connected": self.conn is not None and not self.conn.closed,
            "upserted": self.upserted,
            "deleted": self.deleted,
            "delivery": "effectively once (upserts and deletes by key; at least once for a "
            "source without a key, which is appended)",
        }

    def _display(self) -> str:
        # the URL without its password
        return re.sub(r"(//[^:/@]+):[^@]*@", r"\1:***@", self.url)

    # -- one batch ----------------------------------------------------------------------------

    def write(self, batch: SinkBatch) -> None:
        if not len(batch):
            return
        self.start()
        try:
            self._write(batch)
        except (self.psycopg.OperationalError, self.psycopg.InterfaceError) as e:
            self.stop()  # a new connection for the retry
            raise RetriableError(f"connector {self.name}: PostgreSQL: {e}") from None

    def _write(self, batch: SinkBatch) -> None:
        table = (self.table_name or batch.topic).lower()
        pk = [c.upper() for c in self.pk_columns] or [c.upper() for c in batch.key_columns]
        columns = self._columns(batch)
        if table not in self._tables:
            self._tables[table] = self._ensure(table, batch, columns, pk)
        if not batch.column_types:  # a JSON topic: the columns its table has
            have = set(self._tables[table])
            columns = [(c, t) for c, t in columns if c in have]
        upserts, deletes, appends = self._plan(batch, pk, columns)
        errors = self.psycopg.errors
        bad = (errors.DataError, errors.IntegrityError)
        try:
            with self.conn.transaction():
                self._apply(table, columns, pk, upserts, deletes, appends)
        except bad:
            # a record PostgreSQL refuses: each again in a savepoint of its own, to find it
            with self.conn.transaction():
                for kind, items in enumerate((upserts, deletes, appends)):
                    for item in items:
                        one: list[list[Any]] = [[], [], []]
                        one[kind].append(item)
                        try:
                            with self.conn.transaction():
                                self._apply(table, columns, pk, *one)
                        except bad as e:
                            message = str(e).strip().splitlines()[0]
                            batch.fail(item[0], f"connector {self.name}: table {table}: {message}")
        self.upserted += len(upserts) + len(appends)
        self.deleted += len(deletes)

    def _columns(self, batch: SinkBatch) -> list[tuple[str, str]]:
        """(column, PostgreSQL type) of the batch's rows, key columns first; for a topic
        with no stream over it, the keys of its JSON objects, typed by their first values."""
        if batch.column_types:
            return [(n, pg_type(t)) for n, t in batch.column_types.items()]
        guessed: dict[str, str | None] = {}
        for row in batch.rows:
            for k, v in (row or {}).items():
                if guessed.get(k) is None:
                    guessed[k] = None if v is None else guessed_type(v)
        return [(k, t or "text") for k, t in guessed.items()]

    def _ensure(
        self, table: str, batch: SinkBatch, columns: list[tuple[str, str]], pk: list[str]
    ) -> list[str]:
        sql = self.psycopg.sql
        names = {c for c, _ in columns}
        missing = [c for c in pk if c not in names]
        if missing:
            raise ConnectorError(
                f"connector {self.name}: key column(s) {', '.join(missing)} are not columns "
                f"of {batch.topic} ({', '.join(names)})"
            )
        if self.auto_create:
            parts = [
                sql.SQL("{} {}").format(sql.Identifier(c.lower()), sql.SQL(t)) for c, t in columns
            ]
            if pk:
                parts.append(
                    sql.SQL("PRIMARY KEY ({})").format(
                        sql.SQL(", ").join(sql.Identifier(c.lower()) for c in pk)
                    )
                )
            with self.conn.transaction():
                self.conn.execute(
                    sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                        sql.Identifier(table), sql.SQL(", ").join(parts)
                    )
                )
        found = self.conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
            "AND table_schema = current_schema()",
            (table,),
        ).fetchall()
        self.conn.commit()
        have = {r[0] for r in found}
        if not have:
            raise ConnectorError(
                f"connector {self.name}: table {table} does not exist ('auto.create' is false)"
            )
        absent = [c.lower() for c, _ in columns if c.lower() not in have]
        if absent and batch.column_types:
            raise ConnectorError(
                f"connector {self.name}: table {table} has no column(s) {', '.join(absent)}"
            )
        return [c for c, _ in columns if c.lower() in have]

    def _plan(
        self, batch: SinkBatch, pk: list[str], columns: list[tuple[str, str]]
    ) -> tuple[list[Any], list[Any], list[Any]]:
        """(index, values) of the upserts, deletes (key values) and appends: the last record
        of each key only; records without a key fail."""
        types = dict(columns)
        names = [c for c, _ in columns]
        last: dict[tuple[Any, ...], tuple[int, dict[str, Any] | None]] = {}
        appends: list[Any] = []
        for i, row in enumerate(batch.rows):
            key_values = self._key_of(batch, i, row, pk)
            if pk and (key_values is None or any(v is None for v in key_values)):
                batch.fail(i, f"connector {self.name}: the record has no value for key {pk}")
                continue
            if not pk:
                if row is not None:
                    appends.append((i, [self._value(row.get(c), types[c]) for c in names]))
                continue
            assert key_values is not None
            last[tuple(key_values)] = (i, row)
        upserts: list[Any] = []
        deletes: list[Any] = []
        for key, (i, row) in last.items():
            if row is None:
                if self.delete_enabled:
                    values = [
                        self._value(v, types.get(c, "")) for c, v in zip(pk, key, strict=True)
                    ]
                    deletes.append((i, values))
                continue
            upserts.append((i, [self._value(row.get(c), types[c]) for c in names]))
        return upserts, deletes, appends

    def _value(self, value: Any, pg: str) -> Any:
        """A row's value as psycopg sends it for a column of PostgreSQL type `pg`."""
        if value is None:
            return None
        if pg == "jsonb":
            if (
                isinstance(value, list)
                and value
                and all(isinstance(x, tuple) and len(x) == 2 for x in value)
            ):
                value = dict(value)  # a MAP comes from Arrow as (key, value) pairs
            return self.jsonb(value, dumps=_dumps)
        if pg == "timestamp" and isinstance(value, datetime.datetime) and value.tzinfo:
            return value.astimezone(datetime.UTC).replace(tzinfo=None)
        return value

    @staticmethod
    def _key_of(
        batch: SinkBatch, i: int, row: dict[str, Any] | None, pk: list[str]
    ) -> list[Any] | None:
        if row is not None:
            return [row.get(c) for c in pk]
        key = batch.keys[i]
        if isinstance(key, Mapping):
            return [key.get(c) for c in pk]
        return [key] if len(pk) == 1 else None

    def _apply(
        self,
        table: str,
        columns: list[tuple[str, str]],
        pk: list[str],
        upserts: list[Any],
        deletes: list[Any],
        appends: list[Any],
    ) -> None:
        sql = self.psycopg.sql
        names = [c for c, _ in columns]
        target = sql.Identifier(table)
        cols = sql.SQL(", ").join(sql.Identifier(c.lower()) for c in names)
        marks = sql.SQL(", ").join(sql.Placeholder() * len(names))
        cur = self.conn.cursor()
        if upserts or appends:
            insert = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(target, cols, marks)
        if upserts:
            rest = [c for c in names if c not in pk]
            keys = sql.SQL(", ").join(sql.Identifier(c.lower()) for c in pk)
            if rest:
                action = sql.SQL("DO UPDATE SET {}").format(
                    sql.SQL(", ").join(
                        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c.lower()))
                        for c in rest
                    )
                )
            else:
                action = sql.SQL("DO NOTHING")
            cur.executemany(
                sql.SQL("{} ON CONFLICT ({}) {}").format(insert, keys, action),
                [values for _, values in upserts],
            )
        if appends:
            cur.executemany(insert, [values for _, values in appends])
        if deletes:
            where = sql.SQL(" AND ").join(
                sql.SQL("{} = %s").format(sql.Identifier(c.lower())) for c in pk
            )
            cur.executemany(
                sql.SQL("DELETE FROM {} WHERE {}").format(target, where),
                [values for _, values in deletes],
            )


def _dumps(value: Any) -> str:
    return _JSON.encode(value).decode()


__all__ = ["PostgresSink", "guessed_type", "pg_type"]

"""hispeed's own schema registry, kept in the log as Confluent's is kept in Kafka.

Every change is a record of the compacted topic `_schemas_hispeed` (one partition), keyed as
Confluent's `_schemas` records are: a schema version by subject and version, a compatibility
level by subject (or none: the global one); a null value (a tombstone) is a hard delete. At
start the topic is replayed; ids come from the records, so they are the same after a restart
and, in Kafka mode, on every worker of the cluster.

How two writers (two workers in Kafka mode, or two threads) never hand out one id for two
schemas: the topic's single partition orders every record, and every reader applies the same
rule in that order: a record claiming a (subject, version) another record already holds, or
an id another schema already holds, is refused. A writer appends its claim, reads the topic up
to it, and returns the id only when its claim was applied; otherwise it tombstones its
refused record (so compaction cannot bring it back) and tries again over what won. This is
optimistic concurrency with the log as the arbiter, where Confluent elects a single leader.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from hispeed.log.base import Log
from hispeed.registry.base import (
    RegisteredSchema,
    RegistryError,
    Schema,
    SchemaReference,
    SchemaRegistry,
)
from hispeed.registry.compat import (
    DEFAULT_LEVEL,
    canonical,
    check_level,
    incompatibilities,
    incompatible_message,
)

#: Confluent's registry keeps `_schemas`; this name does not clash with one on the same
#: cluster, and (not starting with `_hispeed_`) is one topic for the whole Kafka cluster, not
#: one per application: records on shared topics carry ids every application must resolve
SCHEMAS_TOPIC = "_schemas_hispeed"
#: registrations a writer retries when other writers' claims win (each try re-reads them)
MAX_CLAIMS = 20
#: seconds a writer waits to read its own record back (Kafka mode: the broker's round trip)
READ_BACK_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class _Version:
    """One version of a subject as the topic holds it."""

    held: RegisteredSchema
    deleted: bool
    #: the writer's token in the record's key: tells its own records from a rival's
    claim: str


#: the engine property holding the largest schema text the registry accepts (the setting
#: `schema_registry_max_schema_bytes`); 1 MiB, the size of record Kafka takes by default,
#: which bounds Confluent's registry the same way
MAX_SCHEMA_BYTES_PROPERTY = "schema.registry.max.schema.bytes"
DEFAULT_MAX_SCHEMA_BYTES = 1024 * 1024


class LogRegistry(SchemaRegistry):
    """A registry kept in `log` (the embedded log, or Kafka); with no log, in memory only
    (the same rules, nothing kept)."""

    def __init__(
        self,
        log: Log | None,
        topic: str = SCHEMAS_TOPIC,
        *,
        max_schema_bytes: int = DEFAULT_MAX_SCHEMA_BYTES,
    ) -> None:
        self.log = log
        self.topic = topic
        #: the largest schema text registered; checking a schema costs time that grows
        #: faster than its size (Avro's parser is quadratic in a record's fields)
        self.max_schema_bytes = max_schema_bytes
        self._lock = threading.RLock()
        self._next = 0  # the next offset of the topic not yet applied
        self._subjects: dict[str, dict[int, _Version]] = {}
        self._by_id: dict[int, Schema] = {}
        self._max_id = 0
        self._levels: dict[str | None, str] = {}
        if log is not None:
            log.create_topic(
                topic,
                1,
                {"cleanup.policy": "compact", "retention.ms": -1, "retention.bytes": -1},
                exist_ok=True,
            )
            self._sync()

    # -- reading the topic --------------------------------------------------------------------

    def _sync(self, past: int = -1) -> None:
        """Apply what the topic holds beyond what was applied (and at least up to offset
        `past`, waiting for it to be readable)."""
        if self.log is None:
            return
        deadline = time.monotonic() + READ_BACK_TIMEOUT_S
        with self._lock:
            while True:
                start, end = self.log.offsets(self.topic, 0)
                self._next = max(self._next, start)
                while self._next < end:
                    batches = self.log.read(self.topic, 0, self._next)
                    if not batches:
                        break
                    for batch in batches:
                        offsets = batch.column("offset").to_pylist()
                        keys = batch.column("key").to_pylist()
                        values = batch.column("value").to_pylist()
                        for offset, key, value in zip(offsets, keys, values, strict=True):
                            self._apply(key, value)
                            self._next = offset + 1
                if self._next > past:
                    return
                if time.monotonic() > deadline:
                    raise RegistryError(
                        f"the registry's topic {self.topic} did not show a record it wrote "
                        f"(offset {past}) within {READ_BACK_TIMEOUT_S:.0f} s",
                        50002,
                    )
                time.sleep(0.01)

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        """One record of the topic, by the rule every reader applies in the topic's order."""
        try:
            k = msgspec.json.decode(key) if key else {}
            v = msgspec.json.decode(value) if value is not None else None
        except msgspec.DecodeError:
            return  # not a record of this registry: nothing to apply
        if not isinstance(k, dict):
            return
        if k.get("keytype") == "CONFIG":
            subject = k.get("subject")
            if v is None:
                self._levels.pop(subject, None)
            elif isinstance(v, dict) and isinstance(v.get("compatibilityLevel"), str):
                self._levels[subject] = v["compatibilityLevel"]
            return
        if k.get("keytype") != "SCHEMA":
            return
        subject, number, claim = str(k.get("subject")), int(k.get("version", 0)), k.get("claim")
        versions = self._subjects.setdefault(subject, {})
        held = versions.get(number)
        if v is None:  # a hard delete: of the version whose claim this is
            if held is not None and held.claim == claim:
                del versions[number]
                schema_id = held.held.id
                if not any(
                    x.held.id == schema_id for vs in self._subjects.values() for x in vs.values()
                ):
                    self._by_id.pop(schema_id, None)
            return
        schema = Schema(
            str(v["schema"]),
            str(v.get("schemaType") or "AVRO"),
            tuple(
                SchemaReference(str(r["name"]), str(r["subject"]), int(r["version"]))
                for r in v.get("references") or ()
            ),
        )
        schema_id, deleted = int(v["id"]), bool(v.get("deleted"))
        if held is not None:
            if held.claim == claim:  # a soft delete (or its undoing) of this very version
                versions[number] = replace(held, deleted=deleted)
            return  # else: a rival's claim on a version already held: refused
        if self._by_id.get(schema_id, schema) != schema:
            return  # an id already held by another schema: refused
        self._by_id[schema_id] = schema
        self._max_id = max(self._max_id, schema_id)
        versions[number] = _Version(
            RegisteredSchema(subject, number, schema_id, schema), deleted, str(claim)
        )

    def _write(self, key: dict[str, Any], value: dict[str, Any] | None) -> int:
        """Append one record; apply it (and all before it) here; its offset."""
        record = (msgspec.json.encode(key), None if value is None else msgspec.json.encode(value))
        if self.log is None:
            self._apply(*record)
            return -1
        result = self.log.append(self.topic, [record], partition=0)
        offset = int(result.offsets[0])
        self._sync(past=offset)
        return offset

    # -- the interface ------------------------------------------------------------------------

    def register(self, subject: str, schema: Schema) -> int:
        _check_subject(subject)
        size = len(schema.schema.encode())
        if size > self.max_schema_bytes:
            raise RegistryError(
                f"Invalid schema: {size} bytes, over the limit of {self.max_schema_bytes} "
                "(the setting schema_registry_max_schema_bytes)",
                42201,
            )
        with self._lock:
            self._sync()
            referenced = self._resolve(schema)
        # checked outside the lock: a large schema's parse must not hold up lookups by id
        schema = canonical(schema, lambda _: referenced)
        with self._lock:
            self._sync()
            for _ in range(MAX_CLAIMS):
                live = self._live(subject)
                for held in live:
                    if held.schema == schema:
                        return held.id
                level = self.get_compatibility(subject)
                olds = [(h.version, h.schema) for h in live]
                problems = incompatibilities(level, schema, olds, self._resolve)
                if problems:
                    raise RegistryError(incompatible_message(subject, problems), 409)
                schema_id = next(
                    (i for i, s in self._by_id.items() if s == schema), self._max_id + 1
                )
                number = max(self._subjects.get(subject, {}), default=0) + 1
                claim = uuid.uuid4().hex[:16]
                key = _schema_key(subject, number, claim)
                self._write(key, _schema_value(subject, number, schema_id, schema, False))
                won = self._subjects.get(subject, {}).get(number)
                if won is not None and won.claim == claim:
                    return schema_id
                self._write(key, None)  # refused: gone at the next compaction
        raise RegistryError(
            f"could not register a schema under {subject!r}: {MAX_CLAIMS} claims lost to "
            "other writers",
            50001,
        )

    def schema_by_id(self, schema_id: int) -> Schema:
        with self._lock:
            schema = self._by_id.get(schema_id)
            if schema is None:  # perhaps registered by another worker since
                self._sync()
                schema = self._by_id.get(schema_id)
        if schema is None:
            raise RegistryError(f"Schema {schema_id} not found", 40403)
        return schema

    def lookup(self, subject: str, schema: Schema) -> RegisteredSchema | None:
        with self._lock:
            self._sync()
            try:
                schema = canonical(schema, self._resolve)
            except RegistryError:
                return None
            return next((h for h in self._live(subject) if h.schema == schema), None)

    def version(
        self, subject: str, version: int | str = "latest", *, deleted: bool = False
    ) -> RegisteredSchema:
        with self._lock:
            self._sync()
            held = [
                v.held
                for _, v in sorted(self._subjects.get(subject, {}).items())
                if deleted or not v.deleted
            ]
            if not held:
                raise RegistryError(f"Subject '{subject}' not found.", 40401)
            if version in ("latest", -1):
                return held[-1]
            number = check_version(version)
            for h in held:
                if h.version == number:
                    return h
        raise RegistryError(f"Version {version} not found.", 40402)

    def subjects(self, *, deleted: bool = False) -> list[str]:
        with self._lock:
            self._sync()
            return sorted(
                s
                for s, vs in self._subjects.items()
                if any(deleted or not v.deleted for v in vs.values())
            )

    def versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        with self._lock:
            self._sync()
            numbers = sorted(
                n for n, v in self._subjects.get(subject, {}).items() if deleted or not v.deleted
            )
        if not numbers:
            raise RegistryError(f"Subject '{subject}' not found.", 40401)
        return numbers

    def usages(self, schema_id: int, *, deleted: bool = False) -> list[tuple[str, int]]:
        with self._lock:
            self._sync()
            return sorted(
                (s, n)
                for s, vs in self._subjects.items()
                for n, v in vs.items()
                if v.held.id == schema_id and (deleted or not v.deleted)
            )

    def get_compatibility(self, subject: str | None = None, *, fallback: bool = True) -> str:
        with self._lock:
            self._sync()
            level = self._levels.get(subject) if subject is not None else None
            if level is None and subject is not None and not fallback:
                raise RegistryError(
                    f"Subject '{subject}' does not have subject-level compatibility configured",
                    40408,
                )
            return level or self._levels.get(None) or DEFAULT_LEVEL

    def set_compatibility(self, level: str, subject: str | None = None) -> str:
        level = check_level(level)
        if subject is not None:
            _check_subject(subject)
        with self._lock:
            self._write(_config_key(subject), {"compatibilityLevel": level})
        return level

    def delete_compatibility(self, subject: str | None = None) -> str:
        with self._lock:
            previous = self.get_compatibility(subject)
            self._write(_config_key(subject), None)
        return previous

    def check_compatibility(
        self, subject: str, schema: Schema, version: int | str = "latest"
    ) -> list[str]:
        with self._lock:
            self._sync()
            schema = canonical(schema, self._resolve)
            level = self.get_compatibility(subject)
            live = self._live(subject)
            if version not in ("latest", -1) and live:
                old = self.version(subject, version)
                olds = [(old.version, old.schema)]
                level = level.removesuffix("_TRANSITIVE")
            else:
                olds = [(h.version, h.schema) for h in live]
            return incompatibilities(level, schema, olds, self._resolve)

    def delete_version(self, subject: str, version: int | str, permanent: bool = False) -> int:
        with self._lock:
            self._sync()
            versions = self._subjects.get(subject, {})
            if not versions:
                raise RegistryError(f"Subject '{subject}' not found.", 40401)
            if version in ("latest", -1):
                live = [n for n, v in versions.items() if not v.deleted]
                if not live:
                    raise RegistryError(f"Subject '{subject}' not found.", 40401)
                number = max(live)
            else:
                number = check_version(version)
            held = versions.get(number)
            if held is None:
                raise RegistryError(f"Version {version} not found.", 40402)
            key = _schema_key(subject, number, held.claim)
            if permanent:
                if not held.deleted:
                    raise RegistryError(
                        f"Subject '{subject}' Version {number} was not deleted first before "
                        "being permanently deleted",
                        40407,
                    )
                self._write(key, None)
            else:
                if held.deleted:
                    raise RegistryError(
                        f"Subject '{subject}' Version {number} was soft deleted. Set "
                        "permanent=true to delete permanently",
                        40406,
                    )
                h = held.held
                self._write(key, _schema_value(subject, number, h.id, h.schema, True))
            return number

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        with self._lock:
            self._sync()
            versions = dict(self._subjects.get(subject, {}))
            if not versions:
                raise RegistryError(f"Subject '{subject}' not found.", 40401)
            live = [n for n, v in versions.items() if not v.deleted]
            if permanent and live:
                raise RegistryError(
                    f"Subject '{subject}' was not deleted first before being permanently deleted",
                    40405,
                )
            if not permanent and not live:
                raise RegistryError(
                    f"Subject '{subject}' was soft deleted.Set permanent=true to delete "
                    "permanently",
                    40404,
                )
            for number in sorted(versions) if permanent else sorted(live):
                self.delete_version(subject, number, permanent)
            if permanent and subject in self._levels:
                self._write(_config_key(subject), None)
            return sorted(versions) if permanent else sorted(live)

    # -- helpers ------------------------------------------------------------------------------

    def _live(self, subject: str) -> list[RegisteredSchema]:
        versions = self._subjects.get(subject, {})
        return [v.held for _, v in sorted(versions.items()) if not v.deleted]

    def _resolve(self, schema: Schema) -> list[tuple[str, Schema]]:
        """The schemas `schema` references, transitively, dependencies first (42201 when one
        is not registered)."""
        out: list[tuple[str, Schema]] = []
        seen: set[tuple[str, int]] = set()

        def visit(refs: tuple[SchemaReference, ...], depth: int) -> None:
            if depth > 32:
                raise RegistryError("Invalid schema: references nest too deeply", 42201)
            for ref in refs:
                if (ref.subject, ref.version) in seen:
                    continue
                seen.add((ref.subject, ref.version))
                held = self._subjects.get(ref.subject, {}).get(ref.version)
                if held is None:
                    raise RegistryError(
                        f"Invalid schema: the reference {ref.name!r} names subject "
                        f"{ref.subject!r} version {ref.version}, which is not registered",
                        42201,
                    )
                visit(held.held.schema.references, depth + 1)
                out.append((ref.name, held.held.schema))

        visit(schema.references, 0)
        return out


def check_version(version: int | str) -> int:
    """A version number as a request gives it; Confluent's 42202 when it is not one."""
    try:
        number = int(version)
    except (TypeError, ValueError):
        number = 0
    if not 1 <= number <= 2**31 - 1:
        raise RegistryError(
            f"The specified version '{version}' is not a valid version id. Allowed values are "
            'between [1, 2^31-1] and the string "latest"',
            42202,
        )
    return number


def _check_subject(subject: str) -> None:
    if not subject or not subject.strip() or len(subject) > 255 or "\x00" in subject:
        raise RegistryError(f"Invalid subject {subject!r}", 42208)


def _schema_key(subject: str, version: int, claim: str) -> dict[str, Any]:
    return {"keytype": "SCHEMA", "subject": subject, "version": version, "magic": 1, "claim": claim}


def _config_key(subject: str | None) -> dict[str, Any]:
    return {"keytype": "CONFIG", "subject": subject, "magic": 0}


def _schema_value(
    subject: str, version: int, schema_id: int, schema: Schema, deleted: bool
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "subject": subject,
        "version": version,
        "id": schema_id,
        "schemaType": schema.schema_type,
        "schema": schema.schema,
        "deleted": deleted,
    }
    if schema.references:
        value["references"] = [
            {"name": r.name, "subject": r.subject, "version": r.version} for r in schema.references
        ]
    return value

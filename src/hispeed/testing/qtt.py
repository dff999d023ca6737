"""Run ksqlDB's query-validation test files (QTT) through the real engine and log.

Each case's statements run on a fresh engine; its input records are serialized with the
formats of the source that reads their topic, produced one by one (each fully processed
before the next, as ksqlDB's test driver does), and the records on each expected output topic
are decoded and compared in order. A case passes, fails (with a diff), or is unsupported
(with the reason: a query shape or feature hispeed does not run yet).

By default a case is judged strictly, as ksqlDB's own test tools judge it (`_qtt_strict`:
the runner's own serde, ksqlDB's comparison rules, every post-condition, errors by type,
message and status); `lenient=True` keeps the older, looser comparisons (`_qtt_lenient`) for
a side-by-side figure. The deliberate differences (`qtt_differences.json`, at most five, each
with its reason) are the only cases excused.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from hispeed.errors import HispeedError
from hispeed.log.base import Log
from hispeed.log.embedded import EmbeddedLog
from hispeed.registry import MemoryRegistry, Schema, SchemaReference
from hispeed.server.statements import run_ksql
from hispeed.testing import _qtt_lenient as lenient
from hispeed.testing import _qtt_strict as strict
from hispeed.testing import qtt_checks

SCHEMA_REGISTRY_FORMATS = ("AVRO", "PROTOBUF", "PROTOBUF_NOSR", "JSON_SR")
#: the server configuration ksqlDB's REST tests run under (RestQueryTranslationTest's
#: TestKsqlRestApp): pull queries may scan tables, push queries may be scalable (push v2)
REST_SERVER_CONFIG = {
    "ksql.query.pull.table.scan.enabled": True,
    "ksql.query.push.v2.registry.installed": True,
    "ksql.query.push.v2.enabled": True,
    "ksql.query.push.v2.new.latest.delay.ms": 0,
    "ksql.headers.columns.enabled": True,
}
#: ksqlDB's test tool's topic partitions (`Topic.DEFAULT_PARTITIONS`)
_REST_PARTITIONS = 4
_SR_PATTERN = re.compile(r"\b(AVRO|PROTOBUF|PROTOBUF_NOSR|JSON_SR)\b", re.IGNORECASE)


@dataclass
class CaseResult:
    file: str
    name: str
    status: str  # passed failed unsupported skipped
    detail: str = ""
    seconds: float = 0.0
    #: the schema-registry formats the case's statements use (none: a core case)
    formats: tuple[str, ...] = ()


@dataclass
class Case:
    file: str
    name: str
    spec: dict[str, Any]
    statements: list[str]
    properties: dict[str, Any]
    #: from ksqlDB's REST tests: run through the server's /ksql and /query handlers
    rest: bool = False
    #: the spec read as ksqlDB reads it: numbers with a fraction as exact decimals
    exact: dict[str, Any] = field(default_factory=dict)


def load_cases(paths: list[Path]) -> Iterator[Case]:
    """Every case variant (one per format and config value) of the files under `paths`."""
    files: list[Path] = []
    for p in paths:
        files += sorted(p.rglob("*.json")) if p.is_dir() else [p]
    for f in files:
        text = without_comments(f.read_text())
        try:
            doc = json.loads(text)
        except json.JSONDecodeError as e:
            where = f"line {e.lineno}:{e.colno}"
            raise HispeedError(f"{f}: not a test file: {where}: {e.msg}") from None
        exact_tests = json.loads(text, parse_float=Decimal).get("tests", [])
        rel = f.name if f.parent.name == "query-validation-tests" else f"{f.parent.name}/{f.name}"
        rest = f.parent.name == "rest-query-validation-tests"
        for spec, exact in zip(doc.get("tests", []), exact_tests, strict=True):
            if spec.get("enabled") is False:
                continue
            formats = spec.get("format") or [None]
            configs = spec.get("config") or [None]
            for fmt in formats:
                for cfg in configs:
                    name = spec["name"]
                    if fmt is not None:
                        name += f" - {fmt}"
                    if cfg is not None:
                        name += f" - {cfg}"
                    statements = [_fill(s, fmt, cfg) for s in spec.get("statements", [])]
                    props = {
                        k: _fill(v, fmt, cfg) if isinstance(v, str) else v
                        for k, v in spec.get("properties", {}).items()
                    }
                    yield Case(rel, name, spec, statements, props, rest, exact)


def without_comments(text: str) -> str:
    """`text` with its // and /* */ comments blanked out, strings left alone.

    ksqlDB's test files are read by Jackson with comments allowed, and some carry them (e.g.
    `// increments count to two` between input records). Comments become spaces, and a line
    comment keeps its newline, so a later JSON error still names the right line and column.
    """
    out = list(text)
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
        elif text.startswith("//", i):
            end = text.find("\n", i)
            end = n if end < 0 else end
            out[i:end] = " " * (end - i)
            i = end
        elif text.startswith("/*", i):
            end = text.find("*/", i + 2)
            end = n if end < 0 else end + 2
            out[i:end] = [ch if ch == "\n" else " " for ch in text[i:end]]
            i = end
        else:
            i += 1
    return "".join(out)


def _fill(text: str, fmt: str | None, cfg: str | None) -> str:
    if fmt is not None:
        text = text.replace("{FORMAT}", fmt)
    if cfg is not None:
        text = text.replace("{CONFIG}", cfg)
    return text


def needs_schema_registry(case: Case) -> bool:
    return any(_SR_PATTERN.search(s) for s in case.statements)


def case_formats(case: Case) -> tuple[str, ...]:
    """The schema-registry formats the case's statements name, sorted."""
    return tuple(sorted({m.upper() for s in case.statements for m in _SR_PATTERN.findall(s)}))


def unserved_formats(case: Case) -> list[str]:
    """The schema-registry formats of the case that the runner's serde cannot write."""
    used = {m.upper() for s in case.statements for m in _SR_PATTERN.findall(s)}
    return sorted(used - set(SERVED_FORMATS))


#: the schema-registry formats the runner's own serde writes and reads (`qtt_serde_sr`: AVRO,
#: JSON_SR; `qtt_protobuf`: PROTOBUF, PROTOBUF_NOSR)
SERVED_FORMATS = ("AVRO", "JSON_SR", "PROTOBUF", "PROTOBUF_NOSR")
_SCHEMA_TYPES = {"AVRO": "AVRO", "JSON_SR": "JSON", "JSON": "JSON", "PROTOBUF": "PROTOBUF"}


def case_registry(case: Case) -> MemoryRegistry:
    """A registry holding the case's topics' schemas, registered as ksqlDB's test tool does:
    under `<topic>-key` / `<topic>-value`, with KEY_/VALUE_SCHEMA_ID's ids when a topic gives
    them (and first its references, under their names)."""
    registry = MemoryRegistry()
    used = [m.upper() for s in case.statements for m in _SR_PATTERN.findall(s)]
    default = used[0] if used else "AVRO"
    for topic in case.spec.get("topics", []):
        for side in ("key", "value"):
            schema = topic.get(f"{side}Schema")
            if schema is None:
                continue
            fmt = str(topic.get(f"{side}Format") or topic.get("format") or default).upper()
            schema_type = _SCHEMA_TYPES.get(fmt, "AVRO")
            refs = []
            referenced = []
            for ref in topic.get(f"{side}SchemaReferences") or []:
                ref_type = _SCHEMA_TYPES.get(str(ref.get("format", fmt)).upper(), schema_type)
                text = ref["schema"] if ref_type == "PROTOBUF" else json.dumps(ref["schema"])
                referenced.append((ref["name"], Schema(text, ref_type)))
                refs.append(SchemaReference(ref["name"], ref["name"], 1))
            text = schema if schema_type == "PROTOBUF" else json.dumps(schema)
            held = Schema(text, schema_type, tuple(refs))
            subject = f"{topic['name']}-{side}"
            schema_id = topic.get(f"{side}SchemaId")
            if schema_id is not None:
                # TestExecutor.maybeRegisterTopicSchemas: the references first, then the
                # schema under its id
                for name, ref_schema in referenced:
                    registry.register(name, ref_schema)
                registry.register_with_id(subject, held, int(schema_id))
            else:
                # TestExecutorUtil registers the schema alone (its references resolved inside
                # it), so it takes the first id; the references are kept here after it, for
                # readers that resolve them by subject
                registry.register(subject, held)
                for name, ref_schema in referenced:
                    registry.register(name, ref_schema)
    return registry


def run_case(
    case: Case,
    workdir: Path,
    kafka: str | None = None,
    *,
    lenient: bool = False,
    differences: list[qtt_checks.Difference] | None = None,
) -> CaseResult:
    """Run one case on a fresh embedded log in `workdir`, or on the Kafka cluster at `kafka`
    (in a namespace of its own, deleted afterwards); judged strictly unless `lenient`.

    A case a deliberate difference covers is "passed" with the difference's id in its
    detail (strict mode only)."""
    started = time.perf_counter()
    result = _run(case, workdir, kafka, lenient, differences or [])
    result.seconds = time.perf_counter() - started
    result.formats = case_formats(case)
    return result


def _open_log(data_dir: Path, kafka: str | None) -> Log:
    if kafka is None:
        return EmbeddedLog(data_dir, fsync="never", cleaner_interval_s=None)
    from hispeed.log.kafka import KafkaLog

    # the cases' records are stamped near 1970: kept forever, not deleted by time retention
    return KafkaLog(
        kafka,
        prefix=f"qtt-{uuid.uuid4().hex[:10]}.",
        session_timeout_ms=6000,
        topic_config={"retention.ms": -1},
    )


def _close_log(log: Log) -> None:
    if log.shared:
        from hispeed.log.kafka import KafkaLog

        assert isinstance(log, KafkaLog)
        log.delete_namespace()
    log.close()


def _run(
    case: Case,
    workdir: Path,
    kafka: str | None,
    lenient_mode: bool,
    differences: list[qtt_checks.Difference],
) -> CaseResult:
    from hispeed.engine import Engine
    from hispeed.testing import qtt_functions

    qtt_functions.register()  # ksqlDB's test-only UDFs (BAD_UDF...), fresh per case

    spec = case.spec
    unserved = unserved_formats(case)
    if unserved:
        reason = f"needs the runner's serde for {', '.join(unserved)}"
        return CaseResult(case.file, case.name, "skipped", reason)
    excused = [d for d in differences if d.covers(case.file, case.name)]
    outcome = next((d for d in excused if d.excuses == "outcome"), None)
    data_dir = Path(tempfile.mkdtemp(prefix="qtt-", dir=workdir))
    log = _open_log(data_dir, kafka)
    try:
        rest = case.rest or "responses" in spec
        properties = {
            "auto.offset.reset": "earliest",
            "ksql.streams.cache.max.bytes.buffering": "0",
            **(REST_SERVER_CONFIG if rest and not lenient_mode else {}),
            **case.properties,
        }
        engine = Engine(log_=log, properties=properties, schema_registry=case_registry(case))
        _create_topics(case, log, outputs=not lenient_mode)
        if lenient_mode:
            status, detail = (_lenient_rest if rest else _lenient_qtt)(case, engine)
        else:
            post = _without_excused_topics(case.exact.get("post") or {}, excused)
            if outcome is not None:
                status, detail = _past_ksqldb(case, engine, outcome)
            else:
                status, detail = (_strict_rest if rest else _strict_qtt)(case, engine, post)
        return CaseResult(case.file, case.name, status, detail)
    finally:
        try:
            _close_log(log)
        finally:
            shutil.rmtree(data_dir, ignore_errors=True)


def _without_excused_topics(
    post: dict[str, Any], excused: list[qtt_checks.Difference]
) -> dict[str, Any]:
    """The post-conditions without the topic checks a deliberate difference excuses."""
    patterns = [re.compile(d.topic) for d in excused if d.excuses == "post-topics"]
    topics = post.get("topics")
    if not patterns or not topics:
        return post
    kept = [t for t in topics.get("topics", []) if not any(p.match(t["name"]) for p in patterns)]
    return {**post, "topics": {**topics, "topics": kept}}


# -- strict: as ksqlDB's test tools judge a case -------------------------------------------------


def _strict_qtt(case: Case, engine: Any, post: dict[str, Any]) -> tuple[str, str]:
    """A QTT case as ksqlDB's TestExecutor runs and checks it."""
    from hispeed.plan.model import UnsupportedError

    spec = case.exact
    expected_error = spec.get("expectedException")
    last = case.statements[-1] if case.statements else ""
    try:
        raised = strict.run_statements(engine, case.statements)
        if raised is None:
            for record in spec.get("inputs", []):
                strict.produce(engine, record)
                engine.drain()
                raised = strict.runtime_error(engine)
                if raised is not None:
                    break
    except UnsupportedError as e:
        return "unsupported", str(e)
    except strict.CaseFailureError as e:
        return "failed", str(e)
    except Exception as e:  # a bug: report it as a failure of this case only
        return "failed", f"internal error: {type(e).__name__}: {e}"
    if raised is not None:
        if not expected_error:
            return "failed", f"{raised.type.rsplit('.', 1)[-1]}: {raised.message}"
        problem = qtt_checks.error_problem(expected_error, raised, last)
        return ("failed", problem) if problem else ("passed", "")
    if expected_error:
        return "failed", f"expected an error ({expected_error.get('message', '')!r}) but none came"
    try:
        problem = strict.outputs_problem(
            engine, spec, exact=strict.exact_numbers(case.properties), rest=False
        ) or strict.post_problem(engine, post)
    except strict.CaseFailureError as e:
        return "failed", str(e)
    except Exception as e:  # a bug: report it as a failure of this case only
        return "failed", f"internal error: {type(e).__name__}: {e}"
    return ("failed", problem) if problem else ("passed", "")


def _past_ksqldb(case: Case, engine: Any, difference: qtt_checks.Difference) -> tuple[str, str]:
    """A case where hispeed goes past ksqlDB on purpose: its statements must all run."""
    try:
        raised = strict.run_statements(engine, case.statements)
    except Exception as e:
        return "failed", f"deliberate difference {difference.id}: {type(e).__name__}: {e}"
    if raised is not None:
        return "failed", f"deliberate difference {difference.id}, but: {raised.message}"
    return "passed", f"deliberate difference: {difference.id}"


def _strict_rest(case: Case, engine: Any, post: dict[str, Any]) -> tuple[str, str]:
    """A REST case as ksqlDB's RestTestExecutor runs and checks it."""
    from hispeed.plan.model import UnsupportedError

    spec = case.exact
    expected = spec.get("responses", [])
    if any("queryProto" in r for r in expected) or spec.get("testPullWithProtoFormat"):
        return "unsupported", "protobuf query responses (/query-stream) are not supported"
    statements = case.statements
    first_query = next(
        (i for i, s in enumerate(statements) if s.startswith("SELECT ")), len(statements)
    )
    if any(not s.startswith("SELECT ") for s in statements[first_query:]):
        return "failed", "invalid case: a statement that is not a query follows a query"
    expected_error = spec.get("expectedError")
    last = statements[-1] if statements else ""
    props = {"auto.offset.reset": "earliest", **case.properties}
    responses: list[tuple[str, Any]] = []
    try:
        admin = statements[:first_query]
        if admin:
            status, body = run_ksql(engine, "\n".join(admin), props)
            if status != 200:
                if not expected_error:
                    return "failed", f"Server failed to execute statement: {body}"
                problem = qtt_checks.rest_error_problem(expected_error, status, body, last)
                return ("failed", problem) if problem else ("passed", "")
            responses += [("admin", entity) for entity in body]
        wait_for_push = (spec.get("inputConditions") or {}).get("waitForActivePushQuery")
        if not wait_for_push:
            for record in spec.get("inputs", []):
                strict.produce(engine, record)
            engine.drain()
        error_seen = False
        for i, sql in enumerate(statements[first_query:]):
            if wait_for_push and i == 0:
                # the push query starts before the inputs (inputConditions): it sees them
                status, body = strict.query_response(
                    engine, sql, props, started=lambda: _produce_all(engine, spec)
                )
            else:
                status, body = strict.query_response(engine, sql, props)
            if status != 200:
                if not expected_error:
                    return "failed", f"Server failed to execute statement: {body}"
                problem = qtt_checks.rest_error_problem(expected_error, status, body, last)
                if problem:
                    return "failed", problem
                error_seen = True
                continue
            responses.append(("query", body))
        if expected_error:
            if not error_seen:
                return "failed", f"expected an error ({expected_error}) but none came"
            if any(kind == "query" for kind, _ in responses):
                return "failed", "Expected last statement to return an error"
            return "passed", ""
        problem = (
            strict.outputs_problem(
                engine, spec, exact=strict.exact_numbers(case.properties), rest=True
            )
            or strict.rest_responses_problem(
                responses,
                expected,
                statements,
                verify_order=bool((spec.get("outputConditions") or {}).get("verifyOrder")),
            )
            or strict.post_problem(engine, post)
        )
    except UnsupportedError as e:
        return "unsupported", str(e)
    except strict.CaseFailureError as e:
        return "failed", str(e)
    except Exception as e:
        return "failed", f"internal error: {type(e).__name__}: {e}"
    return ("failed", problem) if problem else ("passed", "")


def _produce_all(engine: Any, spec: dict[str, Any]) -> None:
    for record in spec.get("inputs", []):
        strict.produce(engine, record)


# -- lenient: the older comparisons, for the side-by-side figure ---------------------------------


def _lenient_qtt(case: Case, engine: Any) -> tuple[str, str]:
    from hispeed.plan.model import UnsupportedError

    spec = case.spec
    expected_error = spec.get("expectedException") or spec.get("expectedError")
    try:
        # one script, as ksqlDB's test runner sends them: errors name the script's line
        engine.execute("\n".join(case.statements))
    except UnsupportedError as e:
        return "unsupported", str(e)
    except HispeedError as e:
        if expected_error:
            problem = lenient.check_error(expected_error, str(e))
            return ("failed", problem) if problem else ("passed", "")
        return "failed", f"statement failed: {e}"
    except Exception as e:  # a bug: report it as a failure of this case only
        return "failed", f"internal error: {type(e).__name__}: {e}"
    try:
        for record in spec.get("inputs", []):
            lenient.produce(engine, record)
            _drain(engine)
    except UnsupportedError as e:
        return "unsupported", str(e)
    except Exception as e:
        return "failed", f"while processing inputs: {type(e).__name__}: {e}"
    return _lenient_verdict(case, engine, expected_error)


def _drain(engine: Any) -> None:
    """Run the case's queries; a query that failed (the engine keeps it in ERROR and goes
    on) is the case's outcome: its exception is raised here."""
    engine.drain()
    for failure in engine.runtime.failed.values():
        raise failure.error


def _lenient_rest(case: Case, engine: Any) -> tuple[str, str]:
    """A REST case: statements one by one, the inputs before the first query, and each
    query's answer compared with the expected response (header schema and rows)."""
    from hispeed.plan.model import UnsupportedError

    spec = case.spec
    expected_error = spec.get("expectedException") or spec.get("expectedError")
    responses = spec.get("responses", [])
    produced = False

    def produce() -> None:
        for record in spec.get("inputs", []):
            lenient.produce(engine, record)
            _drain(engine)

    for i, statement in enumerate(case.statements):
        is_query = statement.lstrip().upper().startswith("SELECT")
        try:
            if is_query and not produced:
                produce()
                produced = True
            expected = responses[i] if i < len(responses) else None
            if is_query:
                want = (expected or {}).get("query")
                header, rows = lenient.query_response(engine, statement, want)
                if want is not None:
                    diff = lenient.compare_query(
                        want, header, rows, spec.get("outputConditions", {}).get("verifyOrder")
                    )
                    if diff:
                        return "failed", diff
            else:
                engine.execute(statement)
        except UnsupportedError as e:
            return "unsupported", str(e)
        except HispeedError as e:
            if expected_error:
                problem = lenient.check_error(expected_error, str(e))
                return ("failed", problem) if problem else ("passed", "")
            return "failed", f"statement {i + 1} failed: {e}"
        except Exception as e:
            return "failed", f"internal error: {type(e).__name__}: {e}"
    if not produced:
        produce()
    return _lenient_verdict(case, engine, expected_error)


def _lenient_verdict(
    case: Case, engine: Any, expected_error: dict[str, Any] | None
) -> tuple[str, str]:
    """After a case ran without a statement error: the expected error, outputs and sources."""
    if expected_error:
        return (
            "failed",
            f"expected an error ({expected_error.get('message', '')!r}) but the "
            "statements succeeded",
        )
    problem = lenient.compare_outputs(engine, case.spec.get("outputs", [])) or lenient.check_post(
        engine, case.spec.get("post", {})
    )
    return ("failed", problem) if problem else ("passed", "")


def _create_topics(case: Case, log: Log, *, outputs: bool = True) -> None:
    """The case's topics, with the partitions it names; ksqlDB's REST test server gives the
    others its test tool's default of 4 (records land on the partition their key hashes to),
    its topology test driver 1. With `outputs`, the expected outputs' topics too (the
    strict runs; the lenient ones keep the older setup)."""
    default = _REST_PARTITIONS if case.rest else 1
    partitions: dict[str, int] = {}
    for t in case.spec.get("topics", []):
        partitions[t["name"]] = int(t.get("partitions", default))
    for record in case.spec.get("inputs", []):
        partitions.setdefault(record["topic"], default)
    for statement in case.statements:
        upper = statement.upper()
        if " AS SELECT" in upper or not upper.lstrip().startswith("CREATE"):
            continue
        match = re.search(r"KAFKA_TOPIC\s*=\s*'([^']*)'", statement, re.IGNORECASE)
        if not match:
            continue
        given = re.search(r"PARTITIONS\s*=\s*(\d+)", statement, re.IGNORECASE)
        if given:
            partitions[match.group(1)] = int(given.group(1))
        else:
            partitions.setdefault(match.group(1), default)
    # ksqlDB's test tools create the topics of the expected outputs too, before the
    # statements run (TestCaseBuilderUtil.getAllTopics), with their default of 4 partitions: a
    # sink written to one of them keeps those partitions
    declared = any(
        " AS SELECT" in s.upper() and re.search(r"PARTITIONS\s*=", s, re.IGNORECASE)
        for s in case.statements
    )
    if outputs and not declared:
        for record in case.spec.get("outputs", []):
            partitions.setdefault(record["topic"], _REST_PARTITIONS)
    for name, count in partitions.items():
        log.create_topic(name, count, exist_ok=True)


@dataclass
class Summary:
    results: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(r.status == "passed" for r in self.results)

    @property
    def skipped(self) -> int:
        return sum(r.status == "skipped" for r in self.results)

    @property
    def failed(self) -> int:
        return sum(r.status in ("failed", "unsupported") for r in self.results)

    def by_file(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in self.results:
            entry = out.setdefault(r.file, {"passed": 0, "failed": 0, "total": 0})
            if r.status == "skipped":
                continue
            entry["total"] += 1
            entry["passed" if r.status == "passed" else "failed"] += 1
        return out

    def by_format(self) -> dict[str, dict[str, int]]:
        """Counts for the core cases (no schema-registry format), for all the
        schema-registry cases, and per schema-registry format (a case naming two formats
        counts for both)."""
        out: dict[str, dict[str, int]] = {}
        for r in self.results:
            groups = ["core"] if not r.formats else ["schema registry", *r.formats]
            for g in groups:
                entry = out.setdefault(g, {"passed": 0, "failed": 0, "skipped": 0, "total": 0})
                entry["total"] += 1
                entry[r.status if r.status in ("passed", "skipped") else "failed"] += 1
        return out

    def as_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failed": self.failed,
            "total": self.passed + self.failed,
            "skipped": self.skipped,
            "by_format": self.by_format(),
            "by_file": self.by_file(),
        }


def run(
    paths: list[Path],
    *,
    name_filter: str | None = None,
    kafka: str | None = None,
    lenient: bool = False,
) -> Iterator[CaseResult]:
    """Every case of the files (or those whose file or name contains `name_filter`), on the
    embedded log or on the Kafka cluster at `kafka`; strict unless `lenient`."""
    differences = qtt_checks.load_differences()
    workdir = Path(tempfile.mkdtemp(prefix="hispeed-qtt-"))
    # a case's failing query is its outcome, reported with the case: not also logged by the
    # runtime manager (which keeps it in ERROR and would retry it)
    manager_log = logging.getLogger("hispeed.runtime.manager")
    level = manager_log.level
    manager_log.setLevel(logging.CRITICAL)
    try:
        for case in load_cases(paths):
            if name_filter and name_filter.lower() not in f"{case.file} {case.name}".lower():
                continue
            yield run_case(case, workdir, kafka, lenient=lenient, differences=differences)
    finally:
        manager_log.setLevel(level)
        shutil.rmtree(workdir, ignore_errors=True)

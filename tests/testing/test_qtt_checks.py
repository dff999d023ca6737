"""Expected errors, post-conditions and the deliberate-difference list, checked as ksqlDB's
test tools check them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hispeed.testing.qtt_checks import (
    MAX_DIFFERENCES,
    PARSE_FAILED,
    STATEMENT_FAILED,
    STREAMS_FAILED,
    RaisedError,
    SourceFacts,
    TopicFacts,
    error_problem,
    load_differences,
    post_problem,
    rest_error_problem,
    schema_columns,
    schema_problem,
)

KSQL_EXCEPTION = "io.confluent.ksql.util.KsqlException"


def test_an_error_matches_its_class_or_a_superclass() -> None:
    raised = RaisedError(PARSE_FAILED, "line 1:5: Syntax Error", "CREATE X;")
    assert error_problem({"type": STATEMENT_FAILED}, raised, "CREATE X;") == ""
    assert error_problem({"type": KSQL_EXCEPTION}, raised, "CREATE X;") == ""
    parse_expected = {"type": PARSE_FAILED}
    statement_error = RaisedError(STATEMENT_FAILED, "nope", "CREATE X;")
    assert "expected a" in error_problem(parse_expected, statement_error, "CREATE X;")
    runtime = RaisedError(STREAMS_FAILED, "overflow")
    assert "expected a" in error_problem({"type": STATEMENT_FAILED}, runtime, "CREATE X;")


def test_the_message_is_contained_case_sensitively_with_the_statement_after_it() -> None:
    raised = RaisedError(STATEMENT_FAILED, "Source `X` does not exist.", "SELECT * FROM X;")
    assert error_problem({"message": "does not exist"}, raised, "SELECT * FROM X;") == ""
    assert error_problem({"message": "DOES NOT EXIST"}, raised, "SELECT * FROM X;")
    # ksqlDB's KsqlStatementException reports the statement after the message
    whole = {"message": "does not exist.\nStatement: SELECT * FROM X;"}
    assert error_problem(whole, raised, "SELECT * FROM X;") == ""
    assert error_problem({"message": ""}, raised, "SELECT * FROM X;") == ""


def test_the_failing_statement_must_be_the_last() -> None:
    raised = RaisedError(STATEMENT_FAILED, "bad", "CREATE A;")
    assert "earlier statement" in error_problem({"message": "bad"}, raised, "CREATE B;")


def test_a_cause_is_checked_when_the_case_names_one() -> None:
    raised = RaisedError(STREAMS_FAILED, "Exception caught in process", cause_message="boom")
    expected = {"type": STREAMS_FAILED, "cause": STREAMS_FAILED, "causeMessage": "boom"}
    assert "cause" in error_problem(expected, raised, "x")  # no cause class known


def test_rest_errors_by_entity_type_status_and_statement() -> None:
    body = {
        "@type": "statement_error",
        "message": "line 1:24: Syntax Error",
        "statementText": "SELECT * FROM S;",
    }
    statement_type = "io.confluent.ksql.rest.entity.KsqlStatementErrorMessage"
    generic_type = "io.confluent.ksql.rest.entity.KsqlErrorMessage"
    want = {"type": statement_type, "message": "Syntax Error", "status": 400}
    assert rest_error_problem(want, 400, body, "SELECT * FROM S;") == ""
    assert "status" in rest_error_problem(want, 500, body, "SELECT * FROM S;")
    assert "statement" in rest_error_problem(want, 400, body, "SELECT 2;")
    generic = {**body, "@type": "generic_error"}
    assert rest_error_problem({"type": generic_type}, 400, generic, "x") == ""
    assert "expected a" in rest_error_problem(want, 400, generic, "SELECT * FROM S;")


def test_schemas_compare_as_column_lists() -> None:
    ours = "`ID` STRING KEY, `V` ARRAY<STRUCT<`A` INTEGER>>, `D` DECIMAL(6, 4)"
    assert schema_columns("id VARCHAR PRIMARY KEY, v ARRAY<STRUCT<a INT>>, d DECIMAL(6,4)") == (
        schema_columns(ours)
    )
    assert schema_columns("`id` STRING KEY") != schema_columns("ID STRING KEY")
    assert schema_columns("ID STRING KEY") != schema_columns("ID STRING")


def _facts(**kw: object) -> dict[str, SourceFacts]:
    fields: dict[str, object] = {
        "name": "OUT",
        "type": "TABLE",
        "schema": "`K` STRING PRIMARY KEY, `C` BIGINT",
        "key_format": "KAFKA",
        "value_format": "JSON",
        "window_type": None,
        "window_size_ms": None,
        "key_features": set(),
        "value_features": set(),
        "is_source": False,
    }
    fields.update(kw)
    return {"OUT": SourceFacts(**fields)}  # type: ignore[arg-type]


def test_post_conditions_check_formats_windows_features_and_topics() -> None:
    source = {"name": "OUT", "type": "table", "keyFormat": {"format": "KAFKA"}}
    assert post_problem({"sources": [source]}, _facts(), []) == ""
    # a key format given without a window means an unwindowed key
    windowed = _facts(window_type="SESSION")
    assert "window type" in post_problem({"sources": [source]}, windowed, [])
    assert "key format" in post_problem({"sources": [source]}, _facts(key_format="JSON"), [])
    features = {"sources": [{"name": "OUT", "type": "table", "valueFeatures": ["UNWRAP_SINGLES"]}]}
    assert "value features" in post_problem(features, _facts(), [])
    blacklist = {"topics": {"blacklist": ".*-repartition"}}
    assert "blacklisted" in post_problem(blacklist, _facts(), [TopicFacts("q-repartition", 1)])
    topic = {"name": "OUT", "keyFormat": {"format": "KAFKA"}, "valueFormat": {"format": "JSON"}}
    facts = [TopicFacts("OUT", 1, {"format": "KAFKA"}, {"format": "JSON"})]
    assert post_problem({"topics": {"topics": [topic]}}, _facts(), facts) == ""
    assert "partitions" in post_problem(
        {"topics": {"topics": [{**topic, "partitions": 4}]}}, _facts(), facts
    )


RECORD = {
    "type": "record",
    "name": "OutputKey",
    "namespace": "io.confluent.ksql.avro_schemas",
    "fields": [
        {
            "name": "F1",
            "type": ["null", {"type": "record", "name": "OutputKey_F1", "fields": []}],
            "default": None,
        }
    ],
}


def test_registered_schemas_are_compared_with_the_post_conditions() -> None:
    topic = {"name": "OUT", "keyFormat": {"format": "AVRO"}, "valueSchema": RECORD}
    facts = TopicFacts("OUT", 1, {"format": "AVRO"}, value_schema=("AVRO", json.dumps(RECORD)))
    assert post_problem({"topics": {"topics": [topic]}}, _facts(), [facts]) == ""
    other = {**RECORD, "fields": [{"name": "F1", "type": "int"}]}
    facts.value_schema = ("AVRO", json.dumps(other))
    problem = post_problem({"topics": {"topics": [topic]}}, _facts(), [facts])
    assert problem.startswith("post: topic OUT valueSchema: registered")
    facts.value_schema = None
    assert "no schema is registered" in post_problem(
        {"topics": {"topics": [topic]}}, _facts(), [facts]
    )
    assert schema_problem(None, None) == ""  # nothing asserted: nothing checked


def test_schemas_compare_by_meaning_not_layout() -> None:
    # members in another order, the nested record's namespace written out: the same Avro
    nested = json.loads(json.dumps(RECORD))
    nested["fields"][0]["type"][1]["namespace"] = "io.confluent.ksql.avro_schemas"
    reordered = dict(reversed(list(nested.items())))
    assert schema_problem(RECORD, ("AVRO", json.dumps(reordered))) == ""
    # ...but another namespace is another name
    nested["fields"][0]["type"][1]["namespace"] = "elsewhere"
    assert schema_problem(RECORD, ("AVRO", json.dumps(nested))) != ""
    # JSON keeps a number's kind apart from a boolean and an integer from a float
    want = {"type": "integer", "connect.index": 0}
    assert schema_problem(want, ("JSON", '{"connect.index":0,"type":"integer"}')) == ""
    assert schema_problem(want, ("JSON", '{"connect.index":false,"type":"integer"}')) != ""
    assert schema_problem(want, ("JSON", '{"connect.index":0.0,"type":"integer"}')) != ""
    # Protobuf as what protoc compiles the texts to, however laid out
    proto = 'syntax = "proto3";\n\nmessage M {\n  int32 A = 1;\n  string B = 2;\n}\n'
    assert (
        schema_problem(proto, ("PROTOBUF", 'syntax="proto3"; message M {int32 A=1; string B=2;}'))
        == ""
    )
    assert (
        schema_problem(proto, ("PROTOBUF", 'syntax="proto3"; message M {int64 A=1; string B=2;}'))
        != ""
    )
    assert "a PROTOBUF schema is registered" in schema_problem(RECORD, ("PROTOBUF", proto))


def test_the_difference_list_is_short_and_every_entry_has_a_reason(tmp_path: Path) -> None:
    entries = load_differences()
    assert 1 <= len(entries) <= MAX_DIFFERENCES
    assert all(e.reason.strip() for e in entries)
    assert any(e.covers("joins.json", "self join") for e in entries)
    too_many = {
        "differences": [
            {"id": str(i), "reason": "r", "file": "f", "case": "c"}
            for i in range(MAX_DIFFERENCES + 1)
        ]
    }
    path = tmp_path / "d.json"
    path.write_text(json.dumps(too_many))
    with pytest.raises(ValueError, match="more than"):
        load_differences(path)

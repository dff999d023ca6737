"""The conformance runner, and the floor that the count of passing ksqlDB cases keeps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hispeed.testing import qtt

ROOT = Path(__file__).parents[2]
SUITE = ROOT.parent / "shared" / "conformance" / "ksql-qtt"
FLOOR = ROOT / "conformance-floor.json"


def _write(tmp_path: Path, tests: list[dict[str, object]]) -> Path:
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"tests": tests}))
    return path


def test_a_passing_a_failing_and_an_expected_error_case(tmp_path: Path) -> None:
    create = (
        "CREATE STREAM TEST (K STRING KEY, ID BIGINT) WITH (kafka_topic='test_topic', "
        "value_format='JSON');"
    )
    path = _write(
        tmp_path,
        [
            {
                "name": "projects",
                "statements": [create, "CREATE STREAM S1 AS SELECT K, ID * 2 AS X FROM TEST;"],
                "inputs": [{"topic": "test_topic", "key": "a", "value": {"id": 2}}],
                "outputs": [{"topic": "S1", "key": "a", "value": {"X": 4}}],
            },
            {
                "name": "wrong expectation",
                "statements": [create, "CREATE STREAM S1 AS SELECT K, ID FROM TEST;"],
                "inputs": [{"topic": "test_topic", "key": "a", "value": {"id": 2}}],
                "outputs": [{"topic": "S1", "key": "a", "value": {"ID": 3}}],
            },
            {
                "name": "error",
                "statements": [create, "CREATE STREAM S1 AS SELECT K, NOPE FROM TEST;"],
                "expectedException": {
                    "type": "io.confluent.ksql.util.KsqlStatementException",
                    "message": "NOPE' cannot be resolved",
                },
            },
            {
                "name": "sr",
                "format": ["AVRO", "JSON"],
                "statements": [
                    create.replace("'JSON'", "'{FORMAT}'"),
                    "CREATE STREAM S1 AS SELECT * FROM TEST;",
                ],
                "inputs": [],
                "outputs": [],
            },
        ],
    )
    results = {r.name: r for r in qtt.run([path])}
    assert results["projects"].status == "passed"
    assert results["wrong expectation"].status == "failed"
    assert "value {'ID': 3} != {'ID': 2}" in results["wrong expectation"].detail
    assert results["error"].status == "passed"
    assert results["sr - AVRO"].status == "skipped"
    assert results["sr - JSON"].status == "passed"


def test_rest_cases_run_each_statement_on_its_own_over_four_partitions(tmp_path: Path) -> None:
    rest = tmp_path / "rest-query-validation-tests"
    rest.mkdir()
    create = "CREATE STREAM S (K STRING KEY, ID INT) WITH (kafka_topic='t', value_format='JSON');"
    path = rest / "cases.json"
    path.write_text(
        json.dumps(
            {
                "tests": [
                    {
                        "name": "syntax error",
                        "statements": [create, "SELECT * FROM S LIMIT heh;"],
                        "expectedError": {"message": "line 1:23: Syntax Error\n\nStatement: x"},
                    },
                    {
                        "name": "partition of the key",
                        "statements": [
                            create,
                            "SELECT K, ROWPARTITION FROM S EMIT CHANGES LIMIT 1;",
                        ],
                        "inputs": [{"topic": "t", "key": "x", "value": {"id": 1}}],
                        "responses": [
                            {"admin": {"@type": "currentStatus"}},
                            {
                                "query": [
                                    {"header": {"schema": "`K` STRING, `ROWPARTITION` INTEGER"}},
                                    {"row": {"columns": ["x", 2]}},  # murmur2("x") % 4
                                ]
                            },
                        ],
                    },
                ]
            }
        )
    )
    results = {r.name: r for r in qtt.run([path])}
    assert results["syntax error"].status == "passed", results["syntax error"].detail
    assert results["partition of the key"].status == "passed", results[
        "partition of the key"
    ].detail


@pytest.mark.slow
def test_conformance_does_not_drop_below_the_floor() -> None:
    assert SUITE.is_dir(), f"the conformance cases are expected at {SUITE}"
    summary = qtt.Summary()
    summary.results.extend(qtt.run([SUITE]))
    floor = json.loads(FLOOR.read_text())["passed"]
    assert summary.passed >= floor, (
        f"{summary.passed} conformance cases pass, fewer than the floor of {floor}"
    )

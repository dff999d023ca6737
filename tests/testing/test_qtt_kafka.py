"""The conformance runner on the Kafka backend: a fixed subset of ksqlDB's cases (windows,
joins, formats, headers, INSERT INTO, suppression) must end exactly as on the embedded log,
case by case. `hispeed qtt --kafka HOST:PORT` runs all of them on demand."""

from __future__ import annotations

from pathlib import Path

import pytest

from hispeed.testing import qtt as runner
from hispeed.testing.services import Service

pytestmark = [pytest.mark.services, pytest.mark.kafka, pytest.mark.slow]

CONFORMANCE = Path(__file__).parents[2].parent / "shared" / "conformance" / "ksql-qtt"
SUBSET = [
    "query-validation-tests/tumbling-windows.json",
    "query-validation-tests/hopping-windows.json",
    "query-validation-tests/session-windows.json",
    "query-validation-tests/window-bounds.json",
    "query-validation-tests/stream-table-join.json",
    "query-validation-tests/table-table-join.json",
    "query-validation-tests/insert-into.json",
    "query-validation-tests/headers.json",
    "query-validation-tests/kafka.json",
    "query-validation-tests/suppress.json",
    "query-validation-tests/timestamp-extractor.json",
    "query-validation-tests/count.json",
    "rest-query-validation-tests/scalable-push-queries.json",
]


def statuses(kafka: str | None) -> dict[tuple[str, str], str]:
    paths = [CONFORMANCE / f for f in SUBSET]
    return {(r.file, r.name): r.status for r in runner.run(paths, kafka=kafka)}


def test_a_subset_of_the_conformance_cases_ends_as_on_the_embedded_log(
    kafka_server: Service,
) -> None:
    if not CONFORMANCE.is_dir():
        pytest.fail(f"the conformance files are not at {CONFORMANCE}")
    embedded = statuses(None)
    on_kafka = statuses(f"{kafka_server.host}:{kafka_server.port}")
    assert sum(s == "passed" for s in embedded.values()) >= 80
    differ = {
        case: (embedded[case], on_kafka.get(case))
        for case in embedded
        if embedded[case] != on_kafka.get(case)
    }
    assert not differ, "cases that end otherwise on Kafka (embedded, kafka): " + "".join(
        f"\n  {file} :: {name}: {a} vs {b}" for (file, name), (a, b) in sorted(differ.items())
    )

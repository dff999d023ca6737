"""The gRPC service against a real server on a loopback port: Produce, Query, Execute, auth."""

from __future__ import annotations

import json
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest

from hispeed.config import Settings
from hispeed.engine import Engine
from hispeed.errors import HispeedError
from hispeed.server.auth import basic_header
from hispeed.server.grpc_service import ERROR_TRAILER, GrpcServer
from hispeed.server.proto import hispeed_pb2 as pb
from hispeed.server.proto import hispeed_pb2_grpc as pb_grpc
from hispeed.testing.services import free_port
from tests.conftest import wait_for

READINGS = (
    "CREATE STREAM readings (id STRING KEY, x DOUBLE) "
    "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
)


@dataclass
class Running:
    engine: Engine
    server: GrpcServer
    stub: pb_grpc.HispeedStub
    channel: grpc.Channel

    def values(self, topic: str) -> list[Any]:
        table = self.engine.log.read_table(topic, 0)
        return [None if v is None else json.loads(v) for v in table.column("value").to_pylist()]


Factory = Callable[..., Running]


@pytest.fixture
def grpc_factory(tmp_path: Path) -> Iterator[Factory]:
    """Start an engine and its gRPC service with settings overrides; all stopped at the end."""
    started: list[Running] = []

    def start(**overrides: Any) -> Running:
        data_dir = tmp_path / f"data{len(started)}"
        settings = Settings.load(
            None, env={}, data_dir=data_dir, grpc_port=free_port(), fsync="never", **overrides
        )
        engine = Engine(data_dir, fsync="never")
        engine.start()
        server = GrpcServer(engine, settings)
        server.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{settings.grpc_port}")
        running = Running(engine, server, pb_grpc.HispeedStub(channel), channel)
        started.append(running)
        return running

    yield start
    for r in started:
        r.channel.close()
        r.server.stop(0)
        r.engine.close()


@pytest.fixture
def running(grpc_factory: Factory) -> Running:
    return grpc_factory()


def _json(value: Any, key: str | None = None) -> pb.Record:
    record = pb.Record(json=json.dumps(value))
    if key is not None:
        record.key = key
    return record


def test_produce_streams_requests_into_the_log(running: Running) -> None:
    requests = [
        pb.ProduceRequest(topic="readings", records=[_json({"x": 1}, "d1"), _json({"x": 2}, "d2")]),
        pb.ProduceRequest(records=[_json({"x": 3}), pb.Record(raw=b'{"x": 4}', key_bytes=b"\x01")]),
        pb.ProduceRequest(topic="other", records=[pb.Record(tombstone=True, key="d1")]),
    ]
    response = running.stub.Produce(iter(requests), timeout=10)
    assert response.records_written == 5
    assert list(response.errors) == []
    assert [(r.request, r.topic, list(r.offsets)) for r in response.results] == [
        (0, "readings", [0, 1]),
        (1, "readings", [2, 3]),
        (2, "other", [0]),
    ]
    table = running.engine.log.read_table("readings", 0)
    assert table.column("key").to_pylist() == [b"d1", b"d2", None, b"\x01"]
    assert table.column("value").to_pylist() == [b'{"x":1}', b'{"x":2}', b'{"x":3}', b'{"x": 4}']
    assert running.engine.log.read_table("other", 0).column("value").to_pylist() == [None]
    assert running.server.stats()["records_in"] == 5


def test_a_bad_record_writes_nothing_of_its_request(running: Running) -> None:
    requests = [
        pb.ProduceRequest(topic="readings", records=[_json({"x": 1})]),
        pb.ProduceRequest(
            records=[
                _json({"x": 2}),
                pb.Record(json='{"x": 3'),
                pb.Record(key="k"),
                pb.Record(json="{}", tombstone=True),
            ]
        ),
        pb.ProduceRequest(records=[_json({"x": 5})]),
    ]
    response = running.stub.Produce(iter(requests), timeout=10)
    errors = [(e.request, e.record, e.message) for e in response.errors]
    assert [(r, i) for r, i, _ in errors] == [(1, 1), (1, 2), (1, 3)]
    assert errors[0][2].startswith("record 1: the value is not JSON")
    assert errors[1][2] == "record 2 has no value: set json, raw, or tombstone"
    assert errors[2][2] == "record 3 has a value and tombstone set: choose one"
    assert [r.request for r in response.results] == [0, 2]
    assert response.records_written == 2
    assert running.values("readings") == [{"x": 1}, {"x": 5}]


def test_a_request_without_a_topic_or_with_a_missing_partition_is_refused(
    running: Running,
) -> None:
    requests = [
        pb.ProduceRequest(records=[_json({"x": 1})]),
        pb.ProduceRequest(
            topic="readings", records=[_json({"x": 1}), pb.Record(json="2", partition=7)]
        ),
    ]
    response = running.stub.Produce(iter(requests), timeout=10)
    assert [(e.request, e.record) for e in response.errors] == [(0, -1), (1, -1)]
    assert response.errors[0].message == "request 0 names no topic"
    assert "records[1].partition 7 does not exist" in response.errors[1].message
    assert response.records_written == 0
    assert running.values("readings") == []


def test_unknown_topics_are_refused_when_topics_are_not_created(grpc_factory: Factory) -> None:
    running = grpc_factory(auto_create_topics=False)
    request = pb.ProduceRequest(topic="nowhere", records=[_json({"x": 1})])
    response = running.stub.Produce(iter([request]), timeout=10)
    assert "topic 'nowhere' does not exist" in response.errors[0].message
    assert "nowhere" not in running.engine.log.list_topics()


def test_a_push_query_streams_rows_produced_after_it_started(running: Running) -> None:
    running.engine.execute(READINGS)
    running.stub.Produce(
        iter([pb.ProduceRequest(topic="readings", records=[_json({"x": 9}, "before")])])
    )
    call = running.stub.Query(
        pb.QueryRequest(sql="SELECT id, x FROM readings WHERE x > 1 EMIT CHANGES;"), timeout=30
    )
    header = next(call).header
    assert list(header.column_names) == ["ID", "X"]
    assert list(header.column_types) == ["STRING", "DOUBLE"]
    assert not header.pull
    rows: queue.Queue[list[Any]] = queue.Queue()

    def read() -> None:
        try:
            for message in call:
                rows.put(json.loads(message.row.json))
        except grpc.RpcError:
            pass  # cancelled below

    reader = threading.Thread(target=read)
    reader.start()
    records = [_json({"x": 0.5}, "a"), _json({"x": 2.5}, "b"), _json({"x": 3.5}, "c")]
    running.stub.Produce(iter([pb.ProduceRequest(topic="readings", records=records)]))
    assert rows.get(timeout=10) == ["b", 2.5]
    assert rows.get(timeout=10) == ["c", 3.5]
    assert running.server.stats()["queries_open"] == 1
    call.cancel()
    reader.join(10)
    assert rows.empty()
    wait_for(lambda: running.server.stats()["queries_open"] == 0)


def test_a_pull_query_answers_its_rows_then_ends(running: Running) -> None:
    running.engine.execute(
        READINGS + "CREATE TABLE peaks AS SELECT id, MAX(x) AS peak FROM readings GROUP BY id;"
    )
    records = [_json({"x": 1.0}, "a"), _json({"x": 4.0}, "a"), _json({"x": 2.0}, "b")]
    running.stub.Produce(iter([pb.ProduceRequest(topic="readings", records=records)]))
    running.engine.drain()

    def rows() -> list[Any]:
        messages = list(running.stub.Query(pb.QueryRequest(sql="SELECT * FROM peaks;")))
        header = messages[0].header
        assert header.pull
        assert list(header.key_columns) == ["ID"]
        return sorted(json.loads(m.row.json) for m in messages[1:])

    assert wait_for(lambda: rows() == [["a", 4.0], ["b", 2.0]])


def test_a_bad_query_ends_with_its_error(running: Running) -> None:
    with pytest.raises(grpc.RpcError) as caught:
        list(running.stub.Query(pb.QueryRequest(sql="SELECT * FROM nowhere EMIT CHANGES;")))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "NOWHERE" in caught.value.details()


def test_execute_answers_ksqldb_entities(running: Running) -> None:
    response = running.stub.Execute(pb.ExecuteRequest(sql=READINGS + "SHOW STREAMS;"))
    created, listed = json.loads(response.json)
    assert created["@type"] == "currentStatus"
    assert created["commandStatus"]["status"] == "SUCCESS"
    assert "READINGS" in [s["name"] for s in listed["streams"]]
    assert "READINGS" in running.engine.catalog.sources


def test_execute_of_a_bad_statement_names_line_and_column(running: Running) -> None:
    sql = READINGS + "\nCREATE STREAM s AS SELEC x FROM readings;"
    with pytest.raises(grpc.RpcError) as caught:
        running.stub.Execute(pb.ExecuteRequest(sql=sql))
    error = caught.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("line 2:")
    trailer = dict(error.trailing_metadata())[ERROR_TRAILER]
    body = json.loads(trailer)
    assert body["@type"] == "statement_error"
    assert body["error_code"] == 40001
    assert [e["@type"] for e in body["entities"]] == ["currentStatus"]  # the first one ran
    assert running.server.stats()["errors"] == 1


@pytest.fixture
def credentials_file(tmp_path: Path) -> Path:
    path = tmp_path / "credentials"
    path.write_text("basic alice s3cret\nbearer tok-1\n")
    return path


@pytest.mark.parametrize(
    ("authorization", "accepted"),
    [
        (None, False),
        ("Bearer nope", False),
        (basic_header("alice", "wrong"), False),
        (basic_header("alice", "s3cret"), True),
        ("Bearer tok-1", True),
    ],
)
def test_auth_on_requires_a_listed_credential(
    grpc_factory: Factory, credentials_file: Path, authorization: str | None, accepted: bool
) -> None:
    running = grpc_factory(auth_file=str(credentials_file))
    metadata = [("authorization", authorization)] if authorization else []
    calls: list[Callable[[], Any]] = [
        lambda: running.stub.Produce(
            iter([pb.ProduceRequest(topic="t", records=[_json(1)])]), metadata=metadata
        ),
        lambda: running.stub.Execute(pb.ExecuteRequest(sql="SHOW STREAMS;"), metadata=metadata),
        lambda: list(
            running.stub.Query(
                pb.QueryRequest(sql="PRINT 't' FROM BEGINNING LIMIT 1;"), metadata=metadata
            )
        ),
    ]
    for call in calls:
        if accepted:
            call()
        else:
            with pytest.raises(grpc.RpcError) as caught:
                call()
            assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
            assert "unauthenticated" in caught.value.details()
    assert ("t" in running.engine.log.list_topics()) == accepted


def test_auth_off_needs_no_credentials(running: Running) -> None:
    assert json.loads(running.stub.Execute(pb.ExecuteRequest(sql="SHOW STREAMS;")).json)


def test_an_oversized_message_is_refused(grpc_factory: Factory) -> None:
    running = grpc_factory(max_request_bytes=4096)
    big = pb.ProduceRequest(topic="big", records=[_json({"pad": "x" * 5000})])
    with pytest.raises(grpc.RpcError) as caught:
        running.stub.Produce(iter([big]), timeout=10)
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "big" not in running.engine.log.list_topics()
    small = pb.ProduceRequest(topic="big", records=[_json({"pad": "x" * 100})])
    assert running.stub.Produce(iter([small]), timeout=10).records_written == 1


def test_a_port_in_use_is_a_clear_error(running: Running, tmp_path: Path) -> None:
    settings = Settings.load(
        None, env={}, data_dir=tmp_path, grpc_port=int(running.server.address.split(":")[1])
    )
    with pytest.raises(HispeedError, match=r"cannot listen on .*: choose another grpc_port"):
        GrpcServer(running.engine, settings).start()


def test_push_queries_per_client_are_limited(grpc_factory: Factory) -> None:
    """Each open Query holds a worker thread: one client may not hold them all."""
    running = grpc_factory(max_push_queries_per_client=1)
    running.stub.Execute(pb.ExecuteRequest(sql=READINGS))
    push = pb.QueryRequest(sql="SELECT * FROM readings EMIT CHANGES;")
    first = running.stub.Query(push, timeout=30)
    assert list(next(first).header.column_names) == ["ID", "X"]
    with pytest.raises(grpc.RpcError) as caught:
        next(running.stub.Query(push, timeout=30))
    assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "max_push_queries_per_client" in caught.value.details()
    # a pull query is not a push query
    assert next(running.stub.Query(pb.QueryRequest(sql="SELECT * FROM readings;"))).header.pull
    first.cancel()

    def second_opens() -> bool:
        try:
            call = running.stub.Query(push, timeout=30)
            next(call)
        except grpc.RpcError:
            return False
        call.cancel()
        return True

    assert wait_for(second_opens)

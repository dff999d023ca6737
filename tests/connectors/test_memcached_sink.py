"""The memcached sink against real memcached servers: set/add/replace/cas, TTLs, bad
records, two servers hashed as pymemcache's HashClient hashes, and a restart mid-stream.

Values are read back with pymemcache (and TTLs with memcached's own meta command), never
with the code under test."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from pymemcache.client.base import Client
from pymemcache.client.hash import HashClient

from hispeed.connectors.base import ConnectorError, SinkBatch, connector_class
from hispeed.connectors.memcached import MemcachedSink
from hispeed.engine import Engine
from hispeed.memcache.client import MemcachedCluster
from hispeed.runtime.task import PROCESSING_LOG
from hispeed.testing.services import MemcachedProcess, Service
from hispeed.testing.wait import wait_for

pytestmark = pytest.mark.services


def batch_of(rows: list[dict[str, Any] | None], keys: list[Any]) -> SinkBatch:
    n = len(rows)
    return SinkBatch(
        topic="t",
        partition=0,
        offsets=list(range(n)),
        timestamps=[1_700_000_000_000] * n,
        keys=keys,
        rows=rows,
        key_columns=["ID"],
    )


@pytest.fixture
def client(memcached_server: Service) -> Iterator[Client]:
    # each test uses keys of its own (flush_all would also drop what is set in its second)
    c = Client((memcached_server.host, memcached_server.port), default_noreply=False)
    yield c
    c.close()


@pytest.fixture
def sinks(memcached_server: Service) -> Iterator[Any]:
    made: list[MemcachedSink] = []

    def make(**config: str) -> MemcachedSink:
        props = {"memcached.servers": memcached_server.bootstrap}
        props |= {k.replace("_", "."): v for k, v in config.items()}
        sink = MemcachedSink("mc_sink", props)
        sink.start()
        made.append(sink)
        return sink

    yield make
    for s in made:
        s.stop()


def meta_ttl(port: int, key: str) -> int:
    """The seconds `key` has left, from memcached's meta get (`mg KEY t`: -1 for none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"mg {key} t\r\n".encode())
        reply = s.recv(1024).decode()
    assert reply.startswith("HD"), reply
    return int(next(p[1:] for p in reply.split() if p.startswith("t")))


def test_the_sink_answers_to_its_class_names() -> None:
    for name in ("memcached", "memcached-sink", "MemcachedSink"):
        assert connector_class(name, "SINK") is MemcachedSink


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"memcached.mode": "append"}, "'memcached.mode' must be one of set, add, replace, cas"),
        ({"memcached.servers": "host:port"}, "is not a memcached server"),
        ({"ttl.seconds": "soon"}, "'ttl.seconds' must be a whole number"),
        ({"memcached.mode": "cas", "value.column": "V"}, "takes no 'value.column'"),
        ({"max.value.bytes": "10"}, "'max.value.bytes' must be at least"),
    ],
)
def test_a_bad_configuration_is_an_error_naming_the_connector(
    config: dict[str, str], message: str
) -> None:
    with pytest.raises(ConnectorError, match="mc_sink") as e:
        MemcachedSink("mc_sink", config)
    assert message in str(e.value)


def test_set_writes_the_row_as_json_or_a_column_and_a_tombstone_deletes(
    sinks: Any, client: Client, memcached_server: Service
) -> None:
    sink = sinks(key_template="dev:{KEY}", ttl_seconds="300")
    rows: list[dict[str, Any] | None] = [
        {"ID": "d1", "TEMP": 21.5, "OK": True},
        {"ID": "d2", "TEMP": 19, "OK": False},
        {"ID": "d1", "TEMP": 22.0, "OK": True},  # the last of a key wins
    ]
    b = batch_of(rows, ["d1", "d2", "d1"])
    sink.write(b)
    assert b.failures == []
    assert json.loads(client.get("dev:d1")) == {"ID": "d1", "TEMP": 22.0, "OK": True}
    assert json.loads(client.get("dev:d2")) == {"ID": "d2", "TEMP": 19, "OK": False}
    assert 290 <= meta_ttl(memcached_server.port, "dev:d1") <= 300
    sink.write(batch_of([None], ["d2"]))
    assert client.get("dev:d2") is None

    text = sinks(key_template="temp:{ID}", value_column="TEMP")
    text.write(batch_of([{"ID": "d3", "TEMP": 7.25}], ["d3"]))
    assert client.get("temp:d3") == b"7.25"
    assert meta_ttl(memcached_server.port, "temp:d3") == -1  # no ttl: kept until evicted


def test_add_keeps_what_is_there_and_replace_only_what_is_there(sinks: Any, client: Client) -> None:
    client.set("k:old", b"before")
    adder = sinks(memcached_mode="add", key_template="k:{KEY}", value_column="V")
    b = batch_of(
        [{"ID": "old", "V": "x"}, {"ID": "new", "V": "first"}, {"ID": "new", "V": "second"}],
        ["old", "new", "new"],
    )
    adder.write(b)
    assert b.failures == []
    assert client.get("k:old") == b"before"
    assert client.get("k:new") == b"first"  # add: the first record of a key wins
    assert adder.not_stored == 2

    replacer = sinks(memcached_mode="replace", key_template="k:{KEY}", value_column="V")
    # a key's records apply in order: deleted, then replace finds nothing
    b = batch_of(
        [{"ID": "old", "V": "r1"}, None, {"ID": "old", "V": "r2"}, {"ID": "gone", "V": "z"}],
        ["old", "old", "old", "gone"],
    )
    replacer.write(b)
    assert b.failures == []
    assert client.get("k:old") is None
    assert client.get("k:gone") is None
    replacer.write(batch_of([{"ID": "new", "V": "third"}], ["new"]))
    assert client.get("k:new") == b"third"


def test_cas_merges_columns_and_keeps_a_change_made_between_read_and_write(
    sinks: Any, client: Client, memcached_server: Service, monkeypatch: pytest.MonkeyPatch
) -> None:
    sink = sinks(memcached_mode="cas", key_template="m:{KEY}")
    sink.write(batch_of([{"ID": "a", "X": 1}], ["a"]))  # absent: added as it is
    assert json.loads(client.get("m:a")) == {"ID": "a", "X": 1}
    client.set("m:b", json.dumps({"ID": "b", "OTHER": "kept"}).encode())

    # another writer changes m:a after the sink read it: the sink's cas sees EXISTS, reads
    # again and merges into the other writer's value
    real_gets = MemcachedCluster.gets
    calls = 0

    def gets_then_interfere(self: MemcachedCluster, keys: Any) -> Any:
        nonlocal calls
        found = real_gets(self, keys)
        calls += 1
        if calls == 1:
            client.set("m:a", json.dumps({"ID": "a", "X": 1, "Z": "theirs"}).encode())
        return found

    monkeypatch.setattr(MemcachedCluster, "gets", gets_then_interfere)
    b = batch_of([{"ID": "a", "Y": 2}, {"ID": "b", "X": 5}], ["a", "b"])
    sink.write(b)
    assert b.failures == []
    assert calls == 2
    assert json.loads(client.get("m:a")) == {"ID": "a", "X": 1, "Z": "theirs", "Y": 2}
    assert json.loads(client.get("m:b")) == {"ID": "b", "OTHER": "kept", "X": 5}

    client.set("m:c", b"not json")
    b = batch_of([{"ID": "c", "X": 1}], ["c"])
    sink.write(b)
    assert [i for i, _ in b.failures] == [0]
    assert "holds no JSON object" in b.failures[0][1]


def test_records_memcached_cannot_hold_fail_alone(sinks: Any, client: Client) -> None:
    sink = sinks(key_template="{KEY}", value_column="V")
    big = "x" * (1024 * 1024 + 10)
    rows = [
        {"ID": "ok1", "V": "a"},
        {"ID": "k" * 251, "V": "long key"},
        {"ID": "with space", "V": "b"},
        {"ID": "huge", "V": big},
        {"ID": None, "V": "no key"},
        {"ID": "ok2", "V": "c"},
    ]
    b = batch_of(rows, [r["ID"] for r in rows])  # type: ignore[index]
    sink.write(b)
    failed = dict(b.failures)
    assert sorted(failed) == [1, 2, 3, 4]
    assert "over memcached's 250" in failed[1]
    assert "space" in failed[2]
    assert "max.value.bytes" in failed[3]
    assert client.get_many(["ok1", "ok2"]) == {"ok1": b"a", "ok2": b"c"}

    # past the sink's own check, memcached's refusal (its item size, 1 MB) fails the record
    lax = sinks(key_template="{KEY}", value_column="V", max_value_bytes=str(4 * 1024 * 1024))
    b = batch_of([{"ID": "huge", "V": big}, {"ID": "ok3", "V": "d"}], ["huge", "ok3"])
    lax.write(b)
    assert [i for i, _ in b.failures] == [0]
    assert "SERVER_ERROR" in b.failures[0][1]
    assert client.get("ok3") == b"d"


def test_two_servers_each_hold_their_share_and_a_hashclient_finds_every_key(
    memcached_process: MemcachedProcess,
) -> None:
    other = MemcachedProcess(memcached_process.binary)
    other.start()
    try:
        servers = f"{memcached_process.address},{other.address}"
        sink = MemcachedSink("mc_sink", {"memcached.servers": servers, "value.column": "V"})
        sink.start()
        keys = [f"key-{i}" for i in range(400)]
        sink.write(batch_of([{"ID": k, "V": k.upper()} for k in keys], keys))
        sink.stop()
        counts = []
        for process in (memcached_process, other):
            c = Client(("127.0.0.1", process.port))
            counts.append(int(c.stats()[b"curr_items"]))
            c.close()
        assert all(n > 100 for n in counts), counts  # each server got a share
        assert sum(counts) == 400
        hashed = HashClient([("127.0.0.1", p.port) for p in (memcached_process, other)])
        assert hashed.get_many(keys) == {k: k.upper().encode() for k in keys}
        hashed.close()
    finally:
        other.stop()


@pytest.mark.slow
def test_a_sql_sink_logs_bad_records_and_waits_out_a_memcached_restart(
    tmp_path: Path, memcached_process: MemcachedProcess
) -> None:
    client = Client(("127.0.0.1", memcached_process.port), connect_timeout=2, timeout=2)
    with Engine(tmp_path / "data", fsync="never") as engine:
        engine.execute(
            "CREATE STREAM readings (device STRING KEY, temp DOUBLE) "
            "WITH (kafka_topic='readings', value_format='JSON', partitions=1);"
            "CREATE SINK CONNECTOR latest WITH ('connector.class'='memcached', "
            f"'memcached.servers'='{memcached_process.address}', 'source'='READINGS', "
            "'key.template'='latest:{DEVICE}', 'memcached.timeout.ms'='500');"
        )
        engine.start()
        engine.insert("readings", {"DEVICE": "d0", "TEMP": 1.0})
        engine.insert("readings", {"DEVICE": "bad key", "TEMP": 2.0})
        wait_for(lambda: client.get("latest:d0") is not None)
        wait_for(lambda: engine.log.offsets(PROCESSING_LOG, 0)[1] == 1)
        error = msgspec.json.decode(
            engine.log.read_table(PROCESSING_LOG, 0).column("value")[0].as_py()
        )
        assert "space" in error["message"]
        assert error["query"] == "connector LATEST"

        memcached_process.kill()  # a crash: memcached comes back empty
        client.close()
        for i in range(1, 51):
            engine.insert("readings", {"DEVICE": f"d{i}", "TEMP": float(i)})

        def state() -> str:
            return str(engine.execute("DESCRIBE CONNECTOR LATEST;")[0].info["state"])

        wait_for(lambda: state() == "RETRYING")
        memcached_process.start()
        keys = [f"latest:d{i}" for i in range(1, 51)]
        wait_for(lambda: len(client.get_many(keys)) == 50, timeout=60)
        got = client.get_many(keys)
        assert {k: json.loads(v)["TEMP"] for k, v in got.items()} == {
            f"latest:d{i}": float(i) for i in range(1, 51)
        }
        wait_for(lambda: state() == "RUNNING")
        info = engine.execute("DESCRIBE CONNECTOR LATEST;")[0].info
        assert info["errors"] == 1
        assert info["lag"] == 0
    client.close()

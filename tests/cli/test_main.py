"""The `hispeed` command as users run it: a real process, its output and its exit code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hispeed.log import EmbeddedLog, partition_for_key


class Cli:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir

    def __call__(
        self, *args: str, input: str | None = None, ok: bool = True, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "hispeed", "--data-dir", str(self.data_dir), *args],
            input=input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "HISPEED_DEBUG": ""},
        )
        if ok:
            assert proc.returncode == 0, proc.stderr
        assert "Traceback" not in proc.stderr
        return proc


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    return Cli(tmp_path / "data")


def test_topic_create_list_describe_delete(cli: Cli) -> None:
    assert (
        "created topic orders with 3 partition(s)"
        in cli("topic", "create", "orders", "-p", "3", "-c", "retention.ms=60000").stdout
    )
    assert cli("topic", "list").stdout.splitlines()[1].split() == ["orders", "3", "0", "0"]
    described = json.loads(cli("topic", "describe", "orders", "--json").stdout)
    assert described["config"]["retention.ms"] == 60000
    assert [p["partition"] for p in described["partitions"]] == [0, 1, 2]
    assert "retention.ms = 60000" in cli("topic", "describe", "orders").stdout
    cli("topic", "delete", "orders")
    assert cli("topic", "list").stdout.strip() == "no topics"


def test_produce_with_key_field_and_consume(cli: Cli) -> None:
    lines = [json.dumps({"device": f"device{i % 3}", "n": i}) for i in range(9)]
    cli("topic", "create", "readings", "-p", "4")
    result = cli("produce", "readings", "--key-field", "device", input="\n".join(lines) + "\n")
    assert "produced 9 records to readings" in result.stderr
    out = cli("consume", "readings", "--from-beginning", "--max", "9", "--format", "json").stdout
    records = [json.loads(line) for line in out.splitlines()]
    assert sorted(json.loads(r["value"])["n"] for r in records) == list(range(9))
    for r in records:
        assert r["key"] == json.loads(r["value"])["device"]
        assert r["partition"] == partition_for_key(r["key"].encode(), 4)


def test_produce_with_key_separator(cli: Cli) -> None:
    cli("produce", "kv", "--key-separator", ":", input="alice:1\nbob:2\n")
    out = cli("consume", "kv", "--from-beginning", "--max", "2", "--format", "key-value").stdout
    assert out.splitlines() == ["alice\t1", "bob\t2"]


def test_consume_with_group_resumes(cli: Cli) -> None:
    cli("produce", "t", input="a\nb\nc\n")
    first = cli("consume", "t", "--from-beginning", "--group", "g", "--max", "2").stdout
    assert first.splitlines() == ["a", "b"]
    cli("produce", "t", input="d\n")
    rest = cli("consume", "t", "--from-beginning", "--group", "g", "--timeout", "0.5").stdout
    assert rest.splitlines() == ["c", "d"]


def test_consume_from_latest_waits_for_new_records(cli: Cli) -> None:
    cli("produce", "t", input="old\n")
    out = cli("consume", "t", "--timeout", "0.3").stdout
    assert out == ""


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (("topic", "describe", "nope"), None, "error: topic 'nope' does not exist"),
        (("topic", "create", "t", "-c", "retention.ms"), None, "--config takes name=value"),
        (("topic", "create", "t", "-c", "colour=blue"), None, "unknown topic config 'colour'"),
        (("produce", "t", "--key-field", "id"), '{"id": 1}\nnot json\n', "line 2 is not JSON"),
        (
            ("produce", "t", "--key-separator", "|"),
            "no separator here\n",
            "line 1 has no key separator",
        ),
        (("consume", "missing", "--timeout", "0.1"), None, "topic 'missing' does not exist"),
        (("--fsync", "sometimes", "topic", "list"), None, "fsync policy cannot be 'sometimes'"),
    ],
)
def test_errors_are_one_clear_line(
    cli: Cli, args: tuple[str, ...], stdin: str | None, message: str
) -> None:
    result = cli(*args, input=stdin, ok=False)
    assert result.returncode == 1
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_produce_reports_what_was_written_before_a_bad_line(cli: Cli) -> None:
    result = cli("produce", "t", "--key-field", "id", input='{"id": 1}\n{"x": 2}\n', ok=False)
    assert "line 2 has no field 'id'" in result.stderr
    assert "the 1 records before it were written" in result.stderr
    assert cli("consume", "t", "--from-beginning", "--timeout", "0.2").stdout == '{"id": 1}\n'


def test_usage_errors_exit_2_without_traceback(cli: Cli) -> None:
    result = cli("topic", "create", ok=False)
    assert result.returncode == 2
    assert "Missing argument 'NAME'" in result.stderr


def test_bench_log_json(cli: Cli) -> None:
    result = cli("bench", "log", "--json", "--records", "20000", "--batch-size", "5000")
    figures = json.loads(result.stdout)
    for name in ("append_records_per_s", "read_records_per_s", "append_fsync_batch_records_per_s"):
        assert figures[name] > 0
    assert figures["records"] == 20000


def test_bench_engine_json_has_every_figure(cli: Cli) -> None:
    result = cli("bench", "engine", "--json", "--events", "20000", "--batch-size", "5000")
    figures = json.loads(result.stdout)
    for name in (
        "q0",
        "q1",
        "q2",
        "tumbling",
        "stream_table_join",
        "stream_stream_join",
        "pull_lookups_per_s",
        "api_tumbling",
        "api_map",
        "api_tumbling_per_cpu_s",
        "api_map_per_cpu_s",
        "api_process",
        "api_process_per_cpu_s",
    ):
        assert figures[name] > 0


def test_version(cli: Cli) -> None:
    assert cli("--version").stdout.startswith("hispeed, version")


@pytest.mark.slow
@pytest.mark.parametrize("taken", ["http", "grpc"])
def test_a_port_in_use_is_one_clear_error_before_anything_starts(
    cli: Cli, taken: str, tmp_path: Path
) -> None:
    """A second server beside `make run`: one line naming the port, nothing announced, no
    library's own error first."""
    import socket

    from hispeed.testing.services import free_port

    with socket.socket() as holder:  # what the running demo's server holds
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        busy = holder.getsockname()[1]
        ports = {"http": free_port(), "grpc": free_port(), taken: busy}
        proc = cli(
            "server", "--port", str(ports["http"]), "--grpc-port", str(ports["grpc"]), ok=False
        )
    assert proc.returncode == 1
    assert proc.stdout == ""  # no "listening on ...", no "stopped"
    service, how = ("HTTP", "--port") if taken == "http" else ("gRPC", "--grpc-port")
    [error] = proc.stderr.splitlines()
    assert error.startswith(f"error: cannot serve {service} on 127.0.0.1:{busy}: ")
    assert f"choose another port with {how}" in error
    assert not (tmp_path / "data").exists()  # nothing opened either


@pytest.mark.slow
def test_topic_repair_sets_damaged_frames_aside_and_lists_the_offsets_lost(cli: Cli) -> None:
    with EmbeddedLog(cli.data_dir, cleaner_interval_s=None) as log:
        # three compact frames of 10 records (120 bytes each) a segment
        log.create_topic("t", 1, {"segment.bytes": "400"})
        for i in range(6):
            log.append("t", [(None, f"v{i}-{j}".encode()) for j in range(10)])
    seg = sorted((cli.data_dir / "log" / "topics" / "t" / "0").glob("*.seg"))[0]
    data = bytearray(seg.read_bytes())
    data[len(data) // 2] ^= 0xFF  # a byte in the middle frame: offsets 10 to 19
    seg.write_bytes(bytes(data))
    consumed = cli("consume", "t", "--from-beginning", "--max", "60", ok=False, timeout=60)
    assert consumed.returncode == 1
    assert f"{seg} at byte" in consumed.stderr
    assert "(topic 't' partition 0, offsets 10 to 19)" in consumed.stderr
    assert "hispeed topic repair t" in consumed.stderr
    checked = cli("topic", "repair", "t", "--dry-run").stdout
    assert "offsets 10 to 19 lost (10)" in checked
    assert "t: would lose 10 offsets in 1 damaged run(s)" in checked
    repaired = cli("topic", "repair", "t").stdout
    assert "offsets 10 to 19 lost (10)" in repaired
    assert "t: lost 10 offsets in 1 damaged run(s)" in repaired
    assert "nothing to repair" in cli("topic", "repair", "t").stdout
    out = cli("consume", "t", "--from-beginning", "--max", "50").stdout.split()
    assert out == [f"v{i}-{j}" for i in range(6) for j in range(10) if i != 1]

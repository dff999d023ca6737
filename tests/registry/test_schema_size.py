"""A schema past the registry's size limit is refused at once, and a big schema being checked
does not hold up lookups by id (the registry's lock is not held while a schema is parsed)."""

from __future__ import annotations

import json
import threading
import time

import pytest

from hispeed.registry import LogRegistry, RegistryError, Schema


def _record(fields: int) -> Schema:
    return Schema(
        json.dumps(
            {
                "type": "record",
                "name": "R",
                "fields": [{"name": f"f{i}", "type": "string"} for i in range(fields)],
            }
        )
    )


def test_a_schema_over_the_limit_is_invalid_42201_naming_the_setting() -> None:
    reg = LogRegistry(None, max_schema_bytes=1000)
    with pytest.raises(RegistryError) as refused:
        reg.register("big-value", _record(100))
    assert refused.value.code == 42201
    assert "schema_registry_max_schema_bytes" in str(refused.value)
    assert reg.register("small-value", _record(3)) == 1


def test_lookups_by_id_are_answered_while_a_large_schema_is_checked() -> None:
    reg = LogRegistry(None)
    small = reg.register("small-value", _record(2))
    big = _record(12_000)  # about 0.45 MB: a parse of a few seconds with Avro's parser
    started = threading.Event()

    def register_big() -> None:
        started.set()
        reg.register("big-value", big)

    worker = threading.Thread(target=register_big)
    worker.start()
    started.wait()
    waits = []
    while worker.is_alive():
        t0 = time.perf_counter()
        assert reg.schema_by_id(small).schema
        waits.append(time.perf_counter() - t0)
        time.sleep(0.01)
    worker.join()
    assert len(waits) > 3, "the large schema was checked too fast to tell"
    # each lookup is answered while the big schema is parsed (not after the whole parse)
    assert max(waits) < 0.5
    assert reg.version("big-value").schema == reg.schema_by_id(reg.version("big-value").id)

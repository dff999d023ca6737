"""`'connector.class'='datagen'`: the course's data generated into topics at a steady rate.

    CREATE SOURCE CONNECTOR weather_gen WITH (
      'connector.class'='datagen', 'generator'='weather', 'rate'='20', 'seed'='7');

Properties: 'generator' (sensehat, weather, drone, rand, users, clickstream,
authorization_attempts, nexmark, nexmark_spec: Nexmark's events as the benchmark specifies
them), 'rate' (records a second; the generator's own by default), 'keys' (devices,
users... where the generator has them), 'seed' (42), 'limit' (stop after this many
positions), 'kafka.topic' (renames the generator's main topic). The position is the next
record's number, committed with the records, so a restart goes on without repeats.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from hispeed.connectors.base import ConnectorError, SourceConnector, SourceRecord, register
from hispeed.demo.generators import GENERATORS, Generator, generator
from hispeed.errors import HispeedError

#: the most records one poll returns
MAX_BATCH = 10_000
#: the shortest pause between two polls that return records
BATCH_INTERVAL_S = 0.1


@register
class DataGen(SourceConnector):
    names = ("datagen", "DatagenConnector", "io.confluent.kafka.connect.datagen.DatagenConnector")

    def __init__(self, name: str, config: Mapping[str, str]) -> None:
        super().__init__(name, config)
        kind = self.option("generator", "").strip()
        if not kind:
            known = ", ".join(sorted(GENERATORS))
            raise ConnectorError(f"connector {name} needs 'generator', one of: {known}")
        try:
            seed = int(self.option("seed", "42"))
            keys = int(self.config["keys"]) if "keys" in self.config else None
            self.limit = int(self.config["limit"]) if "limit" in self.config else None
            self.gen: Generator = generator(kind, seed, keys)
            self.rate = float(self.config.get("rate", self.gen.default_rate))
        except ValueError as e:
            raise ConnectorError(f"connector {name}: {e}") from None
        except HispeedError as e:
            raise ConnectorError(f"connector {name}: {e}") from None
        if self.rate <= 0:
            raise ConnectorError(f"connector {name}: 'rate' must be above 0, not {self.rate}")
        self.main_topic = self.config.get("kafka.topic") or self.gen.topic
        self.next = 0
        self._base = 0
        self._t0 = time.monotonic()

    def default_topic(self) -> str | None:
        return self.main_topic

    def start(self, position: Any) -> None:
        self.next = 0 if position is None else int(position) + 1
        self._base = self.next
        self._t0 = time.monotonic()

    def poll(self, timeout: float) -> list[SourceRecord]:
        end = self.limit if self.limit is not None else None
        if end is not None and self.next >= end:
            time.sleep(timeout)
            return []
        due = int((time.monotonic() - self._t0) * self.rate) - (self.next - self._base)
        if due <= 0:
            # a tenth of a second's records at a time: fewer, larger transactions for the
            # queries downstream to wake up for (the generated data needs no lower latency)
            time.sleep(min(timeout, max(BATCH_INTERVAL_S, (1 - due) / self.rate)))
            due = int((time.monotonic() - self._t0) * self.rate) - (self.next - self._base)
            if due <= 0:
                return []
        count = min(due, MAX_BATCH)
        if end is not None:
            count = min(count, end - self.next)
        out = []
        for n, record in self.gen.take(count, self.next):
            topic = self.main_topic if record.topic == self.gen.topic else record.topic
            out.append(SourceRecord(record.key_bytes(), record.value_bytes(), None, n, topic))
        self.next += count
        return out

    def stop(self) -> None:
        self.limit = self.next  # nothing more, should a poll still come

    def details(self) -> dict[str, Any]:
        return {"generator": self.gen.name, "rate": self.rate, "next": self.next}


__all__ = ["DataGen"]

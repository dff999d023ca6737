"""`GET /metrics`: Prometheus' text format, read off the engine and the server when asked.

Records in and out per query, each query's lag (records its inputs hold that it has not
read), processing-log errors, records per topic, and what the server ingested per topic and
protocol with the sizes and latencies of those requests.
"""

from __future__ import annotations

import bisect
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from typing import Any

from hispeed.engine import Engine
from hispeed.runtime.task import PROCESSING_LOG

#: upper bounds of the ingest batch-size histogram (records a request)
_SIZE_BUCKETS = (1, 10, 100, 1_000, 10_000, 100_000)
#: upper bounds of the ingest latency histogram (seconds from request to acknowledgement)
_TIME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Metrics:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._ingested: dict[tuple[str, str], int] = defaultdict(int)
        self._sizes: dict[str, list[int]] = defaultdict(lambda: [0] * (len(_SIZE_BUCKETS) + 1))
        self._times: dict[str, list[int]] = defaultdict(lambda: [0] * (len(_TIME_BUCKETS) + 1))
        self._seconds: dict[str, float] = defaultdict(float)

    def ingested(self, topic: str, protocol: str, records: int, seconds: float = 0.0) -> None:
        """Count one ingestion request of `records` records into `topic` over `protocol`,
        acknowledged `seconds` after it arrived."""
        with self._lock:
            self._ingested[(topic, protocol)] += records
            _observe(self._sizes[protocol], _SIZE_BUCKETS, records)
            _observe(self._times[protocol], _TIME_BUCKETS, seconds)
            self._seconds[protocol] += seconds

    def query_stats(self) -> list[dict[str, Any]]:
        """Per running query: records in and out, errors, lag, its state (RUNNING or ERROR,
        with the error message) and how many times it failed."""
        engine = self.engine
        out = []
        with engine.lock:
            tasks = list(engine.tasks.values())
            for task in tasks:
                lag = 0
                consumer = task.consumer
                # on Kafka, what the group has given it so far (never waiting for a rebalance)
                for tp in consumer.current_assignment():
                    try:
                        end = engine.log.offsets(tp.topic, tp.partition)[1]
                        lag += max(0, end - consumer.position(tp))
                    except Exception:  # a topic dropped under us: no lag to report
                        continue
                out.append(
                    {
                        "id": task.id,
                        "records_in": task.records_in,
                        # a repartitioned aggregation's second stage (ops/repartition.py)
                        "repartition_records_in": getattr(task, "repartition_records_in", 0),
                        "records_out": task.records_out,
                        "errors": task.errors,
                        "lag": lag,
                        "state": engine.runtime.state(task.id)[0],
                        "error": engine.runtime.state(task.id)[1],
                        "failures": engine.runtime.failures.get(task.id, 0),
                    }
                )
            # queries whose statement failed on replay: no task, in ERROR until dropped
            for info in engine.catalog.queries.values():
                if info.unmade:
                    out.append(
                        {
                            "id": info.id,
                            "records_in": 0,
                            "repartition_records_in": 0,
                            "records_out": 0,
                            "errors": 0,
                            "lag": 0,
                            "state": info.state,
                            "error": info.error,
                            "failures": engine.runtime.failures.get(info.id, 0),
                        }
                    )
        return out

    def topic_records(self) -> dict[str, int]:
        """Records each topic has had written (the sum of its partitions' end offsets)."""
        log_ = self.engine.log
        counts = {}
        for name in log_.list_topics(internal=True):
            try:
                parts = len(log_.describe_topic(name).partitions)
                counts[name] = sum(log_.offsets(name, p)[1] for p in range(parts))
            except Exception:  # deleted while we looked
                continue
        return counts

    def render(
        self, push_queries: int, extra_stats: Mapping[str, Callable[[], dict[str, Any]]]
    ) -> str:
        """The Prometheus text: these metrics, `push_queries` being served, and each server
        component's numeric `extra_stats` (MQTT, gRPC) as gauges."""
        lines: list[str] = []

        def family(name: str, kind: str, text: str) -> None:
            lines.append(f"# HELP {name} {text}")
            lines.append(f"# TYPE {name} {kind}")

        queries = self.query_stats()
        family("hispeed_query_records_in_total", "counter", "Records a query has read.")
        for q in queries:
            lines.append(
                f'hispeed_query_records_in_total{{query="{_label(q["id"])}"}} {q["records_in"]}'
            )
        family(
            "hispeed_query_repartition_records_in_total",
            "counter",
            "Records a query has read from its repartition topic (its aggregation's input).",
        )
        for q in queries:
            lines.append(
                f'hispeed_query_repartition_records_in_total{{query="{_label(q["id"])}"}} '
                f"{q['repartition_records_in']}"
            )
        family("hispeed_query_records_out_total", "counter", "Records a query has written.")
        for q in queries:
            lines.append(
                f'hispeed_query_records_out_total{{query="{_label(q["id"])}"}} {q["records_out"]}'
            )
        family(
            "hispeed_query_errors_total", "counter", "Records a query sent to the processing log."
        )
        for q in queries:
            lines.append(f'hispeed_query_errors_total{{query="{_label(q["id"])}"}} {q["errors"]}')
        family(
            "hispeed_query_failures_total",
            "counter",
            "Times a query failed (it goes to ERROR and is retried with a backoff).",
        )
        for q in queries:
            lines.append(
                f'hispeed_query_failures_total{{query="{_label(q["id"])}"}} {q["failures"]}'
            )
        family("hispeed_query_state", "gauge", "A query's state: 1 for the state it is in.")
        for q in queries:
            for state in ("RUNNING", "ERROR", "FINISHED"):
                lines.append(
                    f'hispeed_query_state{{query="{_label(q["id"])}",state="{state}"}} '
                    f"{int(q['state'] == state)}"
                )
        family("hispeed_query_lag_records", "gauge", "Records in a query's inputs not yet read.")
        for q in queries:
            lines.append(f'hispeed_query_lag_records{{query="{_label(q["id"])}"}} {q["lag"]}')
        family(
            "hispeed_connector_state",
            "gauge",
            "A connector's state: 1 for the state it is in (RETRYING: its system is out of reach).",
        )
        for row in self.engine.connectors.rows():
            for state in ("RUNNING", "RETRYING", "FAILED"):
                lines.append(
                    f'hispeed_connector_state{{connector="{_label(row["name"])}",'
                    f'state="{state}"}} {int(row["state"] == state)}'
                )
        topics = self.topic_records()
        family("hispeed_processing_log_records_total", "counter", "Processing-log records.")
        lines.append(f"hispeed_processing_log_records_total {topics.get(PROCESSING_LOG, 0)}")
        family("hispeed_topic_records_total", "counter", "Records written to a topic.")
        for name, n in sorted(topics.items()):
            lines.append(f'hispeed_topic_records_total{{topic="{_label(name)}"}} {n}')
        family("hispeed_push_queries", "gauge", "Push queries being served.")
        lines.append(f"hispeed_push_queries {push_queries}")
        with self._lock:
            ingested = dict(self._ingested)
            sizes = {k: list(v) for k, v in self._sizes.items()}
            times = {k: list(v) for k, v in self._times.items()}
            seconds = dict(self._seconds)
        family("hispeed_ingested_records_total", "counter", "Records ingested by the server.")
        for (topic, protocol), n in sorted(ingested.items()):
            lines.append(
                f'hispeed_ingested_records_total{{topic="{_label(topic)}",'
                f'protocol="{protocol}"}} {n}'
            )
        family("hispeed_ingest_batch_records", "histogram", "Records per ingestion request.")
        for protocol, buckets in sorted(sizes.items()):
            total = sum(n for (_, p), n in ingested.items() if p == protocol)
            _histogram(
                lines, "hispeed_ingest_batch_records", protocol, _SIZE_BUCKETS, buckets, total
            )
        family(
            "hispeed_ingest_latency_seconds", "histogram", "From an ingestion request to its ack."
        )
        for protocol, buckets in sorted(times.items()):
            _histogram(
                lines,
                "hispeed_ingest_latency_seconds",
                protocol,
                _TIME_BUCKETS,
                buckets,
                round(seconds[protocol], 6),
            )
        for component, stats in sorted(extra_stats.items()):
            for key, value in sorted(stats().items()):
                if isinstance(value, int | float) and not isinstance(value, bool):
                    name = f"hispeed_{component}_{key}"
                    family(name, "gauge", f"{component}: {key}.")
                    lines.append(f"{name} {value}")
        return "\n".join(lines) + "\n"


def _observe(buckets: list[int], bounds: tuple[float, ...], value: float) -> None:
    # the first bucket whose bound is at least `value` (the last: above every bound)
    buckets[bisect.bisect_left(bounds, value)] += 1


def _histogram(
    lines: list[str],
    name: str,
    protocol: str,
    bounds: tuple[float, ...],
    buckets: list[int],
    total: float,
) -> None:
    running = 0
    for bound, count in zip((*bounds, "+Inf"), buckets, strict=True):
        running += count
        lines.append(f'{name}_bucket{{protocol="{protocol}",le="{bound}"}} {running}')
    lines.append(f'{name}_count{{protocol="{protocol}"}} {running}')
    lines.append(f'{name}_sum{{protocol="{protocol}"}} {total}')


__all__ = ["Metrics"]

"""Push-query feeds: one reader of a stream's topic shared by the push queries that filter
and project it.

A `SourceFeed` decodes each batch once and hands it to every subscriber attached, so a
thousand dashboards on one stream read its topic once. `PushFeeds` holds one runtime's feeds
(`runtime/manager.py` owns it); `runtime/queries.py` attaches push queries to them.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from hispeed.catalog import Source
from hispeed.functions.registry import EvalContext
from hispeed.log.base import Consumer, Log
from hispeed.ops.decode import SourceDecoder
from hispeed.plan.model import QueryPlan, field_name
from hispeed.registry import SchemaRegistry


class SourceFeed:
    """One reader of a stream's topic, shared by the push queries that start where it is.

    Each batch is decoded once; every subscriber filters and projects the same frame.
    """

    def __init__(
        self,
        log: Log,
        source: Source,
        from_beginning: bool,
        registry: SchemaRegistry | None = None,
    ) -> None:
        self.source = source
        self.from_beginning = from_beginning
        self.decoder = SourceDecoder(source, "", "push", registry=registry)
        reset = "earliest" if from_beginning else "latest"
        self.consumer: Consumer = log.consumer(source.topic, auto_offset_reset=reset)
        self.subscribers: list[Subscriber] = []
        #: nothing read yet: a new subscriber from the beginning may still share this feed
        self.fresh = True
        if not from_beginning:
            self.consumer.poll(0)  # "latest" means now: fix the position before any record

    def pump(self, wait: float) -> None:
        """Read what arrived (waiting up to `wait` s) and hand it to every subscriber."""
        items = self.consumer.poll(wait)
        for item in items:
            self.fresh = False
            frame, _ = self.decoder.decode(item, [])
            if frame.num_rows:
                for subscriber in list(self.subscribers):
                    subscriber.feed(frame)

    def detach(self, subscriber: Subscriber) -> None:
        """Take `subscriber` off; the last one to leave closes the reader."""
        if subscriber in self.subscribers:
            self.subscribers.remove(subscriber)
        if not self.subscribers:
            self.consumer.close()


class Subscriber:
    """A stateless push query's filter and projection over a shared feed's frames."""

    def __init__(self, plan: QueryPlan) -> None:
        self.plan = plan
        self.rows: list[dict[str, Any]] = []

    def feed(self, frame: pa.RecordBatch) -> None:
        """Filter and project `frame`, keeping the rows for the push query to take."""
        plan = self.plan
        frame = frame.rename_columns([field_name(plan.label, n[1:]) for n in frame.schema.names])
        ctx = EvalContext()
        if plan.where is not None:
            frame = frame.filter(pc.fill_null(plan.where(frame, ctx), False))
        if frame.num_rows:
            arrays = [c.expr(frame, ctx) for c in plan.outputs]
            table = pa.Table.from_arrays(arrays, names=[c.name for c in plan.outputs])
            self.rows += table.to_pylist(maps_as_pydicts="strict")


def shareable(plan: QueryPlan) -> bool:
    """Whether a push query only filters and projects a stream (so it may share a feed)."""
    return (
        plan.source.kind == "STREAM"
        and plan.aggregation is None
        and plan.join is None
        and not plan.table_functions
        and not plan.repartition
        and plan.ranking is None
        and not plan.lags
    )


class PushFeeds:
    """One runtime's shared feeds, by stream name and whether they read from the beginning."""

    def __init__(self, log: Log, registry: SchemaRegistry | None = None) -> None:
        self.log = log
        self.registry = registry
        self.feeds: dict[tuple[str, bool], SourceFeed] = {}

    def __len__(self) -> int:
        return len(self.feeds)

    def attach(self, plan: QueryPlan, from_beginning: bool) -> tuple[SourceFeed, Subscriber]:
        """A subscriber for `plan` on the feed of its stream (a new feed if none fits)."""
        key = (plan.source.name, from_beginning)
        feed = self.feeds.get(key)
        # a feed from the beginning that has read something is past where a newcomer starts
        if feed is None or feed.source is not plan.source or (from_beginning and not feed.fresh):
            feed = SourceFeed(self.log, plan.source, from_beginning, self.registry)
            self.feeds[key] = feed
        subscriber = Subscriber(plan)
        feed.subscribers.append(subscriber)
        return feed, subscriber

    def detach(self, feed: SourceFeed, subscriber: Subscriber) -> None:
        """Take `subscriber` off `feed`; a feed nobody reads any more is closed and forgotten."""
        feed.detach(subscriber)
        if not feed.subscribers:
            for k, f in list(self.feeds.items()):
                if f is feed:
                    del self.feeds[k]

"""Nexmark's event generator as the benchmark specifies it, vectorized (numpy, pyarrow).

Nexmark (Tucker et al.; the Beam and Flink Nexmark suites) models an online auction: out of
every 50 events, 1 is a new person, 3 are new auctions and 46 are bids. Event `n` is a person
when `n % 50 == 0`, an auction when `n % 50` is 1..3, a bid otherwise. Ids run from 1000 in
the order the persons and auctions appear. Sellers and bidders are "hot" (one of every
`HOT_RATIO` people, the latest group's first) with a probability of 1 - 1/ratio (sellers 3/4,
bidders 3/4, auctions of bids 1/2), otherwise a recently active one (or a few ids ahead, as
the specification's lead lets some bids and auctions name a person or auction that has not
appeared yet). Prices are log-uniform, 100 .. 100,000,000 (cents); an auction's reserve is
its initial bid plus another such price; it expires within twice the time it takes to
create the next 100 auctions. A bid's channel is one of four hot ones half of the time, with
its URL, else one of 10,000 others whose URL mostly carries `&channel_id=`. Each event is
padded with an `extra` string to the specification's average sizes (person 200 bytes,
auction 500, bid 100). Event time advances `rate` events a second from `base_ms`.

Deterministic by seed: event `n` depends only on the seed and `n` (the random numbers are
drawn per block of `BLOCK` events from a stream seeded by both), so a generator resumes at
any position and two runs with one seed agree exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hispeed.log.base import Log

PERSON_PROPORTION, AUCTION_PROPORTION, BID_PROPORTION = 1, 3, 46
TOTAL_PROPORTION = PERSON_PROPORTION + AUCTION_PROPORTION + BID_PROPORTION
FIRST_PERSON_ID = 1000
FIRST_AUCTION_ID = 1000
FIRST_CATEGORY_ID = 10
NUM_CATEGORIES = 5
#: one id in this many is "hot"
HOT_RATIO = 100
#: the configured chance of a hot seller / bidder / auction is 1 - 1/ratio
HOT_SELLERS_RATIO, HOT_BIDDERS_RATIO, HOT_AUCTION_RATIO = 4, 4, 2
NUM_ACTIVE_PEOPLE = 1000
NUM_IN_FLIGHT_AUCTIONS = 100
PERSON_ID_LEAD = 10
AUCTION_ID_LEAD = 10
HOT_CHANNELS = ("Google", "Facebook", "Baidu", "Apple")
CHANNELS_NUMBER = 10_000
AVG_PERSON_BYTES, AVG_AUCTION_BYTES, AVG_BID_BYTES = 200, 500, 100
FIRST_NAMES = ("Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah")
LAST_NAMES = ("Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones")
US_STATES = ("AZ", "CA", "ID", "OR", "WA", "WY")
US_CITIES = (
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
)
#: events drawn from one random stream (a multiple of 50: a block starts an epoch)
BLOCK = 50 * 200
#: the default event time: 10,000 events a second (the specification's first event rate)
DEFAULT_RATE = 10_000
DEFAULT_BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
_LETTERS = np.frombuffer(b"abcdefghijklmnopqrstuvwxyz", np.uint8)


def last_person(ids: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The 0-based id of the last person created at or before each event id."""
    return ids // TOTAL_PROPORTION


def last_auction(ids: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """The 0-based id of the last auction created at or before each event id (-1: none)."""
    epoch, offset = np.divmod(ids, TOTAL_PROPORTION)
    before = offset < PERSON_PROPORTION  # the epoch's person: the previous epoch's last
    inside = offset - PERSON_PROPORTION
    inside = np.where(
        offset >= PERSON_PROPORTION + AUCTION_PROPORTION, AUCTION_PROPORTION - 1, inside
    )
    return np.where(before, epoch * AUCTION_PROPORTION - 1, epoch * AUCTION_PROPORTION + inside)


@dataclass(frozen=True)
class Events:
    """One range of events, as a table per kind; `position` is the event's number."""

    person: pa.Table
    auction: pa.Table
    bid: pa.Table

    def __len__(self) -> int:
        return int(self.person.num_rows + self.auction.num_rows + self.bid.num_rows)


class NexmarkGenerator:
    """Nexmark events `start .. start + count - 1` under a seed (see the module docstring)."""

    def __init__(
        self, seed: int = 42, rate: float = DEFAULT_RATE, base_ms: int = DEFAULT_BASE_MS
    ) -> None:
        if rate <= 0:
            raise ValueError(f"the event rate must be above 0, not {rate}")
        self.seed = seed
        self.rate = rate
        self.base_ms = base_ms
        rng = np.random.default_rng([seed, 7])
        # the random text everything draws its strings from (a window of it per block)
        self._pool = _LETTERS[rng.integers(0, 26, 1 << 20)]
        self._pool[rng.integers(0, len(self._pool), len(self._pool) // 8)] = ord(" ")
        self._hot_urls = np.array([self._base_url(rng) for _ in HOT_CHANNELS], dtype=object)
        numbers = np.arange(CHANNELS_NUMBER)
        with_id = rng.integers(0, 10, CHANNELS_NUMBER) > 0
        reversed_n = np.array([_reverse32(int(i)) for i in numbers], np.int64)
        self._channel_urls = np.array(
            [
                self._base_url(rng) + (f"&channel_id={r}" if w else "")
                for r, w in zip(reversed_n.tolist(), with_id.tolist(), strict=True)
            ],
            dtype=object,
        )
        self._channel_names = np.array([f"channel-{i}" for i in numbers], dtype=object)

    @staticmethod
    def _base_url(rng: np.random.Generator) -> str:
        parts = ["".join(chr(c) for c in _LETTERS[rng.integers(0, 26, 5)]) for _ in range(3)]
        return "https://www.nexmark.com/" + "/".join(parts) + "/item.htm?query=1"

    def stamps(self, ids: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        """Event time (ms) of each event id."""
        return self.base_ms + (ids * 1000 / self.rate).astype(np.int64)

    def events(self, count: int, start: int = 0) -> Events:
        """Events `start .. start + count - 1`."""
        parts = list(self._blocks(start, start + count))
        return Events(
            pa.concat_tables([p.person for p in parts]),
            pa.concat_tables([p.auction for p in parts]),
            pa.concat_tables([p.bid for p in parts]),
        )

    def chunks(self, count: int, start: int = 0) -> Iterator[Events]:
        """Events `start .. start + count - 1`, a block (at most `BLOCK` events) at a time."""
        return self._blocks(start, start + count)

    def _blocks(self, first: int, end: int) -> Iterator[Events]:
        block = first // BLOCK
        while block * BLOCK < end:
            lo, hi = block * BLOCK, (block + 1) * BLOCK
            events = self._block(block)
            if lo < first or hi > end:
                events = _slice(events, max(lo, first), min(hi, end))
            yield events
            block += 1

    def _block(self, block: int) -> Events:
        rng = np.random.default_rng([self.seed, block])
        ids = np.arange(block * BLOCK, (block + 1) * BLOCK, dtype=np.int64)
        offset = ids % TOTAL_PROPORTION
        person_ids = ids[offset < PERSON_PROPORTION]
        auction_ids = ids[
            (offset >= PERSON_PROPORTION) & (offset < TOTAL_PROPORTION - BID_PROPORTION)
        ]
        bid_ids = ids[offset >= TOTAL_PROPORTION - BID_PROPORTION]
        return Events(
            self._persons(rng, person_ids),
            self._auctions(rng, auction_ids),
            self._bids(rng, bid_ids),
        )

    # -- the three kinds ---------------------------------------------------------------------

    def _persons(self, rng: np.random.Generator, ids: np.ndarray[Any, Any]) -> pa.Table:
        n = len(ids)
        first = np.array(FIRST_NAMES, dtype=object)[rng.integers(0, len(FIRST_NAMES), n)]
        last = np.array(LAST_NAMES, dtype=object)[rng.integers(0, len(LAST_NAMES), n)]
        name = pc.binary_join_element_wise(pa.array(first), pa.array(last), " ")
        email = pc.binary_join_element_wise(
            self._strings(rng, n, 7, 8), self._strings(rng, n, 5, 6), pa.scalar("@")
        )
        email = pc.binary_join_element_wise(email, pa.scalar(".com"), "")
        digits = rng.integers(0, 10_000, (n, 4))
        card = pc.binary_join_element_wise(
            *[pc.utf8_lpad(pa.array(digits[:, i]).cast(pa.string()), 4, "0") for i in range(4)],
            " ",
        )
        city = np.array(US_CITIES, dtype=object)[rng.integers(0, len(US_CITIES), n)]
        state = np.array(US_STATES, dtype=object)[rng.integers(0, len(US_STATES), n)]
        table = {
            "id": pa.array(last_person(ids) + FIRST_PERSON_ID),
            "name": name,
            "emailAddress": email,
            "creditCard": card,
            "city": pa.array(city, pa.string()),
            "state": pa.array(state, pa.string()),
            "dateTime": pa.array(self.stamps(ids)),
        }
        table["extra"] = self._extra(rng, table, AVG_PERSON_BYTES)
        table["position"] = pa.array(ids)
        return pa.table(table)

    def _auctions(self, rng: np.random.Generator, ids: np.ndarray[Any, Any]) -> pa.Table:
        n = len(ids)
        stamps = self.stamps(ids)
        initial = _prices(rng, n)
        reserve = initial + _prices(rng, n)
        # an auction lasts up to twice the time the next NUM_IN_FLIGHT_AUCTIONS take to appear
        ahead = NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION // AUCTION_PROPORTION
        horizon = np.maximum((self.stamps(ids + ahead) - stamps) * 2, 1)
        expires = stamps + 1 + (rng.random(n) * horizon).astype(np.int64)
        lastp = last_person(ids)
        hot = rng.integers(0, HOT_SELLERS_RATIO, n) > 0
        seller = np.where(hot, lastp // HOT_RATIO * HOT_RATIO, _next_person(rng, lastp))
        table = {
            "id": pa.array(last_auction(ids) + FIRST_AUCTION_ID),
            "itemName": self._strings(rng, n, 3, 20),
            "description": self._strings(rng, n, 3, 100),
            "initialBid": pa.array(initial),
            "reserve": pa.array(reserve),
            "dateTime": pa.array(stamps),
            "expires": pa.array(expires),
            "seller": pa.array(seller + FIRST_PERSON_ID),
            "category": pa.array(FIRST_CATEGORY_ID + rng.integers(0, NUM_CATEGORIES, n)),
        }
        table["extra"] = self._extra(rng, table, AVG_AUCTION_BYTES)
        table["position"] = pa.array(ids)
        return pa.table(table)

    def _bids(self, rng: np.random.Generator, ids: np.ndarray[Any, Any]) -> pa.Table:
        n = len(ids)
        lasta = last_auction(ids)
        hot_a = rng.integers(0, HOT_AUCTION_RATIO, n) > 0
        low = np.maximum(lasta - NUM_IN_FLIGHT_AUCTIONS, 0)
        recent = low + (rng.random(n) * (lasta - low + 1 + AUCTION_ID_LEAD)).astype(np.int64)
        auction = np.where(hot_a, lasta // HOT_RATIO * HOT_RATIO, recent)
        lastp = last_person(ids)
        hot_b = rng.integers(0, HOT_BIDDERS_RATIO, n) > 0
        bidder = np.where(hot_b, lastp // HOT_RATIO * HOT_RATIO + 1, _next_person(rng, lastp))
        hot_c = rng.integers(0, 2, n) > 0
        which_hot = rng.integers(0, len(HOT_CHANNELS), n)
        which = rng.integers(0, CHANNELS_NUMBER, n)
        hot_names = np.array(HOT_CHANNELS, dtype=object)
        channel = np.where(hot_c, hot_names[which_hot], self._channel_names[which])
        url = np.where(hot_c, self._hot_urls[which_hot], self._channel_urls[which])
        table = {
            "auction": pa.array(auction + FIRST_AUCTION_ID),
            "bidder": pa.array(bidder + FIRST_PERSON_ID),
            "price": pa.array(_prices(rng, n)),
            "channel": pa.array(channel, pa.string()),
            "url": pa.array(url, pa.string()),
            "dateTime": pa.array(self.stamps(ids)),
        }
        table["extra"] = self._extra(rng, table, AVG_BID_BYTES)
        table["position"] = pa.array(ids)
        return pa.table(table)

    # -- strings -----------------------------------------------------------------------------

    def _strings(
        self, rng: np.random.Generator, n: int, shortest: int, longest: int
    ) -> pa.StringArray:
        """n strings of `shortest` .. `longest - 1` letters and spaces, from the pool."""
        lengths = rng.integers(shortest, max(longest, shortest + 1), n)
        return self._from_lengths(rng, lengths)

    def _from_lengths(self, rng: np.random.Generator, lengths: np.ndarray[Any, Any]) -> pa.Array:
        offsets = np.zeros(len(lengths) + 1, np.int32)
        np.cumsum(lengths, out=offsets[1:])
        total = int(offsets[-1])
        at = int(rng.integers(0, len(self._pool)))
        data = np.resize(np.roll(self._pool, -at), total)
        return pa.StringArray.from_buffers(
            len(lengths), pa.py_buffer(offsets), pa.py_buffer(data.tobytes())
        )

    def _extra(
        self, rng: np.random.Generator, table: dict[str, pa.Array], average: int
    ) -> pa.Array:
        """Padding to bring each event near `average` bytes (numbers count 8 bytes each)."""
        size = np.zeros(len(table["dateTime"]), np.int64)
        for values in table.values():
            if pa.types.is_string(values.type):
                size += pc.utf8_length(values).to_numpy(zero_copy_only=False)
            else:
                size += 8
        wanted = np.maximum(average - size, 0)
        spread = wanted // 5
        lengths = wanted - spread + (rng.random(len(size)) * (2 * spread + 1)).astype(np.int64)
        return self._from_lengths(rng, np.where(wanted > 0, lengths, 0))


def _prices(rng: np.random.Generator, n: int) -> np.ndarray[Any, Any]:
    """Log-uniform prices in cents, 100 .. 100,000,000."""
    return np.round(10.0 ** (rng.random(n) * 6.0) * 100.0).astype(np.int64)


def _next_person(rng: np.random.Generator, lastp: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """A recently active person (0-based), or one of the next few that will appear."""
    people = lastp + 1
    active = np.minimum(people, NUM_ACTIVE_PEOPLE)
    pick = (rng.random(len(lastp)) * (active + PERSON_ID_LEAD)).astype(np.int64)
    out: np.ndarray[Any, Any] = people - active + pick
    return out


def _reverse32(i: int) -> int:
    """Java's `Math.abs(Integer.reverse(i))`: the bits of a 32-bit int reversed."""
    r = int(f"{i & 0xFFFFFFFF:032b}"[::-1], 2)
    if r >= 1 << 31:
        r -= 1 << 32
    return abs(r)


def _slice(events: Events, lo: int, hi: int) -> Events:
    def part(t: pa.Table) -> pa.Table:
        pos = t.column("position")
        mask = pc.and_(pc.greater_equal(pos, lo), pc.less(pos, hi))
        return t.filter(mask)

    return Events(part(events.person), part(events.auction), part(events.bid))


def json_lines(table: pa.Table) -> pa.ChunkedArray:
    """Each row of one kind's table as a JSON object (binary), without `position`.

    Vectorized with Arrow's string kernels; the generated strings hold letters, digits,
    spaces and URL characters only, so none needs escaping.
    """
    pieces: list[Any] = []
    for i, name in enumerate(c for c in table.column_names if c != "position"):
        values = table.column(name)
        prefix = ("{" if i == 0 else ",") + f'"{name}":'
        if pa.types.is_string(values.type):
            text = pc.binary_join_element_wise(pa.scalar(prefix + '"'), values, '"', "")
        else:
            text = pc.binary_join_element_wise(pa.scalar(prefix), values.cast(pa.string()), "")
        pieces.append(text)
    pieces.append(pa.scalar("}"))
    return pc.binary_join_element_wise(*pieces, "").cast(pa.binary())


#: the topics, in Nexmark's order of kinds
TOPICS = ("person", "auction", "bid")
#: the key of each topic's records: the id (a bid's: its auction)
KEYS = {"person": "id", "auction": "id", "bid": "auction"}


#: the entries of q13's side input (keys 0 .. SIDE_INPUT_KEYS - 1)
SIDE_INPUT_KEYS = 10_000


def fill_side_input(log: Log, base_ms: int = DEFAULT_BASE_MS) -> int:
    """Append q13's bounded side input to the topic `side_input` (created if missing): key k
    (the KAFKA format's BIGINT) -> `{"value": "<k>"}` for k below `SIDE_INPUT_KEYS`, stamped
    before the first event so that every bid finds its entry. Returns the records appended."""
    log.create_topic("side_input", 1, {"retention.ms": "-1"}, exist_ok=True)
    keys = np.arange(SIDE_INPUT_KEYS, dtype=np.int64)
    batch = pa.record_batch(
        {
            "key": _bigint_keys(keys),
            "value": pa.array([b'{"value":"%d"}' % k for k in keys.tolist()], pa.binary()),
            "timestamp": pa.array(np.full(SIDE_INPUT_KEYS, base_ms - 1, np.int64)),
        }
    )
    log.append("side_input", batch, partition=0)
    return SIDE_INPUT_KEYS


def count_char(s: str | None, character: str) -> int:
    """How many bytes of `s` (UTF-8) are the first byte of `character`: Nexmark's own UDF
    for q14 (`com.github.nexmark.flink.udf.CountChar`, which counts so); 0 for a NULL `s`.
    Flink's CREATE FUNCTION of that class runs this (functions/udf/flink.py)."""
    if s is None:
        return 0
    wanted = character.encode()[:1]
    if not wanted:
        raise ValueError("count_char needs a character to count, not ''")
    return s.encode().count(wanted)


def _bigint_keys(ids: np.ndarray[Any, Any]) -> pa.Array:
    """ids as the KAFKA key format's BIGINT: 8 bytes, big-endian."""
    raw = ids.astype(">i8")
    return pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(8), len(raw), [None, pa.py_buffer(raw.tobytes())]
    ).cast(pa.binary())


def fill_log(
    log: Log, count: int, seed: int = 42, gen: NexmarkGenerator | None = None, start: int = 0
) -> dict[str, int]:
    """Append events `start` .. `start` + count - 1 to the topics `person`, `auction` and
    `bid` (partition 0, created if missing) as JSON, keyed by id (bids by auction) in the
    KAFKA format's BIGINT, record time = event time.
    Returns the records appended per topic."""
    gen = gen or NexmarkGenerator(seed)
    appended = dict.fromkeys(TOPICS, 0)
    for topic in TOPICS:
        # kept forever: the events' record times lie in the past (the default base is
        # 2026-01-01), where a 7-day retention would delete them while a query reads them
        log.create_topic(topic, 1, {"retention.ms": "-1"}, exist_ok=True)
    for chunk in gen.chunks(count, start):
        for topic, table in zip(TOPICS, (chunk.person, chunk.auction, chunk.bid), strict=True):
            if table.num_rows == 0:
                continue
            key = _bigint_keys(table.column(KEYS[topic]).to_numpy())
            batch = pa.record_batch(
                {
                    "key": key,
                    "value": json_lines(table).combine_chunks(),
                    "timestamp": table.column("dateTime").combine_chunks(),
                }
            )
            log.append(topic, batch, partition=0)
            appended[topic] += table.num_rows
    return appended


__all__ = [
    "DEFAULT_BASE_MS",
    "DEFAULT_RATE",
    "TOPICS",
    "Events",
    "NexmarkGenerator",
    "count_char",
    "fill_log",
    "fill_side_input",
    "json_lines",
    "last_auction",
    "last_person",
]

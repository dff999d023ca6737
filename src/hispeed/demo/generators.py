"""The course's data, generated: deterministic under a seed, record by record.

Record `n` of a generator depends only on the seed and `n` (its own random stream is seeded
by both), so a generator resumes at any position and two runs with one seed agree exactly;
the tests compute the expected outputs of each scenario from the same records.

Field names are the demos' own (typos included: `orentation`), as DEMOS.md gives them.
"""

from __future__ import annotations

import json
import math
import random
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

from hispeed.demo.nexmark import TOPICS, NexmarkGenerator
from hispeed.errors import HispeedError


@dataclass(frozen=True)
class Generated:
    topic: str
    key: str | None
    #: a JSON object, or a plain string sent as it is (the `rand` topic)
    value: dict[str, Any] | str

    def value_bytes(self) -> bytes:
        if isinstance(self.value, str):
            return self.value.encode()
        return json.dumps(self.value, separators=(",", ":")).encode()

    def key_bytes(self) -> bytes | None:
        return None if self.key is None else self.key.encode()


class Generator(ABC):
    """Records 0, 1, 2, ... of one kind of data."""

    name: ClassVar[str]
    #: records a second when none is asked for
    default_rate: ClassVar[float]
    #: the topic most of its records go to
    topic: ClassVar[str]

    def __init__(self, seed: int = 42, keys: int | None = None) -> None:
        self.seed = seed
        self.keys = keys

    def rng(self, n: int, salt: str = "") -> random.Random:
        return random.Random(f"{self.name}:{self.seed}:{salt}:{n}")

    @abstractmethod
    def records(self, n: int) -> list[Generated]:
        """What position `n` sends (one record, or a few that belong together)."""

    def take(self, count: int, start: int = 0) -> Iterator[tuple[int, Generated]]:
        """(position, record) for positions `start` .. `start + count - 1`."""
        for n in range(start, start + count):
            for record in self.records(n):
                yield n, record


def _vector(rng: random.Random, scale: float) -> dict[str, float]:
    return {axis: round(rng.gauss(0, scale), 4) for axis in ("x", "y", "z")}


class SenseHat(Generator):
    """Sense HAT devices (`device1`, `device2`, ...): a reading every quarter second each to
    the device's topic (key "message"), and now and then a joystick event (key "alert") to
    `<device>alerts` and `<device>`; a "held" event goes to the shared `alerts` as well."""

    name = "sensehat"
    default_rate = 8.0  # two devices at 4 a second
    topic = "device1"
    #: one position in this many is a joystick event
    joystick_every = 20

    def devices(self) -> list[str]:
        return [f"device{i}" for i in range(1, (self.keys or 2) + 1)]

    def records(self, n: int) -> list[Generated]:
        devices = self.devices()
        if n % self.joystick_every == self.joystick_every - 1:
            device = devices[(n // self.joystick_every) % len(devices)]
            return joystick_records(self.joystick(device, n))
        device = devices[n % len(devices)]
        return [Generated(device, "message", self.reading(n, n / len(devices)))]

    def joystick(self, device: str, n: int) -> dict[str, str]:
        """A joystick event of `device`: pressed or held, in one of five directions."""
        rng = self.rng(n, "joystick")
        return {
            "button": "held" if rng.random() < 0.3 else "pressed",
            "direction": rng.choice(["up", "down", "left", "right", "middle"]),
            "device": device,
        }

    def reading(self, n: int, t: float) -> dict[str, Any]:
        """Reading `n`, at time step `t` of a slow drift (so that charts show movement)."""
        rng = self.rng(n)
        return {
            "orentation": {
                "pitch": round((rng.gauss(0, 2) + 10 * math.sin(t / 20)) % 360, 3),
                "roll": round(rng.gauss(0, 2) % 360, 3),
                "yaw": round((t * 3 + rng.gauss(0, 1)) % 360, 3),
            },
            "compass": {
                "x": round(30 * math.cos(t / 15) + rng.gauss(0, 1), 4),
                "y": round(30 * math.sin(t / 15) + rng.gauss(0, 1), 4),
                "z": round(rng.gauss(-40, 1), 4),
            },
            "gyroscope": _vector(rng, 0.05),
            "accelerometer": {
                "x": round(rng.gauss(0, 0.02) + 0.1 * math.sin(t / 7), 4),
                "y": round(rng.gauss(0, 0.02), 4),
                "z": round(rng.gauss(1, 0.01), 4),
            },
        }


def joystick_records(event: dict[str, str]) -> list[Generated]:
    """Where a joystick event goes, as the course's devices send it: to `<device>alerts` and
    `<device>` (key "alert"), and a "held" one to the shared `alerts` too."""
    device = event["device"]
    out = [Generated(f"{device}alerts", "alert", event), Generated(device, "alert", event)]
    if event["button"] == "held":
        out.append(Generated("alerts", "alert", event))
    return out


class Weather(Generator):
    """Topic `weather`, key `str(n % 10)`: WeatherStation 1..9, Temperature normal(0, 0.1),
    Humidity logistic(10, 1), Sensor1 triangular(-3, 0, 8), Sensor2 beta(10, 20)."""

    name = "weather"
    default_rate = 20.0
    topic = "weather"

    def records(self, n: int) -> list[Generated]:
        rng = self.rng(n)
        u = min(max(rng.random(), 1e-12), 1 - 1e-12)
        value = {
            "WeatherStation": rng.randint(1, 9),
            "Temperature": rng.gauss(0, 0.1),
            "Humidity": 10 + math.log(u / (1 - u)),
            "Sensor1": rng.triangular(-3, 8, 0),
            "Sensor2": rng.betavariate(10, 20),
        }
        return [Generated("weather", str(n % 10), value)]


class Drone(Generator):
    """Topic `drone`, key `str(n % 3)`: WeatherStation 1..9, Latitude and Longitude
    normal(0, 0.1), NumberVisitors 1..9."""

    name = "drone"
    default_rate = 1.0
    topic = "drone"

    def records(self, n: int) -> list[Generated]:
        rng = self.rng(n)
        value = {
            "WeatherStation": rng.randint(1, 9),
            "Latitude": rng.gauss(0, 0.1),
            "Longitude": rng.gauss(0, 0.1),
            "NumberVisitors": rng.randint(1, 9),
        }
        return [Generated("drone", str(n % 3), value)]


class Rand(Generator):
    """Topic `rand`: the plain string `str(n % 3)`, not JSON, every 2 s."""

    name = "rand"
    default_rate = 0.5
    topic = "rand"

    def records(self, n: int) -> list[Generated]:
        return [Generated("rand", None, str(n % 3))]


_LEVELS = ("Platinum", "Gold", "Silver", "Bronze")
_CITIES = ("Seattle", "Lisbon", "Oslo", "Nairobi", "Osaka", "Lima", "Berlin", "Austin")
_PAGES = ("/", "/index.html", "/products", "/cart", "/checkout", "/about", "/images/logo.png")
_AGENTS = ("Mozilla/5.0 (X11; Linux x86_64)", "Mozilla/5.0 (iPhone)", "curl/8.5.0")


class Users(Generator):
    """Topic `clickstream_users`, keyed by the user id: the course's `users` columns
    (user_id, registered_at, username, name, city, level). Each of `keys` users (default
    100) in turn; a later pass over the same ids changes some levels (a table's updates)."""

    name = "users"
    default_rate = 5.0
    topic = "clickstream_users"

    def user(self, user_id: int, version: int) -> dict[str, Any]:
        rng = self.rng(user_id, f"user{version}")
        first = self.rng(user_id, "name").choice(["Ana", "Bo", "Chen", "Dee", "Eli", "Fay"])
        return {
            "user_id": user_id,
            "registered_at": 1_600_000_000_000 + user_id * 86_400_000,
            "username": f"{first.lower()}{user_id}",
            "name": f"{first} {chr(65 + user_id % 26)}.",
            "city": self.rng(user_id, "city").choice(_CITIES),
            "level": rng.choices(_LEVELS, weights=(1, 2, 3, 4))[0],
        }

    def records(self, n: int) -> list[Generated]:
        count = self.keys or 100
        user_id = n % count + 1
        return [Generated("clickstream_users", str(user_id), self.user(user_id, n // count))]


class Clickstream(Generator):
    """Topic `my_clickstream_topic`: the course's `clickstream` columns (time, url, status,
    bytes, userid, agent), users 1..`keys` (default 100, the `users` generator's ids)."""

    name = "clickstream"
    default_rate = 50.0
    topic = "my_clickstream_topic"

    def records(self, n: int) -> list[Generated]:
        rng = self.rng(n)
        url = rng.choice(_PAGES)
        status = rng.choices((200, 302, 404, 500), weights=(90, 5, 4, 1))[0]
        size = rng.randint(200, 40_000)
        userid = str(rng.randint(1, self.keys or 100))
        value = {
            "time": 1_700_000_000_000 + n * 20,
            "url": url,
            "status": status,
            "bytes": size,
            "userid": userid,
            "agent": rng.choice(_AGENTS),
        }
        return [Generated("my_clickstream_topic", userid, value)]


class AuthorizationAttempts(Generator):
    """Topic `authorization_attempts`, keyed by card number. Most attempts come from a large
    pool of cards (a card rarely repeats within seconds); in each block of 50 positions one
    burst of 6 attempts in a row comes from one card, as fraud looks (4 or more in 5 s)."""

    name = "authorization_attempts"
    default_rate = 20.0
    topic = "authorization_attempts"
    block = 50
    burst = 6

    def card(self, rng: random.Random) -> str:
        return "4" + "".join(str(rng.randint(0, 9)) for _ in range(15))

    def burst_at(self, block: int) -> tuple[int, str]:
        """Where block `block`'s burst starts, and its card."""
        rng = self.rng(block, "burst")
        return rng.randrange(0, self.block - self.burst), self.card(rng)

    def records(self, n: int) -> list[Generated]:
        start, fraud_card = self.burst_at(n // self.block)
        rng = self.rng(n)
        in_burst = start <= n % self.block < start + self.burst
        card = fraud_card if in_burst else self.card(rng)
        value = {
            "card_number": card,
            "amount": round(rng.uniform(1, 500) if not in_burst else rng.uniform(1, 50), 2),
            "merchant": rng.choice(["grocer", "fuel", "online", "travel", "cafe"]),
            "country": rng.choice(["US", "PT", "NO", "KE", "JP"]),
        }
        return [Generated("authorization_attempts", card, value)]


class Nexmark(Generator):
    """Nexmark's online auction: person, auction and bid events in proportions 1:3:46 (out
    of each 50), to topics `person`, `auction` and `bid`, with Nexmark's fields. With `keys`,
    at most that many people and three times as many auctions: their ids come back."""

    name = "nexmark"
    default_rate = 1000.0
    topic = "bid"

    def records(self, n: int) -> list[Generated]:
        rng = self.rng(n)
        epoch, offset = divmod(n, 50)
        now = 1_700_000_000_000 + n
        people = epoch + 1  # persons so far, one an epoch
        auctions = created = epoch * 3 + max(0, min(3, offset))
        if self.keys:  # a bounded population: ids come back (a person's details updated)
            people = min(people, self.keys)
            auctions = min(auctions, 3 * self.keys)
        if offset == 0:
            pid = epoch % self.keys + 1000 if self.keys else epoch + 1000
            value: dict[str, Any] = {
                "id": pid,
                "name": f"{rng.choice(['Walter', 'Luke', 'Sarah', 'Vicky'])} "
                f"{rng.choice(['Shultz', 'Abrams', 'Spencer', 'White'])}",
                "emailAddress": f"user{pid}@example.com",
                "creditCard": " ".join(f"{rng.randint(0, 9999):04d}" for _ in range(4)),
                "city": rng.choice(_CITIES),
                "state": rng.choice(["WA", "OR", "ID", "CA"]),
                "dateTime": now,
            }
            return [Generated("person", str(pid), value)]
        if offset <= 3:
            aid = (created - 1) % (3 * self.keys) + 1001 if self.keys else created + 1000
            initial = rng.randint(1, 100)
            value = {
                "id": aid,
                "itemName": f"item-{aid}",
                "description": "a thing",
                "initialBid": initial,
                "reserve": initial + rng.randint(0, 100),
                "dateTime": now,
                "expires": now + rng.randint(10_000, 60_000),
                "seller": 1000 + rng.randrange(people),
                "category": 10 + rng.randrange(5),
            }
            return [Generated("auction", str(aid), value)]
        value = {
            "auction": 1000 + rng.randrange(max(1, auctions)),
            "bidder": 1000 + rng.randrange(people),
            "price": rng.randint(1, 10_000),
            "channel": rng.choice(["Google", "Facebook", "Baidu", "Apple"]),
            "url": f"https://www.nexmark.com/{rng.randint(0, 999)}",
            "dateTime": now,
        }
        return [Generated("bid", str(value["auction"]), value)]


class NexmarkSpec(Generator):
    """Nexmark's events as the benchmark specifies them (`hispeed.demo.nexmark`): person,
    auction and bid, 1:3:46, to topics `person`, `auction` and `bid` keyed by id (bids by
    auction), with every field of the specification (`extra` included). Position n is event
    n; `keys` is not used (ids follow the specification's own hot and recent choices)."""

    name = "nexmark_spec"
    default_rate = 1000.0
    topic = "bid"

    def __init__(self, seed: int = 42, keys: int | None = None) -> None:
        super().__init__(seed, keys)
        self._gen = NexmarkGenerator(seed)

    def records(self, n: int) -> list[Generated]:
        return [record for _, record in self.take(1, n)]

    def take(self, count: int, start: int = 0) -> Iterator[tuple[int, Generated]]:
        for chunk in self._gen.chunks(count, start):
            rows: list[tuple[int, Generated]] = []
            for topic, table in zip(TOPICS, (chunk.person, chunk.auction, chunk.bid), strict=True):
                key = "auction" if topic == "bid" else "id"
                for row in table.to_pylist():
                    position = row.pop("position")
                    rows.append((position, Generated(topic, str(row[key]), row)))
            rows.sort(key=lambda r: r[0])
            yield from rows


GENERATORS: dict[str, type[Generator]] = {
    g.name: g
    for g in (
        SenseHat,
        Weather,
        Drone,
        Rand,
        Users,
        Clickstream,
        AuthorizationAttempts,
        Nexmark,
        NexmarkSpec,
    )
}


def generator(name: str, seed: int = 42, keys: int | None = None) -> Generator:
    cls = GENERATORS.get(name.lower())
    if cls is None:
        raise HispeedError(f"no generator {name!r}; there are: {', '.join(sorted(GENERATORS))}")
    return cls(seed, keys)


__all__ = ["GENERATORS", "Generated", "Generator", "SenseHat", "generator", "joystick_records"]

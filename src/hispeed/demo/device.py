"""A simulated Sense HAT device: a separate program that talks to hispeed as a device would.

    hispeed demo device --id device1 [--url http://127.0.0.1:8088] [--seed 1]

Over WebSockets (`/ws/produce/<topic>` out, `/ws/topics` in), as the course's devices did
with Kafka: a reading every quarter second to the topic named after the device (key
"message"), a joystick event now and then to `<device>alerts` and `<device>` (key "alert";
a "held" one also to `alerts`), and every event that arrives on `<device>alerts`, `alerts`
and `<device>commands` shown on its 8x8 LED matrix: an arrow in the event's direction, green
when pressed, red when held, blue when it came from another device; "middle" is a red X.
A command (`{"direction": ..., "color": ...}`) names its colour itself.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from hispeed.demo.generators import Generated, SenseHat, joystick_records
from hispeed.errors import HispeedError

COLORS = {
    "green": (0, 255, 0),
    "red": (255, 0, 0),
    "blue": (0, 0, 255),
    "white": (255, 255, 255),
    "yellow": (255, 255, 0),
}
_ARROW_UP = [
    "...XX...",
    "..XXXX..",
    ".XXXXXX.",
    "XX.XX.XX",
    "...XX...",
    "...XX...",
    "...XX...",
    "...XX...",
]
_CROSS = [
    "X......X",
    ".X....X.",
    "..X..X..",
    "...XX...",
    "...XX...",
    "..X..X..",
    ".X....X.",
    "X......X",
]


def _rotate(rows: list[str]) -> list[str]:
    """The picture turned a quarter clockwise."""
    return ["".join(rows[7 - c][r] for c in range(8)) for r in range(8)]


_SHAPES = {"up": _ARROW_UP, "middle": _CROSS}
_SHAPES["right"] = _rotate(_ARROW_UP)
_SHAPES["down"] = _rotate(_SHAPES["right"])
_SHAPES["left"] = _rotate(_SHAPES["down"])

Pixel = tuple[int, int, int]


@dataclass
class Led:
    """The 8x8 matrix: 64 pixels, row by row, as the Sense HAT's `set_pixels` takes them."""

    pixels: list[Pixel] = field(default_factory=lambda: [(0, 0, 0)] * 64)

    def show(self, direction: str, color: str) -> None:
        shape = _SHAPES.get(direction)
        if shape is None:
            raise HispeedError(f"no LED picture for direction {direction!r}")
        rgb = COLORS.get(color)
        if rgb is None:
            raise HispeedError(f"no LED colour {color!r}; there are {', '.join(COLORS)}")
        self.pixels = [rgb if ch == "X" else (0, 0, 0) for row in shape for ch in row]

    def render(self) -> str:
        """The matrix for a terminal: coloured blocks, dots for dark pixels."""
        lines = []
        for r in range(8):
            cells = []
            for p in self.pixels[r * 8 : r * 8 + 8]:
                if p == (0, 0, 0):
                    cells.append(" .")
                else:
                    cells.append(f"\x1b[38;2;{p[0]};{p[1]};{p[2]}m██\x1b[0m")
            lines.append("".join(cells))
        return "\n".join(lines)


def led_command(device: str, event: dict[str, Any]) -> tuple[str, str]:
    """(direction, colour) the LED shows for an event that reached `device` (field names in
    any case: a query's output names them in capitals)."""
    event = {str(k).lower(): v for k, v in event.items()}
    direction = str(event.get("direction", "middle"))
    if "color" in event or "colour" in event:
        return direction, str(event.get("color", event.get("colour")))
    if direction == "middle":
        return direction, "red"
    if event.get("device") not in (None, device):
        return direction, "blue"
    return direction, "green" if event.get("button") == "pressed" else "red"


class SimulatedDevice:
    """One device: readings and joystick events out, LED commands in."""

    def __init__(
        self,
        device_id: str,
        url: str = "http://127.0.0.1:8088",
        *,
        seed: int = 1,
        rate: float = 4.0,
        joystick_every: int = 20,
        on_led: Callable[[str, Led, dict[str, Any]], None] | None = None,
        token: str | None = None,
    ) -> None:
        self.id = device_id
        self.url = url.rstrip("/")
        self.rate = rate
        self.joystick_every = joystick_every
        self.gen = SenseHat(seed=seed, keys=1)
        self.led = Led()
        self.on_led = on_led
        self.token = token
        self.sent = 0
        self.events_sent = 0
        self.received: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listening = threading.Event()
        #: why the device stopped on its own (the server went away), or None
        self.error: str | None = None

    def _ws(self, path: str) -> Any:
        from websockets.sync.client import connect

        base = self.url.replace("http://", "ws://").replace("https://", "wss://")
        headers = {"authorization": f"Bearer {self.token}"} if self.token else None
        return connect(base + path, additional_headers=headers, open_timeout=10)

    def start(self) -> None:
        for target in (self._listen, self._send):
            t = threading.Thread(
                target=self._guarded, args=(target,), name=f"{self.id}-{target.__name__}"
            )
            t.daemon = True
            t.start()
            self._threads.append(t)
        deadline = time.monotonic() + 10
        while not self._listening.wait(0.05):
            if self._stop.is_set() or time.monotonic() > deadline:
                break
        if not self._listening.is_set():
            self.stop()
            raise HispeedError(
                f"{self.id} could not subscribe to its commands at {self.url}"
                + (f": {self.error}" if self.error else "")
            )

    def _guarded(self, target: Callable[[], None]) -> None:
        """Run one side of the device; a lost server stops the device with the reason."""
        try:
            target()
        except Exception as e:
            if not self._stop.is_set():
                self.error = f"{type(e).__name__}: {e}"
                self._stop.set()

    @property
    def running(self) -> bool:
        return not self._stop.is_set()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(5)

    def _send(self) -> None:
        from contextlib import ExitStack

        sockets: dict[tuple[str, str | None], Any] = {}
        n = 0
        with ExitStack() as stack:
            while not self._stop.is_set():
                began = time.monotonic()
                if n % self.joystick_every == self.joystick_every - 1:
                    records = joystick_records(self.gen.joystick(self.id, n))
                    self.events_sent += 1
                else:
                    records = [Generated(self.id, "message", self.gen.reading(n, n))]
                for r in records:
                    ws = sockets.get((r.topic, r.key))
                    if ws is None:  # one socket per topic and key: the key is the socket's
                        path = f"/ws/produce/{quote(r.topic)}?key={quote(r.key or '')}"
                        ws = sockets[(r.topic, r.key)] = stack.enter_context(self._ws(path))
                    ws.send(r.value_bytes().decode())
                    reply = json.loads(ws.recv(timeout=10))
                    if "offsets" not in reply:
                        raise HispeedError(f"{self.id}: the server refused a record: {reply}")
                self.sent += 1
                n += 1
                self._stop.wait(max(0.0, 1 / self.rate - (time.monotonic() - began)))

    def _listen(self) -> None:
        topics = {f"{self.id}alerts", "alerts", f"{self.id}commands"}
        with self._ws(f"/ws/topics?pattern={quote(_pattern(self.id))}") as ws:
            self._listening.set()
            while not self._stop.is_set():
                try:
                    message = ws.recv(timeout=0.2)
                except TimeoutError:
                    continue
                record = json.loads(message)
                if record["topic"] not in topics:
                    continue
                event = record["value"] if isinstance(record["value"], dict) else {}
                direction, color = led_command(self.id, event)
                try:
                    self.led.show(direction, color)
                except HispeedError:
                    continue  # a command the LED cannot show changes nothing
                self.received.append(event)
                if self.on_led is not None:
                    self.on_led(self.id, self.led, event)


def _pattern(device_id: str) -> str:
    import re

    d = re.escape(device_id)
    return f"^({d}alerts|alerts|{d}commands)$"


def print_led(device_id: str, led: Led, event: dict[str, Any]) -> None:
    print(f"\n{device_id} got {json.dumps(event)}:\n{led.render()}", flush=True)


__all__ = ["Led", "SimulatedDevice", "led_command", "print_led"]

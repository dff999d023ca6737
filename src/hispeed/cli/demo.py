"""`hispeed demo`: the course's scenarios from the command line.

hispeed demo device --id device1            # a simulated Sense HAT against a server
hispeed demo generate weather --rate 20     # a generator's records into a server
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time

import click

from hispeed.errors import HispeedError


@click.group()
def demo() -> None:
    """The course's scenarios: simulated devices and data generators."""


@demo.command("run")
@click.option("--devices", type=click.IntRange(0, 9), default=2, show_default=True)
@click.option("--host", default=None, help="Address to bind [default 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default 8088].")
@click.pass_context
def run_demo(ctx: click.Context, devices: int, host: str | None, port: int | None) -> None:
    """Run the server, a Redis, the course's scenarios, their generators and simulated
    devices until Ctrl-C (what `make run` starts). Running it again resumes them."""
    from dataclasses import replace

    from hispeed.cli.demo_app import run

    settings = ctx.obj.settings
    given = {k: v for k, v in {"host": host, "port": port}.items() if v is not None}
    run(replace(settings, **given), devices=devices)


@demo.command()
@click.option("--id", "device_id", default="device1", show_default=True, help="The device's id.")
@click.option("--url", default="http://127.0.0.1:8088", show_default=True, help="The server.")
@click.option("--rate", type=click.FloatRange(0.1), default=4.0, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--joystick-every", type=click.IntRange(2), default=20, show_default=True)
@click.option("--token", default=None, help="A bearer token, when the server asks for one.")
@click.option("--seconds", type=float, default=None, help="Stop after this long.")
def device(
    device_id: str,
    url: str,
    rate: float,
    seed: int,
    joystick_every: int,
    token: str | None,
    seconds: float | None,
) -> None:
    """Run a simulated Sense HAT: readings and joystick events out, its LED's commands in."""
    from hispeed.demo.device import SimulatedDevice, print_led

    sim = SimulatedDevice(
        device_id,
        url,
        seed=seed,
        rate=rate,
        joystick_every=joystick_every,
        on_led=print_led,
        token=token,
    )
    sim.start()
    click.echo(
        f"{device_id}: sending {rate:g} readings a second to {url}; "
        f"its LED shows {device_id}alerts, alerts and {device_id}commands (Ctrl-C stops)"
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C: stop, as SIGTERM does
            while sim.running and not stop.is_set():
                if deadline is not None and time.monotonic() > deadline:
                    break
                stop.wait(0.2)
    finally:
        sim.stop()
    if sim.error:
        raise HispeedError(f"{device_id} stopped: {sim.error}")
    click.echo(f"{device_id}: sent {sim.sent} readings and events, showed {len(sim.received)}")


@demo.command()
@click.argument("name")
@click.option("--url", default="http://127.0.0.1:8088", show_default=True, help="The server.")
@click.option("--rate", type=click.FloatRange(0.1), default=None, help="Records a second.")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--keys", type=click.IntRange(1), default=None, help="Devices, users, ...")
@click.option("--count", type=click.IntRange(1), default=None, help="Stop after this many.")
def generate(
    name: str, url: str, rate: float | None, seed: int, keys: int | None, count: int | None
) -> None:
    """Send a generator's records (sensehat, weather, drone, rand, users, clickstream,
    authorization_attempts, nexmark) to a server's topics at a steady rate."""
    import httpx

    from hispeed.demo.generators import generator

    gen = generator(name, seed, keys)
    per_s = rate or gen.default_rate
    began = time.monotonic()
    sent = 0
    n = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        try:
            while count is None or n < count:
                due = int((time.monotonic() - began) * per_s) - n
                if due <= 0:
                    time.sleep(min(0.1, 1 / per_s))
                    continue
                if count is not None:
                    due = min(due, count - n)
                by_topic: dict[tuple[str, str | None], list[bytes]] = {}
                for _, record in gen.take(due, n):
                    by_topic.setdefault((record.topic, record.key), []).append(record.value_bytes())
                for (topic, key), values in by_topic.items():
                    params = {"key": key} if key is not None else {}
                    response = client.post(
                        f"/topics/{topic}",
                        params=params,
                        content=b"\n".join(values),
                        headers={"content-type": "application/x-ndjson"},
                    )
                    if response.status_code != 200:
                        raise HispeedError(f"the server refused {topic}: {response.text}")
                    sent += len(values)
                n += due
        except httpx.TransportError as e:
            raise HispeedError(f"cannot reach hispeed at {url}: {e}") from None
        except KeyboardInterrupt:
            click.echo("stopped", err=True)  # Ctrl-C ends the run; what was sent stays
    click.echo(json.dumps({"generator": name, "positions": n, "records": sent}), file=sys.stdout)


__all__ = ["demo"]

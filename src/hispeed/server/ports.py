"""The server's ports, checked before anything starts."""

from __future__ import annotations

import socket

from hispeed.config import Settings
from hispeed.errors import HispeedError


def check_ports(settings: Settings) -> None:
    """Refuse to start, with one clear error naming the port, when a port the server would
    listen on is taken (often by another hispeed, such as `make run`): checked before
    anything opens or is announced, so nothing says "listening" first and no library's own
    error (gRPC's bind failure, hypercorn's traceback) reaches the terminal."""
    wanted = [("HTTP", settings.port, "--port or HISPEED_PORT")]
    if settings.grpc_port:
        if settings.grpc_port == settings.port:
            raise HispeedError(
                f"the HTTP and gRPC services cannot share port {settings.port}: choose "
                "another with --grpc-port or HISPEED_GRPC_PORT (0: no gRPC service)"
            )
        wanted.append(
            ("gRPC", settings.grpc_port, "--grpc-port or HISPEED_GRPC_PORT (0: no gRPC service)")
        )
    for service, port, how in wanted:
        try:
            family, kind, proto, _, address = socket.getaddrinfo(
                settings.host, port, type=socket.SOCK_STREAM
            )[0]
            with socket.socket(family, kind, proto) as sock:
                # as the servers bind: a port left in TIME_WAIT by a stopped server is free
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind(address)
        except OSError as e:
            raise HispeedError(
                f"cannot serve {service} on {settings.host}:{port}: "
                f"{e.strerror or e} (is another hispeed, such as `make run`, using it?): stop "
                f"it, or choose another port with {how}"
            ) from None

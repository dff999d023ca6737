"""`hispeed.server.wsframes` against websockets' own frame parser and serializer (an
independent implementation of RFC 6455): the same payloads out of the same bytes, however the
bytes are cut into reads, and a stop at every frame the fast path leaves to websockets."""

from __future__ import annotations

import random

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from hispeed.server.wsframes import split_frames, text_frames


def _client_frame(opcode: Opcode, data: bytes, *, fin: bool = True) -> bytes:
    return Frame(opcode, data, fin=fin).serialize(mask=True)


def _parse_server_frames(data: bytes) -> list[Frame]:
    """Frames as a websockets client reads them (unmasked, from a server)."""
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    frames = []
    while True:
        parser = Frame.parse(reader.read_exact, mask=False)
        try:
            next(parser)
            while True:
                next(parser)
        except StopIteration as done:
            frames.append(done.value)
        except EOFError:
            return frames


SIZES = [0, 1, 125, 126, 127, 65535, 65536, 70000]


def test_split_frames_gives_websockets_payloads_whatever_the_reads() -> None:
    rng = random.Random(7)
    payloads = [rng.randbytes(n) for n in SIZES] + [
        rng.randbytes(rng.randrange(300)) for _ in range(200)
    ]
    opcodes = [Opcode.TEXT if i % 3 else Opcode.BINARY for i in range(len(payloads))]
    stream = b"".join(_client_frame(o, p) for o, p in zip(opcodes, payloads, strict=True))
    for cut_seed in range(5):
        cuts = random.Random(cut_seed)
        got: list[bytes] = []
        rest = b""
        pos = 0
        while pos < len(stream):
            step = cuts.choice([1, 2, 3, 7, 100, 5000, 100_000])
            data = rest + stream[pos : pos + step]
            pos += step
            out, used, other = split_frames(data, 1 << 20)
            assert not other
            got += out
            rest = data[used:]
        assert rest == b""
        assert got == payloads


def test_split_frames_stops_at_frames_left_to_websockets() -> None:
    ok = _client_frame(Opcode.TEXT, b'{"a": 1}')
    others = [
        _client_frame(Opcode.PING, b"hi"),
        _client_frame(Opcode.CLOSE, b"\x03\xe8"),
        _client_frame(Opcode.TEXT, b"part", fin=False),
        _client_frame(Opcode.CONT, b"more"),
        b"\xc1\x80\0\0\0\0",  # RSV1 set: permessage-deflate
        Frame(Opcode.TEXT, b"unmasked").serialize(mask=False),
        _client_frame(Opcode.TEXT, b"x" * 200),  # over the limit below
        b"\x83\x80\0\0\0\0",  # a reserved opcode
    ]
    for other in others:
        out, used, stopped = split_frames(ok + ok + other + ok, 100)
        assert (out, used, stopped) == ([b'{"a": 1}'] * 2, 2 * len(ok), True), other


@pytest.mark.parametrize("size", SIZES)
def test_text_frames_read_back_by_websockets(size: int) -> None:
    bodies = [b"a" * size, b'{"offsets": []}', b""]
    frames = _parse_server_frames(text_frames(bodies))
    assert [(f.opcode, f.fin, f.rsv1, f.data) for f in frames] == [
        (Opcode.TEXT, True, False, b) for b in bodies
    ]


@pytest.mark.parametrize("size", [0, 1, 70, 125, 126, 65536])
def test_one_answer_framed_alone_reads_back_by_websockets(size: int) -> None:
    """One answer (the common case, framed the short way below 126 bytes)."""
    frames = _parse_server_frames(text_frames([b"a" * size]))
    assert [(f.opcode, f.fin, f.rsv1, f.data) for f in frames] == [
        (Opcode.TEXT, True, False, b"a" * size)
    ]

"""WebSocket frames in bulk for `/ws/produce` (RFC 6455, 5.2): a read's whole client frames
split in one loop, answers framed in one join.

websockets' sans-I/O parser (what uvicorn serves WebSockets with) runs a generator per frame
and builds a `Frame` object for it; with one-record messages that was a fifth of the server's
CPU per message. Only the frames a producer sends on its fast path are split here: final
(unfragmented), unextended (RSV bits clear: no permessage-deflate), masked text or binary
frames within the size limit. At anything else (a control frame, a fragment, a compressed
frame, a frame over the limit, a malformed one) `split_frames` stops and says so, and the
caller hands the rest of the stream to websockets, which deals with it as before. Unmasking
uses websockets' own C routine.
"""

from __future__ import annotations

from collections.abc import Sequence

from websockets.speedups import apply_mask  # type: ignore[import-not-found,unused-ignore]

#: FIN set, RSV clear, opcode text / binary
_TEXT = 0x81
_BINARY = 0x82
#: the header of a text frame of each length below 126
_SHORT_TEXT = [bytes((_TEXT, n)) for n in range(126)]


def split_frames(data: bytes | bytearray, max_size: int) -> tuple[list[bytes], int, bool]:
    """The payloads of the whole fast-path frames at the front of `data`, unmasked; how many
    bytes they took; and whether splitting stopped at a frame it does not take (True), not
    for want of bytes (False)."""
    out: list[bytes] = []
    pos = 0
    end = len(data)
    while end - pos >= 2:
        first = data[pos]
        second = data[pos + 1]
        if (first != _TEXT and first != _BINARY) or second < 0x80:
            return out, pos, True  # not ours (or not masked: websockets refuses it)
        length = second & 0x7F
        if length < 126:
            start = pos + 6
        elif length == 126:
            if end - pos < 4:
                break
            length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            start = pos + 8
        else:
            if end - pos < 10:
                break
            length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            start = pos + 14
        if length > max_size:
            return out, pos, True  # websockets closes with 1009, as it always did
        stop = start + length
        if stop > end:
            break
        out.append(apply_mask(data[start:stop], data[start - 4 : start]))
        pos = stop
    return out, pos, False


def text_frames(bodies: Sequence[bytes]) -> bytes:
    """Server text frames (unmasked, final) carrying `bodies` (UTF-8), back to back."""
    if len(bodies) == 1 and len(bodies[0]) < 126:  # one short answer, as nearly always
        return _SHORT_TEXT[len(bodies[0])] + bodies[0]
    parts: list[bytes] = []
    for body in bodies:
        n = len(body)
        if n < 126:
            parts.append(bytes((_TEXT, n)))
        elif n < 65536:
            parts.append(bytes((_TEXT, 126)) + n.to_bytes(2, "big"))
        else:
            parts.append(bytes((_TEXT, 127)) + n.to_bytes(8, "big"))
        parts.append(body)
    return b"".join(parts)


__all__ = ["split_frames", "text_frames"]

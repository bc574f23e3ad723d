"""`MaskCheck` follows frame boundaries however the reads cut the stream."""

from __future__ import annotations

import asyncio
import itertools

from gateway.testing.sockets import ParserProtocol
from gateway.transports.ws_reader import ClientFrameReader, DirectQueue, MaskCheck


def frame(
    payload: bytes, *, masked: bool = True, opcode: int = 0x1, mask: bytes = b"\x01\x02\x03\x04"
) -> bytes:
    n = len(payload)
    bit = 0x80 if masked else 0
    if n < 126:
        header = bytes((0x80 | opcode, bit | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, bit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, bit | 127)) + n.to_bytes(8, "big")
    return header + (mask if masked else b"") + payload


def feed(stream: bytes, cuts: list[int]) -> bool:
    check = MaskCheck()
    edges = [0, *cuts, len(stream)]
    return all(check.masked(stream[a:b]) for a, b in itertools.pairwise(edges))


STREAM = (
    frame(b"x" * 10) + frame(b"y" * 300) + frame(b"z" * 70_000) + frame(b"") + frame(b"w" * 125)
)


def test_masked_frames_pass_whatever_the_cuts() -> None:
    assert feed(STREAM, [])
    for step in (1, 2, 3, 5, 7, 13, 64, 1000, 4096):
        assert feed(STREAM, list(range(step, len(STREAM), step))), step
    # Cuts inside every header.
    for cut in range(1, 40):
        assert feed(STREAM, [cut]), cut


def test_an_unmasked_frame_is_found_wherever_it_starts() -> None:
    bad = STREAM + frame(b"evil", masked=False) + frame(b"more")
    for step in (1, 3, 11, 4096, len(bad)):
        assert not feed(bad, list(range(step, len(bad), step))), step


def test_an_unmasked_first_frame_is_refused() -> None:
    assert not MaskCheck().masked(frame(b'["1","1","t","phx_join",{}]', masked=False))


ZERO = b"\x00\x00\x00\x00"  # a mask that leaves the payload as it is


class Parsed:
    """A `ClientFrameReader` fed read by read: the payloads it parsed, whether it refused."""

    def __init__(self) -> None:
        queue = DirectQueue(ParserProtocol(), 1 << 16, loop=asyncio.get_running_loop())
        self.reader = ClientFrameReader(queue, 1 << 20, compress=False, decode_text=True)
        self.texts: list[str | bytes] = []
        queue.attach(lambda msg: self.texts.append(msg[1]))
        self.queue = queue

    def feed(self, data: bytes) -> None:
        self.reader.feed_data(data)

    @property
    def refused(self) -> bool:
        return self.queue.exception() is not None


async def test_the_reader_takes_whole_small_frames_and_refuses_unmasked_ones() -> None:
    # Every length a one-byte header holds, and two-byte lengths (one read, one frame).
    for size in [*range(140), 1000, 65535]:
        text = "x" * size
        good = Parsed()
        good.feed(frame(text.encode(), mask=ZERO))
        assert (good.texts, good.refused) == ([text], False), size
        bad = Parsed()
        bad.feed(frame(text.encode(), masked=False))
        assert (bad.texts, bad.refused) == ([], True), size


async def test_the_reader_follows_a_frame_cut_across_reads() -> None:
    # The second read is a frame's tail whose bytes look like a whole small frame's head: it
    # must be read as the tail it is, and the unmasked frame after it refused.
    tail = bytes((0x81, 0x80 + 4)) + b"\x00\x00\x00\x00" + b"abcd"
    first = frame(b"q" * 200, mask=ZERO, opcode=0x2)  # binary: the tail is not UTF-8
    parsed = Parsed()
    stream = first[: -len(tail)] + tail
    parsed.feed(stream[: -len(tail)])
    parsed.feed(stream[-len(tail) :])
    parsed.feed(frame(b"evil", masked=False))
    assert parsed.texts == [b"q" * 190 + tail]
    assert parsed.refused

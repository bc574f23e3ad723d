"""`MaskCheck` follows frame boundaries however the reads cut the stream."""

from __future__ import annotations

import itertools

from gateway.transports.ws_reader import MaskCheck


def frame(payload: bytes, *, masked: bool = True, opcode: int = 0x1) -> bytes:
    n = len(payload)
    bit = 0x80 if masked else 0
    if n < 126:
        header = bytes((0x80 | opcode, bit | n))
    elif n < 65536:
        header = bytes((0x80 | opcode, bit | 126)) + n.to_bytes(2, "big")
    else:
        header = bytes((0x80 | opcode, bit | 127)) + n.to_bytes(8, "big")
    return header + (b"\x01\x02\x03\x04" if masked else b"") + payload


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

"""Shared encodings: the same batch and frame bytes for every connection, valid WebSocket framing."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from gateway.frames import FrameCache, text_frame
from services import protocol


def parse(data: bytes) -> Frame:
    reader = StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    parser = Frame.parse(reader.read_exact, mask=False)
    try:
        next(parser)
    except StopIteration as done:
        frame: Frame = done.value
        return frame
    raise AssertionError("incomplete frame")


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536, 200_000])
def test_text_frame_is_what_a_websocket_parser_reads(size: int) -> None:
    payload = ("é" * size).encode()[:size]
    frame = parse(text_frame(payload))
    assert frame.opcode is Opcode.TEXT and frame.fin and frame.data == payload


def test_same_frames_join_once_and_serialize_once() -> None:
    cache = FrameCache()
    a, b = protocol.msg("t", 1, "1-0", 1, b"1"), protocol.msg("t", 2, "2-0", 2, b"2")
    first, second = cache.batch([a, b]), cache.batch([a, b])
    assert first is second and first == protocol.batch([a, b])
    assert cache.batch([a]) is a
    assert cache.wire(first) is cache.wire(second)
    assert parse(cache.wire(first)).data == first.encode()


def test_cache_is_bounded() -> None:
    cache = FrameCache(size=4)
    frames = [protocol.msg("t", i, f"{i}-0", i, b"0") for i in range(10)]
    for i in range(9):
        cache.batch(frames[i : i + 2])
        cache.wire(frames[i])
    assert len(cache._batches) == 4 and len(cache._wire) == 4

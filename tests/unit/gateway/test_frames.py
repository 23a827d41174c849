"""Server frames: valid JSON encoded once, the same batch and frame bytes for every connection, valid
WebSocket framing, SSE events named by type."""

from __future__ import annotations

import orjson
import pytest
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from gateway import frames
from gateway.frames import FrameCache, text_frame


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
    a, b = frames.msg("t", 1, "1-0", 1, b"1"), frames.msg("t", 2, "2-0", 2, b"2")
    first, second = cache.batch([a, b]), cache.batch([a, b])
    assert first is second and first == frames.batch([a, b])
    assert cache.batch([a]) is a
    assert cache.wire(first) is cache.wire(second)
    assert parse(cache.wire(first)).data == first.encode()


def test_cache_is_bounded() -> None:
    cache = FrameCache(size=4)
    texts = [frames.msg("t", i, f"{i}-0", i, b"0") for i in range(10)]
    for i in range(9):
        cache.batch(texts[i : i + 2])
        cache.wire(texts[i])
    assert len(cache._batches) == 4 and len(cache._wire) == 4


def test_msg_splices_data_and_carries_trace_only_when_traced() -> None:
    plain = orjson.loads(frames.msg("ticks.AAPL", 1042, "1-0", 99, b'{"bid":1.5}'))
    assert plain == {"type": "msg", "topic": "ticks.AAPL", "seq": 1042, "id": "1-0", "ts": 99, "data": {"bid": 1.5}}
    traced = orjson.loads(frames.msg("t", 1, "1-0", 2, b"[]", trace="00-ab", hops={"origin": 2}))
    assert traced["trace"] == "00-ab" and traced["hops"] == {"origin": 2} and traced["data"] == []


def test_batch_wraps_several_and_passes_one_through() -> None:
    one = frames.msg("a", 1, "1-0", 1, b"1")
    assert frames.batch([one]) == one
    frame = orjson.loads(frames.batch([one, frames.msg("a", 2, "2-0", 2, b"2")]))
    assert frame["type"] == "batch" and [m["seq"] for m in frame["msgs"]] == [1, 2]


def test_sse_events_name_the_frame_and_carry_the_seq_of_messages() -> None:
    from gateway.message import Message

    assert frames.control_event(frames.pong(1, 2)) == f"event: pong\ndata: {frames.pong(1, 2)}\n\n"
    assert frames.control_event(frames.HEARTBEAT) == ": ping\n\n"
    message = Message(7, "t", frames.msg("t", 7, "7-0", 7, b'"a\\nb"'))
    assert frames.message_event(message).startswith("id: 7\nevent: msg\ndata: ")

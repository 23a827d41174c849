"""The session outbox: batching, bounds, slow consumer."""

from __future__ import annotations

import json

from gateway.message import Message
from gateway.session import OutboxLimits, Session, SessionState
from services import protocol


def msg(seq: int) -> Message:
    return Message(seq, "t", protocol.msg("t", seq, f"{seq}-0", seq, b"{}"))


async def test_writer_batches_messages_and_keeps_control_frames_in_order() -> None:
    """1. queue pong, 3 msgs, pong, 1 msg  2. the writer sends pong, batch(3), pong, msg."""
    session = Session("s", OutboxLimits(messages=100, bytes=1 << 20, batch_max=256))
    session.send(protocol.pong(1, 0))
    for seq in (1, 2, 3):
        session.deliver(msg(seq))
    session.send(protocol.pong(2, 0))
    session.deliver(msg(4))
    sent: list[dict[str, object]] = []

    async def send(frame: str) -> None:
        sent.append(json.loads(frame))
        if len(sent) == 4:
            session.closed()

    await session.write_loop(send)
    assert [f["type"] for f in sent] == ["pong", "batch", "pong", "msg"]
    assert [m["seq"] for m in sent[1]["msgs"]] == [1, 2, 3]  # type: ignore[index, union-attr]


def test_past_the_bound_the_session_closes_4008_and_drops_its_outbox() -> None:
    session = Session("s", OutboxLimits(messages=3, bytes=1 << 20, batch_max=2))
    for seq in range(1, 5):
        session.deliver(msg(seq))
    assert session.state is SessionState.CLOSING
    assert session.close_code == 4008
    assert session.queued == 0
    session.deliver(msg(5))  # ignored once closing
    assert session.queued == 0


def test_byte_bound_counts_too() -> None:
    session = Session("s", OutboxLimits(messages=1000, bytes=200, batch_max=2))
    for seq in range(1, 5):
        session.deliver(msg(seq))
    assert session.close_code == 4008

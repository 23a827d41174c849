"""A session's outbox: batching, bounds, slow consumer, conflation."""

from __future__ import annotations

import json

from gateway import frames
from gateway.frames import FrameCache
from gateway.message import Message
from gateway.outbox import OutboxLimits
from gateway.session import Session, SessionState
from gateway.writer import write_loop, ws_text


def take(session: Session) -> str:
    return ws_text(session.outbox, FrameCache())


def msg(seq: int) -> Message:
    return Message(seq, "t", frames.msg("t", seq, f"{seq}-0", seq, b"{}"))


async def test_writer_batches_messages_and_keeps_control_frames_in_order() -> None:
    """1. queue pong, 3 msgs, pong, 1 msg  2. the writer sends pong, batch(3), pong, msg."""
    session = Session("s", OutboxLimits(messages=100, bytes=1 << 20, batch_max=256))
    session.send(frames.pong(1, 0))
    for seq in (1, 2, 3):
        session.deliver(msg(seq))
    session.send(frames.pong(2, 0))
    session.deliver(msg(4))
    sent: list[dict[str, object]] = []

    async def send(frame: str) -> None:
        sent.append(json.loads(frame))
        if len(sent) == 4:
            session.closed()

    cache = FrameCache()
    await write_loop(session, send, lambda outbox: ws_text(outbox, cache))
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


def topic_msg(topic: str, seq: int) -> Message:
    return Message(seq, topic, frames.msg(topic, seq, f"{seq}-0", seq, b"{}"))


def test_conflation_replaces_the_queued_message_of_a_topic_once_above_half() -> None:
    """1. outbox of 10, ticks.* conflated  2. 4 trades, then 40 ticks over 2 topics
    3. no 4008; below half ticks queue up, above it each tick replaces its topic's last one
    4. per-topic seqs still increase in queue order and the newest of each is there."""
    limits = OutboxLimits(messages=10, bytes=1 << 20, batch_max=100, conflate=lambda t: t.startswith("ticks."))
    session = Session("s", limits)
    for seq in range(1, 5):
        session.deliver(topic_msg("trades.X", seq))
    for seq in range(5, 45):
        session.deliver(topic_msg(f"ticks.S{seq % 2}", seq))
    assert session.state is SessionState.OPEN
    queued = [json.loads(take(session))]
    while session.queued:
        queued.append(json.loads(take(session)))
    frames = [m for f in queued for m in (f["msgs"] if f["type"] == "batch" else [f])]
    per_topic: dict[str, list[int]] = {}
    for f in frames:
        per_topic.setdefault(f["topic"], []).append(f["seq"])
    assert per_topic["trades.X"] == [1, 2, 3, 4]
    assert per_topic["ticks.S0"][-1] == 44 and per_topic["ticks.S1"][-1] == 43
    assert all(seqs == sorted(seqs) for seqs in per_topic.values())
    assert session.outbox.conflated == 40 - (len(per_topic["ticks.S0"]) + len(per_topic["ticks.S1"]))
    assert len(frames) <= 10


def test_non_conflated_topics_still_close_4008() -> None:
    limits = OutboxLimits(messages=10, bytes=1 << 20, batch_max=100, conflate=lambda t: t.startswith("ticks."))
    session = Session("s", limits)
    for seq in range(1, 12):
        session.deliver(topic_msg("trades.X", seq))
    assert session.close_code == 4008


def test_gap_notices_and_control_frames_break_batches_and_keep_their_place() -> None:
    """1. queue msg 1, 2, a gap notice (3), msg 4, 5, a pong, msg 6  2. the frames taken are
    batch(1, 2), gap, batch(4, 5), pong, msg 6; the outbox is empty and holds no bytes."""
    session = Session("s", OutboxLimits(messages=100, bytes=1 << 20, batch_max=256))
    session.deliver(msg(1))
    session.deliver(msg(2))
    session.deliver(Message(3, "t", frames.gap("t", "trimmed"), is_gap=True))
    session.deliver(msg(4))
    session.deliver(msg(5))
    session.send(frames.pong(1, 0))
    session.deliver(msg(6))
    taken = []
    while session.queued:
        taken.append(json.loads(take(session)))
    assert [f["type"] for f in taken] == ["batch", "gap", "batch", "pong", "msg"]
    assert [m["seq"] for m in taken[0]["msgs"]] + [m["seq"] for m in taken[2]["msgs"]] == [1, 2, 4, 5]
    assert taken[4]["seq"] == 6
    assert session.outbox.bytes == 0

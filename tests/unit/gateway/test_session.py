"""A session's outbox: batching, bounds, slow consumer, conflation."""

from __future__ import annotations

import itertools
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


def drain(session: Session) -> list[list[dict[str, object]]]:
    """Every frame queued, each as the list of messages it carries."""
    taken = []
    while session.queued:
        frame = json.loads(take(session))
        taken.append(frame["msgs"] if frame["type"] == "batch" else [frame])
    return taken


def test_conflation_keeps_seq_order_so_a_client_cut_after_any_frame_resumes_losing_nothing() -> None:
    """1. outbox of 10, one message per frame, ticks.* conflated  2. ticks.A, ticks.B, four
    ticks.P*, then (above half) ticks.A twice more  3. the frames' seqs only increase, so after
    any frame every topic's newest message is either sent or above the highest seq sent: a
    client cut there resumes with ``since`` = that seq and misses none. (The newer ticks.A used
    to take the first one's place, ahead of ticks.B: a client cut after it lost ticks.B.)"""
    limits = OutboxLimits(messages=10, bytes=1 << 20, batch_max=1, conflate=lambda t: t.startswith("ticks."))
    session = Session("s", limits)
    topics = ["ticks.A", "ticks.B", "ticks.P0", "ticks.P1", "ticks.P2", "ticks.P3", "ticks.A", "ticks.A"]
    newest = {}
    for seq, topic in enumerate(topics, 1):
        session.deliver(topic_msg(topic, seq))
        newest[topic] = seq
    sent = [m["seq"] for frame in drain(session) for m in frame]
    assert sent == sorted(sent)
    for cut in range(1, len(sent) + 1):
        since = max(sent[:cut])
        missed = {t: s for t, s in newest.items() if s not in sent[:cut] and s <= since}
        assert not missed, f"cut after {sent[:cut]}: a resume from {since} misses {missed}"
    assert set(newest.values()) <= set(sent)
    assert session.outbox.conflated == 1 and session.outbox.bytes == 0


def test_a_conflated_topic_updated_faster_than_the_outbox_drains_is_still_sent() -> None:
    """1. outbox of 20, one message per frame, ticks.* conflated, six topics queued
    2. 60 rounds: each updates one of the six and ticks.HOT, then one frame is taken
    3. ticks.HOT keeps reaching the client at its turn, in order with everything else; it is
    never pushed back behind each newer message for good (its first queued message keeps its
    place), and its newest arrives at the end. Each topic holds at most two queued messages:
    seven topics stay within the bound, no 4008."""
    limits = OutboxLimits(messages=20, bytes=1 << 20, batch_max=1, conflate=lambda t: t.startswith("ticks."))
    session = Session("s", limits)
    seq = itertools.count(1)
    for i in range(6):
        session.deliver(topic_msg(f"ticks.S{i}", next(seq)))
    sent: list[dict[str, object]] = []
    for i in range(60):
        session.deliver(topic_msg(f"ticks.S{i % 6}", next(seq)))
        last_hot = next(seq)
        session.deliver(topic_msg("ticks.HOT", last_hot))
        sent.append(json.loads(take(session)))
    assert session.state is SessionState.OPEN
    hot_during = sum(m["topic"] == "ticks.HOT" for m in sent)
    sent.extend(m for frame in drain(session) for m in frame)
    seqs = [m["seq"] for m in sent]
    assert seqs == sorted(seqs)
    # At most 14 queued (7 topics, 2 each): once per 14 frames at least, as often as any topic.
    assert hot_during >= 60 // 14, f"ticks.HOT sent {hot_during} times in 60 frames"
    assert last_hot in seqs


def test_skipped_messages_of_a_stalled_client_do_not_pile_up() -> None:
    """1. outbox of 10, ticks.* conflated, nothing ever taken  2. 10,000 messages over three
    topics  3. the queue keeps six (two per topic) plus at most as many skipped ones, and
    taking it sends the first and the newest of each topic, in seq order."""
    limits = OutboxLimits(messages=10, bytes=1 << 20, batch_max=100, conflate=lambda t: t.startswith("ticks."))
    session = Session("s", limits)
    for seq in range(1, 10_001):
        session.deliver(topic_msg(f"ticks.S{seq % 3}", seq))
        assert len(session.outbox._items) <= 2 * session.queued + 1
    assert session.queued == 6
    sent = [m["seq"] for frame in drain(session) for m in frame]
    assert sent == [1, 2, 3, 9998, 9999, 10_000]

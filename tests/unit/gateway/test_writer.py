"""The writer: one pass per turn over every session with something queued, the hub's settle
included, so a message is deferred once between NATS and the socket."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from gateway import frames
from gateway.hub import Hub
from gateway.message import Message
from gateway.outbox import OutboxLimits
from gateway.session import Session, SessionState
from gateway.writer import Stall, Writer, sse_events, write_loop
from services.protocol import CloseCode


def msg(seq: int) -> Message:
    return Message(seq, "t", frames.msg("t", seq, f"{seq}-0", seq, b"{}"))


def payload(frame: bytes) -> dict[str, Any]:
    """The JSON of one unmasked server text frame (gateway.frames.text_frame)."""
    size = frame[1]
    start = 2 if size < 126 else 4 if size == 126 else 10
    decoded: dict[str, Any] = json.loads(frame[start:])
    return decoded


class Socket:
    """Stands in for gateway.server's connection: frames written, and a paused flag."""

    def __init__(self, fail: bool = False) -> None:
        self.frames: list[dict[str, Any]] = []
        self.paused = False
        self.fail = fail

    def can_write(self) -> bool:
        return not self.paused

    def write_frame(self, frame: bytes) -> None:
        if self.fail:
            raise OSError("broken")
        self.frames.append(payload(frame))


def attached(writer: Writer, socket: Socket) -> Session:
    session = Session("s", OutboxLimits(messages=100, bytes=1 << 20, batch_max=256))
    writer.attach(session, socket)
    return session


async def next_turn() -> None:
    await asyncio.sleep(0)


async def test_one_turns_messages_leave_as_one_batch_per_session() -> None:
    """1. two sessions get 3 messages in one turn  2. after the turn each wrote one batch of 3."""
    writer = Writer()
    sockets = [Socket(), Socket()]
    sessions = [attached(writer, s) for s in sockets]
    for seq in (1, 2, 3):
        for session in sessions:
            session.deliver(msg(seq))
    assert all(not s.frames for s in sockets)  # nothing leaves before the turn ends
    await next_turn()
    for socket in sockets:
        assert [f["type"] for f in socket.frames] == ["batch"]
        assert [m["seq"] for m in socket.frames[0]["msgs"]] == [1, 2, 3]


async def test_a_paused_socket_keeps_its_outbox_until_marked_again() -> None:
    """1. the socket is paused  2. messages stay queued  3. on resume (mark) they leave in order."""
    writer = Writer()
    socket = Socket()
    session = attached(writer, socket)
    socket.paused = True
    session.deliver(msg(1))
    await next_turn()
    session.deliver(msg(2))
    await next_turn()
    assert socket.frames == [] and session.queued == 2
    socket.paused = False
    writer.mark(session)  # what the connection's resume_writing does
    await next_turn()
    assert [m["seq"] for m in socket.frames[0]["msgs"]] == [1, 2]
    assert session.queued == 0


async def test_a_failing_socket_closes_its_session_and_spares_the_others() -> None:
    writer = Writer()
    broken, healthy = Socket(fail=True), Socket()
    first, second = attached(writer, broken), attached(writer, healthy)
    first.deliver(msg(1))
    second.deliver(msg(1))
    await next_turn()
    assert first.state is SessionState.CLOSING and first.close_code == 1011
    assert [f["seq"] for f in healthy.frames] == [1]


async def test_the_hubs_settle_writes_at_once() -> None:
    """1. a session attached, subscribed through a hub wired to the writer  2. two messages
    published, then the hub settles (what its one end-of-turn callback does)  3. both are in
    the socket already, as one batch: no second deferral."""
    writer = Writer()
    hub = Hub(writer.write)
    socket = Socket()
    session = attached(writer, socket)
    hub.add(session, "t")
    hub.publish(msg(1))
    hub.publish(msg(2))
    hub.settle()
    assert [m["seq"] for m in socket.frames[0]["msgs"]] == [1, 2]


async def test_a_control_frame_keeps_its_place_after_the_turns_messages() -> None:
    """1. msg 1 published to a session  2. in the same turn it queues a pong, then a snapshot
    message (seq 0 of another topic)  3. the socket gets msg 1, the pong, then the snapshot
    message, in that order."""
    writer = Writer()
    hub = Hub(writer.write)
    socket = Socket()
    session = attached(writer, socket)
    hub.add(session, "t")
    hub.publish(msg(1))
    session.send(frames.pong(7, 0))
    session.deliver(Message(5, "u", frames.msg("u", 5, "5-0", 5, b"{}")))
    await next_turn()
    assert [(f["type"], f.get("seq")) for f in socket.frames] == [("msg", 1), ("pong", None), ("msg", 5)]


class RawSocket(Socket):
    """Keeps the bytes written too, to tell one shared frame from equal copies."""

    def __init__(self) -> None:
        super().__init__()
        self.raw: list[bytes] = []

    def write_frame(self, frame: bytes) -> None:
        self.raw.append(frame)
        super().write_frame(frame)


async def test_a_run_bound_for_many_sessions_is_serialized_once() -> None:
    """1. three sessions subscribed, two messages published in one turn  2. each socket got one
    batch of both, and the three wrote the very same bytes object (made once for the run)."""
    writer = Writer()
    hub = Hub(writer.write)
    sockets = [RawSocket() for _ in range(3)]
    for socket in sockets:
        hub.add(attached(writer, socket), "t")
    hub.publish(msg(1))
    hub.publish(msg(2))
    hub.settle()
    assert all([m["seq"] for m in s.frames[0]["msgs"]] == [1, 2] for s in sockets)
    assert len({id(s.raw[0]) for s in sockets}) == 1


async def test_an_outbox_holding_more_than_the_run_is_taken_frame_by_frame() -> None:
    """1. a session has a pong queued and is not written yet (paused)  2. a run of two messages
    reaches it  3. on resume it writes the pong, then the messages: its own frames, in order."""
    writer = Writer()
    hub = Hub(writer.write)
    socket = RawSocket()
    session = attached(writer, socket)
    hub.add(session, "t")
    socket.paused = True
    session.send(frames.pong(7, 0))
    await next_turn()
    hub.publish(msg(1))
    hub.publish(msg(2))
    hub.settle()
    assert socket.frames == []
    socket.paused = False
    writer.mark(session)
    await next_turn()
    assert [f["type"] for f in socket.frames] == ["pong", "batch"]
    assert [m["seq"] for m in socket.frames[1]["msgs"]] == [1, 2]


async def test_a_run_longer_than_batch_max_still_leaves_in_frames_of_batch_max() -> None:
    writer = Writer()
    hub = Hub(writer.write)
    socket = RawSocket()
    session = Session("s", OutboxLimits(messages=100, bytes=1 << 20, batch_max=2))
    writer.attach(session, socket)
    hub.add(session, "t")
    for seq in (1, 2, 3):
        hub.publish(msg(seq))
    hub.settle()
    seqs = [[m["seq"] for m in f["msgs"]] if f["type"] == "batch" else [f["seq"]] for f in socket.frames]
    assert seqs == [[1, 2], [3]]


async def test_a_socket_paused_past_the_stall_timeout_is_cut_4008_a_resumed_one_is_not() -> None:
    """1. two sockets pause  2. one resumes before the stall timeout  3. the other's session is
    closed 4008 once the timeout has passed, and counted once; the resumed one stays open."""
    cuts: list[None] = []
    writer = Writer(Stall(0.05, lambda: cuts.append(None)))
    stalled, resumed = attached(writer, Socket()), attached(writer, Socket())
    writer.paused(stalled)
    writer.paused(resumed)
    writer.paused(stalled)  # a second pause does not restart its clock
    writer.resumed(resumed)
    async with asyncio.timeout(2):
        await stalled.wait_closing()
    assert stalled.close_code == CloseCode.SLOW_CONSUMER
    assert resumed.is_open and len(cuts) == 1


def queued_session() -> Session:
    session = Session("s", OutboxLimits(messages=100, bytes=1 << 20, batch_max=256))
    session.deliver(msg(1))
    return session


async def test_a_send_waiting_past_the_stall_timeout_cuts_its_session_4008() -> None:
    """1. write_loop with a 0.05 s stall and a send that never returns (a paused transport)
    2. the send is cancelled, the session closed 4008 and counted once, the loop returns."""
    cuts: list[None] = []
    session = queued_session()
    sends: list[str] = []
    parked = asyncio.get_running_loop().create_future()

    async def send(chunk: str) -> None:
        sends.append(chunk)
        await parked

    async with asyncio.timeout(2):
        await write_loop(session, send, sse_events, Stall(0.05, lambda: cuts.append(None)))
    assert parked.cancelled() and len(sends) == 1
    assert session.close_code == CloseCode.SLOW_CONSUMER and len(cuts) == 1


async def test_sends_that_each_finish_within_the_stall_timeout_are_not_cut() -> None:
    """1. a 0.5 s stall; each send takes 0.15 s (a transport that drains slowly), five of them:
    longer than the timeout in all  2. every chunk is sent, the session stays open."""
    cuts: list[None] = []
    session = queued_session()
    sent: list[str] = []

    async def send(chunk: str) -> None:
        await asyncio.sleep(0.15)  # the transport's pace, not synchronisation
        sent.append(chunk)
        if len(sent) < 5:
            session.deliver(msg(len(sent) + 1))
        else:
            session.close(CloseCode.NORMAL)

    async with asyncio.timeout(5):
        await write_loop(session, send, sse_events, Stall(0.5, lambda: cuts.append(None)))
    assert len(sent) == 5 and not cuts and session.close_code == CloseCode.NORMAL


async def test_a_stream_idle_past_the_stall_timeout_is_not_cut() -> None:
    """1. a 0.1 s stall; one chunk is sent at once  2. nothing is queued for 0.3 s (the clock
    is not running between sends)  3. the next chunk is sent at once too: nothing is cut."""
    cuts: list[None] = []
    session = queued_session()
    sent: list[str] = []
    first = asyncio.Event()

    async def send(chunk: str) -> None:
        sent.append(chunk)
        first.set()

    loop = asyncio.create_task(write_loop(session, send, sse_events, Stall(0.1, lambda: cuts.append(None))))
    async with asyncio.timeout(2):
        await first.wait()
        await asyncio.sleep(0.3)  # the idle time under test, not synchronisation
        session.deliver(msg(2))
        while len(sent) < 2:
            await next_turn()
    session.close(CloseCode.NORMAL)
    await loop
    assert not cuts and session.close_code == CloseCode.NORMAL


async def test_a_parked_send_cancelled_from_outside_is_not_a_stall() -> None:
    """1. a send parks; the write loop's task is cancelled (its connection ended)
    2. the cancellation propagates; nothing is counted as a stall, the session stays open."""
    cuts: list[None] = []
    session = queued_session()
    parked = asyncio.Event()

    async def send(chunk: str) -> None:
        parked.set()
        await asyncio.get_running_loop().create_future()

    loop = asyncio.create_task(write_loop(session, send, sse_events, Stall(5, lambda: cuts.append(None))))
    await parked.wait()
    loop.cancel()
    with pytest.raises(asyncio.CancelledError):
        await loop
    assert not cuts and session.is_open

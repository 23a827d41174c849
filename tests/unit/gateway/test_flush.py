"""The flusher: one pass per loop turn over every session with something queued."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from gateway.flush import Flusher
from gateway.message import Message
from gateway.session import OutboxLimits, Session, SessionState
from services import protocol


def msg(seq: int) -> Message:
    return Message(seq, "t", protocol.msg("t", seq, f"{seq}-0", seq, b"{}"))


class Socket:
    """Stands in for gateway.server's connection: frames written, and a paused flag."""

    def __init__(self, fail: bool = False) -> None:
        self.frames: list[dict[str, Any]] = []
        self.paused = False
        self.fail = fail

    def can_write(self) -> bool:
        return not self.paused

    def write(self, text: str) -> None:
        if self.fail:
            raise OSError("broken")
        self.frames.append(json.loads(text))


def attached(flusher: Flusher, socket: Socket) -> Session:
    session = Session("s", OutboxLimits(messages=100, bytes=1 << 20, batch_max=256))
    session.attach(socket.can_write, socket.write, flusher)
    return session


async def next_turn() -> None:
    await asyncio.sleep(0)


async def test_one_turns_messages_leave_as_one_batch_per_session() -> None:
    """1. two sessions get 3 messages in one turn  2. after the turn each wrote one batch of 3."""
    flusher = Flusher()
    sockets = [Socket(), Socket()]
    sessions = [attached(flusher, s) for s in sockets]
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
    flusher = Flusher()
    socket = Socket()
    session = attached(flusher, socket)
    socket.paused = True
    session.deliver(msg(1))
    await next_turn()
    session.deliver(msg(2))
    await next_turn()
    assert socket.frames == [] and session.queued == 2
    socket.paused = False
    flusher.mark(session)  # what the connection's resume_writing does
    await next_turn()
    assert [m["seq"] for m in socket.frames[0]["msgs"]] == [1, 2]
    assert session.queued == 0


async def test_a_failing_socket_closes_its_session_and_spares_the_others() -> None:
    flusher = Flusher()
    broken, healthy = Socket(fail=True), Socket()
    first, second = attached(flusher, broken), attached(flusher, healthy)
    first.deliver(msg(1))
    second.deliver(msg(1))
    await next_turn()
    assert first.state is SessionState.CLOSING and first.close_code == 1011
    assert [f["seq"] for f in healthy.frames] == [1]

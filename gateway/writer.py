"""The only outbox → bytes code: what a WebSocket or SSE connection sends, and when.

A WebSocket served by gateway.server is attached to the ``Writer``: its outbox is written
synchronously into its socket as serialized frames, whenever the socket takes more. A
message fans out to many sessions at once; waking a writer task per session would cost
two task steps per connection per burst, so instead a session queued to marks itself, and
one pass writes every marked session. The hub's settle ends with that pass (the only
deferral a message sees between NATS and the socket: gateway.hub); a frame queued outside
a settle (a reply, a snapshot) schedules the pass for the end of the turn. What the feed
read from NATS in one turn leaves in one frame, and under load the batches grow by
themselves: while one pass writes, the next burst gathers. An outbox that holds exactly
the turn's run (the usual case under broadcast) is written as the run's one frame, made
once for all its receivers (``Outbox.take_whole``): per receiver that is a check and a
socket write. A paused socket keeps its outbox until its ``resume_writing`` marks it again.

A paused socket is one the client does not read (its TCP window closed). At a low message
rate its outbox may stay below the bound for ever, the connection and its buffers held and
the client never told it is behind; so a socket that stays paused for ``Stall.timeout``
seconds has its session cut as a slow consumer (4008: the client resumes with ``since``).

Anything else (SSE, a WebSocket on a plain ASGI server) runs ``write_loop`` with an async
``send`` and an encoding: ``ws_text`` (the WebSocket text) or ``sse_events``. Given the
``Stall``, as SSE is, it cuts a session whose ``send`` has waited ``Stall.timeout`` seconds.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gateway import frames
from gateway.frames import FrameCache
from gateway.outbox import Outbox
from services.protocol import CloseCode

if TYPE_CHECKING:
    from gateway.session import Session

log = logging.getLogger(__name__)


class Socket(Protocol):
    """Where an attached session's frames go (gateway.server's connection)."""

    def can_write(self) -> bool:
        """Whether the transport takes more now (not paused, not closing)."""

    def write_frame(self, frame: bytes) -> None:
        """Write one serialized WebSocket frame, without blocking."""


def ws_text(outbox: Outbox, cache: FrameCache) -> str:
    """The text of the next WebSocket frame: a control frame, a ``msg``, or a ``batch``."""
    taken = outbox.take()
    if isinstance(taken, str):
        return taken
    return cache.batch([m.frame for m in taken])


def sse_events(outbox: Outbox) -> str:
    """Up to ``batch_max`` queued frames as SSE events, one chunk (never a ``batch``)."""
    chunk: list[str] = []
    limit = outbox.limits.batch_max
    while outbox and len(chunk) < limit:
        taken = outbox.take()
        if isinstance(taken, str):
            chunk.append(frames.control_event(taken))
        else:
            chunk.extend(frames.message_event(m) for m in taken)
    return "".join(chunk)


@dataclass(frozen=True, slots=True)
class Stall:
    """How long a socket may take nothing (``TICKWIRE_STALL_TIMEOUT``), and who counts the cuts."""

    timeout: float
    counted: Callable[[], None]

    def cut(self, session: Session) -> None:
        if not session.is_open:  # already ending for another reason: not a stall to count
            return
        log.info("session %s: its socket took nothing for %.1f s (%d frames queued): closing 4008",
                 session.id, self.timeout, session.queued)
        self.counted()
        session.close(CloseCode.SLOW_CONSUMER, "slow consumer")


class Writer:
    def __init__(self, stall: Stall | None = None, cache: FrameCache | None = None) -> None:
        self.frames = cache if cache is not None else FrameCache()
        self.stall = stall  # None: a paused socket is waited for however long it stays paused
        self._sockets: dict[Session, Socket] = {}
        self._dirty: dict[Session, None] = {}  # insertion-ordered set
        self._scheduled = False
        # Sessions whose socket is paused → the timer that cuts them: only while paused, so an
        # idle or reading connection costs nothing here.
        self._stalls: dict[Session, asyncio.TimerHandle] = {}

    def attach(self, session: Session, socket: Socket) -> None:
        """Write ``session``'s outbox into ``socket`` from now on."""
        self._sockets[session] = socket
        session.writer = self
        if session.outbox:
            self.mark(session)

    def detach(self, session: Session) -> None:
        self._sockets.pop(session, None)
        self._dirty.pop(session, None)
        self._unwatch(session)

    def paused(self, session: Session) -> None:
        """``session``'s socket takes no more (``pause_writing``): it has ``stall.timeout`` to
        take some again before the session is cut."""
        if self.stall is not None and session not in self._stalls:
            self._stalls[session] = asyncio.get_running_loop().call_later(self.stall.timeout, self._stalled, session)

    def resumed(self, session: Session) -> None:
        """``session``'s socket takes more again (``resume_writing``): write it in the next pass."""
        self._unwatch(session)
        self.mark(session)

    def _stalled(self, session: Session) -> None:
        del self._stalls[session]
        assert self.stall is not None
        self.stall.cut(session)

    def _unwatch(self, session: Session) -> None:
        timer = self._stalls.pop(session, None)
        if timer is not None:
            timer.cancel()

    def mark(self, session: Session) -> None:
        """Write ``session`` in the next pass: the hub's settle, or at the end of this turn."""
        self._dirty[session] = None
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self.write)

    def write(self) -> None:
        """One pass: every marked session's outbox, as far as its socket takes it now."""
        self._scheduled = False
        dirty, self._dirty = self._dirty, {}
        for session in dirty:
            socket = self._sockets.get(session)
            if socket is None:
                continue
            try:
                self._drain(session, socket)
            except Exception:
                # One broken connection must not keep the others' frames back.
                log.exception("session %s: write failed", session.id)
                session.close(CloseCode.INTERNAL, "internal error")

    def _drain(self, session: Session, socket: Socket) -> None:
        outbox, cache = session.outbox, self.frames
        if session.is_open and socket.can_write():
            run = outbox.take_whole()
            if run is not None:
                if run.wire is None:
                    run.wire = cache.wire(cache.batch([m.frame for m in run.messages]))
                socket.write_frame(run.wire)
        while outbox and session.is_open and socket.can_write():
            socket.write_frame(cache.wire(ws_text(outbox, cache)))
        session.made_room()


class SendWatch:
    """``write_loop``'s stall clock: one timer per stall period of a busy stream, not one per
    send. A deadline around each send (``asyncio.timeout``) costs ~7 us a send under uvloop,
    against ~0.1 us for the bare await (measured): more than the write itself, per event
    chunk, per SSE client."""

    def __init__(self, timeout: float) -> None:
        task = asyncio.current_task()
        assert task is not None
        self.timeout, self.task, self.loop = timeout, task, asyncio.get_running_loop()
        self.since: float | None = None  # when the send in progress began
        self.expired = False
        self._timer: asyncio.TimerHandle | None = None

    async def send(self, send: Callable[[str], Awaitable[None]], chunk: str) -> bool:
        """``send(chunk)``; False when it was still waiting after ``timeout`` and was cancelled."""
        cancelling = self.task.cancelling()
        self.since = self.loop.time()
        if self._timer is None:
            self._timer = self.loop.call_at(self.since + self.timeout, self._check)
        try:
            await send(chunk)
        except asyncio.CancelledError:
            # Ours only if no one else cancelled the task meanwhile (as asyncio.timeout decides).
            if not self.expired or self.task.uncancel() > cancelling:
                raise
            return False
        finally:
            self.since = None
        return True

    def _check(self) -> None:
        self._timer = None
        if self.since is None:
            return  # between sends: the next one arms the clock again
        due = self.since + self.timeout
        if self.loop.time() < due:  # a later send than the one that armed it
            self._timer = self.loop.call_at(due, self._check)
            return
        self.expired = True
        self.task.cancel()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


async def write_loop(session: Session, send: Callable[[str], Awaitable[None]],
                     encode: Callable[[Outbox], str], stall: Stall | None = None) -> None:
    """Drain ``session``'s outbox into ``send`` until the session stops being open.

    With ``stall``, a ``send`` still waiting after ``stall.timeout`` seconds cuts the session
    as a slow consumer. An ASGI send waits only while its transport is paused (the client
    reads nothing), so this is the attached socket's rule seen from the app. The cut cancels
    the send: safe for uvicorn's h11 send, whose only await (its flow control's drain) comes
    before it touches h11 or the transport (uvicorn.protocols.http.h11_impl
    ``RequestResponseCycle.send``); the chunk is dropped with the rest of the outbox.
    """
    outbox = session.outbox
    watch = SendWatch(stall.timeout) if stall is not None else None
    try:
        while session.is_open:
            await session.wait_queued()
            # One turn of the loop first: the rest of the feed's current read from NATS is
            # queued by then, so it leaves in this write instead of a frame each.
            await asyncio.sleep(0)
            while outbox and session.is_open:
                if watch is None:
                    await send(encode(outbox))
                elif not await watch.send(send, encode(outbox)):
                    assert stall is not None
                    stall.cut(session)
                    return
                session.made_room()
    finally:
        if watch is not None:
            watch.close()

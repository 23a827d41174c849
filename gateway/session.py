"""One client connection: subscription state and a bounded outbox drained by a writer.

The feed loop never waits for a client: ``deliver`` appends the shared frame to the outbox
and returns. A client that does not read lets its outbox grow to ``outbox_messages`` or
``outbox_bytes``; past either bound the session is closed with 4008 (slow consumer) and its
outbox dropped, so memory stays bounded and nothing is lost silently (the client resumes
with ``since``). The writer sends one ``msg`` or one ``batch`` of up to ``batch_max``
messages per flush, so a client that falls a little behind catches up in fewer frames.

Two writers drain an outbox. A WebSocket served by gateway.server is ``attach``ed: the
gateway's one flusher (gateway.flush) writes it synchronously whenever its socket takes
more, and the socket's ``resume_writing`` marks it again. Anything else (SSE, a WebSocket
on a plain ASGI server) runs ``write_loop`` with an async ``send``.

Conflation (``TICKWIRE_CONFLATE``): once the outbox is above half full, a message on a
conflated topic replaces the last queued, not yet sent message of the same topic instead
of being appended. The replaced message is skipped on purpose: a slow client gets the
newest value per topic rather than being cut with 4008, and per-topic seq order holds
(the newer seq takes the older one's place, behind every earlier message of that topic).
Non-conflated messages and control frames still count towards the bounds.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from gateway.flush import Flusher
from gateway.frames import FrameCache
from gateway.hub import Run
from gateway.message import Message
from services.protocol import CloseCode
from services.tokens import Grant

log = logging.getLogger(__name__)


class SessionState(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"  # a close was decided; the handler sends the close frame
    CLOSED = "closed"


_ALLOWED = {
    SessionState.OPEN: {SessionState.CLOSING, SessionState.CLOSED},
    SessionState.CLOSING: {SessionState.CLOSED},
    SessionState.CLOSED: set(),
}


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    messages: int
    bytes: int
    batch_max: int
    # Whether a topic may be conflated for a slow client (gateway.conflation); None: none may.
    conflate: Callable[[str], bool] | None = None
    # Batches joined once for every connection flushing the same messages (gateway.frames).
    frames: FrameCache = field(default_factory=FrameCache)
    # Hands over the hub's queued runs (gateway.hub): a control frame queued after them.
    settle: Callable[[], None] = field(default=lambda: None)


@dataclass(slots=True)
class Slot:
    """A queued message of a conflated topic: a newer one of its topic may take its place."""

    message: Message


# What an outbox holds: a bus message, a conflated topic's slot, or a control frame.
Queued = Message | Slot | str


class Session:
    # Set by attach, with _flusher: the synchronous writer the flusher drives.
    _can_write: Callable[[], bool]
    _write: Callable[[str], None]

    def __init__(self, session_id: str, limits: OutboxLimits) -> None:
        self.id = session_id
        self.limits = limits
        self.state = SessionState.OPEN
        # pattern → stream head when it went live: messages above it reach the client live.
        self.patterns: dict[str, int] = {}
        # What the connection's token allows (gateway.auth); None when auth is off.
        self.grant: Grant | None = None
        self.close_code: int = CloseCode.NORMAL
        self.close_reason = ""
        self._ending: asyncio.Future[None] | None = None  # made by wait_closing
        self._outbox: deque[Queued] = deque()
        self._bytes = 0
        self._special = 0  # queued items that are not plain batchable messages (see _take)
        self._conflatable: dict[str, Slot] = {}  # topic → its last queued slot, conflated topics only
        self.conflated = 0  # messages replaced by a newer one of their topic
        # Made when first needed: most sessions never wait for room, and an attached one has
        # no writer to wake (an Event costs ~700 bytes, times every idle connection; a
        # future for the one handler waiting on the close, ~100).
        self._wake: asyncio.Event | None = None
        self._room: asyncio.Event | None = None
        self._flusher: Flusher | None = None  # None until attach: write_loop drains the outbox

    def __repr__(self) -> str:
        return f"Session({self.id}, {self.state.value}, {len(self.patterns)} patterns)"

    # ---- state ---------------------------------------------------------------------

    def _move(self, to: SessionState) -> None:
        if to not in _ALLOWED[self.state]:
            raise RuntimeError(f"session {self.id}: {self.state.value} → {to.value} is not allowed")
        self.state = to

    def close(self, code: int, reason: str = "") -> None:
        """Ask for the connection to be closed with ``code`` (idempotent)."""
        if self.state is not SessionState.OPEN:
            return
        self._move(SessionState.CLOSING)
        self.close_code, self.close_reason = code, reason
        self._outbox.clear()
        self._conflatable.clear()
        self._bytes = self._special = 0
        self._end_wait()
        self._wake_writer()
        self._wake_room()

    def closed(self) -> None:
        """The connection is gone."""
        if self.state is not SessionState.CLOSED:
            self._move(SessionState.CLOSED)
        self._end_wait()
        self._wake_writer()
        self._wake_room()

    async def wait_closing(self) -> None:
        """Until the session stops being open (the connection's handler waits here)."""
        if self.state is SessionState.OPEN:
            if self._ending is None:
                self._ending = asyncio.get_running_loop().create_future()
            await self._ending

    def _end_wait(self) -> None:
        if self._ending is not None and not self._ending.done():
            self._ending.set_result(None)

    # ---- subscriptions -------------------------------------------------------------

    def already_live(self, message: Message) -> bool:
        """True when a live pattern of this session delivers (or delivered) ``message``."""
        return any(message.seq > since and message.matched_by(pattern)
                   for pattern, since in self.patterns.items())

    # ---- outbox --------------------------------------------------------------------

    def deliver_run(self, run: Run) -> None:
        """A run of live messages from the hub: one extend, whatever its length."""
        if self.state is not SessionState.OPEN:
            return
        if self.limits.conflate is not None:
            for message in run.messages:
                self.deliver(message)
            return
        outbox = self._outbox
        was_empty = not outbox
        outbox.extend(run.messages)
        self._bytes += run.size
        self._special += run.gaps
        self._queued(was_empty)

    def deliver(self, message: Message) -> None:
        """One message: a snapshot's, a replay's, or a live one where conflation applies."""
        if self.state is not SessionState.OPEN:
            return
        conflate = self.limits.conflate
        if conflate is not None and not message.is_gap and conflate(message.topic):
            self._deliver_conflated(message)
            return
        self._push(message, len(message.frame), message.is_gap)

    def _deliver_conflated(self, message: Message) -> None:
        queued = self._conflatable.get(message.topic)
        if queued is not None and self._above_half():
            self._bytes += len(message.frame) - len(queued.message.frame)
            queued.message = message
            self.conflated += 1
            return
        slot = Slot(message)
        self._conflatable[message.topic] = slot
        self._push(slot, len(message.frame), True)

    def send(self, frame: str) -> None:
        """Queue a control frame (``subscribed``, ``pong``, ``error``…) in order with messages."""
        self.limits.settle()  # may close this session (a slow consumer's bound)
        if self.state is SessionState.OPEN:
            self._push(frame, len(frame), True)

    @property
    def queued(self) -> int:
        return len(self._outbox)

    def _push(self, item: Queued, size: int, special: bool) -> None:
        """Queue ``item``; ``special`` unless it is a message that may join a batch as it is."""
        was_empty = not self._outbox
        self._outbox.append(item)
        self._bytes += size
        self._special += special
        self._queued(was_empty)

    def _queued(self, was_empty: bool) -> None:
        """After an enqueue: cut a slow consumer past a bound, else see that a writer runs."""
        outbox = self._outbox
        if len(outbox) > self.limits.messages or self._bytes > self.limits.bytes:
            log.info("session %s: slow consumer (%d frames, %d bytes queued): closing 4008",
                     self.id, len(outbox), self._bytes)
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer")
            return
        if self._flusher is None:
            self._wake_writer()
        elif was_empty:
            # A longer outbox is marked already, or waits for its socket's resume_writing.
            self._flusher.mark(self)

    def _above_half(self) -> bool:
        return len(self._outbox) > self.limits.messages // 2 or self._bytes > self.limits.bytes // 2

    async def wait_room(self) -> None:
        """Until the outbox is at most half full: catch-up reads pace themselves on it."""
        while self.state is SessionState.OPEN and self._above_half():
            if self._room is None:
                self._room = asyncio.Event()
            await self._room.wait()

    def _wake_room(self) -> None:
        if self._room is not None:
            self._room.set()
            self._room = None

    def _wake_writer(self) -> None:
        if self._wake is not None:
            self._wake.set()

    def _pop(self) -> Message | str:
        """The next queued message (a slot's current one) or control frame."""
        item = self._outbox.popleft()
        if isinstance(item, str) or isinstance(item, Slot) or item.is_gap:
            self._special -= 1
        if isinstance(item, Slot):
            if self._conflatable.get(item.message.topic) is item:
                del self._conflatable[item.message.topic]
            item = item.message
        if isinstance(item, str):
            self._bytes -= len(item)
            return item
        assert isinstance(item, Message)
        self._bytes -= len(item.frame)
        return item

    def _next_batchable(self) -> bool:
        """Whether the next queued item is a message that may join a ``batch``."""
        item = self._outbox[0]
        if isinstance(item, Slot):
            return True  # conflated messages are never gap notices
        return isinstance(item, Message) and not item.is_gap

    def _take(self) -> str:
        """The next frame to send: a control frame, or a message, or consecutive messages
        as one ``batch``."""
        outbox = self._outbox
        if not self._special:
            # Only batchable messages queued (the usual case): taken as one run.
            n = min(len(outbox), self.limits.batch_max)
            frames = [outbox.popleft().frame for _ in range(n)]  # type: ignore[union-attr]
            self._bytes -= sum(map(len, frames))
            return self.limits.frames.batch(frames)
        item = self._pop()
        if isinstance(item, str):
            return item
        if item.is_gap or not self._outbox or not self._next_batchable():
            return item.frame
        frames = [item.frame]
        limit = self.limits.batch_max
        while self._outbox and len(frames) < limit and self._next_batchable():
            popped = self._pop()
            assert isinstance(popped, Message)
            frames.append(popped.frame)
        return self.limits.frames.batch(frames)

    def _made_room(self) -> None:
        if self._room is not None and not self._above_half():
            self._wake_room()

    def attach(self, can_write: Callable[[], bool], write: Callable[[str], None], flusher: Flusher) -> None:
        """Let ``flusher`` drain the outbox into ``write`` whenever ``can_write()`` holds."""
        self._can_write, self._write, self._flusher = can_write, write, flusher
        if self._outbox:
            flusher.mark(self)

    def flush(self) -> None:
        """Write what the socket takes now; the rest waits for the socket's next resume."""
        while self._outbox and self.state is SessionState.OPEN and self._can_write():
            self._write(self._take())
        self._made_room()

    async def write_loop(self, send: Callable[[str], Awaitable[None]]) -> None:
        """Drain the outbox into ``send`` until the session stops being open."""
        wake = self._wake = asyncio.Event()
        wake.set()  # for what was queued before the writer started
        while self.state is SessionState.OPEN:
            await wake.wait()
            # One turn of the loop first: the rest of the feed's current read from NATS is
            # queued by then, so it leaves in this flush's batch instead of a frame each.
            await asyncio.sleep(0)
            wake.clear()
            while self._outbox and self.state is SessionState.OPEN:
                await send(self._take())
                self._made_room()

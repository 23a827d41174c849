"""One client connection: its state, grant and patterns, and the outbox it owns.

What reaches the client is queued on the session's outbox (gateway.outbox: bounded, 4008
past a bound, conflation) and written from there by gateway.writer: into the socket by
the gateway's writer when attached, else by a ``write_loop`` task waiting on
``wait_queued``. Live messages arrive from the hub as runs (``deliver_run``), snapshot and
replay messages one by one (``deliver``), control frames through ``send``. A control frame
queued while runs of the turn are still on their way to this session (``unsettled``) waits
for them, with whatever is queued after it, so it keeps its place after the messages
published before it.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable, Iterable, Set
from typing import TYPE_CHECKING

from gateway.hub import Run
from gateway.message import Message
from gateway.outbox import Outbox, OutboxLimits
from gateway.tokens import Grant
from services.protocol import CloseCode
from services.subjects import is_literal, matcher

if TYPE_CHECKING:
    from gateway.writer import Writer

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


class Session:
    def __init__(self, session_id: str, limits: OutboxLimits) -> None:
        self.id = session_id
        self.state = SessionState.OPEN
        # The live patterns: the hub delivers their messages (changed through add_pattern
        # and remove_pattern, which keep ``_covers`` in step).
        self._patterns: set[str] = set()
        # ``already_live``'s test of a topic against the live patterns, built when first
        # needed after they change: a snapshot or catch-up asks it of thousands of messages.
        self._covers: Callable[[str], bool] | None = None
        # What the connection's token allows (gateway.auth); None when auth is off.
        self.grant: Grant | None = None
        self.close_code: int = CloseCode.NORMAL
        self.close_reason = ""
        self.outbox = Outbox(limits)
        self.unsettled = 0  # the hub's runs on their way here (gateway.hub)
        self.writer: Writer | None = None  # set when attached: it writes the outbox into the socket
        # A control frame waiting for the unsettled runs, and what was queued after it.
        self._held: list[str | Message] = []
        self._ending: asyncio.Future[None] | None = None  # made by wait_closing
        # Made when first needed: most sessions never wait for room, and an attached one has
        # no writer task to wake (an Event costs ~700 bytes, times every idle connection; a
        # future for the one handler waiting on the close, ~100).
        self._wake: asyncio.Event | None = None
        self._room: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"Session({self.id}, {self.state.value}, {len(self.patterns)} patterns)"

    # ---- state ---------------------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self.state is SessionState.OPEN

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
        self.outbox.clear()
        self._held.clear()
        self._end()

    def closed(self) -> None:
        """The connection is gone."""
        if self.state is not SessionState.CLOSED:
            self._move(SessionState.CLOSED)
        if self.writer is not None:
            self.writer.detach(self)
        self._end()

    def _end(self) -> None:
        if self._ending is not None and not self._ending.done():
            self._ending.set_result(None)
        self._wake_writer()
        self._wake_room()

    async def wait_closing(self) -> None:
        """Until the session stops being open (the connection's handler waits here)."""
        if self.state is SessionState.OPEN:
            if self._ending is None:
                self._ending = asyncio.get_running_loop().create_future()
            await self._ending

    # ---- subscriptions -------------------------------------------------------------

    @property
    def patterns(self) -> Set[str]:
        return self._patterns

    def add_pattern(self, pattern: str) -> None:
        self._patterns.add(pattern)
        self._covers = None

    def remove_pattern(self, pattern: str) -> None:
        self._patterns.discard(pattern)
        self._covers = None

    def already_live(self, message: Message) -> bool:
        """True when a live pattern of this session covers ``message``'s topic.

        That pattern has delivered the topic since its own snapshot or resume, and delivers it
        live: a subscription added later must not replay or snapshot the topic again, or the
        connection would get seqs it has had, or older ones after newer (the seq alone cannot
        tell which: a resumed pattern covers its topics from its ``since``, not its go-live)."""
        if message.is_gap or not self._patterns:  # gap notices are rare and name a channel
            return any(message.matched_by(pattern) for pattern in self._patterns)
        if self._covers is None:
            self._covers = covering(self._patterns)
        return self._covers(message.topic)

    # ---- queuing -------------------------------------------------------------------

    @property
    def queued(self) -> int:
        return len(self.outbox)

    def deliver_run(self, run: Run) -> None:
        """A run of live messages from the hub: one outbox extend, whatever its length."""
        if self.state is not SessionState.OPEN:
            return
        was_empty = not self.outbox
        self.outbox.extend(run)
        if not self.unsettled and self._held:
            held, self._held = self._held, []
            for item in held:
                if isinstance(item, str):
                    self.outbox.push(item)
                else:
                    self.outbox.add(item)
        self._queued(was_empty)

    def deliver(self, message: Message) -> None:
        """One message: a snapshot's or a replay's."""
        if self.state is not SessionState.OPEN:
            return
        if self._held:  # behind a control frame that waits for the turn's runs
            self._held.append(message)
            return
        was_empty = not self.outbox
        self.outbox.add(message)
        self._queued(was_empty)

    def send(self, frame: str) -> None:
        """Queue a control frame (``subscribed``, ``pong``, ``error``…) in order with messages."""
        if self.state is not SessionState.OPEN:
            return
        if self.unsettled:
            self._held.append(frame)
            return
        was_empty = not self.outbox
        self.outbox.push(frame)
        self._queued(was_empty)

    def _queued(self, was_empty: bool) -> None:
        """After an enqueue: cut a slow consumer past a bound, else see that a writer runs."""
        outbox = self.outbox
        if outbox.full:
            log.info("session %s: slow consumer (%d frames, %d bytes queued): closing 4008",
                     self.id, len(outbox), outbox.bytes)
            self.close(CloseCode.SLOW_CONSUMER, "slow consumer")
            return
        if self.writer is None:
            self._wake_writer()
        elif was_empty:
            # A longer outbox is marked already, or waits for its socket's resume_writing.
            self.writer.mark(self)

    # ---- pacing --------------------------------------------------------------------

    async def wait_queued(self) -> None:
        """Until something is queued or the session stops being open (a writer task waits here)."""
        if self.outbox or self.state is not SessionState.OPEN:
            return
        wake = self._wake = self._wake or asyncio.Event()
        wake.clear()
        await wake.wait()

    def _wake_writer(self) -> None:
        if self._wake is not None:
            self._wake.set()

    async def wait_room(self) -> None:
        """Until the outbox is at most half full: catch-up reads pace themselves on it."""
        while self.state is SessionState.OPEN and self.outbox.above_half():
            if self._room is None:
                self._room = asyncio.Event()
            await self._room.wait()

    def made_room(self) -> None:
        """Frames were written: wake a catch-up waiting for room, if there is room now."""
        if self._room is not None and not self.outbox.above_half():
            self._wake_room()

    def _wake_room(self) -> None:
        if self._room is not None:
            self._room.set()
            self._room = None


def covering(patterns: Iterable[str]) -> Callable[[str], bool]:
    """A test of a topic against ``patterns``: literals by set lookup, wildcards by one regex.

    ``matched_by`` pattern by pattern cost ~0.5 s for a ``ticks.*`` snapshot of 10,000
    subjects under 127 live literals (the limit is 128 subscriptions), and one regex of 127
    literals takes ~3 ms to compile."""
    patterns = list(patterns)
    literals = frozenset(p for p in patterns if is_literal(p))
    wildcards = [p for p in patterns if not is_literal(p)]
    if not wildcards:
        return literals.__contains__
    match = matcher(wildcards)
    return lambda topic: topic in literals or match(topic) is not None

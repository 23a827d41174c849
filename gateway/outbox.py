"""A connection's bounded queue of what it has still to send, taken a frame's worth at a time.

The feed loop never waits for a client: queuing appends the shared frame and returns. A
client that does not read lets its outbox grow to ``messages`` or ``bytes``; past either
bound ``full`` holds and the session closes with 4008 (slow consumer), dropping the outbox,
so memory stays bounded and nothing is lost silently (the client resumes with ``since``).
``take`` returns what one frame carries: a control frame, a gap notice alone, or up to
``batch_max`` consecutive messages (gateway.writer encodes them as one ``batch``), so a
client that falls a little behind catches up in fewer frames.

Conflation (``TICKWIRE_CONFLATE``): once the outbox is above half full, a message on a
conflated topic replaces the last queued, not yet sent message of the same topic instead
of being appended. The replaced message is skipped on purpose: a slow client gets the
newest value per topic rather than being cut with 4008, and per-topic seq order holds
(the newer seq takes the older one's place, behind every earlier message of that topic).
Non-conflated messages and control frames still count towards the bounds.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from gateway.hub import Run
from gateway.message import Message


@dataclass(frozen=True, slots=True)
class OutboxLimits:
    messages: int
    bytes: int
    batch_max: int
    # Whether a topic may be conflated for a slow client (gateway.conflation); None: none may.
    conflate: Callable[[str], bool] | None = None


@dataclass(slots=True)
class Slot:
    """A queued message of a conflated topic: a newer one of its topic may take its place."""

    message: Message


# What an outbox holds: a bus message, a conflated topic's slot, or a control frame.
Queued = Message | Slot | str
# What one frame carries: consecutive messages (a gap notice always alone), or a control frame.
Taken = list[Message] | str


class Outbox:
    def __init__(self, limits: OutboxLimits) -> None:
        self.limits = limits
        self._items: deque[Queued] = deque()
        self.bytes = 0
        self._special = 0  # queued items that are not plain batchable messages (see take)
        self._slots: dict[str, Slot] = {}  # topic → its last queued slot, conflated topics only
        self.conflated = 0  # messages replaced by a newer one of their topic
        self._whole: Run | None = None  # the one run that is all the outbox holds, if one frame carries it

    def __len__(self) -> int:
        return len(self._items)

    @property
    def full(self) -> bool:
        """Past a bound: the session closes as a slow consumer."""
        return len(self._items) > self.limits.messages or self.bytes > self.limits.bytes

    def above_half(self) -> bool:
        return len(self._items) > self.limits.messages // 2 or self.bytes > self.limits.bytes // 2

    def clear(self) -> None:
        self._items.clear()
        self._slots.clear()
        self.bytes = self._special = 0
        self._whole = None

    def extend(self, run: Run) -> None:
        """A run of live messages: one extend, whatever its length (unless conflation applies)."""
        if self.limits.conflate is not None:
            for message in run.messages:
                self.add(message)
            return
        self._whole = run if not self._items and not run.gaps and len(run.messages) <= self.limits.batch_max else None
        self._items.extend(run.messages)
        self.bytes += run.size
        self._special += run.gaps

    def add(self, message: Message) -> None:
        """One message: a snapshot's, a replay's, or a live one where conflation applies."""
        conflate = self.limits.conflate
        if conflate is not None and not message.is_gap and conflate(message.topic):
            queued = self._slots.get(message.topic)
            if queued is not None and self.above_half():
                self.bytes += len(message.frame) - len(queued.message.frame)
                queued.message = message
                self.conflated += 1
                return
            slot = self._slots[message.topic] = Slot(message)
            self._push(slot, len(message.frame), True)
            return
        self._push(message, len(message.frame), message.is_gap)

    def push(self, frame: str) -> None:
        """A control frame, in order with what is queued already."""
        self._push(frame, len(frame), True)

    def _push(self, item: Queued, size: int, special: bool) -> None:
        self._whole = None
        self._items.append(item)
        self.bytes += size
        self._special += special

    def take_whole(self) -> Run | None:
        """The run that is all the outbox holds, taken at once, if one frame carries it.

        Under broadcast most outboxes hold exactly the turn's one run when they are written:
        then every receiver sends the same frame, made once (``Run.wire``)."""
        run = self._whole
        if run is not None:
            self.clear()
        return run

    def take(self) -> Taken:
        """What the next frame carries (the outbox must not be empty)."""
        self._whole = None
        items = self._items
        if not self._special:
            # Only batchable messages queued (the usual case): taken as one run.
            messages: list[Message] = [items.popleft() for _ in range(min(len(items), self.limits.batch_max))]  # type: ignore[misc]
            # Usually all of it: then nothing is left to count.
            self.bytes = self.bytes - sum(len(m.frame) for m in messages) if items else 0
            return messages
        first = self._pop()
        if isinstance(first, str) or first.is_gap:
            return first if isinstance(first, str) else [first]
        taken = [first]
        limit = self.limits.batch_max
        while items and len(taken) < limit and self._batchable(items[0]):
            popped = self._pop()
            assert isinstance(popped, Message)
            taken.append(popped)
        return taken

    @staticmethod
    def _batchable(item: Queued) -> bool:
        return isinstance(item, Slot) or (isinstance(item, Message) and not item.is_gap)

    def _pop(self) -> Message | str:
        """The next queued message (a slot's current one) or control frame."""
        item = self._items.popleft()
        if isinstance(item, str) or isinstance(item, Slot) or item.is_gap:
            self._special -= 1
        if isinstance(item, Slot):
            if self._slots.get(item.message.topic) is item:
                del self._slots[item.message.topic]
            item = item.message
        self.bytes -= len(item) if isinstance(item, str) else len(item.frame)
        return item

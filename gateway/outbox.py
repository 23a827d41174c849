"""A connection's bounded queue of what it has still to send, taken a frame's worth at a time.

The feed loop never waits for a client: queuing appends the shared frame and returns. A
client that does not read lets its outbox grow to ``messages`` or ``bytes``; past either
bound ``full`` holds and the session closes with 4008 (slow consumer), dropping the outbox,
so memory stays bounded and nothing is lost silently (the client resumes with ``since``).
``take`` returns what one frame carries: a control frame, a gap notice alone, or up to
``batch_max`` consecutive messages (gateway.writer encodes them as one ``batch``), so a
client that falls a little behind catches up in fewer frames.

Conflation (``TICKWIRE_CONFLATE``): once the outbox is above half full, a message on a
conflated topic makes the last queued, not yet sent message of its topic skipped (on
purpose: a slow client gets the newest value per topic rather than being cut with 4008).
The newest goes to the tail, never into the skipped one's place: the outbox stays in seq
order, because a client resumes from the highest seq it saw on a subscription, and one cut
right after a newer seq moved ahead would resume past the older messages still queued
behind it. A topic's first queued message is never skipped, so a topic updated faster
than the outbox drains is still sent at its turn; each conflated topic thus holds at most
two messages. A skipped one stays in the queue, empty, until taken or until the empty
ones outnumber the rest and the queue is rebuilt without them (each skip O(1), amortised).
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
    """A queued message of a conflated topic; None once skipped for a newer one of its topic."""

    message: Message | None
    # How many slots of its topic are queued, this one included; kept up to date on the
    # topic's last slot only (the one a newer message may skip).
    queued: int = 1


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
        self._skipped = 0  # skipped slots still in the queue (not counted by len)
        self.conflated = 0  # messages replaced by a newer one of their topic
        self._whole: Run | None = None  # the one run that is all the outbox holds, if one frame carries it

    def __len__(self) -> int:
        return len(self._items) - self._skipped

    @property
    def full(self) -> bool:
        """Past a bound: the session closes as a slow consumer."""
        return len(self) > self.limits.messages or self.bytes > self.limits.bytes

    def above_half(self) -> bool:
        return len(self) > self.limits.messages // 2 or self.bytes > self.limits.bytes // 2

    def clear(self) -> None:
        self._items.clear()
        self._slots.clear()
        self.bytes = self._special = self._skipped = 0
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
            last = self._slots.get(message.topic)
            queued = 0 if last is None else last.queued
            if last is not None and queued > 1 and self.above_half():
                self._skip(last)
                queued -= 1
            slot = self._slots[message.topic] = Slot(message, queued + 1)
            self._push(slot, len(message.frame), True)
            return
        self._push(message, len(message.frame), message.is_gap)

    def _skip(self, slot: Slot) -> None:
        """Empty ``slot`` in place (not its topic's first: the head is never skipped)."""
        assert slot.message is not None
        self.bytes -= len(slot.message.frame)
        slot.message = None
        self.conflated += 1
        self._skipped += 1
        if self._skipped > len(self):
            self._items = deque(i for i in self._items if not (isinstance(i, Slot) and i.message is None))
            self._special -= self._skipped
            self._skipped = 0

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
        """The next queued message (a slot's) or control frame."""
        items = self._items
        item = items.popleft()
        if isinstance(item, str) or isinstance(item, Slot) or item.is_gap:
            self._special -= 1
        if isinstance(item, Slot):
            message = item.message
            assert message is not None  # skipped slots never stay at the head (below)
            last = self._slots[message.topic]
            if last is item:
                del self._slots[message.topic]
            else:
                last.queued -= 1  # slots leave in queue order: this was its topic's first
            item = message
        # A skipped slot always has its topic's first slot ahead of it: it reaches the head
        # only now, right behind what was just taken, so the head stays a queued message.
        while items and isinstance(head := items[0], Slot) and head.message is None:
            items.popleft()
            self._special -= 1
            self._skipped -= 1
        self.bytes -= len(item) if isinstance(item, str) else len(item.frame)
        return item

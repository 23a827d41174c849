"""Pattern → sessions index: each message goes once to every session with a matching pattern.

Per message the work is one dict lookup (topic → sessions, cached) and, rather than one
enqueue per matching session, an append to this turn's last *run* when the message has the
same receivers as the one before: under broadcast a whole burst from NATS is one run. At
the end of the turn ``settle`` hands each run to its receivers in publish order, one outbox
``extend`` per session per run, so a session still sees every message in seq order, and
then has the writer write them (gateway.writer): the turn's one deferral between NATS and
the sockets. Each receiver counts the runs on their way to it (``unsettled``), so that a
control frame it queues meanwhile waits for them and keeps its place after the messages
published before it; the session never calls back here.

The cache (topic → receivers) is invalidated per topic when a subscription that matches it
changes, so a churn of subscriptions does not throw away the whole cache, and it holds at
most ``CACHE_TOPICS`` topics, dropping the oldest entry first. A run keeps the receivers it was
published to: a session subscribing later in the turn gets those messages from its
snapshot or replay (they are in the feed's ring and latest cache already), one that
unsubscribed later still gets what was published while it was subscribed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from gateway.message import Message
from services.subjects import is_literal, matcher, matches

CACHE_TOPICS = 65_536  # topics whose receivers are remembered; past it the oldest goes


@dataclass(slots=True)
class Run:
    """Consecutive messages of one turn bound for the same receivers, their sizes summed once."""

    messages: list[Message]
    size: int  # bytes of their frames
    gaps: int  # gap notices among them
    # The run as one serialized frame, made by the first session's write and reused by every
    # other receiver whose outbox held nothing else (gateway.writer).
    wire: bytes | None = None


class Subscriber(Protocol):
    unsettled: int  # runs published to it and not yet handed over

    def deliver_run(self, run: Run) -> None:
        """Take a run of messages without blocking (the hub calls this at the end of a turn)."""


class Hub:
    def __init__(self, write: Callable[[], None] = lambda: None, cache_topics: int = CACHE_TOPICS) -> None:
        self._by_pattern: dict[str, set[Subscriber]] = {}
        self._cache: dict[str, tuple[Subscriber, ...]] = {}
        self._cache_topics = cache_topics
        self._runs: list[tuple[tuple[Subscriber, ...], Run]] = []
        self._write = write  # the writer's pass over the sessions settle queued to

    @property
    def cached_topics(self) -> int:
        return len(self._cache)

    @property
    def patterns(self) -> int:
        return len(self._by_pattern)

    def add(self, subscriber: Subscriber, pattern: str) -> None:
        members = self._by_pattern.setdefault(pattern, set())
        if subscriber not in members:
            members.add(subscriber)
            self._invalidate(pattern)

    def remove(self, subscriber: Subscriber, pattern: str) -> None:
        members = self._by_pattern.get(pattern)
        if members is None or subscriber not in members:
            return
        members.discard(subscriber)
        if not members:
            del self._by_pattern[pattern]
        self._invalidate(pattern)

    def matching(self, topic: str) -> tuple[Subscriber, ...]:
        found = self._cache.get(topic)
        if found is None:
            # dict.fromkeys keeps the first-seen order and drops a session matched twice.
            found = tuple(dict.fromkeys(
                s for pattern, members in self._by_pattern.items() if matches(pattern, topic) for s in members
            ))
            if len(self._cache) >= self._cache_topics:
                del self._cache[next(iter(self._cache))]
            self._cache[topic] = found
        return found

    def publish(self, message: Message) -> int:
        """Queue ``message`` for each matching subscriber once (``settle`` hands it over at
        the end of the turn); return how many."""
        receivers = self._gap_receivers(message) if message.is_gap else self.matching(message.topic)
        if receivers:
            runs = self._runs
            # Equal, not only identical: each topic caches its own tuple, and under broadcast
            # consecutive messages are on different topics with the same receivers. Compared
            # in C, pointer by pointer, stopping at the first difference.
            if runs and runs[-1][0] == receivers:
                run = runs[-1][1]
                run.messages.append(message)
                run.size += len(message.frame)
                run.gaps += message.is_gap
            else:
                if not runs:
                    asyncio.get_running_loop().call_soon(self.settle)
                runs.append((receivers, Run([message], len(message.frame), int(message.is_gap))))
                for subscriber in receivers:
                    subscriber.unsettled += 1
        return len(receivers)

    def settle(self) -> None:
        """Hand every queued run to its receivers, in publish order, then write."""
        runs, self._runs = self._runs, []
        for receivers, run in runs:
            for subscriber in receivers:
                subscriber.unsettled -= 1
                subscriber.deliver_run(run)
        self._write()

    def _gap_receivers(self, message: Message) -> tuple[Subscriber, ...]:
        # Gap notices are rare: matched directly, never cached beside the topics' entries.
        return tuple(dict.fromkeys(
            s for pattern, members in self._by_pattern.items() if message.matched_by(pattern) for s in members
        ))

    def _invalidate(self, pattern: str) -> None:
        if is_literal(pattern):
            # One entry at most: a churn of literal subscriptions (a grant of ``ticks.*`` allows
            # 128 per frame) must not scan every cached topic per literal.
            self._cache.pop(pattern, None)
            return
        match = matcher([pattern])
        stale = [topic for topic in self._cache if match(topic)]
        for topic in stale:
            del self._cache[topic]

"""Pattern → sessions index: each message goes once to every session with a matching pattern.

Per message the work is one dict lookup (topic → sessions, cached) plus one enqueue per
matching session, never per pattern: a session whose several patterns match a topic is in
the cached tuple once. The cache is invalidated per topic when a subscription that matches
it changes, so a churn of subscriptions does not throw away the whole cache.
"""

from __future__ import annotations

from typing import Protocol

from gateway.message import Message
from services.subjects import matches


class Subscriber(Protocol):
    def deliver(self, message: Message) -> None:
        """Take one message without blocking (the feed loop calls this)."""


class Hub:
    def __init__(self) -> None:
        self._by_pattern: dict[str, set[Subscriber]] = {}
        self._cache: dict[str, tuple[Subscriber, ...]] = {}

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
            self._cache[topic] = found
        return found

    def publish(self, message: Message) -> int:
        """Hand ``message`` to each matching subscriber once; return how many."""
        receivers = self._gap_receivers(message) if message.is_gap else self.matching(message.topic)
        for subscriber in receivers:
            subscriber.deliver(message)
        return len(receivers)

    def _gap_receivers(self, message: Message) -> tuple[Subscriber, ...]:
        # Gap notices are rare: matched directly, never cached beside the topics' entries.
        return tuple(dict.fromkeys(
            s for pattern, members in self._by_pattern.items() if message.matched_by(pattern) for s in members
        ))

    def _invalidate(self, pattern: str) -> None:
        stale = [topic for topic in self._cache if matches(pattern, topic)]
        for topic in stale:
            del self._cache[topic]

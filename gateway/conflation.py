"""Which topics a slow client may get conflated (``TICKWIRE_CONFLATE``): see gateway.outbox."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from services.subjects import matcher

CACHE_TOPICS = 65_536  # topics remembered; the feed asks once per message, so this must be cheap


def conflated_topics(patterns: tuple[str, ...]) -> Callable[[str], bool] | None:
    """A predicate: does ``topic`` match one of ``patterns``? (cached per topic); None
    without patterns, so that sessions skip the question altogether."""
    if not patterns:
        return None

    match = matcher(patterns)

    @lru_cache(maxsize=CACHE_TOPICS)
    def conflated(topic: str) -> bool:
        return match(topic) is not None

    return conflated

"""Capped exponential backoff: the one pacing of every loop that retries a backend.

    backoff = Backoff(first=0.1, cap=2.0)
    while not done:
        try: ...; backoff.reset()
        except Unavailable: await pause(stop, backoff.delay())
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays of ``first``, twice that, … never above ``cap``; ``reset`` after a success."""

    first: float = 0.1
    cap: float = 2.0
    _next: float = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._next = self.first

    def delay(self) -> float:
        """The wait before the next attempt (each call doubles the one after it)."""
        delay = self._next
        self._next = min(self._next * 2, self.cap)
        return delay

    def reset(self) -> None:
        self._next = self.first


async def pause(stop: asyncio.Event, seconds: float) -> bool:
    """Wait ``seconds``, or less if ``stop`` is set meanwhile; True if it was."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()

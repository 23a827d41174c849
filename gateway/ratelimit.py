"""Inbound frame rate limit per connection: a token bucket, and a line past which it is abuse.

A client may send ``rate`` frames per second with bursts up to twice that. A frame over the
limit is dropped and answered with ``error`` ``rate_limited`` (once per second at most, so
that a flood does not turn into a flood of replies filling its own outbox). Dropping
``ABUSE_FACTOR`` × ``rate`` frames within one second is no longer a mistake: the
connection is closed with 1008. Nor is a flood that arrives just slowly enough to stay
under that line (large frames are read more slowly): dropping ``SUSTAINED_FACTOR`` ×
``rate`` frames a second for ``SUSTAINED_WINDOWS`` seconds in a row closes it too. The
clock is injected so the bucket is tested without time.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

BURST_FACTOR = 2.0
ABUSE_FACTOR = 10.0
WINDOW = 1.0  # seconds over which dropped frames are counted
SUSTAINED_FACTOR = 2.0  # dropped per window: the client sends at least 3 × the rate
SUSTAINED_WINDOWS = 3


class Verdict(enum.Enum):
    ALLOW = "allow"
    DROP = "drop"  # over the limit: drop the frame silently (already told this window)
    DROP_AND_TELL = "drop_and_tell"  # over the limit: drop it and send rate_limited
    ABUSE = "abuse"  # close the connection with 1008


class FrameRateLimit:
    def __init__(self, rate: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._rate = rate
        self._burst = rate * BURST_FACTOR
        self._tokens = self._burst
        self._clock = clock
        self._last = clock()
        self._window_start = self._last
        self._dropped = 0  # frames dropped since _window_start
        self._flooded_windows = 0  # consecutive past windows with sustained drops

    def check(self) -> Verdict:
        """Account for one inbound frame and say what to do with it."""
        now = self._clock()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return Verdict.ALLOW
        if now - self._window_start >= WINDOW:
            back_to_back = now - self._window_start < 2 * WINDOW
            flooded = back_to_back and self._dropped >= self._rate * SUSTAINED_FACTOR
            self._flooded_windows = self._flooded_windows + 1 if flooded else 0
            self._window_start, self._dropped = now, 0
        self._dropped += 1
        if self._dropped >= self._rate * ABUSE_FACTOR or self._flooded_windows >= SUSTAINED_WINDOWS:
            return Verdict.ABUSE
        return Verdict.DROP_AND_TELL if self._dropped == 1 else Verdict.DROP

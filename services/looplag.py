"""Event-loop lag: how late the loop wakes a task that asked to sleep, measured every ``interval``.

A loop that is late delays every message it handles, whatever the code on the data path
does; this makes it visible. ``run`` is a task owned by the service's TaskGroup. Each
sample is the sleep's overshoot: the time between when the timer was due and when the
task ran again, i.e. how long callbacks queued behind the loop's current work would wait.
Samples go to a histogram (``tickwire_event_loop_lag_seconds``, registered by the service on
its own registry) and to a window of the recent ones for a JSON summary.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque

from prometheus_client import Histogram

METRIC = "tickwire_event_loop_lag_seconds"
INTERVAL = 0.05  # seconds between samples: often enough to catch a 100 ms stall twice
WINDOW = 1200  # recent samples kept for the summary: one minute at INTERVAL
BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class LoopLag:
    """The lag of the loop ``run`` runs in: a histogram to register, and a recent-window summary."""

    def __init__(self, interval: float = INTERVAL, window: int = WINDOW) -> None:
        self.interval = interval
        self._recent: deque[float] = deque(maxlen=window)
        # Registered by the service on its own registry (several services share a test
        # process); under the gateway's --workers, summed over the workers like its others.
        self.histogram = Histogram(METRIC, "How late the event loop runs a timer that is due (scheduling delay)",
                                   buckets=BUCKETS, registry=None)

    async def run(self, stop: asyncio.Event) -> None:
        """Sample until ``stop`` is set (within one interval)."""
        while not stop.is_set():
            # perf_counter, not loop.time(): uvloop's clock counts whole milliseconds.
            due = time.perf_counter() + self.interval
            await asyncio.sleep(self.interval)
            self.record(max(0.0, time.perf_counter() - due))

    def record(self, lag: float) -> None:
        self._recent.append(lag)
        self.histogram.observe(lag)

    def summary(self) -> dict[str, float]:
        """Over the recent window, in milliseconds: p50, p99, max and the sample count ``n``."""
        ordered = sorted(self._recent)
        if not ordered:
            return {"p50": 0.0, "p99": 0.0, "max": 0.0, "n": 0}
        last = len(ordered) - 1

        def ms(q: float) -> float:
            return round(ordered[round(q * last)] * 1000, 3)

        return {"p50": ms(0.5), "p99": ms(0.99), "max": ms(1.0), "n": len(ordered)}

"""Per-hop latency over a sliding window of recent messages, for ``/api/latency``.

Each hop keeps a bounded deque of its last ``window`` samples (µs), so memory is fixed and
the figures follow the present; percentiles are computed on request, not per message.
"""

from __future__ import annotations

from collections import deque

# (name shown, hop stamp it starts at, hop stamp it ends at)
HOPS = (
    ("redis_to_ingest", "origin", "read"),
    ("ingest_publish", "read", "publish"),
    ("nats_to_gateway", "publish", "gateway_receive"),
    ("end_to_gateway", "origin", "gateway_receive"),
)


class LatencyWindow:
    def __init__(self, window: int = 4096) -> None:
        self._samples: dict[str, deque[int]] = {name: deque(maxlen=window) for name, _, _ in HOPS}
        self._window = window

    def record_hop(self, name: str, micros: int) -> None:
        """One sample of a hop: one of ``HOPS``, or one measured elsewhere (the browser's,
        from its reports)."""
        samples = self._samples.get(name)
        if samples is None:
            samples = self._samples[name] = deque(maxlen=self._window)
        samples.append(micros)

    def summary(self) -> dict[str, dict[str, float]]:
        """Per hop: sample count and p50/p90/p99/max in milliseconds."""
        result: dict[str, dict[str, float]] = {}
        for name, samples in self._samples.items():
            ordered = sorted(samples)
            if not ordered:
                result[name] = {"n": 0}
                continue
            last = len(ordered) - 1

            def pct(q: float, ordered: list[int] = ordered, last: int = last) -> float:
                return round(ordered[round(q * last)] / 1000, 3)

            result[name] = {"n": len(ordered), "p50": pct(0.5), "p90": pct(0.9), "p99": pct(0.99),
                            "max": pct(1.0)}
        return result

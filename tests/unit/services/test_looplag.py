"""Event-loop lag: a stalled loop shows in the summary and the Prometheus histogram."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import CollectorRegistry, generate_latest

from services.looplag import METRIC, LoopLag


async def test_a_stall_shows_as_lag_in_the_summary_and_the_histogram() -> None:
    """1. a monitor sampling every 10 ms  2. the loop is blocked for 120 ms once
    3. the summary's max is at least 100 ms, p50 stays small; 4. /metrics text has the histogram
    with every sample counted and the stall above the 0.1 s bucket."""
    lag = LoopLag(interval=0.01)
    registry = CollectorRegistry()
    registry.register(lag.histogram)
    stop = asyncio.Event()
    monitor = asyncio.create_task(lag.run(stop))
    await asyncio.sleep(0.05)
    time.sleep(0.12)  # noqa: ASYNC251 - the stall under test: nothing else runs meanwhile
    await asyncio.sleep(0.05)
    stop.set()
    await monitor
    summary = lag.summary()
    assert summary["max"] >= 100 and summary["p50"] < 50 and summary["n"] >= 3
    text = generate_latest(registry).decode()
    assert f'{METRIC}_count {float(summary["n"])}' in text
    below = next(line for line in text.splitlines() if line.startswith(f'{METRIC}_bucket{{le="0.1"}}'))
    assert float(below.split()[1]) == summary["n"] - 1


def test_an_empty_window_summarises_as_zeros() -> None:
    assert LoopLag().summary() == {"p50": 0.0, "p99": 0.0, "max": 0.0, "n": 0}

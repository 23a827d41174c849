"""The shared backoff: doubling, capped, reset; a pause that a stop cuts short."""

from __future__ import annotations

import asyncio
import time

from services.backoff import Backoff, pause


def test_delays_double_up_to_the_cap_and_reset() -> None:
    backoff = Backoff(first=0.5, cap=3.0)
    assert [backoff.delay() for _ in range(5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    backoff.reset()
    assert backoff.delay() == 0.5


async def test_a_stop_cuts_a_pause_short() -> None:
    """1. a 30 s pause; 2. stop is set meanwhile; 3. the pause returns True at once."""
    stop = asyncio.Event()
    asyncio.get_running_loop().call_soon(stop.set)
    started = time.monotonic()
    assert await pause(stop, 30) is True
    assert time.monotonic() - started < 10
    assert await pause(asyncio.Event(), 0.01) is False

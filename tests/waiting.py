"""Waiting for an observable condition, with a deadline, instead of sleeping blindly."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], bool | Awaitable[bool]], within: float = 20.0, every: float = 0.02, what: str = "condition"
) -> None:
    """Until ``check()`` is true; TimeoutError naming ``what`` after ``within`` seconds."""
    try:
        async with asyncio.timeout(within):
            while True:
                result = check()
                if inspect.isawaitable(result):
                    result = await result
                if result:
                    return
                await asyncio.sleep(every)
    except TimeoutError:
        raise TimeoutError(f"{what} not reached within {within}s") from None

"""A minimal Server-Sent Events reader over httpx, for the tests."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx

EVENT_TIMEOUT = 10.0


@dataclass
class Event:
    event: str
    data: dict[str, Any]
    id: str | None = None


@dataclass
class SseReader:
    response: httpx.Response
    pings: int = 0
    _lines: AsyncIterator[str] = field(init=False)

    def __post_init__(self) -> None:
        self._lines = self.response.aiter_lines()

    async def event(self) -> Event:
        """The next event (comments are counted in ``pings``); StopAsyncIteration at the end."""
        fields: dict[str, str] = {}
        data: list[str] = []
        while True:
            line = await asyncio.wait_for(anext(self._lines), EVENT_TIMEOUT)
            if line == "":
                if data:
                    return Event(fields.get("event", "message"), json.loads("\n".join(data)), fields.get("id"))
                continue
            if line.startswith(":"):
                self.pings += 1
                continue
            name, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if name == "data":
                data.append(value)
            else:
                fields[name] = value

    async def ping(self) -> str:
        """Read on until the next comment line (a heartbeat); return it."""
        while True:
            line = await asyncio.wait_for(anext(self._lines), EVENT_TIMEOUT)
            if line.startswith(":"):
                self.pings += 1
                return line

    async def expect(self, kind: str) -> Event:
        event = await self.event()
        assert event.event == kind, event
        return event

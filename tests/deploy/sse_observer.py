"""An SSE client for the deploy test, shaped like tests/fault/harness.py's ``Observer``.

It does what ``EventSource`` does: on a ``close`` event or a cut stream it reconnects,
sending ``Last-Event-ID`` (the last seq it saw), and drops any seq it has already seen, so
``judge`` counts what the application would have received.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Sequence
from dataclasses import dataclass

import httpx
from tickwire_client import Message

from services.hops import now_us

RETRY_S = 0.2  # EventSource's reconnection delay is the server's `retry:` or a few seconds


@dataclass
class SseStats:
    connects: int = 0
    closes: int = 0
    duplicates: int = 0


class _Client:
    """What ``judge`` reads of an observer's client: its stats."""

    def __init__(self) -> None:
        self.stats = SseStats()


class SseObserver:
    def __init__(self, url: str, topics: Sequence[str], headers: dict[str, str]) -> None:
        self.url = url
        self.topics = ",".join(topics)
        self.headers = headers
        self.client = _Client()
        self.received: list[Message] = []
        self.last_seq: int | None = None
        self.subscribed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> SseObserver:
        self._task = asyncio.create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def ids(self, stream: str) -> list[str]:
        topic = stream.removeprefix("md:")
        return [m.id for m in self.received if m.topic == topic or m.topic.startswith(topic + ".")]

    def first_after(self, origin_us: int) -> float | None:
        later = [m.received_us for m in self.received if m.ts > origin_us]
        return (min(later) - origin_us) / 1e6 if later else None

    async def _run(self) -> None:
        timeout = httpx.Timeout(10.0, read=30.0)
        async with httpx.AsyncClient(timeout=timeout) as http:
            while True:
                headers = dict(self.headers)
                if self.last_seq is not None:
                    headers["Last-Event-ID"] = str(self.last_seq)
                try:
                    async with http.stream("GET", self.url, params={"topics": self.topics}, headers=headers) as resp:
                        if resp.status_code == 200:
                            self.client.stats.connects += 1
                            await self._read(resp)
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(RETRY_S)

    async def _read(self, resp: httpx.Response) -> None:
        kind, data = "message", []
        async for line in resp.aiter_lines():
            if line == "":
                if data:
                    if self._event(kind, json.loads("\n".join(data))):
                        return
                kind, data = "message", []
            elif line.startswith("event:"):
                kind = line.partition(":")[2].strip()
            elif line.startswith("data:"):
                data.append(line.partition(":")[2].removeprefix(" "))

    def _event(self, kind: str, frame: dict[str, object]) -> bool:
        """Handle one event; True when the stream is over (a ``close``)."""
        if kind == "subscribed":
            self.subscribed.set()
        elif kind == "msg":
            seq = int(frame["seq"])  # type: ignore[call-overload]
            if self.last_seq is not None and seq <= self.last_seq:
                self.client.stats.duplicates += 1
                return False
            self.last_seq = seq
            self.received.append(
                Message(str(frame["topic"]), seq, str(frame["id"]), int(frame["ts"]),  # type: ignore[call-overload]
                        frame.get("data"), now_us())
            )
        elif kind == "close":
            self.client.stats.closes += 1
            return True
        return False

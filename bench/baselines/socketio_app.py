"""Baseline 2: python-socketio (ASGI) on uvicorn, emitting the stream to rooms.

    python -m bench.baselines.socketio_app REDIS_URL PORT

A client emits ``subscribe`` with ``{"topics": […]}`` and joins one room per topic
(``"*"``: the room of everything); one background task XREADs ``md:ticks`` and emits each
entry once as event ``msg`` to its topic's room and to ``"*"`` (python-socketio sends it
once to a client in both). This is the library's documented broadcast pattern.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import socketio
import uvicorn

from bench.baselines.entries import entries


def create_app(url: str) -> Any:
    sio = socketio.AsyncServer(async_mode="asgi", cors_allowed_origins="*")

    @sio.event  # type: ignore[untyped-decorator,unused-ignore]
    async def subscribe(sid: str, data: dict[str, Any]) -> None:
        for topic in data.get("topics", []):
            await sio.enter_room(sid, topic)

    async def pump() -> None:
        async for entry in entries(url):
            await sio.emit("msg", entry, to=[entry["topic"], "*"])

    tasks: list[asyncio.Task[None]] = []

    async def startup() -> None:
        tasks.append(asyncio.create_task(pump()))

    return socketio.ASGIApp(sio, on_startup=startup)


if __name__ == "__main__":
    uvicorn.run(create_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")

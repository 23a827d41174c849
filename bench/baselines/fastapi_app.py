"""Baseline 1: the typical FastAPI fan-out, about 50 lines as one would write it.

    python -m bench.baselines.fastapi_app REDIS_URL PORT

One background task XREADs ``md:ticks`` from ``$`` (new entries only), encodes each entry
once as ``{"type":"msg","topic","id","ts","data"}`` and awaits ``send_text`` on every
client whose subscription matches. A client sends ``{"type":"subscribe","topics":[…]}``;
``"*"`` means everything. No batching, no per-client queue: that is the design compared.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from bench.baselines.entries import entries

clients: dict[WebSocket, set[str]] = {}


async def pump(url: str) -> None:
    async for entry in entries(url):
        text = json.dumps({"type": "msg", **entry})
        for ws, topics in list(clients.items()):
            if "*" in topics or entry["topic"] in topics:
                try:
                    await ws.send_text(text)
                except Exception:  # a client gone mid-send: forget it
                    clients.pop(ws, None)


def create_app(url: str) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(pump(url))
        yield
        task.cancel()

    app = FastAPI(lifespan=lifespan)

    @app.websocket("/ws")
    async def ws_endpoint(ws: WebSocket) -> None:
        await ws.accept()
        clients[ws] = set()
        try:
            while True:
                frame = await ws.receive_json()
                if frame.get("type") == "subscribe":
                    clients[ws] = set(frame["topics"])
        except WebSocketDisconnect:
            pass
        finally:
            clients.pop(ws, None)

    return app


if __name__ == "__main__":
    uvicorn.run(create_app(sys.argv[1]), host="127.0.0.1", port=int(sys.argv[2]), log_level="warning")

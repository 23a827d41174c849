"""Gateways in the test's own event loop, a JetStream publisher that writes what ingest
would, and a protocol v1 client that awaits specific frames."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import uvicorn
import websockets
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from websockets.asyncio.client import ClientConnection

from services import envelope
from services.settings import GatewaySettings

FRAME_TIMEOUT = 10.0


@dataclass
class Gw:
    port: int
    server: uvicorn.Server
    settings: GatewaySettings

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class Bus:
    nc: NATS
    js: JetStreamContext
    count: int = 0

    async def publish(self, subject: str, data: dict[str, Any] | None = None) -> int:
        """Publish one entry as ingest would; return its stream seq."""
        self.count += 1
        entry_id = f"{1764433200000 + self.count}-0"
        payload = json.dumps(data if data is not None else {"n": self.count}).encode()
        ack = await self.js.publish(
            subject,
            payload,
            headers={
                envelope.MSG_ID: envelope.msg_id(f"md:{subject.split('.')[1]}", entry_id),
                envelope.ENTRY_ID: entry_id,
                envelope.ORIGIN_TS: str((1764433200000 + self.count) * 1000),
            },
        )
        return ack.seq


StartGateway = Callable[..., Awaitable[Gw]]


class Client:
    """A protocol v1 client that collects frames and can await specific ones."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.pending: list[dict[str, Any]] = []

    async def send(self, **frame: Any) -> None:
        await self.ws.send(json.dumps(frame))

    async def frame(self) -> dict[str, Any]:
        if self.pending:
            return self.pending.pop(0)
        raw = await asyncio.wait_for(self.ws.recv(), FRAME_TIMEOUT)
        parsed: dict[str, Any] = json.loads(raw)
        if parsed["type"] == "batch":
            self.pending.extend(parsed["msgs"])
            return self.pending.pop(0)
        return parsed

    async def expect(self, kind: str) -> dict[str, Any]:
        """The next frame, which must be of type ``kind``."""
        frame = await self.frame()
        assert frame["type"] == kind, frame
        return frame

    async def msgs(self, n: int) -> list[dict[str, Any]]:
        return [await self.expect("msg") for _ in range(n)]

    async def subscribe(self, *topics: str, **extra: Any) -> dict[str, Any]:
        await self.send(type="subscribe", topics=list(topics), **extra)
        return await self.expect("subscribed")


@contextlib.asynccontextmanager
async def connect(gw: Gw, **kwargs: Any) -> AsyncIterator[Client]:
    async with websockets.connect(gw.ws_url, subprotocols=[websockets.Subprotocol("tickwire.v1")], **kwargs) as ws:
        client = Client(ws)
        await client.expect("welcome")
        yield client

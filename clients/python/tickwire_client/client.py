"""A small async client for protocol v1, for users' programs and Tickwire's own tests.

    async with TickwireClient(["ws://127.0.0.1:8080/ws"], ["ticks.*"]) as client:
        async for msg in client:
            print(msg.topic, msg.seq, msg.data)

It connects to the first gateway that answers, and after any disconnect reconnects (to
the next URL, with capped exponential backoff and full jitter) and resumes every
subscription with ``since`` and ``epoch``. A gateway that refuses the connection or fails
the handshake is left for the next one, over WebSocket again: like the browser client, it
never takes a dead gateway for a blocked WebSocket, and it has no SSE fallback at all (a
program, unlike a page, chooses a network where WebSocket works). It drops any message whose seq it has already
seen on that topic, so the application sees each message once and in order.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import random
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from tickwire_client.topics import matches

log = logging.getLogger(__name__)


def _encode(frame: dict[str, Any]) -> str:
    return json.dumps(frame, separators=(",", ":"))


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    seq: int
    id: str
    ts: int
    data: Any
    received_us: int
    trace: str | None = None
    hops: dict[str, int] | None = None


@dataclass
class ClientStats:
    received: int = 0
    duplicates: int = 0
    reconnects: int = 0
    resets: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)
    node: str | None = None
    close_codes: list[int] = field(default_factory=list)


class ClientError(RuntimeError):
    """The server refused the session for good (policy or protocol)."""


class TickwireClient:
    """Subscribes to ``topics`` on one of ``urls`` and yields each message once, in order."""

    def __init__(
        self,
        urls: Sequence[str],
        topics: Sequence[str],
        *,
        since: int | None = None,
        backoff_base: float = 0.05,
        backoff_cap: float = 2.0,
        queue_size: int = 100_000,
        headers: dict[str, str] | None = None,
        subprotocols: Sequence[str] = ("tickwire.v1",),
    ) -> None:
        self.urls = list(urls)
        self.topics = list(dict.fromkeys(topics))
        self.stats = ClientStats()
        self.epoch: str | None = None
        self.last_seq: dict[str, int] = {}  # literal topic → highest seq delivered
        self.position: dict[str, int] = dict.fromkeys(self.topics, since) if since is not None else {}
        self._backoff = (backoff_base, backoff_cap)
        self._headers = headers
        self._subprotocols = list(subprotocols)
        self._queue: asyncio.Queue[Message | BaseException] = asyncio.Queue(queue_size)
        self._ws: ClientConnection | None = None
        self._receipts: list[dict[str, Any]] = []  # of traced messages, reported after each frame
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.subscribed = asyncio.Event()

    async def __aenter__(self) -> TickwireClient:
        self._task = asyncio.create_task(self._run(), name="tickwire-client")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    def __aiter__(self) -> AsyncIterator[Message]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[Message]:
        while True:
            item = await self._queue.get()
            if isinstance(item, BaseException):
                raise item
            yield item

    async def next(self, within: float = 10.0) -> Message:
        """The next message, or TimeoutError after ``within`` seconds."""
        item = await asyncio.wait_for(self._queue.get(), within)
        if isinstance(item, BaseException):
            raise item
        return item

    async def drop_connection(self) -> None:
        """Close the current socket abruptly (tests): the client reconnects and resumes."""
        if self._ws is not None:
            self._ws.transport.abort()

    async def send(self, frame: dict[str, Any]) -> None:
        if self._ws is None:
            raise ConnectionError("not connected")
        await self._ws.send(_encode(frame))

    # ---- connection loop -------------------------------------------------------------

    async def _run(self) -> None:
        attempt = 0
        for url in itertools.cycle(self.urls):
            try:
                async with connect(
                    url,
                    additional_headers=self._headers,
                    subprotocols=self._subprotocols,  # type: ignore[arg-type]
                    max_size=None,
                    compression=None,
                    open_timeout=5,
                ) as ws:
                    self._ws = ws
                    attempt = 0
                    await self._session(ws)
            except ClientError as exc:
                await self._queue.put(exc)
                return
            except (OSError, ConnectionClosed, InvalidHandshake, TimeoutError) as exc:
                code = getattr(getattr(exc, "rcvd", None), "code", None)
                if code is not None:
                    self.stats.close_codes.append(code)
                    if code == 1008:
                        await self._queue.put(ClientError(f"closed by server: policy ({exc})"))
                        return
                log.debug("client: %s disconnected: %s", url, exc)
            finally:
                self._ws = None
                self.connected.clear()
                self.subscribed.clear()
            self.stats.reconnects += 1
            attempt += 1
            base, cap = self._backoff
            await asyncio.sleep(random.uniform(0, min(cap, base * 2 ** min(attempt, 16))))

    async def _session(self, ws: ClientConnection) -> None:
        welcome = json.loads(await ws.recv())
        if welcome.get("type") != "welcome":
            raise ClientError(f"expected welcome, got {welcome!r}")
        self.stats.node = welcome.get("node")
        self.connected.set()
        await ws.send(_encode(self._subscribe_frame()))
        async for raw in ws:
            frame = json.loads(raw)
            kind = frame.get("type")
            if kind == "msg":
                await self._deliver(frame)
            elif kind == "batch":
                for item in frame["msgs"]:
                    await self._deliver(item)
            elif kind == "subscribed":
                self._on_subscribed(frame)
            elif kind == "gap":
                self.stats.gaps.append(frame)
            elif kind == "error":
                log.warning("client: server error %s: %s", frame.get("code"), frame.get("message"))
            if self._receipts:
                # Receipts of traced messages let the gateway trace the last hop (design §4).
                await ws.send(_encode({"type": "report", "received": self._receipts}))
                self._receipts = []

    def _subscribe_frame(self) -> dict[str, Any]:
        frame: dict[str, Any] = {"type": "subscribe", "topics": self.topics}
        if self.position:
            frame["since"] = {t: s for t, s in self.position.items() if t in self.topics}
            if self.epoch is not None:
                frame["epoch"] = self.epoch
        return frame

    def _on_subscribed(self, frame: dict[str, Any]) -> None:
        if self.epoch is not None and not frame.get("recovered", True):
            # Continuity was lost (retention or a new stream): start over from the snapshot.
            self.stats.resets += 1
            self.last_seq.clear()
            self.position.clear()
        self.epoch = frame.get("epoch", self.epoch)
        # A fresh subscription is positioned at the head: what follows is either its
        # snapshot (state, not history) or live, so a resume from here loses nothing.
        for pattern in frame.get("topics", ()):
            self.position.setdefault(pattern, frame["seq"])
        self.subscribed.set()

    async def _deliver(self, frame: dict[str, Any]) -> None:
        topic, seq = frame["topic"], frame["seq"]
        if seq <= self.last_seq.get(topic, 0):
            self.stats.duplicates += 1
            return
        self.last_seq[topic] = seq
        for pattern in self.topics:
            if matches(pattern, topic) and seq > self.position.get(pattern, 0):
                self.position[pattern] = seq
        self.stats.received += 1
        received = time.time_ns() // 1000
        trace = frame.get("trace")
        if trace is not None:
            self._receipts.append({"seq": seq, "trace": trace, "t": received})
        await self._queue.put(
            Message(topic, seq, frame["id"], frame["ts"], frame["data"], received, trace, frame.get("hops"))
        )

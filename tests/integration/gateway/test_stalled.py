"""A client that stops reading its socket: cut with 4008 once its socket has taken nothing for
``TICKWIRE_STALL_TIMEOUT``, however far below the outbox's bound the message rate keeps it;
a WebSocket gets a close frame, an SSE stream a ``close`` event."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
import socket
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import httpx
import pytest
from websockets.frames import Frame, Opcode

from gateway import sse
from gateway.ws import CLOSE_TIMEOUT
from tests.integration.gateway.harness import Bus, Gw, StartGateway, connect
from tests.integration.gateway.sse import SseReader
from tests.waiting import eventually

STALL_TIMEOUT = 1.0
RECEIVE_BUFFER = 4096  # the kernel doubles it; small so that the window closes after a few frames
PAYLOAD = {"pad": "x" * 32_000}
PUBLISH_EVERY = 0.05  # 20 messages/s of 32 KB: the kernel's send buffer (up to 4 MiB) fills within seconds
OUTBOX_BYTES = 64 * 1024 * 1024  # a bound the test's rate stays far below: only a stall can close it
WITHIN = 15.0
CLOSE_4008 = b"\x88\x0f" + (4008).to_bytes(2, "big") + b"slow consumer"  # FIN, close, 15 bytes, unmasked
# The SSE stream's last chunk (chunked encoding: its size, the close event) and the terminating one.
CLOSE_EVENT = b'event: close\ndata: {"type":"close","code":4008,"reason":"slow consumer"}\n\n'
SSE_END = f"{len(CLOSE_EVENT):x}\r\n".encode() + CLOSE_EVENT + b"\r\n0\r\n\r\n"


async def _publish(bus: Bus, published: list[int]) -> None:
    """32 KB messages on ticks.AAPL every PUBLISH_EVERY until cancelled, their seqs in ``published``."""
    while True:
        published.append(await bus.publish("md.ticks.AAPL", PAYLOAD))
        await asyncio.sleep(PUBLISH_EVERY)  # pacing the rate, not waiting for anything


@contextlib.asynccontextmanager
async def _running(*work: Coroutine[Any, Any, None]) -> AsyncIterator[list[asyncio.Task[None]]]:
    """``work`` as tasks for the block, cancelled and awaited when it ends."""
    tasks = [asyncio.create_task(w) for w in work]
    try:
        yield tasks
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


@contextlib.asynccontextmanager
async def _small_window(gw: Gw) -> AsyncIterator[socket.socket]:
    """A non-blocking socket connected to the gateway with a RECEIVE_BUFFER receive window."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)  # before connect: it sets the window
    sock.setblocking(False)
    try:
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", gw.port))
        yield sock
    finally:
        sock.close()


@contextlib.asynccontextmanager
async def stalled_client(gw: Gw, *topics: str) -> AsyncIterator[socket.socket]:
    """A raw WebSocket that completes the handshake, subscribes, reads up to ``subscribed``
    and then never reads again."""
    loop = asyncio.get_running_loop()
    async with _small_window(gw) as sock:
        key = base64.b64encode(os.urandom(16)).decode()
        await loop.sock_sendall(sock, (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: tickwire.v1\r\n\r\n"
        ).encode())
        subscribe = json.dumps({"type": "subscribe", "topics": list(topics)}).encode()
        received = b""
        async with asyncio.timeout(10):
            while b"\r\n\r\n" not in received:
                received += await loop.sock_recv(sock, 4096)
            assert received.startswith(b"HTTP/1.1 101"), received
            await loop.sock_sendall(sock, Frame(Opcode.TEXT, subscribe).serialize(mask=True))
            while b'"subscribed"' not in received:
                received += await loop.sock_recv(sock, 4096)
        yield sock


@contextlib.asynccontextmanager
async def stalled_sse_client(gw: Gw, *topics: str) -> AsyncIterator[socket.socket]:
    """A raw ``GET /sse`` that reads up to its ``subscribed`` event and then never reads again."""
    loop = asyncio.get_running_loop()
    async with _small_window(gw) as sock:
        await loop.sock_sendall(sock, (
            f"GET /sse?topics={','.join(topics)} HTTP/1.1\r\nHost: 127.0.0.1:{gw.port}\r\n"
            "Accept: text/event-stream\r\n\r\n"
        ).encode())
        received = b""
        async with asyncio.timeout(10):
            while b"event: subscribed" not in received:
                received += await loop.sock_recv(sock, 4096)
        assert received.startswith(b"HTTP/1.1 200"), received
        yield sock


async def _read_to_the_end(sock: socket.socket, end: bytes) -> bytes:
    """Read what the server sent until ``end`` ends it; return that end."""
    loop, received = asyncio.get_running_loop(), b""
    while not received.endswith(end):
        chunk = await loop.sock_recv(sock, 65536)
        assert chunk, f"the server ended the connection without {end!r}"
        received = (received + chunk)[-256:]
    return received[-len(end):]


async def _read_to_the_close_frame(sock: socket.socket) -> bytes:
    """Read what the server sent until a close frame ends it; return the close frame."""
    return await _read_to_the_end(sock, CLOSE_4008)


def _server_side(gw: Gw, sock: socket.socket) -> object | None:
    """The gateway's protocol instance serving ``sock``'s connection, if it still holds one."""
    return next((c for c in gw.server.server_state.connections
                 if getattr(c, "client", None) == sock.getsockname()), None)


def _held(gw: Gw, sock: socket.socket) -> bool:
    """Whether the gateway still holds the server side of ``sock``'s connection."""
    return _server_side(gw, sock) is not None


def _write_paused(gw: Gw, sock: socket.socket) -> bool:
    """Whether the transport of ``sock``'s HTTP connection is paused (uvicorn's flow control)."""
    flow = getattr(_server_side(gw, sock), "flow", None)
    return bool(getattr(flow, "write_paused", False))


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{re.escape(name)} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0


async def test_clients_that_stop_reading_are_closed_4008_after_the_stall_timeout(
    start_gateway: StartGateway, bus: Bus
) -> None:
    """1. a gateway with a 1 s stall timeout and a 64 MiB outbox bound
    2. two raw WebSockets with a 4 KiB receive buffer subscribe to ticks.AAPL, then stop
    reading; a healthy client subscribes beside them
    3. 20 messages/s of 32 KB are published: the stalled sockets' windows close, the gateway's
    transports pause, frames queue in their outboxes (within 15 s), far below the bound
    4. within the stall timeout and 4 s more the gateway closes both with 4008, counted as stalls
    5. one starts reading again: behind the data it had not read, a 4008 close frame
    6. the other never reads: the gateway aborts its socket once the close frame has waited
    CLOSE_TIMEOUT, and holds nothing of it
    7. the healthy client got every message, in order."""
    gw = await start_gateway(stall_timeout=STALL_TIMEOUT, outbox_bytes=OUTBOX_BYTES)
    published: list[int] = []
    seen: list[int] = []
    async with httpx.AsyncClient(base_url=gw.http_url) as http, connect(gw) as healthy, \
            stalled_client(gw, "ticks.AAPL") as later, stalled_client(gw, "ticks.AAPL") as never:
        await healthy.subscribe("ticks.AAPL")

        async def read_healthy() -> None:
            while True:
                seen.append((await healthy.expect("msg"))["seq"])

        async def metric(name: str) -> float:
            return _metric((await http.get("/metrics")).text, name)

        async def queued() -> bool:  # a stalled socket's transport paused: its frames wait in its outbox
            return await metric("tickwire_gateway_outbox_messages") > 0

        async def cut() -> bool:
            return await metric('tickwire_gateway_closes_total{code="4008"}') >= 2

        async with _running(read_healthy(), _publish(bus, published)) as (_, publishing):
            started = time.monotonic()
            await eventually(queued, within=WITHIN, every=0.1, what="frames queued behind the stalled sockets")
            paused = time.monotonic() - started
            await eventually(cut, within=STALL_TIMEOUT + 4, every=0.1, what="both stalled clients closed 4008")
            took = time.monotonic() - started
            assert await metric("tickwire_gateway_write_stalls_total") == 2
            assert (await http.get("/api/status")).json()["connections"] == 1
            assert await asyncio.wait_for(_read_to_the_close_frame(later), 5) == CLOSE_4008
            await eventually(lambda: not _held(gw, never), within=CLOSE_TIMEOUT + 3, what="the unread socket let go")
            publishing.cancel()
            await eventually(lambda: len(seen) >= len(published), within=10, what="the healthy client's messages")
    print(f"\nstalled sockets paused after {paused:.1f} s, closed 4008 after {took:.1f} s, "  # noqa: T201
          f"{len(published)} messages published")
    assert len(published) * len(json.dumps(PAYLOAD)) < OUTBOX_BYTES // 2  # far below the bound
    assert seen == published


async def test_sse_streams_that_stop_reading_end_4008_after_the_stall_timeout(
    start_gateway: StartGateway, bus: Bus, caplog: pytest.LogCaptureFixture
) -> None:
    """1. a gateway with a 1 s stall timeout and a 64 MiB outbox bound
    2. two raw ``GET /sse`` with a 4 KiB receive buffer read up to ``subscribed``, then stop
    reading; a healthy SSE client streams beside them
    3. 20 messages/s of 32 KB are published: the stalled sockets' windows close and the
    gateway's transports pause (within 15 s), far below the bound
    4. within the stall timeout and 4 s more both streams are cut, counted as stalls, the
    sessions removed, one log line each
    5. one starts reading again: behind the data it had not read, a 4008 ``close`` event and
    the end of the response
    6. the other never reads: the gateway aborts its connection once the close event has waited
    sse.CLOSE_TIMEOUT, and holds nothing of it
    7. the healthy client got every message, in order; nothing was logged as an error."""
    caplog.set_level(logging.INFO, logger="gateway")
    gw = await start_gateway(stall_timeout=STALL_TIMEOUT, outbox_bytes=OUTBOX_BYTES)
    published: list[int] = []
    seen: list[int] = []
    async with httpx.AsyncClient(base_url=gw.http_url, timeout=10) as http, \
            http.stream("GET", "/sse", params={"topics": "ticks.AAPL"}) as response, \
            stalled_sse_client(gw, "ticks.AAPL") as later, stalled_sse_client(gw, "ticks.AAPL") as never:
        healthy = SseReader(response)
        await healthy.expect("subscribed")

        async def read_healthy() -> None:
            while True:
                seen.append((await healthy.expect("msg")).data["seq"])

        async def metric(name: str) -> float:
            return _metric((await http.get("/metrics")).text, name)

        async def cut() -> bool:
            return await metric("tickwire_gateway_write_stalls_total") >= 2

        async with _running(read_healthy(), _publish(bus, published)) as (_, publishing):
            started = time.monotonic()
            await eventually(lambda: _write_paused(gw, later) and _write_paused(gw, never), within=WITHIN,
                             every=0.05, what="the stalled streams' transports paused")
            paused = time.monotonic() - started
            await eventually(cut, within=STALL_TIMEOUT + 4, every=0.1, what="both stalled streams cut")
            took = time.monotonic() - started
            assert await metric("tickwire_gateway_write_stalls_total") == 2
            assert (await http.get("/api/status")).json()["connections"] == 1
            assert await asyncio.wait_for(_read_to_the_end(later, SSE_END), 5) == SSE_END
            await eventually(lambda: not _held(gw, never), within=sse.CLOSE_TIMEOUT + 3,
                             what="the unread stream let go")
            publishing.cancel()
            await eventually(lambda: len(seen) >= len(published), within=10, what="the healthy client's messages")
    print(f"\nstalled SSE transports paused after {paused:.1f} s, streams cut after {took:.1f} s, "  # noqa: T201
          f"{len(published)} messages published")
    assert len(published) * len(json.dumps(PAYLOAD)) < OUTBOX_BYTES // 2  # far below the bound
    assert seen == published
    stall_lines = [r for r in caplog.records if "took nothing" in r.getMessage()]
    assert len(stall_lines) == 2, [r.getMessage() for r in caplog.records]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], \
        [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]

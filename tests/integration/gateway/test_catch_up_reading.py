"""A long catch-up does not stop the gateway reading the client: pings are answered meanwhile."""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import websockets

from gateway.state import Gateway
from services.connections import epoch_of
from tests.conftest import Backend
from tests.integration.gateway.harness import FRAME_TIMEOUT, Bus, Gw, StartGateway
from tests.integration.gateway.test_auth import AUTH, token
from tests.waiting import eventually

PAD = "x" * 2000
PUBLISHED = 3000


def stalled_reader(gw: Gw, *subprotocols: str) -> websockets.connect:
    """A connection whose socket reads next to nothing until the test reads frames."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gw.port))
    # max_queue=1: the client library stops reading its socket while a frame waits for recv().
    return websockets.connect(gw.ws_url, sock=sock, max_size=None, max_queue=1,
                              subprotocols=[websockets.Subprotocol(p) for p in ("tickwire.v1", *subprotocols)])


async def read_until_seq(ws: websockets.ClientConnection, seq: int) -> list[dict[str, Any]]:
    """Every frame (a batch's messages one by one) until the message with ``seq``."""
    frames: list[dict[str, Any]] = []
    while not frames or frames[-1].get("type") != "msg" or frames[-1]["seq"] != seq:
        frame = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))
        frames.extend(frame["msgs"] if frame["type"] == "batch" else [frame])
    return frames


async def stall(gateway: Gateway) -> None:
    await eventually(lambda: any(s.queued > 300 for s in gateway.sessions), within=30, what="the outbox full")


async def test_a_ping_behind_a_resume_waiting_for_room_is_answered_before_the_catch_up_ends(
        start_gateway: StartGateway, bus: Bus, backend: Backend) -> None:
    """1. the gateway's ring keeps 5 messages, its outbox 600 frames; 3,000 messages of 2 KB on
    ticks.A; 2. a client whose socket reads nothing resumes from seq 0: the catch-up from
    JetStream fills the outbox and waits for room; 3. the client sends a ping: the gateway
    reads it while the catch-up waits and queues the pong (it used to read nothing until the
    catch-up was over: a keepalive timeout or an expired token behind a long resume);
    4. the client reads again: the pong arrives before the catch-up's last seq, and every
    seq arrives once, in order."""
    gw = await start_gateway(replay_buffer=5, outbox_messages=600)
    epoch = epoch_of(await bus.js.stream_info("MD"))
    for _ in range(PUBLISHED):
        await bus.publish("md.ticks.A", {"pad": PAD})
    gateway: Gateway = gw.server.config.app.state.gateway
    async with stalled_reader(gw) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": ["ticks.A"], "since": 0, "epoch": epoch}))
        await stall(gateway)
        (session,) = gateway.sessions
        stalled = session.queued
        await ws.send(json.dumps({"type": "ping", "id": 7}))
        await eventually(lambda: session.queued == stalled + 1, within=10, what="the pong queued behind the catch-up")
        frames = await read_until_seq(ws, PUBLISHED)
    kinds = [f["type"] for f in frames]
    assert kinds.count("pong") == 1 and frames[kinds.index("pong")]["id"] == 7
    seqs = [f["seq"] for f in frames if f["type"] == "msg"]
    assert seqs == list(range(1, PUBLISHED + 1))
    assert kinds.index("pong") < len(frames) - 1, "the pong came only after the catch-up"


async def test_a_token_renewed_to_less_during_a_catch_up_keeps_the_resumed_topic_from_going_live(
        start_gateway: StartGateway, bus: Bus) -> None:
    """1. auth on; a client granted ticks.* and trades.* resumes ticks.A from seq 0 behind a
    socket that reads nothing (the catch-up waits for room); 2. it renews its token for trades.*
    only: the gateway takes it at once; 3. when the catch-up is over, ticks.A does not go live:
    the client is told ``forbidden``, no longer granted."""
    gw = await start_gateway(replay_buffer=5, outbox_messages=600, **AUTH)
    epoch = epoch_of(await bus.js.stream_info("MD"))
    for _ in range(PUBLISHED):
        await bus.publish("md.ticks.A", {"pad": PAD})
    gateway: Gateway = gw.server.config.app.state.gateway
    async with stalled_reader(gw, f"bearer.{token(['ticks.*', 'trades.*'])}") as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": ["ticks.A"], "since": 0, "epoch": epoch}))
        await stall(gateway)
        (session,) = gateway.sessions
        await ws.send(json.dumps({"type": "auth", "token": token(["trades.*"])}))
        await eventually(lambda: session.grant is not None and not session.grant.allows("ticks.A"), within=10,
                         what="the renewed grant taken during the catch-up")
        await read_until_seq(ws, PUBLISHED)
        refusal = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))
    assert refusal["type"] == "error" and refusal["code"] == "forbidden" and refusal["topics"] == ["ticks.A"]
    assert "ticks.A" not in session.patterns

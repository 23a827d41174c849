"""A resume that loses continuity while it runs says so: never a silent gap."""

from __future__ import annotations

import asyncio
import itertools
import json
import socket
from typing import Any

import httpx
import pytest
import websockets

from gateway.state import Gateway
from services.connections import epoch_of
from tests.conftest import Backend
from tests.fault.proxy import TcpProxy
from tests.integration.gateway.harness import FRAME_TIMEOUT, Bus, Gw, StartGateway, connect
from tests.waiting import eventually

PAD = "x" * 2000


def gateway_of(gw: Gw) -> Gateway:
    state: Gateway = gw.server.config.app.state.gateway
    return state


async def test_retention_passing_a_catch_up_midway_is_a_gap_notice(start_gateway: StartGateway, bus: Bus,
                                                                  backend: Backend) -> None:
    """1. stream MD keeps 3,500 messages, the gateway's ring 5, its outbox 600 frames; 3,000
    messages of 2 KB on ticks.A; 2. a client whose socket reads nothing resumes from seq 0:
    the first chunk from JetStream fills its outbox and the catch-up waits for room; 3. 3,500
    more messages trim the stream past the ones the catch-up has not read yet; 4. the client
    reads again: before the first seq after the hole it gets a ``gap`` ``retention`` for
    ticks.A (it used to get the later seqs with nothing said)."""
    gw = await start_gateway(replay_buffer=5, outbox_messages=600,
                             bus=backend.bus().model_copy(update={"retention_messages": 3500}))
    epoch = epoch_of(await bus.js.stream_info("MD"))
    for _ in range(3000):
        await bus.publish("md.ticks.A", {"pad": PAD})
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gw.port))
    # max_queue=1: the client library stops reading its socket while a frame waits for recv().
    async with websockets.connect(gw.ws_url, sock=sock, max_size=None, max_queue=1) as ws:
        await ws.send(json.dumps({"type": "subscribe", "topics": ["ticks.A"], "since": 0, "epoch": epoch}))
        sessions = gateway_of(gw).sessions
        await eventually(lambda: any(s.queued > 300 for s in sessions), within=30, what="the outbox full")
        for _ in range(3500):
            await bus.publish("md.ticks.A", {"pad": PAD})
        frames: list[dict[str, Any]] = []
        while not frames or frames[-1].get("seq") != 6500:
            frame = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))
            frames.extend(frame["msgs"] if frame["type"] == "batch" else [frame])
    seqs = [f["seq"] for f in frames if f["type"] == "msg"]
    assert seqs == sorted(set(seqs))
    holes = [i for i, (a, b) in enumerate(itertools.pairwise(seqs)) if b != a + 1]
    assert holes, "the catch-up should have lost messages to retention"
    gaps = [i for i, f in enumerate(frames) if f["type"] == "gap"]
    assert gaps and frames[gaps[0]] == {"type": "gap", "topic": "ticks.A", "reason": "retention"}
    first_after_hole = frames.index(next(f for f in frames if f.get("seq") == seqs[holes[0] + 1]))
    assert gaps[0] < first_after_hole
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{gw.http_url}/healthz")).status_code == 200


async def test_nats_away_longer_than_retention_closes_clients_to_recovered_false(
        start_gateway: StartGateway, bus: Bus, backend: Backend) -> None:
    """1. stream MD keeps 100 messages; a gateway reaches NATS through a proxy; a client on
    ticks.* has seqs 1..10; 2. the link is cut while 300 messages pass (seqs 11..210 leave
    the stream); 3. restored: the client is closed 1012 before any seq past the hole reaches
    it (it used to get seq 211 on with nothing said); 4. its resume from seq 10 with the epoch
    gets recovered:false and the snapshot."""
    limits = backend.bus().model_copy(update={"retention_messages": 100})
    async with TcpProxy(int(backend.nats_url.rsplit(":", 1)[1])) as proxy:
        gw = await start_gateway(bus=limits.model_copy(update={"nats_url": f"nats://127.0.0.1:{proxy.port}"}))
        epoch = epoch_of(await bus.js.stream_info("MD"))
        async with connect(gw) as client:
            await client.subscribe("ticks.*")
            for _ in range(10):
                await bus.publish("md.ticks.A")
            seen = [m["seq"] for m in await client.msgs(10)]
            proxy.cut()
            for _ in range(300):
                await bus.publish("md.ticks.A")
            proxy.restore()
            await bus.publish("md.ticks.B")
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    frame = await asyncio.wait_for(client.frame(), 30)
                    assert frame.get("seq", 0) <= seen[-1], f"past the hole with nothing said: {frame}"
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012
        async with connect(gw) as client:
            sub = await client.subscribe("ticks.*", since=seen[-1], epoch=epoch)
            assert sub["recovered"] is False
            snapshot = {m["topic"]: m["seq"] for m in await client.msgs(2)}
            assert snapshot == {"ticks.A": 310, "ticks.B": 311}


async def test_a_catch_up_that_fails_midway_closes_the_connection(start_gateway: StartGateway, bus: Bus,
                                                                 backend: Backend) -> None:
    """1. a gateway reaching NATS through a proxy, ring 5, outbox 600; 3,000 messages of 2 KB;
    2. a client that reads nothing resumes from seq 0: the catch-up waits for room after its
    first chunk; 3. the link stalls, the client reads: the next read from JetStream gets no
    answer; 4. the connection is closed 1013 (it used to get an ``unavailable`` error and a
    subscription that never went live, silently)."""
    async with TcpProxy(int(backend.nats_url.rsplit(":", 1)[1])) as proxy:
        gw = await start_gateway(replay_buffer=5, outbox_messages=600,
                                 bus=backend.bus().model_copy(update={"nats_url": f"nats://127.0.0.1:{proxy.port}"}))
        epoch = epoch_of(await bus.js.stream_info("MD"))
        for _ in range(3000):
            await bus.publish("md.ticks.A", {"pad": PAD})
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", gw.port))
        async with websockets.connect(gw.ws_url, sock=sock, max_size=None, max_queue=1) as ws:
            await ws.send(json.dumps({"type": "subscribe", "topics": ["ticks.A"], "since": 0, "epoch": epoch}))
            sessions = gateway_of(gw).sessions
            await eventually(lambda: any(s.queued > 300 for s in sessions), within=30, what="the outbox full")
            proxy.stall()
            with pytest.raises(websockets.ConnectionClosed) as closed:
                while True:
                    await asyncio.wait_for(ws.recv(), 30)
            proxy.restore()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013

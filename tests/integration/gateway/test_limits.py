"""Per-connection limits: frame rate, frame size, conflation; none of them touches other clients."""

from __future__ import annotations

import asyncio
import json
import socket

import pytest
import websockets

from gateway.state import Gateway
from tests.integration.gateway.harness import FRAME_TIMEOUT, Bus, StartGateway, connect
from tests.waiting import eventually


async def test_frames_over_the_rate_are_dropped_with_rate_limited(start_gateway: StartGateway) -> None:
    """1. limit 20 frames/s (burst 40)  2. 45 pings at once  3. the burst is answered with pongs,
    then one rate_limited error (not one per dropped frame); the connection stays open."""
    gw = await start_gateway(max_frames_per_second=20)
    async with connect(gw) as client:
        for i in range(45):
            await client.send(type="ping", id=i)
        pongs = 0
        while (frame := await client.frame())["type"] == "pong":
            pongs += 1
        assert frame["type"] == "error" and frame["code"] == "rate_limited", frame
        assert 40 <= pongs < 45

        async def answered_again() -> bool:
            # Dropped silently until the bucket refills (a token per 50 ms): then a pong.
            await client.send(type="ping", id="later")
            try:
                return (await asyncio.wait_for(client.frame(), 0.2))["type"] == "pong"
            except TimeoutError:
                return False

        await eventually(answered_again, within=5, what="a pong once the bucket refilled")


async def test_flooder_is_closed_1008_beside_a_healthy_client(start_gateway: StartGateway, bus: Bus) -> None:
    """1. limit 20 frames/s  2. a healthy client subscribes; a flooder sends pings without pause
    3. messages are published meanwhile  4. the flooder is closed with 1008
    5. the healthy client gets every message, in order, and still answers a ping."""
    gw = await start_gateway(max_frames_per_second=20)
    async with connect(gw) as healthy, connect(gw) as flooder:
        await healthy.subscribe("ticks.>")
        reading = asyncio.create_task(healthy.msgs(200))

        async def flood() -> None:
            with pytest.raises(websockets.ConnectionClosed):
                while True:
                    await flooder.ws.send(json.dumps({"type": "ping", "id": 1}))

        flooding = asyncio.create_task(flood())
        published = [await bus.publish(f"md.ticks.S{i % 4}") for i in range(200)]
        assert [m["seq"] for m in await reading] == published
        await asyncio.wait_for(flooding, FRAME_TIMEOUT)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            while True:
                await flooder.frame()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
        await healthy.send(type="ping", id="still")
        assert (await healthy.expect("pong"))["id"] == "still"


async def test_oversized_frame_closes_1009_others_unaffected(start_gateway: StartGateway, bus: Bus) -> None:
    """1. max frame 1 KiB  2. one client sends 4 KiB  3. it is closed with 1009
    4. another client still receives."""
    gw = await start_gateway(max_frame_bytes=1024)
    async with connect(gw) as healthy, connect(gw) as big:
        await healthy.subscribe("ticks.AAPL")
        await big.send(type="ping", id="x" * 4096)
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await big.frame()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 1009
        seq = await bus.publish("md.ticks.AAPL")
        assert (await healthy.expect("msg"))["seq"] == seq


async def test_conflation_gives_a_stalled_client_the_newest_per_topic_not_4008(
    start_gateway: StartGateway, bus: Bus
) -> None:
    """1. small outbox, ticks.* conflated  2. a client that does not read subscribes ticks.*
    3. 600 big messages over 4 topics (far more than the outbox holds)  4. it then reads: no 4008,
    per-topic seqs increase, some were skipped, and the last message of every topic arrives."""
    gw = await start_gateway(outbox_messages=50, outbox_bytes=256 * 1024, conflate=("ticks.*",))
    payload = {"pad": "x" * 16_000}
    async with connect(gw, max_queue=1) as stalled:
        await stalled.subscribe("ticks.*")
        published: dict[str, list[int]] = {}
        for i in range(600):
            topic = f"ticks.S{i % 4}"
            published.setdefault(topic, []).append(await bus.publish(f"md.{topic}", payload))
        last = {topic: seqs[-1] for topic, seqs in published.items()}
        got: dict[str, list[int]] = {}
        while any(not got.get(t) or got[t][-1] < seq for t, seq in last.items()):
            msg = await stalled.expect("msg")
            got.setdefault(msg["topic"], []).append(msg["seq"])
    for topic, seqs in got.items():
        assert seqs == sorted(set(seqs)), topic
        assert set(seqs) <= set(published[topic])
    assert sum(map(len, got.values())) < 600  # conflated, not merely buffered


async def test_a_client_cut_while_conflated_resumes_without_losing_a_topic(start_gateway: StartGateway,
                                                                          bus: Bus) -> None:
    """1. outbox of 20, one message per frame, ticks.* conflated  2. a client whose socket
    reads nothing subscribes ticks.*; 64 KB messages on ticks.FILL until the socket is full
    and the outbox holds five (what the socket still takes is taken from those)
    3. ticks.A, ticks.B, then ticks.P* until the outbox is well above half, then ticks.A
    twice more (conflated)  4. the client reads frame by frame and leaves as soon as it has
    got a seq above the newest message of a topic it has not got (resuming from there would
    skip that topic), or once it has every topic's newest  5. it resumes ticks.* with since =
    the highest seq it got; a message on ticks.END ends the catch-up  6. over both
    connections, every topic's newest message arrived. (The newer ticks.A used to take the
    first one's place, ahead of ticks.B and ticks.P*: the client left right after it and
    resumed past them.)"""
    gw = await start_gateway(outbox_messages=20, batch_max=1, conflate=("ticks.*",))
    gateway: Gateway = gw.server.config.app.state.gateway
    newest: dict[str, int] = {}

    async def publish(topic: str, data: dict[str, str] | None = None) -> None:
        """Publish, and return once the gateway has queued the message to its sessions."""
        newest[topic] = await bus.publish(f"md.{topic}", data)
        await gateway.feed.wait_head(newest[topic])
        # The feed schedules the hub's settle (which queues and writes) with call_soon as it
        # takes the message in; a callback scheduled now runs after it.
        loop = asyncio.get_running_loop()
        settled = loop.create_future()
        loop.call_soon(settled.set_result, None)
        await settled

    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gw.port))
    got: set[int] = set()
    # max_queue=1: the client library stops reading its socket while a frame waits for recv().
    async with websockets.connect(gw.ws_url, sock=sock, max_size=None, max_queue=1) as ws:
        assert json.loads(await ws.recv())["type"] == "welcome"
        await ws.send(json.dumps({"type": "subscribe", "topics": ["ticks.*"]}))
        subscribed = json.loads(await ws.recv())
        assert subscribed["type"] == "subscribed"
        (session,) = gateway.sessions
        for _ in range(2000):
            await publish("ticks.FILL", {"pad": "x" * 65_536})
            if session.queued >= 5:
                break
        assert session.queued >= 5, "the socket never filled"
        await publish("ticks.A")
        await publish("ticks.B")
        for i in range(session.outbox.limits.messages):
            if session.queued > 13:  # above half (10), however many frames the socket still takes
                break
            await publish(f"ticks.P{i}")
        await publish("ticks.A")
        await publish("ticks.A")
        assert session.outbox.conflated and session.is_open
        while not set(newest.values()) <= got:
            frame = json.loads(await asyncio.wait_for(ws.recv(), FRAME_TIMEOUT))
            got.update(m["seq"] for m in (frame["msgs"] if frame["type"] == "batch" else [frame]))
            if any(seq < max(got) for seq in set(newest.values()) - got):
                break
    since = max(got)
    async with connect(gw) as client:
        await client.subscribe("ticks.*", since=since, epoch=subscribed["epoch"])
        await publish("ticks.END")
        while (msg := await client.expect("msg"))["topic"] != "ticks.END":
            got.add(msg["seq"])
    missed = {topic: seq for topic, seq in newest.items() if seq not in got and topic != "ticks.END"}
    assert not missed, f"left at seq {since}; never got the newest of {missed}"

"""Per-connection limits: frame rate, frame size, conflation; none of them touches other clients."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets

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

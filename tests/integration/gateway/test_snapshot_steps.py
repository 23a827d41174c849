"""A wildcard snapshot delivered in steps (gateway.subscribe): exact under live traffic,
and one larger than the outbox bound paced by the outbox rather than cut 4008."""

from __future__ import annotations

import asyncio
import random
from collections import defaultdict
from typing import Any

import pytest

import gateway.subscribe
from tests.integration.gateway.harness import Bus, Client, StartGateway, connect

SUBJECTS = 2_000


async def _publish_every_subject(bus: Bus) -> dict[int, str]:
    """One message on each of SUBJECTS subjects, some two; seq → topic."""
    subjects = [f"ticks.S{i}" for i in range(SUBJECTS)] + [f"ticks.S{i}" for i in range(0, SUBJECTS, 7)]
    acks = await asyncio.gather(*(bus.js.publish(f"md.{s}", b"{}") for s in subjects))
    return {ack.seq: topic for ack, topic in zip(acks, subjects, strict=True)}


async def _messages(client: Client, until: Any) -> list[dict[str, Any]]:
    """Messages until ``until(message)`` holds for one (included); other frames fail."""
    received = []
    while True:
        message = await client.expect("msg")
        received.append(message)
        if until(message):
            return received


async def test_a_stepped_snapshot_under_live_traffic_gives_each_topic_once_then_every_newer_seq(
    start_gateway: StartGateway, bus: Bus, monkeypatch: pytest.MonkeyPatch
) -> None:
    """1. 2,000 subjects hold a message (some two); a gateway delivers snapshots 32 messages
    a step (~60 steps for ticks.*)
    2. four publishers send on random subjects without pause while a client subscribes
    ticks.* without since, and until it has seen 100 messages newer than the snapshot
    3. between the snapshot's steps the gateway's feed received live messages
    4. the client got, after ``subscribed`` (seq H): each topic's latest up to H once, then
    every message after H that was published, per topic and overall in increasing seq,
    none twice, none missing."""
    monkeypatch.setattr(gateway.subscribe, "SNAPSHOT_CHUNK", 32)
    published = await _publish_every_subject(bus)
    gw = await start_gateway()
    feed = gw.server.config.app.state.gateway.feed
    heads: list[int] = []  # the feed's head at each pause between two steps
    pace = gateway.subscribe._pace

    async def recorded(session: Any) -> None:
        heads.append(feed.head)
        await pace(session)

    monkeypatch.setattr(gateway.subscribe, "_pace", recorded)
    rng = random.Random(7)
    stop = asyncio.Event()

    async def publisher() -> None:
        while not stop.is_set():
            topic = f"ticks.S{rng.randrange(SUBJECTS)}"
            published[(await bus.js.publish(f"md.{topic}", b'{"live":true}')).seq] = topic

    async with connect(gw) as client:
        async with asyncio.TaskGroup() as tasks:
            for _ in range(4):
                tasks.create_task(publisher())
            head = (await client.subscribe("ticks.*"))["seq"]
            snapshot = await _messages(client, lambda m: m["seq"] > head)
            newer = [snapshot.pop()]
            newer += await client.msgs(99)
            stop.set()
        last = max(published)  # every publish acked: the stream holds them all
        if newer[-1]["seq"] < last:
            newer += await _messages(client, lambda m: m["seq"] >= last)

    steps = SUBJECTS // 32  # its pauses are the first steps - 1 of ``heads``
    assert len(heads) >= steps - 1 and heads[steps - 2] > head, "no live message came between the steps"
    latest_at_head: dict[str, int] = {}
    for seq in sorted(published):
        if seq <= head:
            latest_at_head[published[seq]] = seq
    assert [(m["topic"], m["seq"]) for m in snapshot] == sorted(
        ((t, s) for t, s in latest_at_head.items()), key=lambda ts: ts[1])
    after: dict[str, list[int]] = defaultdict(list)
    for seq in sorted(published):
        if seq > head:
            after[published[seq]].append(seq)
    got: dict[str, list[int]] = defaultdict(list)
    for m in newer:
        got[m["topic"]].append(m["seq"])
    assert got == after
    seqs = [m["seq"] for m in snapshot + newer]
    assert seqs == sorted(set(seqs))


async def test_snapshots_larger_than_the_outbox_bound_are_delivered_not_cut(
    start_gateway: StartGateway, bus: Bus
) -> None:
    """1. 2,000 subjects hold a message; a gateway's outbox bound is 500 messages
    2. a client reading with a small receive queue sends subscribe ticks.*, unsubscribe,
    subscribe ticks.* at once: two snapshots of 2,000, eight times the bound, back to back
    3. it receives both whole, each topic once per snapshot, and is still open (a ping is
    answered), where one synchronous snapshot used to overflow the outbox and cut it 4008."""
    published = await _publish_every_subject(bus)
    gw = await start_gateway(outbox_messages=500)
    topics = set(published.values())
    async with connect(gw, max_queue=2) as client:
        await client.send(type="subscribe", topics=["ticks.*"])
        await client.send(type="unsubscribe", topics=["ticks.*"])
        await client.send(type="subscribe", topics=["ticks.*"])
        for reply in ("unsubscribed", "pong"):
            await client.expect("subscribed")
            assert {m["topic"] for m in await client.msgs(len(topics))} == topics
            if reply == "pong":
                await client.send(type="ping", id=1)
            await client.expect(reply)

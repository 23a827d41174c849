"""Catch-up reads shared: concurrent resumes from the same seq cause one JetStream read."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from tests.integration.gateway.harness import Bus, StartGateway, connect
from tests.waiting import eventually

CLIENTS = 100
MESSAGES = 300
RING = 50  # the replay ring holds the last 50: a resume from 0 reads the rest from JetStream


async def test_a_hundred_concurrent_resumes_from_one_seq_make_one_store_read(
    start_gateway: StartGateway, bus: Bus
) -> None:
    """1. 300 messages on ticks.A; a gateway whose ring holds the last 50
    2. its store counts the catch-up reads it sends to JetStream and holds the first one
    until all 100 clients have asked for theirs
    3. 100 clients resume ticks.A from 0 at once
    4. one read went to JetStream; every client got all 300 messages, in order."""
    seqs = [await bus.publish("md.ticks.A") for _ in range(MESSAGES)]
    gw = await start_gateway(replay_buffer=RING)
    store = gw.server.config.app.state.gateway.feed.store
    asked, sent, everyone = [0], [0], asyncio.Event()
    read_from, request = store.read_from, store._request

    async def counted_read_from(*args: Any) -> Any:
        asked[0] += 1
        return await read_from(*args)

    async def counted_request(query: dict[str, object]) -> Any:
        if "next_by_subj" in query:
            sent[0] += 1
            await everyone.wait()
        return await request(query)

    store.read_from, store._request = counted_read_from, counted_request
    async with contextlib.AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(connect(gw)) for _ in range(CLIENTS)]
        for client in clients:
            await client.send(type="subscribe", topics=["ticks.A"], since=0)
        await eventually(lambda: asked[0] >= CLIENTS, within=10, what="every client's catch-up read asked")
        everyone.set()
        for client in clients:
            await client.expect("subscribed")
            assert [m["seq"] for m in await client.msgs(MESSAGES)] == seqs
    assert sent[0] == 1

"""A gateway starts, and snapshots, with more subjects than one JetStream batched read answers."""

from __future__ import annotations

import asyncio

from tests.integration.gateway.harness import Bus, StartGateway, connect

SUBJECTS = 2500  # nats-server answers a multi_last over more than 1,024 subjects with 413


async def test_thousands_of_subjects_older_than_the_replay_window(start_gateway: StartGateway, bus: Bus) -> None:
    """1. 2,500 subjects with one message each, then one more message; 2. a gateway with a
    replay window of 1 starts: the latest of every older subject comes from JetStream's
    batched reads; 3. it is ready, and a snapshot of ``ticks.*`` holds all 2,500 subjects."""
    acks = await asyncio.gather(*(bus.js.publish(f"md.ticks.S{i}", b"{}", headers={"Tw-Id": f"{i + 1}-0"})
                                  for i in range(SUBJECTS)))
    await bus.publish("md.other.X")
    gw = await start_gateway(replay_buffer=1)
    async with connect(gw) as client:
        await client.subscribe("ticks.*")
        snapshot = await client.msgs(SUBJECTS)
    assert sorted(m["seq"] for m in snapshot) == sorted(a.seq for a in acks)
    assert len({m["topic"] for m in snapshot}) == SUBJECTS

"""Messages in stream MD that no client frame can carry: never a crash, a stall or a silent drop.

ingest refuses such entries (tests/integration/test_hostile_entries.py), but anyone with
access to NATS can publish to ``md.>``. Each test publishes one message whose origin time
is past 64 bits between good ones, the way an old or foreign publisher would.
"""

from __future__ import annotations

from typing import Any

from services import envelope
from tests.integration.gateway.harness import Bus, StartGateway, connect

HUGE = str(10**30)


async def publish_huge(bus: Bus, subject: str = "md.ticks.BAD") -> int:
    headers = {envelope.MSG_ID: "md:ticks:huge", envelope.ENTRY_ID: "100000000000000000-0",
               envelope.ORIGIN_TS: HUGE, envelope.READ_TS: HUGE, envelope.PUBLISH_TS: HUGE}
    return (await bus.js.publish(subject, b'{"n":1}', headers=headers)).seq


def kinds(frames: list[dict[str, Any]]) -> list[tuple[str, int | None]]:
    return [(f["type"], f.get("seq")) for f in frames]


async def test_a_message_past_64_bits_is_a_gap_notice_live_and_on_resume(start_gateway: StartGateway,
                                                                        bus: Bus) -> None:
    """1. a gateway with a ring of 2 and a client on ``ticks.*``; 2. a good message, one whose
    times and entry ID are past 64 bits, a good one; 3. live, the client gets msg, a ``gap``
    ``undecodable`` on the bad one's topic, msg; 4. a resume from seq 0 (read from JetStream,
    older than the ring) gets the same three, not a 1011; 5. the connection still answers."""
    gw = await start_gateway(replay_buffer=2)
    async with connect(gw) as client:
        await client.subscribe("ticks.*")
        first = await bus.publish("md.ticks.A")
        bad = await publish_huge(bus)
        last = await bus.publish("md.ticks.A")
        live = [await client.frame() for _ in range(3)]
        assert kinds(live) == [("msg", first), ("gap", None), ("msg", last)]
        assert live[1] == {"type": "gap", "topic": "ticks.BAD", "reason": "undecodable"}
        for _ in range(3):  # the ring (2) no longer holds seq 1
            await bus.publish("md.ticks.C")
    async with connect(gw) as client:
        await client.subscribe("ticks.A", "ticks.BAD", since=0)
        resumed = [await client.frame() for _ in range(3)]
        assert kinds(resumed) == [("msg", first), ("gap", None), ("msg", last)]
        await client.send(type="ping", id=1)
        assert (await client.expect("pong"))["id"] == 1
    assert bad == first + 1


async def test_a_gateway_starts_while_such_a_message_is_its_subjects_newest(start_gateway: StartGateway,
                                                                           bus: Bus) -> None:
    """1. the bad message is the newest on its subject, and older than a new gateway's replay
    window (1), so the gateway's start reads it with the latest of every subject; 2. the gateway
    starts and serves; 3. its snapshot has the good subjects and no old gap notice."""
    good = await bus.publish("md.ticks.A")
    await publish_huge(bus)
    newest = await bus.publish("md.ticks.C")
    gw = await start_gateway(replay_buffer=1)
    async with connect(gw) as client:
        await client.subscribe("ticks.*")
        snapshot = [await client.frame() for _ in range(2)]
        assert kinds(snapshot) == [("msg", good), ("msg", newest)]
        await client.send(type="ping", id=2)
        assert (await client.expect("pong"))["id"] == 2

"""The Python client's failover rule: a gateway that is down, or that answers HTTP but fails
the WebSocket handshake, is left for the next gateway in the list, over WebSocket."""

from __future__ import annotations

import asyncio

from tickwire_client import TickwireClient

from tests.integration.gateway.harness import Bus, StartGateway
from tickwire.localservers import free_port


async def test_a_dead_gateway_and_a_failed_handshake_move_on_to_the_next_gateway(
    start_gateway: StartGateway, bus: Bus
) -> None:
    """1. three URLs: a port nothing listens on (refused), a live gateway's HTTP at a path
    with no WebSocket (the handshake gets 404), then the gateway's /ws; 2. the client ends
    on the third, node gw-1, after two failed attempts; 3. a message published then arrives."""
    gw = await start_gateway()
    dead = f"ws://127.0.0.1:{free_port()}/ws"
    no_websocket = f"ws://127.0.0.1:{gw.port}/healthz"
    async with TickwireClient([dead, no_websocket, gw.ws_url], ["ticks.AAPL"], backoff_cap=0.2) as client:
        await asyncio.wait_for(client.subscribed.wait(), 15)
        assert client.stats.node == "gw-1"
        assert client.stats.reconnects == 2
        seq = await bus.publish("md.ticks.AAPL")
        msg = await client.next(10)
        assert (msg.topic, msg.seq) == ("ticks.AAPL", seq)

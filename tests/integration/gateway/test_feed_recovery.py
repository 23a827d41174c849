"""The feed across a recreated stream and a NATS restart."""

from __future__ import annotations

import httpx
import pytest
import websockets

from services.connections import ensure_stream
from tests.conftest import Backend
from tests.integration.gateway.harness import Bus, StartGateway, connect
from tests.waiting import eventually


async def _status(http: httpx.AsyncClient) -> dict[str, object]:
    status: dict[str, object] = (await http.get("/api/status")).json()
    return status


async def test_recreated_stream_restarts_the_feed_from_its_first_seq(
    start_gateway: StartGateway, bus: Bus, backend: Backend
) -> None:
    """1. 10 messages; a client follows them  2. stream MD deleted and re-created, 3 messages
    published at once (seqs 1..3, below the old head)  3. the attached client is closed 1012
    4. the gateway moves to the new epoch with head 3  5. a client resuming with the old epoch
    gets recovered:false, the new stream's snapshot, then live messages."""
    gw = await start_gateway()
    old = [await bus.publish("md.ticks.AAPL") for _ in range(10)]
    async with httpx.AsyncClient(base_url=gw.http_url, timeout=5) as http:
        async with connect(gw) as attached:
            sub = await attached.subscribe("ticks.AAPL", since=0)
            old_epoch = sub["epoch"]
            assert [m["seq"] for m in await attached.msgs(10)] == old
            await bus.js.delete_stream("MD")
            await ensure_stream(bus.js, backend.bus())
            new = [await bus.publish("md.ticks.AAPL", {"new": i}) for i in range(3)]
            assert new == [1, 2, 3]
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await attached.frame()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1012

        async def moved() -> bool:
            status = await _status(http)
            return status["epoch"] != old_epoch and status["head"] == 3

        await eventually(moved, within=10, what="the gateway on the new epoch at head 3")
        async with connect(gw) as resumed:
            sub = await resumed.subscribe("ticks.AAPL", since=old[-1], epoch=old_epoch)
            assert sub["recovered"] is False and sub["epoch"] != old_epoch and sub["seq"] == 3
            [snapshot] = await resumed.msgs(1)
            assert snapshot["seq"] == 3 and snapshot["data"] == {"new": 2}
            live = await bus.publish("md.ticks.AAPL")
            assert (await resumed.expect("msg"))["seq"] == live == 4


async def test_nats_restart_keeps_clients_and_the_feed_has_no_gap(
    start_gateway: StartGateway, bus: Bus, backend: Backend
) -> None:
    """1. a client follows ticks.>  2. nats-server is killed (-9): /readyz turns 503, the client
    stays connected  3. nats-server starts again on its port and data  4. messages published at
    once reach the client on the same connection, with no gap; /readyz 200 again."""
    if backend.nats is None:
        pytest.skip("needs a local nats-server to kill")
    gw = await start_gateway()
    async with httpx.AsyncClient(base_url=gw.http_url, timeout=5) as http, connect(gw) as client:
        await client.subscribe("ticks.>", since=0)
        before = [await bus.publish("md.ticks.AAPL") for _ in range(5)]
        assert [m["seq"] for m in await client.msgs(5)] == before
        backend.nats.kill()
        await eventually(lambda: _not_ready(http), within=10, what="/readyz 503 while NATS is down")
        backend.nats.start()
        await eventually(lambda: bus.nc.is_connected, within=15, what="the publisher reconnected")
        after = [await bus.publish(f"md.ticks.S{i % 2}") for i in range(5)]
        assert after == list(range(6, 11))
        assert [m["seq"] for m in await client.msgs(5)] == after
        await eventually(lambda: _ready(http), within=10, what="/readyz 200 after the restart")
        await client.send(type="ping", id="same connection")
        assert (await client.expect("pong"))["id"] == "same connection"


async def _ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 200


async def _not_ready(http: httpx.AsyncClient) -> bool:
    return (await http.get("/readyz")).status_code == 503


async def test_latest_values_go_with_their_messages_retention_removed(start_gateway: StartGateway, bus: Bus) -> None:
    """1. AAPL, MSFT, then IBM published; the gateway serves three latest values  2. the stream
    purged below IBM's seq (what retention does to quiet subjects)  3. the gateway forgets AAPL's
    and MSFT's (gauge 1), so a new client's snapshot is IBM only, then live, as a restarted
    replica would serve: what snapshots hold stays bounded by what the stream retains."""
    for symbol in ("AAPL", "MSFT"):
        await bus.publish(f"md.ticks.{symbol}")
    kept = await bus.publish("md.ticks.IBM")
    gw = await start_gateway()
    async with httpx.AsyncClient(base_url=gw.http_url, timeout=5) as http:

        async def latest_subjects() -> float:
            for line in (await http.get("/metrics")).text.splitlines():
                if line.startswith("tickwire_gateway_latest_subjects "):
                    return float(line.split()[1])
            raise AssertionError("tickwire_gateway_latest_subjects not exported")

        async with connect(gw) as before:
            await before.subscribe("ticks.>")
            assert {m["topic"] for m in await before.msgs(3)} == {"ticks.AAPL", "ticks.MSFT", "ticks.IBM"}
        assert await latest_subjects() == 3
        await bus.js.purge_stream("MD", seq=kept)

        async def forgotten() -> bool:
            return await latest_subjects() == 1

        await eventually(forgotten, within=10, what="the purged subjects' latest values forgotten")
        restarted = await start_gateway()
        async with connect(gw) as after, connect(restarted) as fresh:
            for client in (after, fresh):
                await client.subscribe("ticks.>")
            live = await bus.publish("md.ticks.MSFT")
            for client in (after, fresh):
                got = [(m["topic"], m["seq"]) for m in await client.msgs(2)]
                assert got == [("ticks.IBM", kept), ("ticks.MSFT", live)]

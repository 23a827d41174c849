"""Draining a real ``tickwire gateway`` process, and ``--workers``: nothing lost, no storm."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import time

import httpx
import nats
import pytest
import websockets
from tickwire_client import TickwireClient

from services.connections import ensure_stream
from tests.conftest import Backend
from tests.integration.gateway.harness import Bus
from tests.integration.gateway.sse import SseReader
from tests.stack import Service, Services
from tests.waiting import eventually
from tickwire.localservers import free_port

GRACE, WINDOW = 1.0, 2.0
CLIENTS = 20


async def test_sigterm_drains_clients_to_another_replica_spread_and_lossless(
    services: Services, backend: Backend
) -> None:
    """1. gw-1 (grace 1 s, window 2 s) and gw-2; 20 resuming clients on gw-1, one SSE stream
    2. a producer publishes on 3 topics throughout  3. SIGTERM gw-1: /readyz 503 at once, a new
    WebSocket is closed 1012 and a new SSE request gets 503 during the grace  4. the clients
    are closed 1012 after the grace, spread over at least half the window; the SSE stream ends
    with a close event 1012  5. gw-1 exits 0 within grace + window + 5 s  6. every client,
    resumed on gw-2, has every published message once, in order per topic."""
    gw1 = services.gateway("gw-1", TICKWIRE_DRAIN_GRACE=str(GRACE), TICKWIRE_DRAIN_WINDOW=str(WINDOW))
    gw2 = services.gateway("gw-2", TICKWIRE_DRAIN_GRACE="0")
    nc = await nats.connect(backend.nats_url)
    bus = Bus(nc, nc.jetstream())
    await ensure_stream(bus.js, backend.bus())
    await asyncio.gather(gw1.ready(), gw2.ready())
    clients = [TickwireClient([gw1.ws_url, gw2.ws_url], ["ticks.*"]) for _ in range(CLIENTS)]
    published: dict[str, list[int]] = {}
    stop = asyncio.Event()

    async def producer() -> None:
        i = 0
        while not stop.is_set():
            topic = f"ticks.S{i % 3}"
            published.setdefault(topic, []).append(await bus.publish(f"md.{topic}"))
            i += 1
            await asyncio.sleep(0.005)  # pacing, ~200 msg/s: the drain must happen under load

    loop = asyncio.get_running_loop()

    async def closed_at(client: TickwireClient) -> float:
        await eventually(lambda: bool(client.stats.close_codes), within=GRACE + WINDOW + 5, every=0.01, what="a close")
        return loop.time()

    async with contextlib.AsyncExitStack() as stack:
        for client in clients:
            await stack.enter_async_context(client)
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=10))
        await eventually(lambda: all(c.subscribed.is_set() for c in clients), within=10, what="all subscribed")
        assert {c.stats.node for c in clients} == {"gw-1"}
        sse_response = await stack.enter_async_context(http.stream("GET", f"{gw1.url}/sse?topics=ticks.*"))
        sse = SseReader(sse_response)
        await sse.expect("subscribed")
        producing = asyncio.create_task(producer())
        try:
            await eventually(lambda: sum(map(len, published.values())) >= 30, what="some traffic")
            closes = [asyncio.create_task(closed_at(c)) for c in clients]
            sigterm = loop.time()
            gw1.send(signal.SIGTERM)
            await eventually(lambda: _status(http, f"{gw1.url}/readyz", 503), within=1, what="readyz 503")
            assert not any(task.done() for task in closes), "closed before the grace"
            async with websockets.connect(gw1.ws_url) as late:  # accepted, then refused
                with pytest.raises(websockets.ConnectionClosed) as refused:
                    await asyncio.wait_for(late.recv(), 5)
            assert refused.value.rcvd is not None
            assert (refused.value.rcvd.code, refused.value.rcvd.reason) == (1012, "draining")
            assert (await http.get(f"{gw1.url}/sse", params={"topics": "ticks.*"})).status_code == 503
            times = await asyncio.gather(*closes)
            last = await _sse_close(sse)
            assert last.data == {"type": "close", "code": 1012, "reason": "draining"}
            exit_code = await asyncio.to_thread(gw1.proc.wait, GRACE + WINDOW + 5)  # type: ignore[union-attr]
            exited = loop.time() - sigterm
            await eventually(
                lambda: all(c.stats.node == "gw-2" and c.subscribed.is_set() for c in clients),
                within=10,
                what="all resumed on gw-2",
            )
        finally:
            stop.set()
            await producing
        assert exit_code == 0 and exited < GRACE + WINDOW + 5
        assert all(c.stats.close_codes[0] == 1012 for c in clients)
        assert min(times) - sigterm >= GRACE * 0.8
        assert max(times) - min(times) >= WINDOW * 0.5, times
        for client in clients:
            await _received_everything(client, published)
    await nc.close()
    assert "Traceback" not in gw1.log()


async def _status(http: httpx.AsyncClient, url: str, code: int) -> bool:
    return (await http.get(url)).status_code == code


async def _sse_close(sse: SseReader) -> object:
    while (event := await sse.event()).event != "close":
        continue
    return event


async def _received_everything(client: TickwireClient, published: dict[str, list[int]]) -> None:
    got: dict[str, list[int]] = {}
    total = sum(map(len, published.values()))
    while sum(map(len, got.values())) < total:
        message = await client.next(within=10)
        got.setdefault(message.topic, []).append(message.seq)
    assert got == published
    assert client.stats.resets == 0


async def test_two_workers_both_serve_and_drain(services: Services, backend: Backend) -> None:
    """1. `tickwire gateway --workers 2`  2. connections land on both workers (node -w0, -w1)
    3. SIGTERM: both drain (1012) and the parent exits 0."""
    port = free_port()
    env = {**services.env, "TICKWIRE_NODE": "gw", "TICKWIRE_DRAIN_GRACE": "0.2", "TICKWIRE_DRAIN_WINDOW": "0.2"}
    gateway = Service(
        "gw-workers", ["gateway", "--port", str(port), "--workers", "2"], env, services.log_dir / "gw-workers.log", port
    )
    services.started.append(gateway.start())
    await gateway.ready()
    nodes: set[str] = set()
    async with contextlib.AsyncExitStack() as stack:
        deadline = time.monotonic() + 15
        while len(nodes) < 2 and time.monotonic() < deadline:
            ws = await stack.enter_async_context(websockets.connect(gateway.ws_url))
            welcome = await asyncio.wait_for(ws.recv(), 5)
            nodes.add(json.loads(welcome)["node"])
        assert nodes == {"gw-w0", "gw-w1"}
        gateway.send(signal.SIGTERM)
        assert await asyncio.to_thread(gateway.proc.wait, 10) == 0  # type: ignore[union-attr]
    assert "Traceback" not in gateway.log()

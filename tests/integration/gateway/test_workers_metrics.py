"""``tickwire gateway --workers 2`` answers a scrape with both workers' metrics summed."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import time

import httpx
import nats
import websockets
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Backend
from tests.stack import Service, Services
from tests.waiting import eventually
from tickwire.localservers import free_port

MESSAGES = 5


def samples(text: str) -> dict[str, float]:
    """Unlabelled samples of an exposition, by sample name (``…_total`` for counters)."""
    return {s.name: s.value for family in text_string_to_metric_families(text) for s in family.samples
            if not s.labels}


async def test_a_scrape_sums_both_workers(services: Services, backend: Backend) -> None:
    """1. `tickwire gateway --workers 2`; its metrics folder exists while it runs  2. WebSockets
    until both workers (node -w0, -w1) hold some  3. five messages published  4. every scrape
    of the shared port, whichever worker answers it, counts all the connections and each
    message once per worker  5. SIGTERM: the parent exits 0 and removes the folder."""
    port = free_port()
    env = {**services.env, "TICKWIRE_NODE": "gw", "TICKWIRE_DRAIN_GRACE": "0", "TICKWIRE_DRAIN_WINDOW": "0.2"}
    gateway = Service("gw-workers", ["gateway", "--port", str(port), "--workers", "2"], env,
                      services.log_dir / "gw-workers.log", port)
    services.started.append(gateway.start())
    await gateway.ready()
    found = re.search(r"metrics in (\S+)", gateway.log())
    assert found, gateway.log()
    folder = found.group(1)
    assert await asyncio.to_thread(os.path.isdir, folder)
    per_node: dict[str, int] = {}
    async with contextlib.AsyncExitStack() as stack, httpx.AsyncClient() as http:
        deadline = time.monotonic() + 15
        while (len(per_node) < 2 or sum(per_node.values()) < 6) and time.monotonic() < deadline:
            ws = await stack.enter_async_context(websockets.connect(gateway.ws_url))
            node = json.loads(await asyncio.wait_for(ws.recv(), 5))["node"]
            per_node[node] = per_node.get(node, 0) + 1
        assert set(per_node) == {"gw-w0", "gw-w1"}, per_node
        connections = sum(per_node.values())
        nc = await nats.connect(backend.nats_url)
        try:
            for i in range(MESSAGES):
                await nc.jetstream().publish("md.ticks.AAPL", json.dumps({"n": i}).encode())
        finally:
            await nc.close()

        async def summed() -> bool:
            for _ in range(6):  # several scrapes: each may reach either worker
                got = samples((await http.get(f"{gateway.url}/metrics", timeout=5)).text)
                if (got.get("tickwire_connections"), got.get("tickwire_gateway_messages_total")) != (
                        connections, 2 * MESSAGES):
                    return False
            return True

        await eventually(summed, within=15, every=0.2, what=f"{connections} connections and {2 * MESSAGES} "
                                                            "messages on every scrape")
        gateway.send(signal.SIGTERM)
        assert await asyncio.to_thread(gateway.proc.wait, 15) == 0  # type: ignore[union-attr]
    assert not await asyncio.to_thread(os.path.exists, folder), "the metrics folder outlived the gateway"
    assert "Traceback" not in gateway.log()

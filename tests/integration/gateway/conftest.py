"""Fixtures for the gateway's integration tests: real NATS, gateways in-process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import nats
import pytest
import uvicorn

from gateway.app import create_app
from gateway.server import config_for
from services.connections import ensure_stream
from services.settings import GatewaySettings
from tests.conftest import Backend
from tests.integration.gateway.harness import Bus, Gw, StartGateway
from tickwire.localservers import free_port


@pytest.fixture
async def bus(backend: Backend) -> AsyncIterator[Bus]:
    nc = await nats.connect(backend.nats_url)
    js = nc.jetstream()
    await ensure_stream(js, backend.bus())
    yield Bus(nc, js)
    await nc.close()


@pytest.fixture
async def start_gateway(backend: Backend) -> AsyncIterator[StartGateway]:
    """Start gateways in this event loop on free ports; all are stopped at the end."""
    running: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []

    async def start(**overrides: Any) -> Gw:
        settings = GatewaySettings(
            **{"bus": backend.bus(), "node": f"gw-{len(running) + 1}", "port": free_port(), **overrides}
        )
        app = create_app(settings)
        server = uvicorn.Server(config_for(settings, app))
        task = asyncio.create_task(server.serve())
        running.append((server, task))
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                await asyncio.sleep(0.02)
            await app.state.gateway.feed.ready.wait()
        return Gw(settings.port, server, settings)

    yield start
    for server, _ in running:
        server.should_exit = True
    for _, task in running:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 15)

"""``create_app(settings)``: the gateway as an ASGI app, its resources owned by the lifespan.

Start: NATS connection → stream MD ensured (the gateway may start before ingest) → the
feed consuming. Stop, in reverse: the feed's subscription, then the connection drained.
Client connections are closed by the server (1012) before the lifespan's shutdown runs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway.feed import Feed
from gateway.http import mount_dashboard, router
from gateway.hub import Hub
from gateway.latency import LatencyWindow
from gateway.sse import sse_endpoint
from gateway.state import Gateway
from gateway.subscribe import Subscriber
from gateway.ws import websocket_endpoint
from services.connections import ensure_stream, open_nats
from services.protocol import CloseCode
from services.settings import GatewaySettings

log = logging.getLogger(__name__)


def create_app(settings: GatewaySettings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with open_nats(settings.bus, name=f"tickwire-gateway {settings.node}") as nc:
            await ensure_stream(nc.jetstream(), settings.bus)
            hub, latency = Hub(), LatencyWindow()
            feed = Feed(nc, settings, hub, latency)
            gateway = Gateway(settings, nc, feed, hub, latency, Subscriber(feed, hub, settings.max_subscriptions))
            feed.on_new_epoch = functools.partial(gateway.close_all, CloseCode.RESTART, "stream recreated")
            app.state.gateway = gateway
            stop = asyncio.Event()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(feed.run(stop), name="feed")
                log.info("gateway %s: started", settings.node)
                try:
                    yield
                finally:
                    gateway.draining = True
                    stop.set()
        log.info("gateway %s: stopped", settings.node)

    app = FastAPI(title="Tickwire gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.include_router(router)
    app.add_api_websocket_route("/ws", websocket_endpoint)
    app.add_route("/sse", sse_endpoint, methods=["GET"], include_in_schema=False)
    mount_dashboard(app, settings.web_dir)
    return app

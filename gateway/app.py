"""``create_app(settings)``: the gateway as an ASGI app, its resources owned by the lifespan.

Start: NATS connection → stream MD ensured (the gateway may start before ingest) → the
feed consuming. Stop, in reverse: the feed's subscription, then the connection drained.
Client connections are closed by the server (1012) before the lifespan's shutdown runs.

Security is set up here, before anything listens, so bad keys fail the start: the token
verifier (gateway.auth), the Origin guard in front of ``/ws`` and ``/sse``
(gateway.origin), CORS for the HTTP API following the same origin list, and a filter
keeping tokens out of uvicorn's connection log lines.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware

from gateway.feed import Feed
from gateway.http import mount_dashboard, router
from gateway.hub import Hub
from gateway.origin import OriginGuard
from gateway.sse import sse_endpoint
from gateway.state import Gateway
from gateway.subscribe import Subscriber
from gateway.telemetry import Refusals, Telemetry
from gateway.tokens import Verifier
from gateway.writer import Stall, Writer
from gateway.ws import WebSocketRoute
from services.connections import ensure_stream, open_nats
from services.protocol import CloseCode
from services.redact import TokenLogFilter
from services.settings import GatewaySettings
from services.telemetry import GATEWAY, Tracer, tracing

log = logging.getLogger(__name__)


def _secure_logs() -> None:
    # uvicorn logs each WebSocket's path with its query string ("?token=…" when allowed).
    uvicorn_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(f, TokenLogFilter) for f in uvicorn_log.filters):
        uvicorn_log.addFilter(TokenLogFilter())


def create_app(settings: GatewaySettings) -> FastAPI:
    verifier = Verifier.from_settings(settings) if settings.auth == "jwt" else None
    _secure_logs()
    # Counted below HTTP from the first connection, before the lifespan (gateway.server's guard).
    refusals = Refusals()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        with tracing(GATEWAY, settings.bus.tracing) as tracer:
            async with serve_gateway(app, tracer):
                yield
        log.info("gateway %s: stopped", settings.node)

    @asynccontextmanager
    async def serve_gateway(app: FastAPI, tracer: Tracer | None) -> AsyncIterator[None]:
        async with open_nats(settings.bus, name=f"tickwire-gateway {settings.node}") as nc:
            await ensure_stream(nc.jetstream(), settings.bus)
            telemetry = Telemetry(settings.node, tracer, settings.metrics_dir, refusals)
            writer = Writer(Stall(settings.stall_timeout, telemetry.stalled))
            hub = Hub(writer.write)
            feed = Feed(nc, settings, hub, telemetry)
            gateway = Gateway(settings, nc, feed, hub, telemetry, Subscriber(feed, hub, settings.max_subscriptions),
                              verifier=verifier, writer=writer)
            feed.on_restart = functools.partial(gateway.close_all, CloseCode.RESTART)
            app.state.gateway = gateway
            stop = asyncio.Event()
            async with asyncio.TaskGroup() as tasks:
                tasks.create_task(feed.run(stop), name="feed")
                tasks.create_task(telemetry.publish(stop), name="metrics")
                tasks.create_task(gateway.loop_lag.run(stop), name="loop-lag")
                log.info("gateway %s: started", settings.node)
                if verifier is None:
                    log.warning("gateway %s: auth is OFF: any client may subscribe to any topic "
                                "(TICKWIRE_AUTH=jwt turns it on)", settings.node)
                else:
                    log.info("gateway %s: auth: %s", settings.node, verifier.describe())
                try:
                    yield
                finally:
                    gateway.draining = True
                    stop.set()

    app = FastAPI(title="Tickwire gateway", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.refusals = refusals
    app.include_router(router)
    app.add_route("/sse", sse_endpoint, methods=["GET"], include_in_schema=False)
    mount_dashboard(app, settings.web_dir)
    if settings.allowed_origins:
        # Tokens travel in a header, not cookies: no credentials mode, so no wildcard risk.
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.allowed_origins), allow_credentials=False,
                           allow_methods=["GET"], allow_headers=["Authorization", "Last-Event-ID"])
    app.add_middleware(WebSocketRoute)
    app.add_middleware(OriginGuard, allowed=settings.allowed_origins)
    return app

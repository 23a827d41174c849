"""The gateway's HTTP surface: health, readiness, status, latency, metrics and the dashboard."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.staticfiles import StaticFiles

from gateway.state import Gateway
from services.hops import now_us

log = logging.getLogger(__name__)

router = APIRouter()

NOT_BUILT = """<!doctype html>
<html><head><meta charset="utf-8"><title>Tickwire gateway</title></head>
<body><h1>Tickwire gateway {node}</h1>
<p>The dashboard is not built. Build it with <code>make web</code> (or point
<code>TICKWIRE_WEB_DIR</code> at a folder holding its <code>index.html</code>) and restart the gateway.</p>
<p>The gateway itself is up: <a href="/api/status">/api/status</a>, WebSocket at <code>/ws</code>.</p>
</body></html>
"""


def _gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


@router.get("/healthz")
async def healthz() -> PlainTextResponse:
    return PlainTextResponse("ok")


@router.get("/readyz")
async def readyz(request: Request) -> PlainTextResponse:
    gateway = _gateway(request)
    if gateway.is_ready():
        return PlainTextResponse("ready")
    feed = "caught up" if gateway.feed.ready.is_set() else "catching up"
    reason = "draining" if gateway.draining else f"nats {gateway.nats_state()}, feed {feed}"
    return PlainTextResponse(f"not ready: {reason}", status_code=503)


@router.get("/api/status")
async def status(request: Request) -> JSONResponse:
    gateway = _gateway(request)
    return JSONResponse({
        "node": gateway.settings.node,
        "ready": gateway.is_ready(),
        "draining": gateway.draining,
        "connections": len(gateway.sessions),
        "subscriptions": sum(len(s.patterns) for s in gateway.sessions),
        "nats": gateway.nats_state(),
        "stream": gateway.settings.bus.stream,
        "epoch": gateway.feed.epoch,
        "head": gateway.feed.head,
        "replay": {"first": gateway.feed.first_seq(), "messages": len(gateway.feed.ring)},
        "uptime": round(time.monotonic() - gateway.started, 3),
        "time": now_us(),
    })


@router.get("/api/latency")
async def latency(request: Request) -> JSONResponse:
    gateway = _gateway(request)
    return JSONResponse({"node": gateway.settings.node, "unit": "ms", "hops": gateway.telemetry.latency.summary(),
                         "loop_lag": gateway.loop_lag.summary()})


@router.get("/api/dashboard")
async def dashboard_config(request: Request) -> JSONResponse:
    """The gateways the dashboard fails over between (``TICKWIRE_DASHBOARD_GATEWAYS``); an
    empty list means the page's own origin only, as behind one load-balanced address."""
    return JSONResponse({"gateways": list(_gateway(request).settings.dashboard_gateways)})


@router.get("/metrics")
async def metrics(request: Request) -> Response:
    registry = _gateway(request).telemetry.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


def mount_dashboard(app: FastAPI, web_dir: str) -> None:
    """Serve the built dashboard at ``/``, or a page saying how to build it."""
    folder = Path(web_dir) if web_dir else None
    if folder is not None and (folder / "index.html").is_file():
        log.info("dashboard: serving %s at /", folder)
        app.mount("/", StaticFiles(directory=folder, html=True), name="dashboard")
        return
    where = f"no index.html in {folder}" if folder is not None else "TICKWIRE_WEB_DIR is not set"
    log.info("dashboard: not built (%s): `make web` builds it; / shows how", where)

    @app.get("/", response_class=HTMLResponse)
    async def not_built(request: Request) -> HTMLResponse:
        return HTMLResponse(NOT_BUILT.format(node=_gateway(request).settings.node))

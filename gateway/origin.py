"""Which web pages may open a connection: the ``Origin`` check, before any WebSocket upgrade.

CORS does not apply to WebSockets: any page a user visits can open one to the gateway,
with the user's network position and cookies (cross-site WebSocket hijacking, OWASP). So
a request to ``/ws`` or ``/sse`` that carries an ``Origin`` header (browsers always send
it on WebSocket and cross-origin requests) must name an allowed origin:

* ``TICKWIRE_ALLOWED_ORIGINS`` set: exactly those (``scheme://host[:port]``).
* empty (the default): same origin only, i.e. the Origin's host and port are those of the
  request's ``Host`` header, and only for a loopback host (``localhost``, 127.0.0.0/8,
  ``::1``), so the dashboard the gateway serves itself on this machine keeps working. A
  page and a ``Host`` that agree prove nothing by themselves: DNS rebinding points a
  foreign name (``http://rebound.example:8080``) at the gateway's address, and the browser
  then sends that name as both. Serve the dashboard under any other name, or behind a
  proxy, by listing its origins.

A refused WebSocket is closed before ``accept()``, which uvicorn answers with HTTP 403
(facts.md); a refused ``/sse`` gets 403 with an ``error`` object. A request without
``Origin`` is not from a browser page; with auth on it still needs a token (gateway.auth).
"""

from __future__ import annotations

import ipaddress
import logging
from urllib.parse import urlsplit

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.frames import error_body
from services.protocol import ErrorCode

log = logging.getLogger(__name__)

GUARDED_PATHS = frozenset({"/ws", "/sse"})
DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


def _host_port(netloc: str, default: int | None) -> tuple[str, int | None] | None:
    try:
        parts = urlsplit(f"//{netloc}")
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host:
        return None
    return host, port if port is not None else default


def same_origin(origin: str, host_header: str | None) -> bool:
    """True when ``origin`` names the host and port the request was sent to."""
    if host_header is None:
        return False
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    default = DEFAULT_PORTS.get(parts.scheme)
    if default is None:  # "null", file://, chrome-extension://…: never the gateway's own page
        return False
    theirs = _host_port(parts.netloc, default)
    # Host carries no scheme: a missing port there means the origin's scheme default.
    ours = _host_port(host_header.strip(), default)
    return theirs is not None and theirs == ours


def loopback(host_header: str | None) -> bool:
    """True when ``Host`` names this machine's loopback (a name no other site can rebind to)."""
    found = _host_port(host_header.strip(), None) if host_header is not None else None
    if found is None:
        return False
    host = found[0].lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class OriginGuard:
    """ASGI middleware refusing browser connections from pages not allowed to open them."""

    def __init__(self, app: ASGIApp, allowed: tuple[str, ...]) -> None:
        self.app = app
        self.allowed = frozenset(allowed)

    def allows(self, origin: str, host_header: str | None) -> bool:
        normalized = origin.strip().rstrip("/").lower()
        if self.allowed:
            return normalized in self.allowed
        return same_origin(normalized, host_header) and loopback(host_header)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("websocket", "http") and scope["path"] in GUARDED_PATHS:
            origin = _header(scope, b"origin")
            if origin is not None and not self.allows(origin, _header(scope, b"host")):
                # The Origin is the other site's, not a secret; cut to keep a log line a line.
                log.info("refused %s %s from origin %r", scope["type"], scope["path"], origin[:100])
                await _refuse(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _refuse(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        # Closing before accept: uvicorn answers the upgrade with HTTP 403.
        await send({"type": "websocket.close", "code": 1008, "reason": ""})
        return
    body = error_body(ErrorCode.FORBIDDEN, "origin not allowed")
    await JSONResponse(body, status_code=403)(scope, receive, send)

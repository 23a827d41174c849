"""``serve(settings, workers)``: the gateway on uvicorn (uvloop, websockets sans-I/O).

WebSocket settings are the contract's, not uvicorn's permissive defaults (16 MiB frames,
compression on: facts.md): frames above ``max_frame_bytes`` close with 1009, no
per-message deflate. ``GatewayServer`` leaves the seam for draining: uvicorn's
``handle_exit`` closes every WebSocket with 1012 at once, so a drain (readyz 503, grace,
spread closes) has to start before it; today the hook marks the replica as draining
(readiness 503, new connections refused) and uvicorn's own shutdown follows.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import signal
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import HANDLED_SIGNALS
from uvicorn.supervisors import Multiprocess
from websockets.http11 import Request

from gateway.app import create_app
from gateway.ws import ABORT_EXTENSION
from services.settings import GatewaySettings

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN = 10  # seconds


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, plus a way for the app to abort the socket.

    ASGI can only ask for a close frame, which waits behind whatever a stalled client has
    not read; a slow consumer's socket must be cut instead (gateway.ws._close).
    """

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.handshake_initiated and not self.handshake_complete:
            self.scope["extensions"][ABORT_EXTENSION] = {"abort": self.transport.abort}


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn re-raises a caught SIGTERM after its graceful shutdown so that an embedding
        # process dies of it; here serve() is the process's main and returns the exit code.
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        originals = {sig: signal.signal(sig, self.handle_exit) for sig in HANDLED_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in originals.items():
                signal.signal(sig, handler)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        # Runs in the signal handler: only flags may be set here.
        self._on_exit()
        super().handle_exit(sig, frame)


def mark_draining(app: FastAPI) -> None:
    gateway = getattr(app.state, "gateway", None)
    if gateway is not None:
        gateway.draining = True


def config_for(settings: GatewaySettings, app: Callable[..., Any], workers: int = 1) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        factory=workers > 1,
        workers=workers,
        loop="uvloop",
        http="h11",
        ws=GatewayWebSocketProtocol,
        ws_max_size=settings.max_frame_bytes,
        ws_per_message_deflate=False,
        ws_ping_interval=settings.heartbeat or None,
        ws_ping_timeout=settings.heartbeat or None,
        lifespan="on",
        log_config=None,  # services.lifecycle.configure_logging already set the format
        access_log=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
    )


def serve(settings: GatewaySettings, workers: int = 1) -> int:
    """Run the gateway until SIGINT/SIGTERM; return the process exit code."""
    try:
        if workers > 1:
            # Worker processes are spawned: they get the picklable factory, not an app.
            config = config_for(settings, functools.partial(create_app, settings), workers)
            Multiprocess(config, sockets=[config.bind_socket()]).run()
            return 0
        app = create_app(settings)
        GatewayServer(config_for(settings, app), on_exit=functools.partial(mark_draining, app)).run()
    except SystemExit as exc:  # uvicorn exits this way when startup fails
        code = exc.code if isinstance(exc.code, int) else 1
        log.error("gateway: stopped with exit code %d", code)
        return code
    return 0

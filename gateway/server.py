"""``serve(settings, workers)``: the gateway on uvicorn (uvloop, websockets sans-I/O).

WebSocket settings are the contract's, not uvicorn's permissive defaults (16 MiB frames,
compression on: facts.md): frames above ``max_frame_bytes`` close with 1009, no
per-message deflate. Below HTTP, every connection passes gateway.admission: a deadline on
request heads, per-address and process-wide caps (slowloris).

``GatewayServer`` drains before uvicorn shuts down. uvicorn's own shutdown closes every
WebSocket with 1012 at once (facts.md), so the signal handler only marks the replica as
draining (readiness 503, new connections refused) and a task in the server's loop runs the
drain (gateway.drain: grace, then closes spread over a window); only when it is done does
uvicorn's shutdown begin. A second SIGTERM/SIGINT stops at once. More than one worker:
gateway.workers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
from collections.abc import Callable, Iterator
from types import FrameType

import uvicorn
from fastapi import FastAPI
from uvicorn._types import ASGISendEvent
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
from uvicorn.server import HANDLED_SIGNALS
from websockets.http11 import Request

from gateway.admission import AdmissionLimits, ConnectionGuard, GatewayConfig, GuardedHttpProtocol, guard_of
from gateway.app import create_app
from gateway.drain import drain
from gateway.state import Gateway
from gateway.telemetry import Refusals
from gateway.workers import run_workers
from gateway.ws import ABORT_EXTENSION, SEND_EXTENSION
from services.heap import settle_heap
from services.protocol import CloseCode
from services.settings import GatewaySettings

log = logging.getLogger(__name__)

GRACEFUL_SHUTDOWN = 10  # seconds


class GatewayWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's sans-I/O WebSocket protocol, plus two ways below ASGI for the app.

    ``abort``: ASGI can only ask for a close frame, which waits behind whatever a stalled
    client has not read; a slow consumer's socket must be cut instead (gateway.ws._close).
    ``send``: the connection itself, to write already serialized text frames synchronously.
    Through ASGI every connection would encode and frame the same batch again (half the
    gateway's time under broadcast, by profile) and await a send per frame; the frame bytes
    are made once (gateway.frames) and written here by the gateway's writer
    (gateway.writer) under the same flow control as uvicorn's own send: nothing is written
    while the transport is paused; ``pause_writing`` calls ``on_paused`` (the writer's stall
    watch) and ``resume_writing`` calls ``on_writable``.
    """

    on_paused: Callable[[], None] | None = None
    on_writable: Callable[[], None] | None = None

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        if self.handshake_initiated and not self.handshake_complete:
            self.scope["extensions"][ABORT_EXTENSION] = {"abort": self.transport.abort}
            self.scope["extensions"][SEND_EXTENSION] = {"connection": self}

    async def send(self, message: ASGISendEvent) -> None:
        await super().send(message)
        if self.handshake_complete and hasattr(self, "response"):
            # The handshake's request and response (two header maps, ~4 KB) would otherwise
            # live as long as the connection; nothing reads them once it is accepted (the
            # scope has its own copy). websockets' parser generator keeps the request object
            # in a local for good, so its headers are emptied rather than only let go.
            self.request.headers.clear()
            del self.request, self.response

    def can_write(self) -> bool:
        return self.writable.is_set() and not (self.disconnected or self.close_sent)

    def write_frame(self, frame: bytes) -> None:
        self.transport.write(frame)

    def connection_lost(self, exc: Exception | None) -> None:
        # The upgrade handed the transport over from the HTTP protocol, whose connection_lost
        # will not run: the guard hears of the end here.
        guard_of(self.config).lost(self.transport)
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.on_paused is not None and not self.disconnected:
            self.on_paused()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.on_writable is not None and not self.disconnected:
            self.on_writable()

    def send_receive_event_to_app(self) -> None:
        # uvicorn answers invalid UTF-8 in a text frame with 1007, as it should, but logs a
        # traceback each time: a client could fill the log with them. Same close, one line.
        if self.curr_msg_data_type == "text" and not self.close_sent:
            try:
                b"".join(self.frames).decode()
            except UnicodeDecodeError:
                self.frames = []
                log.info("websocket %s: invalid UTF-8 in a text frame: closing 1007", self.client)
                self.conn.send_close(CloseCode.INVALID_DATA, "invalid UTF-8")
                self.handle_parser_exception()
                return
        super().send_receive_event_to_app()


class GatewayHttpProtocol(GuardedHttpProtocol):
    """The guarded h11 protocol, lending each request the transport's ``abort``: an SSE
    stream whose client reads nothing cannot be ended through ASGI (uvicorn's close waits for
    its buffer to be written) and is cut instead (gateway.sse._abort)."""

    def handle_events(self) -> None:
        super().handle_events()
        # A new request's scope is built here and its task only scheduled: the app has not
        # read the scope yet.
        if self.cycle is not None and self.cycle.scope is self.scope:
            self.scope.setdefault("extensions", {})[ABORT_EXTENSION] = {"abort": self.transport.abort}


class GatewayServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, app: FastAPI) -> None:
        super().__init__(config)
        self._app = app
        self._drain_requested = False
        self._drain: asyncio.Task[None] | None = None

    def _gateway(self) -> Gateway | None:
        gateway: Gateway | None = getattr(self._app.state, "gateway", None)
        return gateway

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
        # Runs in the signal handler: only flags may be set here; on_tick starts the drain.
        gateway = self._gateway()
        if gateway is None or self._drain_requested:
            # Not started yet, or asked a second time: stop now.
            super().handle_exit(sig, frame)
            return
        self._drain_requested = True
        gateway.draining = True

    async def on_tick(self, counter: int) -> bool:
        gateway = self._gateway()
        if self._drain_requested and self._drain is None and gateway is not None:
            self._drain = asyncio.create_task(self._drain_then_exit(gateway), name="drain")
        return await super().on_tick(counter)

    async def _drain_then_exit(self, gateway: Gateway) -> None:
        try:
            await drain(gateway)
        except Exception:  # logged here: nothing else retrieves this task's outcome
            log.exception("drain failed: the shutdown closes every connection at once")
        finally:
            self.should_exit = True

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self._drain is not None and not self._drain.done():  # a second signal cut it short
            self._drain.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain
        gateway = self._gateway()
        if gateway is not None:
            # Whatever is left goes now: uvicorn would close WebSockets with 1012 anyway, and
            # SSE streams only end when their session does.
            gateway.draining = True
            gateway.close_all(CloseCode.RESTART, "draining")
        await super().shutdown(sockets)


def config_for(settings: GatewaySettings, app: FastAPI) -> uvicorn.Config:
    """uvicorn's Config for ``app`` (gateway.app.create_app), its guard counting into the app's metrics."""
    limits = AdmissionLimits(settings.handshake_timeout, settings.max_handshakes_per_ip,
                             settings.max_connections_per_ip, settings.max_handshakes)
    refusals: Refusals = app.state.refusals
    return GatewayConfig(
        app,
        ConnectionGuard(limits, refusals),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http=GatewayHttpProtocol,
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


def run_server(settings: GatewaySettings, sockets: list[socket.socket] | None = None) -> int:
    """One GatewayServer in this process until it is stopped; return the exit code."""
    try:
        app = create_app(settings)
        server = GatewayServer(config_for(settings, app), app)
        settle_heap()
        server.run(sockets)
    except SystemExit as exc:  # uvicorn exits this way when startup fails
        code = exc.code if isinstance(exc.code, int) else 1
        log.error("gateway: stopped with exit code %d", code)
        return code
    return 0


def serve(settings: GatewaySettings, workers: int = 1) -> int:
    """Run the gateway until SIGINT/SIGTERM; return the process exit code."""
    if workers > 1:
        return run_workers(settings, workers, run_server)
    return run_server(settings)

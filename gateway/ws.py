"""``GET /ws``: protocol v1 over WebSocket (docs/protocol.md).

Per connection: a reader task parsing client frames and a subscriptions task, owned by a
TaskGroup with the token's expiry watch; they end together when the session is closing,
whoever decided it (client gone, slow consumer, internal error). ``subscribe`` and
``unsubscribe`` run in the subscriptions task, one after another in the order they came: a
catch-up may last long (JetStream reads, a client reading slowly), and meanwhile the reader
goes on answering ``ping`` and taking ``auth`` renewals, so neither the client's keepalive
nor its token runs out behind a resume. Every server frame, including replies to client
frames, goes through the outbox so replies keep their order with the messages around them;
the gateway's writer writes it into the socket (gateway.writer), or, on a server without
gateway.server's protocol, a writer task through ASGI.

Binary frames get an ``error`` frame (bad_request) and the connection stays open: the
protocol is text only, and refusing one frame is enough to tell a confused client.
Inbound frames are rate limited per connection (gateway.ratelimit) before they are parsed.
With auth on, the token is checked right after the accept (gateway.auth: a refusal is a
1008 close with the reason) and the connection is closed with 1008 when it runs out.
The Origin check comes earlier, before the upgrade (gateway.origin).
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from starlette.types import ASGIApp, Receive, Scope, Send
from starlette.websockets import WebSocket, WebSocketDisconnect

from gateway import frames
from gateway.auth import AuthError, connection_grant, expire, renew
from gateway.ratelimit import FrameRateLimit, Verdict
from gateway.session import Session, SessionState
from gateway.state import DRAINING, Gateway
from gateway.writer import write_loop, ws_text
from services.hops import now_us
from services.protocol import (
    Auth,
    ClientFrame,
    CloseCode,
    ErrorCode,
    Ping,
    ProtocolError,
    Report,
    Subscribe,
    Unsubscribe,
    parse_client_frame,
)

log = logging.getLogger(__name__)

SUBPROTOCOL = "tickwire.v1"
CLOSE_TIMEOUT = 5.0  # a close frame a client does not read in time: the socket is aborted
ABORT_EXTENSION = "tickwire.abort"  # scope extensions set by gateway.server's protocol class
SEND_EXTENSION = "tickwire.send"
SUBSCRIPTIONS_WAITING = 16  # subscribe/unsubscribe frames queued behind a running catch-up


class WebSocketRoute:
    """``/ws`` served from the middleware stack, in front of FastAPI's routing.

    A connection's handler lives as long as the connection, and with it every frame of the
    stack that called it: through the router, FastAPI's dependency machinery and exception
    wrappers, a few kilobytes per connection (by tracemalloc), for nothing a WebSocket
    here uses. The Origin check stays in front of it (gateway.origin).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and scope["path"] == "/ws":
            await websocket_endpoint(WebSocket(scope, receive, send))
        else:
            await self.app(scope, receive, send)


async def websocket_endpoint(websocket: WebSocket) -> None:
    gateway: Gateway = websocket.app.state.gateway
    offered = websocket.scope.get("subprotocols", [])
    await websocket.accept(subprotocol=SUBPROTOCOL if SUBPROTOCOL in offered else None)
    # Accept first so that the refusal is a close code the client understands (closing
    # before accept would be a bare HTTP 403).
    try:
        grant = connection_grant(gateway.verifier, websocket.scope, websocket.query_params,
                                 gateway.settings.auth_query_token)
    except AuthError as exc:
        log.info("refused websocket: %s", exc)
        await _close(websocket, CloseCode.POLICY, str(exc))
        return
    session = Session(uuid.uuid4().hex[:16], gateway.limits)
    session.grant = grant
    refusal = await gateway.admit(session)
    if refusal is not None:
        # Draining: reconnect elsewhere at once; full or not ready: elsewhere, with backoff.
        await _close(websocket, CloseCode.RESTART if refusal == DRAINING else CloseCode.TRY_AGAIN, refusal)
        return
    session.send(frames.welcome(session.id, gateway.settings.node, gateway.settings.heartbeat))
    try:
        await _run(websocket, session, gateway)
    finally:
        gateway.subscriber.drop(session)
        gateway.sessions.discard(session)
    if session.state is SessionState.CLOSING:
        gateway.telemetry.closed(session.close_code)
        await _close(websocket, session.close_code, session.close_reason)
    session.closed()


async def _run(websocket: WebSocket, session: Session, gateway: Gateway) -> None:
    try:
        refusals = Refusals(session)
        waiting: asyncio.Queue[Subscribe | Unsubscribe] = asyncio.Queue(SUBSCRIPTIONS_WAITING)
        async with asyncio.TaskGroup() as tasks:
            helpers = [
                tasks.create_task(_read_loop(websocket, session, gateway, waiting, refusals)),
                tasks.create_task(_subscriptions(waiting, session, gateway, refusals)),
                tasks.create_task(expire(session, gateway.settings.jwt_leeway)),
            ]
            if not _attach(websocket, session, gateway):
                frames = gateway.writer.frames
                helpers.append(tasks.create_task(
                    write_loop(session, websocket.send_text, lambda outbox: ws_text(outbox, frames))))
            await session.wait_closing()
            # A writer may be parked on a socket the client does not read: stop it so the
            # close frame can be sent (or the socket aborted) now.
            for task in helpers:
                task.cancel()
    except* WebSocketDisconnect:
        session.closed()
    except* Exception:
        log.exception("session %s: internal error", session.id)
        session.close(CloseCode.INTERNAL, "internal error")


class Refusals:
    """A refused client frame gets an ``error`` frame; the log hears of it once per connection
    (a flood must not flood the log)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.logged = False

    def refuse(self, exc: ProtocolError) -> None:
        if not self.logged:
            log.info("session %s: refused frame: %s %s", self.session.id, exc.code.value, exc.message)
            self.logged = True
        self.session.send(frames.error(exc.code, exc.message))


async def _read_loop(websocket: WebSocket, session: Session, gateway: Gateway,
                     waiting: asyncio.Queue[Subscribe | Unsubscribe], refusals: Refusals) -> None:
    limit = FrameRateLimit(gateway.settings.max_frames_per_second)
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            session.closed()
            return
        verdict = limit.check()
        if verdict is Verdict.ABUSE:
            log.info("session %s: frame flood: closing 1008", session.id)
            session.close(CloseCode.POLICY, "rate limit exceeded")
            return
        if verdict is Verdict.DROP_AND_TELL:
            session.send(frames.error(ErrorCode.RATE_LIMITED, "too many frames: this one was dropped"))
        if verdict is not Verdict.ALLOW:
            continue
        try:
            text = message.get("text")
            if text is None:
                raise ProtocolError(ErrorCode.BAD_REQUEST, "binary frames are not supported: send JSON text")
            frame = parse_client_frame(text)
            if isinstance(frame, Subscribe | Unsubscribe):
                try:
                    waiting.put_nowait(frame)
                except asyncio.QueueFull:
                    raise ProtocolError(ErrorCode.RATE_LIMITED, f"more than {SUBSCRIPTIONS_WAITING} subscription "
                                        "changes wait for a catch-up: this one was dropped") from None
            else:
                _answer(frame, session, gateway)
        except ProtocolError as exc:
            refusals.refuse(exc)


async def _subscriptions(waiting: asyncio.Queue[Subscribe | Unsubscribe], session: Session, gateway: Gateway,
                         refusals: Refusals) -> None:
    """Subscription changes in the order they came, each finished before the next."""
    while True:
        frame = await waiting.get()
        try:
            if isinstance(frame, Subscribe):
                if frame.since is not None:
                    gateway.telemetry.resumed()
                await gateway.subscriber.subscribe(session, frame)
            else:
                gateway.subscriber.unsubscribe(session, frame.topics)
                session.send(frames.unsubscribed(frame.topics))
        except ProtocolError as exc:
            refusals.refuse(exc)


def _answer(frame: ClientFrame, session: Session, gateway: Gateway) -> None:
    """The frames answered at once, even while a catch-up runs."""
    if isinstance(frame, Ping):
        session.send(frames.pong(frame.id, now_us()))
    elif isinstance(frame, Report):
        gateway.telemetry.report(session.id, frame)
    elif isinstance(frame, Auth):
        if gateway.verifier is None:
            raise ProtocolError(ErrorCode.BAD_REQUEST, "auth is not enabled on this gateway")
        try:
            grant = renew(session, gateway.verifier, frame.token)
        except AuthError as exc:
            # The current token stays in force until it runs out.
            raise ProtocolError(ErrorCode.UNAUTHORIZED, str(exc)) from None
        gateway.subscriber.regrant(session, grant)


def _attach(websocket: WebSocket, session: Session, gateway: Gateway) -> bool:
    """Hand the session's writes to the gateway's writer, where the server lets it write
    serialized frames synchronously (gateway.server); False elsewhere."""
    extension: dict[str, Any] | None = websocket.scope.get("extensions", {}).get(SEND_EXTENSION)
    if extension is None:
        return False
    connection, writer = extension["connection"], gateway.writer
    connection.on_paused = lambda: writer.paused(session)
    connection.on_writable = lambda: writer.resumed(session)
    writer.attach(session, connection)
    return True


async def _close(websocket: WebSocket, code: int, reason: str) -> None:
    """Send a close frame; if the client does not take it in time, abort the socket."""
    try:
        async with asyncio.timeout(CLOSE_TIMEOUT):
            await websocket.close(code, reason)
    except TimeoutError:
        extension: dict[str, Any] | None = websocket.scope.get("extensions", {}).get(ABORT_EXTENSION)
        if extension is not None:
            extension["abort"]()
    except (WebSocketDisconnect, RuntimeError):
        # Already gone, or already closed by the server (shutdown): nothing left to say.
        return

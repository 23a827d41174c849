"""``GET /sse``: the same stream as Server-Sent Events, for clients that cannot use WebSocket.

``/sse?topics=ticks.AAPL,trades.*&since=N&epoch=E`` is one ``subscribe`` frame; a
``Last-Event-ID`` header (the last seq the client saw, which ``EventSource`` sends by
itself on reconnect) overrides ``since``. An SSE connection is a ``Session`` like a
WebSocket one (same snapshot/resume, same bounded outbox); only its writer's encoding
differs (gateway.writer.sse_events), turning each queued frame into one event:

    id: 1042            (``msg`` and ``gap`` only: the seq, so Last-Event-ID resumes)
    event: msg          (``msg``, ``gap``, ``subscribed``, ``error``)
    data: {"type":"msg","topic":"ticks.AAPL","seq":1042,…}   (the WebSocket frame, unchanged)

``: ping`` comment lines every ``heartbeat`` seconds keep proxies from timing the stream
out. Where a WebSocket would get a close code, the stream ends with
``event: close`` / ``data: {"type":"close","code":4008,"reason":"slow consumer"}`` (1012
when draining). 4008 also when a write has waited ``TICKWIRE_STALL_TIMEOUT`` (the client
reads nothing: gateway.writer.write_loop); a ``close`` event the client does not take
within ``CLOSE_TIMEOUT`` and the connection is aborted. Input that cannot be served is
refused before the stream starts: HTTP 400 with an ``error`` object (bad topic, bad since),
503 when the replica is draining, full or not ready. With auth on: 401 without a valid
token (``Authorization: Bearer``, or ``?token=`` where allowed: ``EventSource`` cannot set
headers), 403 naming the topics the token does not grant; the stream ends with a 1008
``close`` event when the token runs out (an SSE client cannot send a fresh one: it
reconnects with it).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.types import Receive, Scope, Send

from gateway.auth import AuthError, connection_grant, expire
from gateway.frames import HEARTBEAT, close_event, error_body
from gateway.session import Session, SessionState
from gateway.state import Gateway
from gateway.subscribe import Plan, forbidden
from gateway.writer import sse_events, write_loop
from gateway.ws import ABORT_EXTENSION
from services.protocol import CloseCode, ErrorCode, ProtocolError, Subscribe, parse_client_frame

log = logging.getLogger(__name__)

CLOSE_TIMEOUT = 5.0  # the last event of a stream the client does not read is given up after this
ABORT_WAIT = 1.0  # for uvicorn to see an aborted connection gone (it takes a turn of the loop)
MAX_SEQ = 2**63
HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),  # nginx would otherwise buffer the stream
]


def _refuse(status: int, code: ErrorCode, message: str, **extra: object) -> JSONResponse:
    headers = {"Retry-After": "1"} if status == 503 else None
    if status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="tickwire"'}
    return JSONResponse(error_body(code, message, **extra), status_code=status, headers=headers)


def _subscribe_frame(request: Request) -> Subscribe:
    topics = [t for raw in request.query_params.getlist("topics") for t in raw.split(",") if t]
    since: object = request.query_params.get("since")
    last_event_id = request.headers.get("last-event-id")
    if last_event_id is not None:
        since = last_event_id
    if isinstance(since, str):
        try:
            since = int(since)
        except ValueError:
            raise ProtocolError(ErrorCode.BAD_SINCE, "since / Last-Event-ID must be a non-negative integer") from None
        if not 0 <= since < MAX_SEQ:  # the JSON encoder takes no more than 64 bits either way
            raise ProtocolError(ErrorCode.BAD_SINCE, "since / Last-Event-ID must be a non-negative integer below 2^63")
    frame = {"type": "subscribe", "topics": topics, "since": since, "epoch": request.query_params.get("epoch")}
    parsed = parse_client_frame(orjson.dumps(frame))
    assert isinstance(parsed, Subscribe)
    return parsed


async def sse_endpoint(request: Request) -> Response:
    gateway: Gateway = request.app.state.gateway
    try:
        grant = connection_grant(gateway.verifier, request.scope, request.query_params,
                                 gateway.settings.auth_query_token)
    except AuthError as exc:
        return _refuse(401, ErrorCode.UNAUTHORIZED, str(exc))
    try:
        frame = _subscribe_frame(request)
    except ProtocolError as exc:
        return _refuse(400, exc.code, exc.message)
    refused = forbidden(grant, frame.topics)
    if refused:
        return _refuse(403, ErrorCode.FORBIDDEN, f"not granted: {', '.join(refused)}", topics=list(refused))
    session = Session(uuid.uuid4().hex[:16], gateway.limits)
    session.grant = grant
    # Counted in before the resume checks' awaits, as a WebSocket is before its first frame:
    # requests arriving together must not all pass a full replica's check meanwhile.
    refusal = await gateway.admit(session)
    if refusal is not None:
        return _refuse(503, ErrorCode.UNAVAILABLE, refusal)
    try:
        plan = await gateway.subscriber.prepare(session, frame)
    except ProtocolError as exc:
        gateway.sessions.discard(session)
        return _refuse(503 if exc.code is ErrorCode.UNAVAILABLE else 400, exc.code, exc.message)
    except BaseException:
        gateway.sessions.discard(session)
        raise
    return EventStream(gateway, session, plan)


class EventStream(Response):
    """The streaming response of one SSE session; it owns the session's tasks."""

    def __init__(self, gateway: Gateway, session: Session, plan: Plan) -> None:
        self.gateway, self.session, self.plan = gateway, session, plan
        self.background = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway, session = self.gateway, self.session
        started = False

        async def write(chunk: str) -> None:
            nonlocal started
            if not started:
                # Marked once sent: a start cancelled while waiting (a stall) is sent again
                # before the close event.
                await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
                started = True
            await send({"type": "http.response.body", "body": chunk.encode(), "more_body": True})

        if gateway.draining:  # the drain may have passed over the sessions while this one started
            session.close(CloseCode.RESTART, "draining")
        try:
            async with asyncio.TaskGroup() as tasks:
                helpers = [
                    tasks.create_task(write_loop(session, write, sse_events, gateway.writer.stall)),
                    tasks.create_task(self._subscribe()),
                    tasks.create_task(_watch_disconnect(receive, session)),
                    tasks.create_task(_heartbeat(session, gateway.settings.heartbeat)),
                    tasks.create_task(expire(session, gateway.settings.jwt_leeway)),
                ]
                await session.wait_closing()
                for task in helpers:
                    task.cancel()
        except* Exception:
            log.exception("sse session %s: internal error", session.id)
            session.close(CloseCode.INTERNAL, "internal error")
        finally:
            gateway.subscriber.drop(session)
            gateway.sessions.discard(session)
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT):
                if session.state is SessionState.CLOSING:
                    await write(close_event(session.close_code, session.close_reason))
                if started:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
        except (TimeoutError, OSError):
            if session.close_code != CloseCode.SLOW_CONSUMER:  # a 4008 cut has logged its line
                log.info("sse session %s: client did not take the end of the stream", session.id)
            await _abort(scope, receive)
        session.closed()

    async def _subscribe(self) -> None:
        try:
            await self.gateway.subscriber.apply(self.session, self.plan)
        except ProtocolError as exc:
            # Past the response's start a refusal can only end the stream; the client retries.
            self.session.close(CloseCode.TRY_AGAIN, exc.message)


async def _abort(scope: Scope, receive: Receive) -> None:
    """Cut the connection of a client that does not take the end of its stream.

    An ASGI app can only return, and uvicorn then closes the transport, which holds the
    connection until its buffer is written: for a client that reads nothing, for ever.
    gateway.server's HTTP protocol lends the transport's ``abort`` instead."""
    extension: dict[str, Any] | None = scope.get("extensions", {}).get(ABORT_EXTENSION)
    if extension is None:  # another server: left to its close
        return
    extension["abort"]()
    # uvicorn hears of the abort a turn later (connection_lost); returning before it would
    # have it log "ASGI callable returned without completing response" as an error.
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(ABORT_WAIT):
            while (await receive())["type"] != "http.disconnect":
                continue


async def _watch_disconnect(receive: Receive, session: Session) -> None:
    while (await receive())["type"] != "http.disconnect":
        continue
    session.closed()


async def _heartbeat(session: Session, every: float) -> None:
    if every <= 0:
        return
    while True:
        await asyncio.sleep(every)
        session.send(HEARTBEAT)

"""Who a connection is and what it may subscribe to (``TICKWIRE_AUTH=jwt``).

Where a token comes from, in this order: the ``bearer.<token>`` WebSocket subprotocol
(browsers cannot set headers on a WebSocket; the server selects ``tickwire.v1``), an
``Authorization: Bearer`` header (other clients), and ``?token=`` only when
``TICKWIRE_AUTH_QUERY_TOKEN`` allows it (URLs end up in proxy logs and browser history).
Verification is ``gateway.tokens``; the grant is kept on the session, where
``gateway.subscribe`` bounds every subscription by it.

A WebSocket whose token is missing or bad is accepted and then closed with 1008 and the
reason, so a browser sees why (a refusal before the upgrade reaches scripts as a bare
1006). A connection's token runs out at its ``exp`` (plus the leeway): unless an ``auth``
frame brought a fresh one by then, the connection is closed with 1008.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping

from gateway.session import Session, SessionState
from gateway.tokens import Grant, TokenError, Verifier
from services.protocol import CloseCode

log = logging.getLogger(__name__)

BEARER_SUBPROTOCOL = "bearer."
MAX_REASON_BYTES = 123  # a WebSocket close reason's limit (RFC 6455 §5.5)


class AuthError(Exception):
    """The connection is not authenticated; the message is safe to send to the client."""


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def presented_token(scope: Mapping[str, object], query: Mapping[str, str], allow_query: bool) -> str | None:
    """The token a connection presents, or None."""
    for offered in scope.get("subprotocols", ()) or ():  # type: ignore[attr-defined]
        if isinstance(offered, str) and offered.startswith(BEARER_SUBPROTOCOL):
            return offered[len(BEARER_SUBPROTOCOL):]
    headers = scope.get("headers", [])
    authorization = _header(headers, b"authorization") if isinstance(headers, list) else None
    if authorization is not None:
        scheme, _, credentials = authorization.strip().partition(" ")
        if scheme.lower() == "bearer" and credentials.strip():
            return credentials.strip()
    if allow_query:
        return query.get("token") or None
    return None


def authenticate(verifier: Verifier, token: str | None) -> Grant:
    """The grant of ``token``; AuthError saying why not."""
    if token is None:
        raise AuthError("authentication required: present a bearer token")
    try:
        return verifier.verify(token)
    except TokenError as exc:
        # It becomes a close reason, and the claims it may quote come from the client.
        raise AuthError(str(exc).encode()[:MAX_REASON_BYTES].decode(errors="ignore")) from None


def connection_grant(verifier: Verifier | None, scope: Mapping[str, object], query: Mapping[str, str],
                     allow_query: bool) -> Grant | None:
    """A new connection's grant: None when auth is off; AuthError when it is refused."""
    if verifier is None:
        return None
    return authenticate(verifier, presented_token(scope, query, allow_query))


def renew(session: Session, verifier: Verifier, token: str) -> Grant:
    """Check a fresh token sent on an open connection; AuthError if it does not replace the old."""
    grant = authenticate(verifier, token)
    if session.grant is not None and grant.subject != session.grant.subject:
        # A connection keeps its principal: a token for someone else is a new connection.
        raise AuthError("a fresh token must be for the same subject")
    return grant


async def expire(session: Session, leeway: float) -> None:
    """Close the session with 1008 once its grant runs out; a renewed grant moves the end."""
    while session.state is SessionState.OPEN and session.grant is not None:
        remaining = session.grant.expires + leeway - time.time()
        if remaining <= 0:
            log.info("session %s: token of %r expired: closing 1008", session.id, session.grant.subject)
            session.close(CloseCode.POLICY, "token expired")
            return
        # Sleep to the end the grant had when we looked; an `auth` frame meanwhile has
        # replaced it, and the next turn sleeps on to the new end.
        await asyncio.sleep(remaining)

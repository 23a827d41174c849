"""One pass over every connection with something to send, once per turn of the event loop.

A message fans out to many sessions at once. Waking a writer task per session would cost
two task steps per connection per burst (the wake, then one turn's wait so the rest of the
burst joins the batch); instead the first session queued in a turn schedules one callback,
and that callback writes every dirty session's outbox straight into its socket. What the
feed read from NATS in the same turn leaves in the same frame, and under load the batches
grow by themselves: while one pass writes, the next burst gathers in the socket.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from services.protocol import CloseCode

log = logging.getLogger(__name__)


class Flushable(Protocol):
    id: str

    def flush(self) -> None:
        """Write what the connection's socket takes now, without blocking."""

    def close(self, code: int, reason: str = "") -> None: ...


class Flusher:
    def __init__(self) -> None:
        self._dirty: dict[Flushable, None] = {}  # insertion-ordered set
        self._scheduled = False

    def mark(self, session: Flushable) -> None:
        """Flush ``session`` at the end of this turn of the loop."""
        self._dirty[session] = None
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._scheduled = False
        dirty, self._dirty = self._dirty, {}
        for session in dirty:
            try:
                session.flush()
            except Exception:
                # One broken connection must not keep the others' frames back.
                log.exception("session %s: write failed", session.id)
                session.close(CloseCode.INTERNAL, "internal error")

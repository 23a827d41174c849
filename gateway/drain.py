"""The drain: how a replica that is asked to stop hands its clients to the others.

``/readyz`` has turned 503 and new connections are refused since the signal
(``Gateway.draining``). The drain waits ``drain_grace`` seconds, long enough for a load
balancer to take the replica out of rotation, then closes the connected clients with 1012
one by one, spread evenly over ``drain_window`` seconds, so that they reconnect (and resume
with ``since``) elsewhere as a trickle rather than a storm (argo-rollouts #3761).
"""

from __future__ import annotations

import asyncio
import logging

from gateway.state import Gateway
from services.protocol import CloseCode

log = logging.getLogger(__name__)


async def drain(gateway: Gateway) -> None:
    settings = gateway.settings
    log.info("drain: not ready, refusing new connections; closing %d in %.1fs, over %.1fs",
             len(gateway.sessions), settings.drain_grace, settings.drain_window)
    await asyncio.sleep(settings.drain_grace)
    sessions = list(gateway.sessions)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for i, session in enumerate(sessions):
        due = start + settings.drain_window * i / len(sessions)
        await asyncio.sleep(max(0.0, due - loop.time()))
        session.close(CloseCode.RESTART, "draining")
    log.info("drain: %d connections closed in %.1fs", len(sessions), loop.time() - start)

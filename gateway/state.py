"""What one gateway process shares between its handlers, built by the app's lifespan."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nats.aio.client import Client as NATS

from gateway.conflation import conflated_topics
from gateway.feed import Feed
from gateway.hub import Hub
from gateway.outbox import OutboxLimits
from gateway.session import Session
from gateway.subscribe import Subscriber
from gateway.telemetry import Telemetry
from gateway.tokens import Verifier
from gateway.writer import Writer
from services.looplag import LoopLag
from services.settings import GatewaySettings

DRAINING = "draining"
READY_WAIT = 5.0  # a client arriving while the feed catches up waits this long


@dataclass
class Gateway:
    settings: GatewaySettings
    nc: NATS
    feed: Feed
    hub: Hub
    telemetry: Telemetry
    subscriber: Subscriber
    verifier: Verifier | None = None  # None: auth is off
    sessions: set[Session] = field(default_factory=set)
    started: float = field(default_factory=time.monotonic)
    # Set when the process is asked to stop: readiness fails and new connections are refused.
    draining: bool = False
    conflate: Callable[[str], bool] | None = field(init=False)
    writer: Writer = field(default_factory=Writer)  # the hub's, which writes what it settles
    loop_lag: LoopLag = field(default_factory=LoopLag)

    def __post_init__(self) -> None:
        self.conflate = conflated_topics(self.settings.conflate)
        self.telemetry.gauges(
            connections=lambda: len(self.sessions),
            subscriptions=lambda: sum(len(s.patterns) for s in self.sessions),
            outbox=lambda: sum(s.queued for s in self.sessions),
            lag=lambda: max(0, self.feed.stream_last - self.feed.head),
            cached_topics=lambda: self.hub.cached_topics,
            latest_subjects=lambda: len(self.feed.latest),
        )
        self.telemetry.register(self.loop_lag.histogram)

    @property
    def limits(self) -> OutboxLimits:
        s = self.settings
        return OutboxLimits(s.outbox_messages, s.outbox_bytes, s.batch_max, self.conflate)

    def close_all(self, code: int, reason: str) -> None:
        """Ask every connection to close now (WebSocket close frame, SSE stream end)."""
        for session in list(self.sessions):
            session.close(code, reason)

    def is_ready(self) -> bool:
        return self.feed.ready.is_set() and self.nc.is_connected and not self.draining

    async def admit(self, session: Session) -> str | None:
        """Count ``session`` in, or say why it is refused: the replica is draining, full, or
        has not caught up with the stream within READY_WAIT.

        The wait comes first: the check and the reservation are one step after it, with no
        await between them, so connections arriving together cannot all pass the check
        before any of them is counted (a full replica would take them all)."""
        if not self.draining:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(READY_WAIT):
                    await self.feed.ready.wait()
        if self.draining:
            return DRAINING
        if not self.is_ready():
            return "replica not ready"
        if len(self.sessions) >= self.settings.max_connections:
            return "replica full"
        self.sessions.add(session)
        return None

    def nats_state(self) -> str:
        if self.nc.is_connected:
            return "connected"
        if self.nc.is_reconnecting:
            return "reconnecting"
        return "closed" if self.nc.is_closed else "disconnected"

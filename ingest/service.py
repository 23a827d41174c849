"""The ingest service: one replica wired together and run until stopped.

``Ingest.run`` serves the probes (with ``metrics_port``: ``/healthz``, ``/readyz``,
``/metrics``, ``ingest.probes``), starts tracing, connects to Redis and NATS, ensures stream
MD, then runs in one TaskGroup the monitor (``ingest.monitor``: stream MD there, lag) and the
balancer (``ingest.balancer``: a fair share of the streams' leases, one worker each).

Redis or NATS going away is ridden out, never fatal: nats.py reconnects forever and buffers,
the bridge retries publishes, workers and the balancer retry Redis with backoff, and each
backend's state is logged once per change (``ingest.links``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from nats.aio.client import Client as NATS
from prometheus_client import CollectorRegistry

from ingest.balancer import Balancer
from ingest.bridge import ACK_TIMEOUT, Bridge
from ingest.leases import Leases
from ingest.links import Link
from ingest.monitor import StreamMonitor
from ingest.probes import IngestCollector, Probes, serve_probes
from ingest.publisher import AckedPublisher
from ingest.stats import IngestStats
from services.connections import open_nats, open_redis
from services.lifecycle import stop_on_signals
from services.looplag import LoopLag
from services.settings import IngestSettings
from services.telemetry import INGEST, tracing

log = logging.getLogger(__name__)


class Ingest:
    """One ingest replica, runnable in-process: ``await Ingest(settings).run(stop)``."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.stats = IngestStats()
        self.loop_lag = LoopLag()  # exported on /metrics beside the stats
        self.started = asyncio.Event()  # set once connected and stream MD is ensured
        self.redis_link = Link("redis")
        self.monitor = StreamMonitor(settings, self.stats, lambda: self.streams)
        self._balancer: Balancer | None = None
        self._nc: NATS | None = None
        # Bounded shutdown: one idle read (block_ms) plus one publish attempt, then cancel.
        self.shutdown_grace = settings.block_ms / 1000 + 2 * ACK_TIMEOUT

    @property
    def streams(self) -> set[str]:
        """Streams this replica is reading now (not counting ones it is handing back)."""
        return self._balancer.streams if self._balancer is not None else set()

    def ready(self) -> bool:
        """Redis reachable, NATS connected and stream MD there: what ``/readyz`` answers."""
        nc = self._nc
        return self.redis_link.up and nc is not None and nc.is_connected and self.monitor.ok

    async def run(self, stop: asyncio.Event) -> None:
        """Bridge until ``stop`` is set, then finish in-flight batches and release leases.

        Cancelling this coroutine instead simulates a crash: leases are left to expire.
        """
        settings = self.settings
        async with contextlib.AsyncExitStack() as stack:
            if settings.metrics_port:
                await stack.enter_async_context(
                    serve_probes(Probes(self.ready, self._registry()), settings.metrics_host, settings.metrics_port))
            tracer = stack.enter_context(tracing(INGEST, settings.bus.tracing))
            redis = await stack.enter_async_context(open_redis(settings.bus.redis_url))
            # nats.py's initial connect already retries forever (max_reconnect_attempts=-1).
            self._nc = nc = await stack.enter_async_context(
                open_nats(settings.bus, f"tickwire-ingest-{settings.replica}"))
            if not await self.monitor.ensure(stop, nc.jetstream()):
                return
            leases = Leases(redis, settings.replica, settings.lease_ttl)
            publisher = AckedPublisher(nc)
            await publisher.start()
            bridge = Bridge(redis, nc, publisher, leases, settings, self.stats, tracer)
            self._balancer = Balancer(settings, redis, leases, bridge, self.redis_link, self.shutdown_grace)
            log.info("ingest %s: bridging streams %r into %s", settings.replica, settings.streams, settings.bus.stream)
            self.started.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self.monitor.run(stop, redis, nc), name="ingest:monitor")
                tg.create_task(self.loop_lag.run(stop), name="ingest:loop-lag")
                await self._balancer.run(stop, tg)
        log.info("ingest %s: stopped", settings.replica)

    def _registry(self) -> CollectorRegistry:
        registry = CollectorRegistry(auto_describe=False)
        registry.register(IngestCollector(self.stats, lambda: len(self.streams), self.ready))
        registry.register(self.loop_lag.histogram)
        return registry


async def run(settings: IngestSettings, stop: asyncio.Event | None = None) -> None:
    """Run one replica until ``stop`` is set, or until SIGINT/SIGTERM when no event is given."""
    ingest = Ingest(settings)
    if stop is not None:
        await ingest.run(stop)
        return
    stop = asyncio.Event()
    with stop_on_signals(stop):
        await ingest.run(stop)

"""Stream MD kept there and the held streams' lag measured: what ``/readyz`` and the lag gauge read.

Once a second the monitor checks that stream MD exists (creating it again if NATS lost it:
a memory-storage stream does not outlive a restart) and measures each held stream's lag.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import redis.asyncio as aioredis
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from redis.exceptions import RedisError

from ingest.links import Link
from ingest.stats import IngestStats
from services.backoff import Backoff, pause
from services.connections import ensure_stream
from services.settings import IngestSettings

log = logging.getLogger(__name__)

INTERVAL = 1.0  # stream check and lag sampling


class StreamMonitor:
    """Whether stream MD is there (``ok``), and ``stats.lag`` of the streams ``held()`` names."""

    def __init__(self, settings: IngestSettings, stats: IngestStats, held: Callable[[], set[str]]) -> None:
        self.settings = settings
        self.stats = stats
        self.held = held
        self.ok = False
        self._link = Link("jetstream")

    async def ensure(self, stop: asyncio.Event, js: JetStreamContext) -> bool:
        """Create or update stream MD, retrying while JetStream is not answering; False if stopped first."""
        backoff = Backoff()
        while not stop.is_set():
            try:
                await ensure_stream(js, self.settings.bus)
            except (TimeoutError, NatsError) as exc:
                self._link.failed(exc)
            else:
                self._link.reached()
                self.ok = True
                return True
            await pause(stop, backoff.delay())
        return False

    async def run(self, stop: asyncio.Event, redis: aioredis.Redis, nc: NATS) -> None:
        """Until ``stop``: keep ``ok`` and the lag gauge current; put stream MD back if NATS lost it."""
        js = nc.jetstream(timeout=INTERVAL)
        while not stop.is_set():
            await self._check_stream(nc, js)
            try:
                await self._measure_lag(redis)
            except (RedisError, OSError):
                pass  # the balancer reports Redis being away
            await pause(stop, INTERVAL)

    async def _check_stream(self, nc: NATS, js: JetStreamContext) -> None:
        if not nc.is_connected:
            self.ok = False
            return
        stream = self.settings.bus.stream
        try:
            await js.stream_info(stream)
        except NotFoundError:
            # A memory-storage stream does not outlive a NATS restart, nor one someone deleted.
            log.warning("jetstream: stream %s missing: creating it again", stream)
            try:
                await ensure_stream(js, self.settings.bus)
            except (TimeoutError, NatsError) as exc:
                log.warning("jetstream: could not create stream %s (%s)", stream, exc)
                self.ok = False
                return
        except (TimeoutError, NatsError):
            self.ok = False
            return
        self.ok = True

    async def _measure_lag(self, redis: aioredis.Redis) -> None:
        """Per held stream: entries not yet delivered (XINFO GROUPS lag) plus delivered, not yet acked."""
        held = sorted(self.held())
        lag: dict[str, int] = {}
        if held:
            async with redis.pipeline(transaction=False) as pipe:
                for stream in held:
                    pipe.xinfo_groups(stream)
                replies = await pipe.execute(raise_on_error=False)
            group = self.settings.group.encode()
            for stream, groups in zip(held, replies, strict=True):
                if isinstance(groups, Exception):
                    continue
                for info in groups:
                    # lag is None when Redis cannot count it (entries deleted ahead): no sample then.
                    if info.get("name") == group and info.get("lag") is not None:
                        lag[stream] = int(info["lag"]) + int(info.get("pending") or 0)
        self.stats.lag = lag

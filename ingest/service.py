"""The ingest service: discover streams, hold a fair share of their leases, bridge each one.

One control loop (every ``lease_ttl / 3``) heartbeats membership, renews every held lease,
re-scans for streams every ``rescan_interval``, and balances: a replica over its quota
releases extras (after their in-flight batch), one under it takes free leases. A lease that
fails to renew stops its stream's worker at once. Every task lives in one TaskGroup.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ingest.bridge import ACK_TIMEOUT, Bridge
from ingest.leases import Leases, quota
from ingest.reader import StreamReader
from ingest.stats import IngestStats
from ingest.worker import StreamWorker
from services.connections import ensure_stream, open_nats, open_redis
from services.lifecycle import stop_on_signals
from services.settings import IngestSettings

log = logging.getLogger(__name__)

MIN_TICK = 0.05


@dataclass
class _Running:
    worker: StreamWorker
    task: asyncio.Task[None]


class Ingest:
    """One ingest replica, runnable in-process: ``await Ingest(settings).run(stop)``."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.stats = IngestStats()
        self.started = asyncio.Event()  # set once connected and stream MD is ensured
        self._running: dict[str, _Running] = {}
        self._redis_failing = False
        # Bounded shutdown: one idle read (block_ms) plus one publish attempt, then cancel.
        self.shutdown_grace = settings.block_ms / 1000 + 2 * ACK_TIMEOUT

    @property
    def streams(self) -> set[str]:
        """Streams this replica is reading now (not counting ones it is handing back)."""
        return {stream for stream, run in self._running.items() if not run.worker.stopping}

    async def run(self, stop: asyncio.Event) -> None:
        """Bridge until ``stop`` is set, then finish in-flight batches and release leases.

        Cancelling this coroutine instead simulates a crash: leases are left to expire.
        """
        settings = self.settings
        async with (
            open_redis(settings.bus.redis_url) as redis,
            open_nats(settings.bus, f"tickwire-ingest-{settings.replica}") as nc,
        ):
            js = nc.jetstream()
            await ensure_stream(js, settings.bus)
            leases = Leases(redis, settings.replica, settings.lease_ttl)
            bridge = Bridge(redis, nc, js, leases, settings, self.stats)
            log.info("ingest %s: bridging streams %r into %s", settings.replica, settings.streams, settings.bus.stream)
            self.started.set()
            async with asyncio.TaskGroup() as tg:
                await self._control(stop, tg, redis, leases, bridge)

    async def _control(self, stop: asyncio.Event, tg: asyncio.TaskGroup, redis: aioredis.Redis, leases: Leases,
                       bridge: Bridge) -> None:
        tick = max(MIN_TICK, self.settings.lease_ttl / 3)
        streams: set[str] = set()
        next_scan = 0.0
        while not stop.is_set():
            try:
                members = await leases.heartbeat()
                await self._renew(leases)
                if time.monotonic() >= next_scan:
                    streams = await self._discover(redis)
                    next_scan = time.monotonic() + self.settings.rescan_interval
                await self._balance(tg, streams, members, redis, leases, bridge)
                if self._redis_failing:
                    self._redis_failing = False
                    log.info("redis: reachable again")
            except (RedisError, OSError) as exc:
                if not self._redis_failing:
                    self._redis_failing = True
                    log.warning("redis: %s; leases expire unless it comes back", exc)
                self._drop_expired()
            try:
                async with asyncio.timeout(tick):
                    await stop.wait()
            except TimeoutError:
                pass
        await self._shutdown(leases)

    async def _discover(self, redis: aioredis.Redis) -> set[str]:
        found = set()
        async for key in redis.scan_iter(match=self.settings.streams, count=1000, _type="stream"):
            name = key.decode() if isinstance(key, bytes) else str(key)
            if name != self.settings.dead_letter_stream:
                found.add(name)
        return found

    async def _renew(self, leases: Leases) -> None:
        """Renew every held lease; a lease that is no longer ours stops its worker at once."""
        for stream, run in list(self._running.items()):
            if run.task.done():
                del self._running[stream]
            elif not await leases.renew(run.worker.lease):
                log.warning("lease on %s taken over: stopping its reader", stream)
                run.task.cancel()
                del self._running[stream]

    def _drop_expired(self) -> None:
        """Without Redis we cannot renew: past the lease's TTL another replica may own it."""
        for stream, run in list(self._running.items()):
            if run.worker.lease.expired():
                log.warning("lease on %s expired while redis was unreachable: stopping its reader", stream)
                run.task.cancel()
                del self._running[stream]

    async def _balance(self, tg: asyncio.TaskGroup, streams: set[str], members: int, redis: aioredis.Redis,
                       leases: Leases, bridge: Bridge) -> None:
        limit = quota(len(streams), members)
        active = sorted(self.streams)
        for stream in active[limit:]:
            log.info("handing back %s (%d streams, %d replicas: quota %d)", stream, len(streams), members, limit)
            self._running[stream].worker.stop()
        # Workers still handing back count as held, so we do not take more before they finish.
        for stream in sorted(streams - self._running.keys()):
            if len(self._running) >= limit:
                break
            lease = await leases.acquire(stream)
            if lease is None:
                continue
            log.info("acquired %s", stream)
            reader = StreamReader(redis, stream, group=self.settings.group, replica=self.settings.replica,
                                  batch=self.settings.batch, block_ms=self.settings.block_ms)
            worker = StreamWorker(lease, reader, bridge, leases)
            self._running[stream] = _Running(worker, tg.create_task(worker.run(), name=f"ingest:{stream}"))

    async def _shutdown(self, leases: Leases) -> None:
        runs = list(self._running.values())
        for run in runs:
            run.worker.stop()
        if runs:
            _, late = await asyncio.wait([run.task for run in runs], timeout=self.shutdown_grace)
            for task in late:
                log.warning("%s did not finish within %.1fs: cancelled", task.get_name(), self.shutdown_grace)
                task.cancel()
        self._running.clear()
        try:
            await leases.leave()
        except (RedisError, OSError) as exc:
            log.warning("could not leave membership (%s): it expires in %.1fs", exc, leases.ttl)
        log.info("ingest %s: stopped", self.settings.replica)


async def run(settings: IngestSettings, stop: asyncio.Event | None = None) -> None:
    """Run one replica until ``stop`` is set, or until SIGINT/SIGTERM when no event is given."""
    ingest = Ingest(settings)
    if stop is not None:
        await ingest.run(stop)
        return
    stop = asyncio.Event()
    with stop_on_signals(stop):
        await ingest.run(stop)

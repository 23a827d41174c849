"""Which streams this replica reads: discovered, leased in a fair share, one worker each.

One control loop (every ``lease_ttl / 3``) heartbeats membership, renews every held lease,
re-scans for streams every ``rescan_interval``, and balances: a replica over its quota
releases extras (after their in-flight batch), one under it takes free leases. A lease that
fails to renew stops its stream's worker at once; without Redis, a lease past its TTL does.
On stop, workers finish their batch within ``shutdown_grace`` and the replica leaves.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from ingest.bridge import Bridge
from ingest.leases import Leases, quota
from ingest.links import Link
from ingest.reader import StreamReader
from ingest.worker import StreamWorker
from services.backoff import pause
from services.settings import IngestSettings

log = logging.getLogger(__name__)

MIN_TICK = 0.05


@dataclass
class _Running:
    worker: StreamWorker
    task: asyncio.Task[None]


class Balancer:
    """The replica's share of the streams, each bridged by a worker task in the caller's group."""

    def __init__(self, settings: IngestSettings, redis: aioredis.Redis, leases: Leases, bridge: Bridge,
                 redis_link: Link, shutdown_grace: float) -> None:
        self.settings = settings
        self.redis = redis
        self.leases = leases
        self.bridge = bridge
        self.redis_link = redis_link
        self.shutdown_grace = shutdown_grace
        self._running: dict[str, _Running] = {}

    @property
    def streams(self) -> set[str]:
        """Streams read now (not counting ones being handed back)."""
        return {stream for stream, run in self._running.items() if not run.worker.stopping}

    async def run(self, stop: asyncio.Event, tg: asyncio.TaskGroup) -> None:
        """Balance until ``stop``, starting workers in ``tg``; then stop them and leave."""
        tick = max(MIN_TICK, self.settings.lease_ttl / 3)
        streams: set[str] = set()
        next_scan = 0.0
        while not stop.is_set():
            try:
                members = await self.leases.heartbeat()
                await self._renew()
                if time.monotonic() >= next_scan:
                    streams = await self._discover()
                    next_scan = time.monotonic() + self.settings.rescan_interval
                await self._balance(tg, streams, members)
                self.redis_link.reached()
            except (RedisError, OSError) as exc:
                self.redis_link.failed(exc)
                self._drop_expired()
            await pause(stop, tick)
        await self._shutdown()

    async def _discover(self) -> set[str]:
        found = set()
        async for key in self.redis.scan_iter(match=self.settings.streams, count=1000, _type="stream"):
            name = key.decode() if isinstance(key, bytes) else str(key)
            if name != self.settings.dead_letter_stream:
                found.add(name)
        return found

    async def _renew(self) -> None:
        """Renew every held lease; a lease that is no longer ours stops its worker at once."""
        for stream, run in list(self._running.items()):
            if run.task.done():
                del self._running[stream]
            elif not await self.leases.renew(run.worker.lease):
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

    async def _balance(self, tg: asyncio.TaskGroup, streams: set[str], members: int) -> None:
        limit = quota(len(streams), members)
        active = sorted(self.streams)
        for stream in active[limit:]:
            log.info("handing back %s (%d streams, %d replicas: quota %d)", stream, len(streams), members, limit)
            self._running[stream].worker.stop()
        # Workers still handing back count as held, so we do not take more before they finish.
        for stream in sorted(streams - self._running.keys()):
            if len(self._running) >= limit:
                break
            lease = await self.leases.acquire(stream)
            if lease is None:
                continue
            log.info("acquired %s", stream)
            reader = StreamReader(self.redis, stream, group=self.settings.group, replica=self.settings.replica,
                                  batch=self.settings.batch, block_ms=self.settings.block_ms)
            worker = StreamWorker(lease, reader, self.bridge, self.leases, self.redis_link)
            self._running[stream] = _Running(worker, tg.create_task(worker.run(), name=f"ingest:{stream}"))

    async def _shutdown(self) -> None:
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
            await self.leases.leave()
        except (RedisError, OSError) as exc:
            log.warning("could not leave membership (%s): it expires in %.1fs", exc, self.leases.ttl)

"""The ingest service: discover streams, hold a fair share of their leases, bridge each one.

One control loop (every ``lease_ttl / 3``) heartbeats membership, renews every held lease,
re-scans for streams every ``rescan_interval``, and balances: a replica over its quota
releases extras (after their in-flight batch), one under it takes free leases. A lease that
fails to renew stops its stream's worker at once. A monitor task checks that stream MD
exists (re-creating it if NATS lost it) and measures each held stream's lag. Every task lives
in one TaskGroup; with ``metrics_port`` set, ``/healthz``, ``/readyz`` and ``/metrics`` are
served beside them (``ingest.probes``).

Redis or NATS going away is ridden out, never fatal: nats.py reconnects forever and buffers,
the bridge retries publishes, workers and the control loop retry Redis with backoff, and each
backend's state is logged once per change (``ingest.links``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from nats.aio.client import Client as NATS
from nats.errors import Error as NatsError
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from prometheus_client import CollectorRegistry
from redis.exceptions import RedisError

from ingest.bridge import ACK_TIMEOUT, BACKOFF_MAX, BACKOFF_MIN, Bridge
from ingest.leases import Leases, quota
from ingest.links import Link
from ingest.probes import IngestCollector, Probes, serve_probes
from ingest.publisher import AckedPublisher
from ingest.reader import StreamReader
from ingest.stats import IngestStats
from ingest.worker import StreamWorker
from services.connections import ensure_stream, open_nats, open_redis
from services.lifecycle import stop_on_signals
from services.looplag import LoopLag
from services.settings import IngestSettings
from services.telemetry import INGEST, tracing

log = logging.getLogger(__name__)

MIN_TICK = 0.05
MONITOR_INTERVAL = 1.0  # stream check and lag sampling


@dataclass
class _Running:
    worker: StreamWorker
    task: asyncio.Task[None]


class Ingest:
    """One ingest replica, runnable in-process: ``await Ingest(settings).run(stop)``."""

    def __init__(self, settings: IngestSettings) -> None:
        self.settings = settings
        self.stats = IngestStats()
        self.loop_lag = LoopLag()  # exported on /metrics beside the stats
        self.started = asyncio.Event()  # set once connected and stream MD is ensured
        self._running: dict[str, _Running] = {}
        self.redis_link = Link("redis")
        self._nats_link = Link("jetstream")
        self._nc: NATS | None = None
        self._stream_ok = False
        # Bounded shutdown: one idle read (block_ms) plus one publish attempt, then cancel.
        self.shutdown_grace = settings.block_ms / 1000 + 2 * ACK_TIMEOUT

    @property
    def streams(self) -> set[str]:
        """Streams this replica is reading now (not counting ones it is handing back)."""
        return {stream for stream, run in self._running.items() if not run.worker.stopping}

    def ready(self) -> bool:
        """Redis reachable, NATS connected and stream MD there: what ``/readyz`` answers."""
        nc = self._nc
        return self.redis_link.up and nc is not None and nc.is_connected and self._stream_ok

    async def run(self, stop: asyncio.Event) -> None:
        """Bridge until ``stop`` is set, then finish in-flight batches and release leases.

        Cancelling this coroutine instead simulates a crash: leases are left to expire.
        """
        settings = self.settings
        async with contextlib.AsyncExitStack() as stack:
            if settings.metrics_port:
                registry = CollectorRegistry(auto_describe=False)
                registry.register(IngestCollector(self.stats, lambda: len(self.streams), self.ready))
                registry.register(self.loop_lag.histogram)
                await stack.enter_async_context(
                    serve_probes(Probes(self.ready, registry), settings.metrics_host, settings.metrics_port))
            tracer = stack.enter_context(tracing(INGEST, settings.bus.tracing))
            redis = await stack.enter_async_context(open_redis(settings.bus.redis_url))
            # nats.py's initial connect already retries forever (max_reconnect_attempts=-1).
            self._nc = nc = await stack.enter_async_context(
                open_nats(settings.bus, f"tickwire-ingest-{settings.replica}"))
            js = nc.jetstream()
            if not await self._ensure_stream(stop, js):
                return
            leases = Leases(redis, settings.replica, settings.lease_ttl)
            publisher = AckedPublisher(nc)
            await publisher.start()
            bridge = Bridge(redis, nc, publisher, leases, settings, self.stats, tracer)
            log.info("ingest %s: bridging streams %r into %s", settings.replica, settings.streams, settings.bus.stream)
            self.started.set()
            async with asyncio.TaskGroup() as tg:
                tg.create_task(self._monitor(stop, redis, nc), name="ingest:monitor")
                tg.create_task(self.loop_lag.run(stop), name="ingest:loop-lag")
                await self._control(stop, tg, redis, leases, bridge)

    async def _ensure_stream(self, stop: asyncio.Event, js: JetStreamContext) -> bool:
        """Create or update stream MD, retrying while JetStream is not answering; False if stopped first."""
        delay = BACKOFF_MIN
        while not stop.is_set():
            try:
                await ensure_stream(js, self.settings.bus)
            except (TimeoutError, NatsError) as exc:
                self._nats_link.failed(exc)
            else:
                self._nats_link.reached()
                self._stream_ok = True
                return True
            await _wait(stop, delay)
            delay = min(delay * 2, BACKOFF_MAX)
        return False

    async def _monitor(self, stop: asyncio.Event, redis: aioredis.Redis, nc: NATS) -> None:
        """Keep ``ready()`` and the lag gauge current; put stream MD back if NATS lost it."""
        js = nc.jetstream(timeout=MONITOR_INTERVAL)
        while not stop.is_set():
            await self._check_stream(nc, js)
            try:
                await self._measure_lag(redis)
            except (RedisError, OSError):
                pass  # the control loop reports Redis being away
            await _wait(stop, MONITOR_INTERVAL)

    async def _check_stream(self, nc: NATS, js: JetStreamContext) -> None:
        if not nc.is_connected:
            self._stream_ok = False
            return
        try:
            await js.stream_info(self.settings.bus.stream)
        except NotFoundError:
            # A memory-storage stream does not outlive a NATS restart, nor one someone deleted.
            log.warning("jetstream: stream %s missing: creating it again", self.settings.bus.stream)
            try:
                await ensure_stream(js, self.settings.bus)
            except (TimeoutError, NatsError) as exc:
                log.warning("jetstream: could not create stream %s (%s)", self.settings.bus.stream, exc)
                self._stream_ok = False
                return
        except (TimeoutError, NatsError):
            self._stream_ok = False
            return
        self._stream_ok = True

    async def _measure_lag(self, redis: aioredis.Redis) -> None:
        """Per held stream: entries not yet delivered (XINFO GROUPS lag) plus delivered, not yet acked."""
        held = sorted(self.streams)
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
                self.redis_link.reached()
            except (RedisError, OSError) as exc:
                self.redis_link.failed(exc)
                self._drop_expired()
            await _wait(stop, tick)
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
            worker = StreamWorker(lease, reader, bridge, leases, self.redis_link)
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


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    """Sleep ``seconds``, or less if ``stop`` is set meanwhile."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


async def run(settings: IngestSettings, stop: asyncio.Event | None = None) -> None:
    """Run one replica until ``stop`` is set, or until SIGINT/SIGTERM when no event is given."""
    ingest = Ingest(settings)
    if stop is not None:
        await ingest.run(stop)
        return
    stop = asyncio.Event()
    with stop_on_signals(stop):
        await ingest.run(stop)
